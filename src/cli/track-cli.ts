/**
 * `sqlite-sse track|untrack --db PATH --table NAME [--table NAME ...] [--keep N]`: installs or removes the change
 * triggers (src/source/change-triggers.ts). These commands, not the server, are what writes schema to a user's database.
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { CHANGE_LOG_TABLE } from '../source/change-log.js';
import { DEFAULT_KEEP, track, untrack, type TrackResult, type UntrackResult } from '../source/change-triggers.js';
import { ErrorCodes, SseError } from '../errors.js';

type Command = 'track' | 'untrack';

const DEFAULT_DB = './sse.db';

/** `--help` of each command. */
export function trackHelpText(command: Command): string {
  const flags: [string, string][] = [
    ['--db PATH', `database to change, never created (default: ${DEFAULT_DB})`],
    ['--table NAME', 'a table; repeat the flag for more (required)'],
  ];
  if (command === 'track') {
    flags.push(['--keep N', `changes the log keeps, one setting for every tracked table since they share the log (default: the setting already installed, else ${DEFAULT_KEEP})`]);
  }
  flags.push(['--help', 'this text']);
  const about =
    command === 'track'
      ? `Installs AFTER INSERT, UPDATE and DELETE triggers that log every change of each table to ${CHANGE_LOG_TABLE}\n(created when missing), whoever the writer is. Run it again after a schema change to refresh them.`
      : `Removes the triggers "track" installed on each table. Logged changes stay in ${CHANGE_LOG_TABLE} until trimmed.`;
  return [
    `Usage: npm run ${command} -- --db PATH --table NAME [--table NAME ...]${command === 'track' ? ' [--keep N]' : ''}`,
    `       (or: node dist/src/cli.js ${command} ...)`,
    '',
    about,
    '',
    'Options:',
    ...flags.map(([flag, help]) => `  ${flag.padEnd(15)}${help}`),
  ].join('\n');
}

/** Runs `track` or `untrack` with the arguments after the command word; prints one line per table; returns the exit code. */
export function runTrackCommand(argv: string[], command: Command): number {
  try {
    const flags = parseFlags(argv, command);
    if (flags.help) {
      console.log(trackHelpText(command));
      return 0;
    }
    const tables = flags.table ?? [];
    if (tables.length === 0) throw new SseError(ErrorCodes.BAD_OPTION, `${command} needs at least one --table NAME (see --help)`);
    const keep = flags.keep === undefined ? undefined : parseKeep(flags.keep);
    const path = flags.db ?? DEFAULT_DB;
    const lines = withDatabase(path, (db) =>
      // One transaction for all tables (each call's own becomes a savepoint): an error leaves nothing half done.
      db.transaction(() => (command === 'track' ? trackLines(tables.map((table) => track(db, table, keep))) : tables.map((table) => untrackLine(untrack(db, table)))))
        .immediate(),
    );
    for (const line of lines) console.log(line);
    return 0;
  } catch (error) {
    console.error(`error: ${error instanceof SseError ? error.message : `unexpected: ${(error as Error)?.message ?? String(error)}`}`);
    return 1;
  }
}

function parseFlags(argv: string[], command: Command): { db?: string; table?: string[]; keep?: string; help?: boolean } {
  const options = {
    db: { type: 'string' as const },
    table: { type: 'string' as const, multiple: true as const },
    help: { type: 'boolean' as const },
    ...(command === 'track' ? { keep: { type: 'string' as const } } : {}),
  };
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values as ReturnType<typeof parseFlags>;
  } catch (error) {
    // parseArgs' messages are long and mention internals; keep the one line a user needs.
    const message = (error as Error).message.split('\n')[0].replace(/\. (To specify|This command).*$/, '');
    throw new SseError(ErrorCodes.BAD_OPTION, `${message} (see sqlite-sse ${command} --help)`);
  }
}

function parseKeep(text: string): number {
  const keep = /^[1-9]\d*$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(keep)) {
    throw new SseError(ErrorCodes.BAD_OPTION, `--keep must be a whole number of changes from 1 to ${Number.MAX_SAFE_INTEGER}, got ${JSON.stringify(text)}`);
  }
  return keep;
}

function withDatabase<T>(path: string, use: (db: Database.Database) => T): T {
  if (!existsSync(path)) throw new SseError(ErrorCodes.DB_MISSING, `database ${path} does not exist: check the path (track never creates a database)`);
  // A writer may hold the lock for a moment: wait for it, as any writer would, rather than fail at once.
  const db = new Database(path, { fileMustExist: true, timeout: 5000 });
  try {
    return use(db);
  } catch (error) {
    throw databaseError(path, error);
  } finally {
    db.close();
  }
}

/** SQLite's errors, said in one line that names the file. */
function databaseError(path: string, error: unknown): unknown {
  if (error instanceof SseError) return error;
  const code = String((error as { code?: unknown })?.code ?? '');
  const message = (error as Error)?.message ?? String(error);
  if (code === 'SQLITE_NOTADB') return new SseError(ErrorCodes.DB_NOT_SQLITE, `${path} is not a SQLite database`);
  if (code.startsWith('SQLITE_BUSY')) return new SseError(ErrorCodes.DB_UNREADABLE, `${path} stayed locked by another connection for 5 s: try again`);
  if (code.startsWith('SQLITE_READONLY') || code.startsWith('SQLITE_CANTOPEN')) {
    return new SseError(ErrorCodes.DB_UNREADABLE, `cannot write to ${path} (${message}): track and untrack change its schema`);
  }
  if (code.startsWith('SQLITE_')) return new SseError(ErrorCodes.DB_UNREADABLE, `${path}: ${message}`);
  return error;
}

function trackLines(results: TrackResult[]): string[] {
  const named = new Set(results.map((result) => result.table));
  const lines = results.map((result) => {
    const log = `${result.logCreated ? 'created ' : ''}${CHANGE_LOG_TABLE} keeps the newest ${result.keep} changes`;
    const trimmed = result.trimmed > 0 ? `, ${plural(result.trimmed, 'older change')} deleted` : '';
    return `tracked ${result.table}: triggers ${result.action} (key ${result.key.join(', ')}; ${plural(result.columns.length, 'column')}), ${log}${trimmed}`;
  });
  // Tables not named on the command line whose triggers took the new --keep: say so, they changed too.
  const keep = results[results.length - 1].keep;
  const retuned = new Set(results.flatMap((result) => result.retuned).filter((table) => !named.has(table)));
  for (const table of [...retuned].sort()) lines.push(`tracked ${table}: triggers now keep the newest ${keep} changes (the log is shared)`);
  return lines;
}

function untrackLine(result: UntrackResult): string {
  if (result.dropped.length === 0) return `untracked ${result.table}: it was not tracked, nothing to remove`;
  return `untracked ${result.table}: ${plural(result.dropped.length, 'trigger')} removed (its changes stay in ${CHANGE_LOG_TABLE} until trimmed)`;
}

const plural = (count: number, noun: string): string => `${count} ${noun}${count === 1 ? '' : 's'}`;
