import { existsSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { removeDirectory } from './helpers/cleanup.js';
import { createMessagesDatabase, sqlite, tempDirectory } from './helpers/database.js';
import { runCli, startServer } from './helpers/server-process.js';
import { SseStream } from './helpers/sse-stream.js';
import { waitFor } from './helpers/wait.js';

let directory: string;

test.before.each(() => {
  directory = tempDirectory();
});

test.after.each(() => {
  removeDirectory(directory);
});

/** One line on stderr, no stack trace, non-zero exit. */
function assertOneLineError(result: { code: number | null; stderr: string }, pattern: RegExp): void {
  assert.is.not(result.code, 0);
  const lines = result.stderr.trim().split('\n');
  assert.is(lines.length, 1, result.stderr);
  assert.match(lines[0], pattern);
  assert.not.match(result.stderr, /\n\s+at /);
}

test('--help lists every flag with its default and exits 0', async () => {
  const result = await runCli(['--help']);
  assert.is(result.code, 0);
  for (const flag of ['--db PATH', '--table NAME', '--port N', '--host H', '--id-column', '--event', '--history-rows', '--history-bytes', '--heartbeat', '--retry', '--create']) {
    assert.ok(result.stdout.includes(flag), flag);
  }
});

test('plain start creates ./sse.db with the demo table and prints the listening line', async () => {
  const server = await startServer([], { cwd: directory });
  try {
    assert.ok(existsSync(join(directory, 'sse.db')));
    assert.match(server.output(), /listening on http:\/\/127\.0\.0\.1:\d+ \(db \.\/sse\.db, table messages, last id 0\)/);
    assert.is(sqlite(join(directory, 'sse.db'), "SELECT sql FROM sqlite_master WHERE name='messages';").trim(), 'CREATE TABLE "messages" (id integer primary key autoincrement, message text)');
  } finally {
    await server.stop();
  }
});

test('a missing database suggests --create, which creates it', async () => {
  const path = join(directory, 'missing.db');
  assertOneLineError(await runCli(['--db', path, '--port', '0']), /does not exist.*--create/);
  assert.not.ok(existsSync(path), 'nothing was created without --create');
  const server = await startServer(['--db', path, '--create']);
  await server.stop();
  assert.ok(existsSync(path));
});

test('a file that is not SQLite is named as such', async () => {
  const path = join(directory, 'notes.txt');
  writeFileSync(path, 'just some text, certainly not a database '.repeat(50));
  assertOneLineError(await runCli(['--db', path, '--port', '0']), /is not a SQLite database/);
});

test('a missing table lists the tables that exist', async () => {
  const path = createMessagesDatabase(directory);
  sqlite(path, 'CREATE TABLE users(id INTEGER PRIMARY KEY);');
  assertOneLineError(await runCli(['--db', path, '--table', 'nope', '--port', '0']), /table nope not found .*tables: messages, users/);
});

test('a table without an integer id column says how to name one', async () => {
  const path = createMessagesDatabase(directory);
  sqlite(path, 'CREATE TABLE notes(name TEXT PRIMARY KEY, body TEXT);');
  assertOneLineError(await runCli(['--db', path, '--table', 'notes', '--port', '0']), /no INTEGER PRIMARY KEY.*--id-column/);
  assertOneLineError(await runCli(['--db', path, '--table', 'notes', '--id-column', 'body', '--port', '0']), /--id-column body has type TEXT/);
});

test('a port in use is reported', async () => {
  const path = createMessagesDatabase(directory);
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  try {
    const port = String((blocker.address() as { port: number }).port);
    assertOneLineError(await runCli(['--db', path, '--port', port]), new RegExp(`port ${port} on 127\\.0\\.0\\.1 is in use`));
  } finally {
    blocker.close();
  }
});

test('bad flags are one line naming the flag', async () => {
  assertOneLineError(await runCli(['--port', 'eighty']), /--port expects a whole number/);
  assertOneLineError(await runCli(['--bogus']), /Unknown option '--bogus'.*--help/);
});

test('a table without AUTOINCREMENT starts with a warning about reused ids', async () => {
  const path = join(directory, 'plain.db');
  sqlite(path, 'CREATE TABLE events(id INTEGER PRIMARY KEY, body TEXT);');
  const server = await startServer(['--db', path, '--table', 'events']);
  try {
    assert.match(server.output(), /warning: table events has no AUTOINCREMENT/);
  } finally {
    await server.stop();
  }
});

test('--watcher chokidar streams live rows too', async () => {
  const path = createMessagesDatabase(directory);
  const server = await startServer(['--db', path, '--watcher', 'chokidar']);
  const stream = new SseStream(server.url + '/events?lastEventId=0');
  try {
    await stream.waitForResponse();
    for (let i = 1; i <= 20; i++) sqlite(path, `INSERT INTO messages(message) VALUES ('row ${i}');`);
    await stream.waitForRows(20);
    assert.equal(stream.ids(), Array.from({ length: 20 }, (_, i) => i + 1));
  } finally {
    stream.close();
    await server.stop();
  }
});

test('--event names every row event, so onmessage does not fire and addEventListener(NAME) does', async () => {
  const path = createMessagesDatabase(directory);
  sqlite(path, "INSERT INTO messages(message) VALUES ('named');");
  const server = await startServer(['--db', path, '--event', 'message-row']);
  const stream = new SseStream(server.url + '/events?lastEventId=0');
  try {
    await waitFor('the named event', () => stream.events.length >= 1, 5000);
    assert.equal(stream.events[0], { id: '1', event: 'message-row', data: '{"id":1,"message":"named"}' });
  } finally {
    stream.close();
    await server.stop();
  }
});

test('--workers 2 serves every row from two processes on one port and stops on SIGTERM', async () => {
  const path = createMessagesDatabase(directory);
  const server = await startServer(['--db', path, '--workers', '2']);
  const streams = [1, 2, 3, 4].map(() => new SseStream(server.url + '/events?lastEventId=0'));
  try {
    assert.match(server.output(), /listening on http:\/\/127\.0\.0\.1:\d+ \(db .*, table messages, last id 0\)/);
    await waitFor('the workers line', () => /2 workers share the port/.test(server.output()), 3000);
    for (const stream of streams) await stream.waitForResponse();
    for (let i = 1; i <= 10; i++) sqlite(path, `INSERT INTO messages(message) VALUES ('row ${i}');`);
    for (const stream of streams) {
      await stream.waitForRows(10);
      assert.equal(stream.ids(), Array.from({ length: 10 }, (_, i) => i + 1));
    }
    assert.is(await server.stop('SIGTERM', 4000), 0);
  } finally {
    for (const stream of streams) stream.close();
    await server.stop('SIGKILL');
  }
});

test('SIGTERM ends every stream and exits 0 within two seconds', async () => {
  const path = createMessagesDatabase(directory);
  const server = await startServer(['--db', path]);
  const streams = [1, 2, 3].map(() => new SseStream(server.url + '/events'));
  try {
    for (const stream of streams) await stream.waitForResponse();
    await waitFor('3 clients', async () => (await (await fetch(server.url + '/healthz')).json()).clients === 3, 3000);
    const started = Date.now();
    assert.is(await server.stop('SIGTERM', 3000), 0);
    assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`);
    await waitFor('every stream ended', () => streams.every((stream) => stream.ended), 2000);
  } finally {
    for (const stream of streams) stream.close();
    await server.stop('SIGKILL');
  }
});

test.run();
