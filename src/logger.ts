export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFormat = 'text' | 'json';

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/**
 * One line per message. Text for people: info as is on stdout, `warning:`/`error:` on stderr, `debug:` on stdout.
 * JSON for machines: `{"time":...,"level":...,"msg":...,...fields}`, warnings and errors on stderr.
 */
export function createLogger(level: LogLevel = 'info', format: LogFormat = 'text'): Logger {
  const threshold = RANK[level];
  const write = (at: LogLevel, message: string, fields?: Record<string, unknown>) => {
    if (RANK[at] < threshold) return;
    const stream = RANK[at] >= RANK.warn ? process.stderr : process.stdout;
    if (format === 'json') {
      stream.write(JSON.stringify({ time: new Date().toISOString(), level: at, msg: message, ...fields }) + '\n');
      return;
    }
    const prefix = at === 'info' ? '' : at === 'warn' ? 'warning: ' : `${at}: `;
    const suffix = fields ? Object.entries(fields).map(([key, value]) => ` ${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`).join('') : '';
    stream.write(prefix + message + suffix + '\n');
  };
  return {
    debug: (message, fields) => write('debug', message, fields),
    info: (message, fields) => write('info', message, fields),
    warn: (message, fields) => write('warn', message, fields),
    error: (message, fields) => write('error', message, fields),
  };
}
