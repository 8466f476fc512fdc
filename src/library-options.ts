import { ErrorCodes, SseError } from './errors.js';
import type { Logger } from './logger.js';
import type { TokenOptions } from './access/token-key.js';
import { FLAGS, resolveOptions, type ServerOptions } from './options.js';

/**
 * The options of `createSqliteSse()`: the CLI's flags in camelCase (`--history-bytes` is `historyBytes`), with the
 * CLI's units and defaults (`heartbeat` in seconds, `clientBuffer` as bytes or `'512k'`), plus a few of the library's
 * own. Every value may be given as the CLI's text or as a number, boolean or list.
 */
/** Signed tokens: `--jwt-secret`, `--jwt-secret-file`, `--jwt-public-key`, `--jwks-url`, `--jwt-issuer`, `--jwt-audience`. */
type SignedTokenOptions = Pick<TokenOptions, 'jwtSecret' | 'jwtSecretFile' | 'jwtPublicKey' | 'jwksUrl' | 'jwtIssuer' | 'jwtAudience'>;

export interface SqliteSseOptions extends SignedTokenOptions {
  /** SQLite database to stream. Default `'./sse.db'`; it must exist unless `create` is true. */
  db?: string;
  /** Table(s) streamed (`--table`, repeatable); with `changes`, narrows the change log. Default `messages`. */
  table?: string | readonly string[];
  /** Stream every change of tracked tables (`--changes`). Default false. */
  changes?: boolean;
  /** Integer column whose values only grow. Default: the table's INTEGER PRIMARY KEY. */
  idColumn?: string;
  /** SSE event name of each row. Default: none, so `onmessage` fires. */
  event?: string;
  /** Rows kept in memory for resuming clients. Default 10000. */
  historyRows?: number | string;
  /** Memory for those rows, bytes or `'16m'`. Default `'16m'`. */
  historyBytes?: number | string;
  /** Rows a client without a cursor gets first. Default 100. */
  recentRows?: number | string;
  /** Seconds between heartbeat comments. Default 15. */
  heartbeat?: number | string;
  /** Reconnect delay hinted to clients (`retry:`), in ms. Default 2000. */
  retry?: number | string;
  /** Bytes a client may lag before it is paused and caught up. Default `'1m'`. */
  clientBuffer?: number | string;
  /** Seconds after which a client that takes nothing is closed. Default 30. */
  slowClientTimeout?: number | string;
  /** Rows per database read. Default 1000. */
  pageRows?: number | string;
  /** Create a missing database or table with the demo schema. Default false. */
  create?: boolean;
  /** Streams held at once, then 503 (0: no limit). Default 20000. */
  maxClients?: number | string;
  /** Streams one address may hold, then 429 (0: no limit). Default 0. */
  maxClientsPerIp?: number | string;
  /** Rows one connection may read from the database, then it resumes (0: no limit). Default 100000. */
  maxCatchupRows?: number | string;
  /** Origins allowed to read cross-origin (a list, a comma-separated string, or `'*'`). Default: none. */
  corsOrigin?: string | readonly string[];
  /** Require this token (Bearer header, `sse_token` cookie or `?token=`). Default: none. */
  token?: string;
  /** Read the token from a file. Default: none. */
  tokenFile?: string;
  /** What the token guards: `events`, `ws`, `metrics`, `healthz`, `page`. Default `['events', 'ws', 'metrics']`. */
  protect?: string | readonly string[];
  /** `'native'` (fs.watch) or `'chokidar'`. Default `'native'`. */
  watcher?: 'native' | 'chokidar';
  /** Serve Prometheus metrics at `/metrics`. Default false. */
  metrics?: boolean;
  /** Level of the default logger: `'debug'`, `'info'`, `'warn'`, `'error'`. Default `'info'`. */
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  /** Format of the default logger: `'text'` or `'json'`. Default `'text'`. */
  logFormat?: 'text' | 'json';
  /** Folder of the web page served at `/`; setting it turns `page` on. Default: the package's `public/`. */
  public?: string;
  /** Library only: serve the demo page and its scripts at `/` (the CLI always does). Default false. */
  page?: boolean;
  /** Library only: where warnings and connection lines go. Default: stderr/stdout as the CLI, at `logLevel`. */
  logger?: Logger;
  /** Access rules filled from the token's claims (`--row-filter`, repeatable), e.g. `'user_id=eq.{sub}'`. */
  rowFilter?: string | readonly string[];
  /** Origin: publish every event to Redis Streams (`--redis`, `--redis-prefix`, `--redis-maxlen`). */
  redis?: string;
  redisPrefix?: string;
  redisMaxlen?: number | string;
  /** Edge: serve the stream an origin publishes to this Redis (`--edge`), with history from `origin`. */
  edge?: string;
  origin?: string;
}

