#!/usr/bin/env node
import cluster from 'node:cluster';
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createDemoTable } from './cli/demo-database.js';
import { SseError } from './errors.js';
import { createLogger, type Logger } from './logger.js';
import { FLAGS, helpText, resolveOptions, type ServerOptions } from './options.js';
import { SseServer } from './cli/server.js';
import { TableReader } from './source/table-reader.js';
import { runTrackCommand } from './cli/track-cli.js';
import { runPrimary, tellPrimary } from './cli/workers.js';

function fail(message: string): never {
  if (cluster.isWorker) tellPrimary({ type: 'failed', message });
  else console.error(`error: ${message}`);
  process.exit(1);
}

function parseFlags(argv: string[]) {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = { help: { type: 'boolean' }, version: { type: 'boolean' } };
  for (const [flag, spec] of Object.entries(FLAGS)) options[flag] = { type: spec.kind === 'flag' ? 'boolean' : 'string', multiple: spec.multiple ?? false };
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
  } catch (error) {
    // parseArgs' messages are long and mention internals; keep the one line a user needs.
    const message = (error as Error).message.split('\n')[0].replace(/\. To specify.*$/, '');
    fail(`${message} (see --help)`);
  }
}

/** `listening on URL (db PATH, table NAME, last id N)`; several tables, the change stream and an edge say so in the parentheses. */
function listeningLine(url: string, streams: string): string {
  return `listening on ${url} (${streams})`;
}

/** Checks the database once before forking workers, so a bad path or table fails with one line, once. */
function prepareForWorkers(options: Readonly<ServerOptions>, createDemo: boolean, logger: Logger): void {
  // The change stream's workers check the change log themselves (a failure is still one line, via the primary).
  if (options.changes || options.edge) return;
  for (const table of options.tables) {
    if (options.create || (createDemo && !existsSync(options.db))) createDemoTable(options.db, table);
    const reader = new TableReader({ path: options.db, table, idColumn: options.idColumn });
    const info = reader.info;
    reader.close();
    warnIfIdsMayBeReused(info, logger);
  }
}

function warnIfIdsMayBeReused(info: { idsOnlyGrow: boolean; table: string; idColumn: string }, logger: Logger): void {
  if (info.idsOnlyGrow) return;
  logger.warn(
    `table ${info.table} has no AUTOINCREMENT on ${info.idColumn}: a deleted newest row's id can be reused, and a row inserted below the last id is never streamed (see README "Limits")`,
  );
}

async function serve(options: Readonly<ServerOptions>, logger: Logger, createDemo: boolean): Promise<void> {
  const server = await SseServer.start(options, logger, createDemo);
  const streams = server.streams;
  if (cluster.isWorker) {
    tellPrimary({ type: 'listening', url: server.url, streams: streams.describe(options) });
  } else {
    for (const info of streams.rowTables()) warnIfIdsMayBeReused(info, logger);
    logger.info(listeningLine(server.url, streams.describe(options)));
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) process.exit(0);
    stopping = true;
    if (!cluster.isWorker) logger.info(`${signal}: closing ${server.streams.clientCount} stream(s)`);
    // Never let a stuck peer hold the exit past the contract's couple of seconds.
    setTimeout(() => process.exit(0), 1500).unref();
    server.close().then(
      () => process.exit(0),
      () => process.exit(0),
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

async function main(): Promise<void> {
  // `sqlite-sse track|untrack ...` are commands of their own: they write schema, the server never does.
  const command = process.argv[2];
  if (command === 'track' || command === 'untrack') {
    process.exitCode = runTrackCommand(process.argv.slice(3), command);
    return;
  }
  const flags = parseFlags(process.argv.slice(2));
  if (flags.help) {
    console.log(helpText());
    return;
  }
  if (flags.version) {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    console.log(pkg.version);
    return;
  }
  const { help: _help, version: _version, ...rest } = flags;
  const options = resolveOptions(rest as Record<string, string | boolean | undefined>);
  const logger = createLogger(options.logLevel, options.logFormat);
  // Plain `npm start` is the demo: it may create ./sse.db. An explicit --db must exist unless --create says so.
  const createDemo = flags.db === undefined;
  if (options.workers > 1 && cluster.isPrimary) {
    prepareForWorkers(options, createDemo, logger);
    runPrimary(options, logger, (message) => {
      logger.info(listeningLine(message.url, message.streams));
      logger.info(`${options.workers} workers share the port, each with its own hub`);
    });
    return;
  }
  // Workers find the database made by the primary.
  await serve(options, logger, createDemo && !cluster.isWorker);
}

main().catch((error: unknown) => {
  if (error instanceof SseError) fail(error.message);
  fail(`unexpected: ${(error as Error)?.message ?? String(error)}`);
});
