import { request } from 'node:http';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EventSource } from 'eventsource';
import { removeDirectory } from './helpers/cleanup.js';
import { createMessagesDatabase, python, sqlite, tempDirectory } from './helpers/database.js';
import { startServer, type ServerProcess } from './helpers/server-process.js';
import { range, SseStream } from './helpers/sse-stream.js';
import { waitFor, withTimeout } from './helpers/wait.js';

let directory: string;
let db: string;
let server: ServerProcess;
const streams: SseStream[] = [];

function open(path = '/events', headers: Record<string, string> = {}): SseStream {
  const stream = new SseStream(server.url + path, headers, true);
  streams.push(stream);
  return stream;
}

function get(path: string, method = 'GET', headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return withTimeout(
    new Promise((resolve, reject) => {
      const req = request(server.url + path, { method, headers }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
      });
      req.on('error', reject);
      req.end();
    }),
    5000,
    `${method} ${path}`,
  );
}

test.before(async () => {
  directory = tempDirectory();
  db = createMessagesDatabase(directory);
  server = await startServer(['--db', db, '--table', 'messages', '--heartbeat', '0.2', '--recent-rows', '3']);
});

test.after.each(() => {
  for (const stream of streams.splice(0)) stream.close();
});

test.after(async () => {
  await server?.stop('SIGKILL');
  removeDirectory(directory);
});

test('the stream opens at once with the contract headers and a retry line', async () => {
  const stream = open();
  const response = await stream.waitForResponse();
  assert.is(response.statusCode, 200);
  assert.is(response.headers['content-type'], 'text/event-stream; charset=utf-8');
  assert.is(response.headers['cache-control'], 'no-cache, no-transform');
  assert.is(response.headers['connection'], 'keep-alive');
  assert.is(response.headers['x-accel-buffering'], 'no');
  assert.is(response.headers['content-encoding'], undefined);
  await waitFor('the retry line', () => stream.retry !== undefined, 3000);
  assert.ok(stream.raw.startsWith('retry: '), `first bytes: ${JSON.stringify(stream.raw.slice(0, 20))}`);
});

test('a row inserted by the sqlite3 shell arrives as id and one line of JSON', async () => {
  const stream = open();
  await stream.waitForResponse();
  sqlite(db, "INSERT INTO messages(message) VALUES ('hello');");
  await stream.waitForRows(1);
  assert.equal(stream.rows(), [{ id: 1, message: 'hello' }]);
  assert.match(stream.raw, /id: 1\ndata: \{"id":1,"message":"hello"\}\n\n/);
});

test('heartbeat comments come from the shared timer', async () => {
  const stream = open();
  await waitFor('two heartbeats', () => stream.comments >= 2, 3000);
});

test('tricky payloads round-trip exactly through a real EventSource', async () => {
  const payloads = [
    'quote " and backslash \\',
    'line\nfeed',
    'carriage\rreturn',
    'crlf\r\nline',
    'unicode é ñ 中文 🎉 \u2028 \u2029',
    '',
    'x'.repeat(100 * 1024),
    'data: x\n\nid: 999',
    '<img src=x onerror=alert(1)>',
    'nul \u0000 inside',
  ];
  const before = Number(sqlite(db, 'SELECT COALESCE(MAX(id), 0) FROM messages;').trim());
  const source = new EventSource(`${server.url}/events?lastEventId=${before}`);
  const received: { id: string; data: string }[] = [];
  source.onmessage = (event) => received.push({ id: event.lastEventId, data: event.data });
  try {
    await python(db, `con = sqlite3.connect(db)\nfor p in json.loads(args[0]): con.execute("INSERT INTO messages(message) VALUES (?)", (p,))\ncon.commit()`, [JSON.stringify(payloads)]);
    await waitFor('every payload', () => received.length >= payloads.length, 10000);
    assert.equal(
      received.map((event) => JSON.parse(event.data).message),
      payloads,
    );
    assert.equal(
      received.map((event) => Number(event.id)),
      range(before + 1, before + payloads.length),
    );
  } finally {
    source.close();
  }
});

test('integers beyond 2^53 arrive as strings and BLOBs as base64', async () => {
  sqlite(db, 'CREATE TABLE IF NOT EXISTS big(id INTEGER PRIMARY KEY, n INTEGER, b BLOB);');
  const other = await startServer(['--db', db, '--table', 'big']);
  try {
    const stream = new SseStream(other.url + '/events?lastEventId=0');
    try {
      sqlite(db, "INSERT INTO big VALUES (1, 9007199254740993, x'00ff10'), (9007199254740991, -5, NULL);");
      await stream.waitForRows(2);
      assert.equal(stream.rows(), [
        { id: 1, n: '9007199254740993', b: 'AP8Q' },
        { id: 9007199254740991, n: -5, b: null },
      ]);
    } finally {
      stream.close();
    }
  } finally {
    await other.stop('SIGKILL');
  }
});

