#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { SseError } from './errors.js';
import { createLogger } from './logger.js';
import { FLAGS, helpText, resolveOptions } from './options.js';
import { SseServer } from './server.js';

function fail(message: string): never {
  console.error(`error: ${message}`);
  process.exit(1);
}

function parseFlags(argv: string[]) {
  const options: Record<string, { type: 'string' | 'boolean' }> = { help: { type: 'boolean' }, version: { type: 'boolean' } };
  for (const [flag, spec] of Object.entries(FLAGS)) options[flag] = { type: spec.kind === 'flag' ? 'boolean' : 'string' };
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
  } catch (error) {
    // parseArgs' messages are long and mention internals; keep the one line a user needs.
    const message = (error as Error).message.split('\n')[0].replace(/\. To specify.*$/, '');
    fail(`${message} (see --help)`);
  }
}

async function main(): Promise<void> {
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
  const server = await SseServer.start(options, logger, flags.db === undefined);
  const info = server.broadcaster.tableInfo!;
  if (!info.idsOnlyGrow) {
    logger.warn(
      `table ${info.table} has no AUTOINCREMENT on ${info.idColumn}: a deleted newest row's id can be reused, and a row inserted below the last id is never streamed (see README "Limits")`,
    );
  }
  logger.info(`listening on ${server.url} (db ${options.db}, table ${info.table}, last id ${server.broadcaster.lastId})`);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) process.exit(0);
    stopping = true;
    logger.info(`${signal}: closing ${server.broadcaster.clientCount} stream(s)`);
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

main().catch((error: unknown) => {
  if (error instanceof SseError) fail(error.message);
  fail(`unexpected: ${(error as Error)?.message ?? String(error)}`);
});
