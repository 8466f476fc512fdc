import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createFetchHandler } from '../src/adapters/fetch.js';
import { createSqliteSse, type SqliteSse, SseError } from '../src/index.js';
import { removeDirectory, trackChild } from './helpers/cleanup.js';
import { createMessagesDatabase, sqlite, tempDirectory } from './helpers/database.js';
import { runCli } from './helpers/server-process.js';
import { range, SseStream } from './helpers/sse-stream.js';
import { waitFor, withTimeout } from './helpers/wait.js';
import { WsRecorder } from './helpers/ws-recorder.js';

const INDEX = pathToFileURL(fileURLToPath(new URL('../src/index.js', import.meta.url))).href;

let directory: string;
test.before.each(() => {
  directory = tempDirectory();
});
test.after.each(() => {
  removeDirectory(directory);
});

/** Insert `count` rows from the `sqlite3` shell: a writer in another process. */
function insert(path: string, count: number, prefix = 'row'): void {
  sqlite(path, `INSERT INTO messages(message) SELECT '${prefix}-' || value FROM generate_series(1, ${count});`);
}

/** A host app: its own route `/hello`, the stream for everything it claims, the host's 404 for the rest. */
async function host(live: SqliteSse): Promise<{ server: Server; url: string; close(): Promise<void> }> {
  const server = createServer((request, response) => {
    if (live.handleRequest(request, response)) return;
    if (request.url === '/hello') response.end('hello from the app\n');
    else response.writeHead(404).end('the app has no ' + request.url + '\n');
  });
  server.on('upgrade', (request, socket, head) => {
    if (!live.handleUpgrade(request, socket, head)) socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    server,
    url,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

test('an instance in a node:http server streams rows from another process, resumes after Last-Event-ID, and leaves the app its own paths', async () => {
  const path = createMessagesDatabase(directory);
  const live = await createSqliteSse({ db: path, recentRows: 0, heartbeat: 0.05 });
  const app = await host(live);
  const streams: SseStream[] = [];
  try {
    assert.is(await (await fetch(`${app.url}/hello`)).text(), 'hello from the app\n');
    const other = await fetch(`${app.url}/nope`);
    assert.is(other.status, 404);
    assert.is(await other.text(), 'the app has no /nope\n', 'the 404 is the app\'s, not the stream\'s');

    const first = new SseStream(`${app.url}/events`);
    streams.push(first);
    const response = await first.waitForResponse();
    assert.is(response.headers['content-type'], 'text/event-stream; charset=utf-8');
    insert(path, 5);
    await first.waitForRows(5);
    assert.equal(first.ids(), range(1, 5));
    assert.equal(first.rows()[0], { id: 1, message: 'row-1' });
    await waitFor('a heartbeat', () => first.comments > 0, 5000);

    insert(path, 3, 'more');
    const resumed = new SseStream(`${app.url}/events`, { 'Last-Event-ID': '5' });
    streams.push(resumed);
    await resumed.waitForRows(3);
    assert.equal(resumed.ids(), [6, 7, 8], 'only the rows after the cursor, once');

    const bad = await fetch(`${app.url}/events?lastEventId=-1`);
    assert.is(bad.status, 400);

    const ws = new WsRecorder(`${app.url.replace('http', 'ws')}/ws?lastEventId=6`);
    await waitFor('two WebSocket rows', () => ws.messages.length >= 2, 5000);
    assert.equal(ws.messages.map((message) => message.id), [7, 8]);
    assert.is(live.stats().clients, 3, 'two SSE streams and a WebSocket');
    ws.ws.close();

    const health = (await (await fetch(`${app.url}/healthz`)).json()) as { ok: boolean; lastId: number };
    assert.is(health.ok, true);
    assert.is(health.lastId, 8);
    assert.is(live.stats().lastId, 8);
    assert.is((await fetch(`${app.url}/`)).status, 404, 'the demo page is off unless asked for');
  } finally {
    for (const stream of streams) stream.close();
    await live.close();
    await app.close();
  }
});

test('close() ends every stream, is idempotent, and the paths then answer 503', async () => {
  const path = createMessagesDatabase(directory);
  const live = await createSqliteSse({ db: path });
  const app = await host(live);
  const stream = new SseStream(`${app.url}/events`);
  try {
    await stream.waitForResponse();
    const closing = live.close();
    assert.is(live.close(), closing, 'every call returns the same promise');
    await closing;
    await waitFor('the stream to end', () => stream.ended, 5000);
    assert.is((await fetch(`${app.url}/events`)).status, 503);
    assert.is((await fetch(`${app.url}/hello`)).status, 200, 'the app goes on');
  } finally {
    stream.close();
    await app.close();
  }
});

test('two instances over two databases in one process each stream their own rows', async () => {
  const pathA = createMessagesDatabase(directory, 'wal', 'a.db');
  const pathB = createMessagesDatabase(directory, 'delete', 'b.db');
  const a = await createSqliteSse({ db: pathA, recentRows: 0 });
  const b = await createSqliteSse({ db: pathB, recentRows: 0 });
  const appA = await host(a);
  const appB = await host(b);
  const streamA = new SseStream(`${appA.url}/events`);
  const streamB = new SseStream(`${appB.url}/events`);
  try {
    await Promise.all([streamA.waitForResponse(), streamB.waitForResponse()]);
    insert(pathA, 3, 'a');
    insert(pathB, 2, 'b');
    await streamA.waitForRows(3);
    await streamB.waitForRows(2);
    assert.equal(streamA.rows().map((row) => row.message), ['a-1', 'a-2', 'a-3']);
    assert.equal(streamB.rows().map((row) => row.message), ['b-1', 'b-2']);
    await a.close();
    insert(pathB, 1, 'after');
    await streamB.waitForRows(3);
    assert.is(streamB.rows()[2].message, 'after-1', 'closing one leaves the other running');
    assert.ok(streamA.ended || (await waitFor('stream A to end', () => streamA.ended, 5000)));
  } finally {
    streamA.close();
    streamB.close();
    await Promise.all([a.close(), b.close()]);
    await Promise.all([appA.close(), appB.close()]);
  }
});

test('an unknown option is an error with a did-you-mean; bad values and a missing database reject with the CLI\'s one-line messages', async () => {
  const path = createMessagesDatabase(directory);
  const reject = async (options: object): Promise<SseError> => {
    try {
      await createSqliteSse(options as never);
    } catch (error) {
      assert.instance(error, SseError);
      return error as SseError;
    }
    throw new Error(`createSqliteSse(${JSON.stringify(options)}) resolved`);
  };
  const typo = await reject({ db: path, historyByts: '1m' });
  assert.is(typo.code, 'SSE_ERR_BAD_OPTION');
  assert.is(typo.message, 'unknown option historyByts: did you mean historyBytes?');
  assert.is((await reject({ db: path, fooBar: 1 })).message, 'unknown option fooBar');
  assert.match((await reject({ db: path, port: 8000 })).message, /^port is not an option of the library/);
  assert.is((await reject({ db: path, heartbeat: 'soon' })).message, 'heartbeat expects a number of seconds of at least 0.01, got "soon"');
  assert.is((await reject({ db: path, metrics: 'yes' })).message, 'metrics expects true or false, got "yes"');

  const missing = join(directory, 'missing.db');
  const error = await reject({ db: missing });
  assert.is(error.code, 'SSE_ERR_DB_MISSING');
  const cli = await runCli(['--db', missing, '--port', '0']);
  assert.is(`error: ${error.message}`, cli.stderr.trim(), 'the same one line as the CLI');
  assert.not.match(error.message, /\n/);

  const created = await createSqliteSse({ db: join(directory, 'new.db'), create: true, logLevel: 'warn', historyBytes: 65536, corsOrigin: ['https://a.example'] });
  assert.is(created.options.historyBytes, 65536);
  assert.equal(created.options.corsOrigins, ['https://a.example']);
  await created.close();
});

test('a Fetch handler with a prefix answers under it and 404s elsewhere; after close() its paths answer 503', async () => {
  const path = createMessagesDatabase(directory);
  sqlite(path, "INSERT INTO messages(message) VALUES ('one');");
  const live = await createSqliteSse({ db: path });
  const handler = createFetchHandler(live, { prefix: '/live/' });
  const health = await handler(new Request('http://app/live/healthz'));
  assert.is(health.status, 200);
  assert.is(((await health.json()) as { lastId: number }).lastId, 1);
  assert.is((await handler(new Request('http://app/healthz'))).status, 404, 'outside the prefix');
  assert.is((await handler(new Request('http://app/live/other'))).status, 404);
  assert.is((await handler(new Request('http://app/live/events', { method: 'POST' }))).status, 405);
  assert.is((await handler(new Request('http://app/live/events?lastEventId=x'))).status, 400);
  const head = await handler(new Request('http://app/live/events', { method: 'HEAD' }));
  assert.is(head.headers.get('content-type'), 'text/event-stream; charset=utf-8');
  assert.is(live.stats().clients, 0, 'HEAD opens no stream');
  await live.close();
  assert.is((await handler(new Request('http://app/live/events'))).status, 503);
});

test('after close() nothing of the instance keeps the process alive: a child that streams and closes exits by itself', async () => {
  const path = createMessagesDatabase(directory);
  sqlite(path, "INSERT INTO messages(message) VALUES ('one'), ('two');");
  const script = join(directory, 'child.mjs');
  writeFileSync(
    script,
    `
import { createServer } from 'node:http';
import { createSqliteSse } from ${JSON.stringify(INDEX)};
const live = await createSqliteSse({ db: process.argv[2], heartbeat: 0.05, metrics: true, watcher: 'chokidar' });
const server = createServer((req, res) => { if (!live.handleRequest(req, res)) res.writeHead(404).end(); });
server.on('upgrade', (req, socket, head) => { if (!live.handleUpgrade(req, socket, head)) socket.destroy(); });
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const base = 'http://127.0.0.1:' + server.address().port;
const response = await fetch(base + '/events?lastEventId=0');
const reader = response.body.getReader();
let text = '';
while (!text.includes('id: 2')) text += new TextDecoder().decode((await reader.read()).value);
await fetch(base + '/metrics').then((r) => r.text());
const closed = live.close();
await closed;
while (!(await reader.read()).done);
await new Promise((resolve) => server.close(resolve));
console.log('closed, rows seen: ' + (text.match(/^id: /gm) ?? []).length);
`,
  );
  const child = trackChild(spawn(process.execPath, [script, path], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const code = await withTimeout(new Promise((resolve) => child.once('exit', (exitCode) => resolve(exitCode))), 15000, `the child to exit by itself (output: ${output})`).catch(
    (error) => {
      child.kill('SIGKILL');
      throw error;
    },
  );
  assert.is(code, 0, output);
  assert.match(output, /closed, rows seen: 2/);
});

test.run();