test('resume by Last-Event-ID and by lastEventId: every later row once, in order', async () => {
  sqlite(db, "INSERT INTO messages(message) VALUES ('a'), ('b'), ('c');");
  const max = Number(sqlite(db, 'SELECT MAX(id) FROM messages;').trim());
  const byHeader = open('/events', { 'Last-Event-ID': String(max - 2) });
  const byQuery = open(`/events?lastEventId=${max - 1}`);
  const headerWins = open(`/events?lastEventId=${max - 1}`, { 'Last-Event-ID': String(max - 2) });
  await byHeader.waitForRows(2);
  await byQuery.waitForRows(1);
  await headerWins.waitForRows(2);
  sqlite(db, "INSERT INTO messages(message) VALUES ('d');");
  await byHeader.waitForRows(3);
  await byQuery.waitForRows(2);
  assert.equal(byHeader.ids(), range(max - 1, max + 1));
  assert.equal(byQuery.ids(), range(max, max + 1));
  assert.equal(headerWins.ids().slice(0, 2), range(max - 1, max));
});

test('a client without a cursor gets the newest rows in memory, then live rows', async () => {
  const max = Number(sqlite(db, 'SELECT MAX(id) FROM messages;').trim());
  const stream = open();
  await stream.waitForRows(3);
  assert.equal(stream.ids(), range(max - 2, max));
  sqlite(db, "INSERT INTO messages(message) VALUES ('e');");
  await stream.waitForRows(4);
  assert.equal(stream.ids(), range(max - 2, max + 1));
});

test('bad cursors get 400 with a one-line reason, and the server stays up', async () => {
  for (const bad of ['abc', '-1', '1e3', '1.5', '+3', '9007199254740992', '%201']) {
    const response = await get(`/events?lastEventId=${bad}`);
    assert.is(response.status, 400, bad);
    assert.match(response.headers['content-type'] as string, /^text\/plain/);
    assert.is(response.body.trim().split('\n').length, 1);
    assert.match(response.body, /lastEventId must be/);
  }
  const byHeader = await get('/events', 'GET', { 'Last-Event-ID': 'x1' });
  assert.is(byHeader.status, 400);
  assert.match(byHeader.body, /Last-Event-ID must be/);
  const health = await get('/healthz');
  assert.is(health.status, 200);
});

test('/healthz answers JSON with ok, clients and lastId', async () => {
  const stream = open();
  await stream.waitForResponse();
  const response = await get('/healthz');
  assert.is(response.status, 200);
  assert.match(response.headers['content-type'] as string, /^application\/json/);
  const body = JSON.parse(response.body);
  assert.is(body.ok, true);
  assert.ok(body.clients >= 1);
  assert.is(body.lastId, Number(sqlite(db, 'SELECT MAX(id) FROM messages;').trim()));
  assert.is(body.journalMode, 'wal');
});

test('the demo page and its files are served; unknown paths 404; other methods 405 with Allow', async () => {
  const page = await get('/');
  assert.is(page.status, 200);
  assert.match(page.headers['content-type'] as string, /^text\/html/);
  assert.match(page.body, /<script type="module" src="\/app.js">/);
  assert.match(page.headers['content-security-policy'] as string, /script-src 'self'/);
  assert.is((await get('/app.js')).status, 200);
  assert.is((await get('/nope')).status, 404);
  const post = await get('/events', 'POST');
  assert.is(post.status, 405);
  assert.is(post.headers['allow'], 'GET, HEAD');
  assert.is((await get('/', 'DELETE')).status, 405);
  const head = await get('/healthz', 'HEAD');
  assert.is(head.status, 200);
  assert.is(head.body, '');
});

test('nothing outside public/ is served, whatever the encoding', async () => {
  const attempts = [
    '/../package.json', '/%2e%2e/package.json', '/%2E%2E/%2E%2E/etc/passwd', '/..%2fpackage.json', '/..%2Fsrc%2Fcli.ts',
    '/%2e%2e%2fpackage.json', '/..\\package.json', '/%5c..%5cpackage.json', '//etc/passwd', '/.%2e/package.json',
    '/public/../package.json', '/app.js/../../package.json', '/%252e%252e/package.json', '/..%00/package.json', '/%c0%ae%c0%ae/package.json',
    '/etc/passwd', '/.gitignore', '/app.js%00.html',
  ];
  for (const path of attempts) {
    const response = await rawGet(path);
    assert.ok(response.startsWith('HTTP/1.1 404') || response.startsWith('HTTP/1.1 400'), `${path}: ${response.split('\r\n')[0]}`);
    assert.not.match(response, /"name": "sqlite-sse"|root:x:0|#!\/usr\/bin\/env/);
  }
});

/** A request sent byte for byte, so no client library normalises the path first. */
function rawGet(path: string): Promise<string> {
  return withTimeout(
    new Promise((resolve, reject) => {
      import('node:net').then(({ connect }) => {
        const socket = connect(server.port, '127.0.0.1', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
        let text = '';
        socket.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
        socket.on('end', () => resolve(text));
        socket.on('error', reject);
      }, reject);
    }),
    5000,
    `GET ${path}`,
  );
}

test.run();