/** What the library adds to the CLI's resolved options. */
export interface LibraryExtras {
  page: boolean;
  logger: Logger | undefined;
}

/** CLI flags that belong to the listening server, which in the library is the host app's. */
const SERVER_ONLY = new Set(['port', 'host', 'tls-cert', 'tls-key', 'workers']);
const LIBRARY_ONLY = new Set(['page', 'logger']);

const camel = (flag: string): string => flag.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase());

/** camelCase name → flag name, for every flag the library takes. */
const FLAG_OF = new Map(Object.keys(FLAGS).filter((flag) => !SERVER_ONLY.has(flag)).map((flag) => [camel(flag), flag]));

/** Edit distance, to suggest the option a typo meant. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1].toLowerCase() === b[j - 1].toLowerCase() ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length];
}

function unknownOption(key: string): SseError {
  if (SERVER_ONLY.has(key.replace(/[A-Z]/g, (letter) => '-' + letter.toLowerCase()))) {
    return new SseError(ErrorCodes.BAD_OPTION, `${key} is not an option of the library: the host app's server listens (it is a CLI flag)`);
  }
  const names = [...FLAG_OF.keys(), ...LIBRARY_ONLY];
  const best = names.map((name) => ({ name, d: distance(key, name) })).sort((a, b) => a.d - b.d)[0];
  const hint = best && best.d <= Math.max(2, Math.floor(key.length / 4)) ? `: did you mean ${best.name}?` : '';
  return new SseError(ErrorCodes.BAD_OPTION, `unknown option ${key}${hint}`);
}

/** One option's value as the CLI's flag text (undefined: not given). */
function flagText(key: string, flag: string, value: unknown): string | boolean | readonly string[] | undefined {
  if (value === undefined) return undefined;
  const isSwitch = FLAGS[flag].kind === 'flag';
  if (isSwitch) {
    if (typeof value !== 'boolean') throw new SseError(ErrorCodes.BAD_OPTION, `${key} expects true or false, got ${JSON.stringify(value)}`);
    return value || undefined;
  }
  if (Array.isArray(value) && (flag === 'cors-origin' || flag === 'protect')) return value.map(String).join(',');
  if (FLAGS[flag].multiple && (typeof value === 'string' || Array.isArray(value))) return (Array.isArray(value) ? value : [value]).map(String);
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  throw new SseError(ErrorCodes.BAD_OPTION, `${key} expects ${flag === 'cors-origin' || flag === 'protect' ? 'a list or ' : ''}a string or number, got ${JSON.stringify(value) ?? typeof value}`);
}

/**
 * The library's options through the CLI's one validation path (`resolveOptions`), so defaults and messages are the
 * CLI's; an unknown key is an error with a did-you-mean, never ignored.
 */
export function resolveLibraryOptions(input: SqliteSseOptions): { options: Readonly<ServerOptions>; extras: LibraryExtras } {
  if (input === null || typeof input !== 'object') throw new SseError(ErrorCodes.BAD_OPTION, 'options must be an object, like { db: "app.db" }');
  const flags: Record<string, string | boolean | readonly string[] | undefined> = {};
  for (const [key, value] of Object.entries(input)) {
    if (LIBRARY_ONLY.has(key)) continue;
    const flag = FLAG_OF.get(key);
    if (!flag) throw unknownOption(key);
    flags[flag] = flagText(key, flag, value);
  }
  let options: Readonly<ServerOptions>;
  try {
    options = resolveOptions(flags);
  } catch (error) {
    // The CLI's message names `--history-bytes`; the library's caller wrote `historyBytes`.
    if (error instanceof SseError) throw new SseError(error.code, error.message.replace(/--([a-z-]+)/g, (_, flag: string) => camel(flag)));
    throw error;
  }
  if (input.page !== undefined && typeof input.page !== 'boolean') throw new SseError(ErrorCodes.BAD_OPTION, `page expects true or false, got ${JSON.stringify(input.page)}`);
  const logger = input.logger;
  if (logger !== undefined && (typeof logger !== 'object' || typeof logger.warn !== 'function' || typeof logger.debug !== 'function')) {
    throw new SseError(ErrorCodes.BAD_OPTION, 'logger expects an object with debug, info, warn and error methods (console works)');
  }
  return { options, extras: { page: input.page ?? input.public !== undefined, logger } };
}
