import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import { mount } from 'hono/mount';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { sqliteSse } from '../src/adapters/express.js';
import sqliteSsePlugin from '../src/adapters/fastify.js';
import { createFetchHandler } from '../src/adapters/fetch.js';
import { createSqliteSse, type SqliteSse } from '../src/index.js';
import { removeDirectory } from './helpers/cleanup.js';
import { createMessagesDatabase, pythonInsertBig, sqlite, tempDirectory } from './helpers/database.js';
import { PausableSseSocket, tableIds } from './helpers/integration.js';
import { range, SseStream } from './helpers/sse-stream.js';
import { waitFor, withTimeout } from './helpers/wait.js';
import { WsRecorder } from './helpers/ws-recorder.js';

const USER = { 'X-User': 'alice' };
const DENIED = 'the app says: sign in\n';

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

/** The app's own auth: a user header, or `?user=` (what an EventSource, which sends no headers, would use). */
function signedIn(headers: Record<string, string | string[] | undefined>, url: string | undefined): boolean {
  return headers['x-user'] === 'alice' || new URL(url ?? '/', 'http://host').searchParams.get('user') === 'alice';
}

function listening(server: Server): Promise<string> {
  return new Promise((resolve) => {
    const done = () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    if (server.listening) done();
    else server.once('listening', done);
  });
}

/**
 * What a user sees through any adapter mounted at `/live` behind the app's auth: the app's 401, the stream of rows
 * from another process, resume with `Last-Event-ID` and `?lastEventId=`, 400 for a bad cursor, `/live/healthz`.
 */
async function assertStreamsThrough(base: string, path: string): Promise<void> {
  const denied = await fetch(`${base}/live/events`);
  assert.is(denied.status, 401);
  assert.is(await denied.text(), DENIED, 'the 401 is the app\'s own');

  const streams: SseStream[] = [];
  try {
    const live = new SseStream(`${base}/live/events`, USER);
    streams.push(live);
    const response = await live.waitForResponse();
    assert.is(response.statusCode, 200);
    assert.is(response.headers['content-type'], 'text/event-stream; charset=utf-8');
    assert.is(response.headers['cache-control'], 'no-cache, no-transform');
    await waitFor('the retry line', () => live.retry !== undefined, 5000);
    insert(path, 4);
    await live.waitForRows(4);
    assert.equal(live.ids(), range(1, 4));
    assert.equal(live.rows()[3], { id: 4, message: 'row-4' });

    insert(path, 2, 'later');
    const byHeader = new SseStream(`${base}/live/events`, { ...USER, 'Last-Event-ID': '3' });
    // Every query parameter that is not reserved is a filter (a column), so the app's own auth comes as a header.
    const byQuery = new SseStream(`${base}/live/events?lastEventId=5`, USER);
    streams.push(byHeader, byQuery);
    await byHeader.waitForRows(3);
    await byQuery.waitForRows(1);
    assert.equal(byHeader.ids(), [4, 5, 6], 'resumes after Last-Event-ID, no duplicate');
    assert.equal(byQuery.ids(), [6]);
    await live.waitForRows(6);
    assert.equal(live.ids(), range(1, 6));

    const bad = await fetch(`${base}/live/events?lastEventId=1e3`, { headers: USER });
    assert.is(bad.status, 400);
    assert.match(await bad.text(), /^lastEventId must be a decimal integer/);
    const health = await fetch(`${base}/live/healthz`, { headers: USER });
    assert.is(health.status, 200);
    assert.is(((await health.json()) as { lastId: number }).lastId, 6);
  } finally {
    for (const stream of streams) stream.close();
  }
}

test('Express: app.use("/live", auth, sqliteSse({ db })) streams, resumes, leaves other paths to the app, and upgrades /live/ws', async () => {
  const path = createMessagesDatabase(directory);
  const middleware = sqliteSse({ db: path, recentRows: 0 });
  const app = express();
  app.get('/hello', (_request, response) => void response.send('hello'));
  app.use('/live', (request, response, next) => (signedIn(request.headers, request.url) ? next() : void response.status(401).send(DENIED)));
  app.use('/live', middleware);
  app.use((request, response) => void response.status(404).send(`the app has no ${request.originalUrl}`));
  const server = app.listen(0, '127.0.0.1');
  const live = await middleware.ready;
  server.on('upgrade', (request, socket, head) => {
    // The host wires upgrades: under the mount path, the stream sees `/ws`.
    if (request.url?.startsWith('/live/')) request.url = request.url.slice('/live'.length);
    if (!live.handleUpgrade(request, socket, head)) socket.destroy();
  });
  const base = await listening(server);
  try {
    await assertStreamsThrough(base, path);
    const other = await fetch(`${base}/live/other`, { headers: USER });
    assert.is(other.status, 404);
    assert.is(await other.text(), 'the app has no /live/other', 'next() for a path that is not the stream\'s');
    assert.is(await (await fetch(`${base}/hello`)).text(), 'hello');

    const ws = new WsRecorder(`${base.replace('http', 'ws')}/live/ws?lastEventId=4`);
    await waitFor('WebSocket rows', () => ws.messages.length >= 2, 5000);
    assert.equal(ws.messages.map((message) => message.id), [5, 6]);
    ws.ws.close();

    assert.throws(() => sqliteSse({ db: path, recentRow: 0 } as never), /unknown option recentRow: did you mean recentRows\?/, 'a typo throws where the middleware is made');
  } finally {
    await middleware.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

test('Express: a client that stops reading is parked, not buffered; it resumes and gets every row once', async () => {
  const rows = 1500;
  const path = createMessagesDatabase(directory);
  const middleware = sqliteSse({ db: path, clientBuffer: '64k', historyBytes: '1m' });
  const app = express();
  app.use('/live', middleware);
  const server = app.listen(0, '127.0.0.1');
  const base = await listening(server);
  const live = await middleware.ready;
  const stalled = new PausableSseSocket((server.address() as AddressInfo).port, '/live/events?lastEventId=0', { paused: true });
  const reader = new SseStream(`${base}/live/events?lastEventId=0`);
  try {
    await stalled.connected();
    await reader.waitForResponse();
    await waitFor('both clients attached', () => live.stats().clients === 2, 5000);
    await withTimeout(pythonInsertBig(path, rows, 10 * 1024), 60000, 'writer of big rows');
    await reader.waitForRows(rows, 30000);
    const ids = tableIds(path);
    assert.equal(reader.ids(), ids, 'the reading client gets every row once, in order');
    assert.ok(stalled.ids().length < rows, 'the stalled client has not taken everything');
    assert.is(live.stats().clients, 2, 'the stalled client is parked, not dropped');
    stalled.resume();
    await waitFor(`every row on the resumed client (have ${stalled.ids().length})`, () => stalled.ids().length >= rows, 30000);
    assert.equal(stalled.ids(), ids, 'the resumed client gets every row once, in order');
  } finally {
    stalled.close();
    reader.close();
    await middleware.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

test('Fastify: app.register(plugin, { prefix: "/live", db }) streams behind the app\'s onRequest hook, upgrades /live/ws, and app.close() ends the streams', async () => {
  const path = createMessagesDatabase(directory);
  const app = Fastify();
  app.addHook('onRequest', async (request, reply) => {
    if (request.url.startsWith('/live') && !signedIn(request.headers, request.url)) return reply.code(401).type('text/plain').send(DENIED);
  });
  app.get('/hello', async () => 'hello');
  await app.register(sqliteSsePlugin, { prefix: '/live', db: path, recentRows: 0 });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const base = await listening(app.server);
  let open: SseStream | undefined;
  let closed = false;
  try {
    await assertStreamsThrough(base, path);
    assert.is((await fetch(`${base}/live/other`, { headers: USER })).status, 404);
    assert.is(await (await fetch(`${base}/hello`)).text(), 'hello');

    const ws = new WsRecorder(`${base.replace('http', 'ws')}/live/ws?lastEventId=4`);
    await waitFor('WebSocket rows', () => ws.messages.length >= 2, 5000);
    assert.equal(ws.messages.map((message) => message.id), [5, 6]);

    open = new SseStream(`${base}/live/events`, USER);
    await open.waitForResponse();
    await withTimeout(app.close(), 5000, 'app.close() with a stream open');
    closed = true;
    await waitFor('the stream to end', () => open!.ended, 5000);
    await waitFor('the WebSocket to close', () => ws.closed, 5000);
    assert.is(ws.closeCode, 1001, 'going away: reconnect later');
  } finally {
    open?.close();
    if (!closed) await app.close();
  }
});

test('Fastify: a database that cannot be opened or a typo fails the registration with the one-line SseError', async () => {
  const missing = Fastify();
  await missing.register(sqliteSsePlugin, { prefix: '/live', db: `${directory}/missing.db` }).then(
    () => assert.unreachable('registered over a missing database'),
    (error: Error) => assert.match(error.message, /^database .*missing\.db does not exist: check the path, or pass --create to create it$/),
  );
  await missing.close();
  const typo = Fastify();
  await typo.register(sqliteSsePlugin, { prefix: '/live', db: createMessagesDatabase(directory), heartbaet: 5 } as never).then(
    () => assert.unreachable('registered with a typo'),
    (error: Error) => assert.is(error.message, 'unknown option heartbaet: did you mean heartbeat?'),
  );
  await typo.close();
});

test('Fetch: createFetchHandler mounted in Hono on @hono/node-server streams, resumes, and ends the stream when the client leaves', async () => {
  const path = createMessagesDatabase(directory);
  const handler = createFetchHandler({ db: path, recentRows: 0 });
  const app = new Hono();
  app.use('/live/*', async (c, next) => {
    if (!signedIn({ 'x-user': c.req.header('x-user') }, c.req.url)) return c.text(DENIED.trimEnd() + '\n', 401);
    await next();
  });
  app.all('/live/*', mount(handler));
  app.get('/hello', (c) => c.text('hello'));
  const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }) as Server;
  const base = await listening(server);
  let live: SqliteSse | undefined;
  try {
    live = await handler.ready;
    await assertStreamsThrough(base, path);
    assert.is((await fetch(`${base}/live/other`, { headers: USER })).status, 404);
    assert.is(await (await fetch(`${base}/hello`)).text(), 'hello');
    await waitFor('the clients that left are detached', () => live!.stats().clients === 0, 5000);

    const stream = new SseStream(`${base}/live/events`, USER);
    await stream.waitForResponse();
    await waitFor('one client', () => live!.stats().clients === 1, 5000);
    stream.close();
    await waitFor('the stream that left is detached', () => live!.stats().clients === 0, 5000);
  } finally {
    await handler.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

test('Fetch: a client that stops reading is parked at the stream\'s queue, then resumes and gets every row once', async () => {
  const rows = 1500;
  const path = createMessagesDatabase(directory);
  const handler = createFetchHandler({ db: path, clientBuffer: '64k', historyBytes: '1m' });
  const app = new Hono();
  app.all('/live/*', mount(handler));
  const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }) as Server;
  const base = await listening(server);
  const live = await handler.ready;
  const stalled = new PausableSseSocket((server.address() as AddressInfo).port, '/live/events?lastEventId=0', { paused: true });
  const reader = new SseStream(`${base}/live/events?lastEventId=0`);
  try {
    await stalled.connected();
    await reader.waitForResponse();
    await waitFor('both clients attached', () => live.stats().clients === 2, 5000);
    await withTimeout(pythonInsertBig(path, rows, 10 * 1024), 60000, 'writer of big rows');
    await reader.waitForRows(rows, 30000);
    const ids = tableIds(path);
    assert.equal(reader.ids(), ids);
    assert.ok(stalled.ids().length < rows, 'the stalled client has not taken everything');
    assert.is(live.stats().clients, 2, 'the stalled client is parked, not dropped');
    stalled.resume();
    await waitFor(`every row on the resumed client (have ${stalled.ids().length})`, () => stalled.ids().length >= rows, 30000);
    assert.equal(stalled.ids(), ids, 'the resumed client gets every row once, in order');
  } finally {
    stalled.close();
    reader.close();
    await handler.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

test('Fetch: a client that takes nothing past slowClientTimeout is cut off and, resuming with Last-Event-ID, gets every row exactly once', async () => {
  const rows = 1500;
  const path = createMessagesDatabase(directory);
  const handler = createFetchHandler({ db: path, clientBuffer: '64k', historyBytes: '1m', heartbeat: 0.1, slowClientTimeout: 0.5 });
  const app = new Hono();
  app.all('/live/*', mount(handler));
  const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }) as Server;
  const base = await listening(server);
  const live = await handler.ready;
  const stalled = new PausableSseSocket((server.address() as AddressInfo).port, '/live/events?lastEventId=0', { paused: true });
  const reader = new SseStream(`${base}/live/events?lastEventId=0`);
  let resumed: SseStream | undefined;
  try {
    await stalled.connected();
    await reader.waitForResponse();
    await waitFor('both clients attached', () => live.stats().clients === 2, 5000);
    await withTimeout(pythonInsertBig(path, rows, 10 * 1024), 60000, 'writer of big rows');
    await reader.waitForRows(rows, 30000);
    await waitFor('the stalled client dropped', () => live.stats().clients === 1, 10000);

    // It reads what reached it before the cut, then reconnects from the last event it got, as EventSource does.
    stalled.resume();
    await waitFor('the end of the cut stream', () => stalled.ended, 10000);
    const before = stalled.ids();
    const lastId = before.length > 0 ? before[before.length - 1] : 0;
    resumed = new SseStream(`${base}/live/events`, { 'Last-Event-ID': String(lastId) });
    await resumed.waitForRows(rows - before.length, 30000);
    const ids = tableIds(path);
    assert.equal(reader.ids(), ids);
    assert.ok(before.length < rows, `the stalled client was cut off before the end (it had ${before.length} rows)`);
    assert.equal([...before, ...resumed.ids()], ids, 'every row exactly once, in order, across the reconnect');
  } finally {
    stalled.close();
    reader.close();
    resumed?.close();
    await handler.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

test('one instance behind several routes and adapters is one hub; closing an adapter leaves an instance passed in to its owner', async () => {
  const path = createMessagesDatabase(directory);
  const live = await createSqliteSse({ db: path, recentRows: 0 });
  const first = sqliteSse(live);
  const second = sqliteSse(live);
  const handler = createFetchHandler(live);
  const app = express();
  app.use('/a', first);
  app.use('/b', second);
  app.all('/c/*rest', async (request, response) => {
    // The Fetch handler behind Express, to show it is the same hub: a Request in, its Response's body piped out.
    const answer = await handler(new Request(`http://host${request.originalUrl.slice(2)}`));
    response.writeHead(answer.status, Object.fromEntries(answer.headers));
    const reader = answer.body!.getReader();
    request.on('close', () => void reader.cancel());
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      response.write(value);
    }
    response.end();
  });
  const server = app.listen(0, '127.0.0.1');
  const base = await listening(server);
  const streams = ['/a', '/b', '/c'].map((prefix) => new SseStream(`${base}${prefix}/events`));
  try {
    await Promise.all(streams.map((stream) => stream.waitForResponse()));
    await waitFor('three clients on the one hub', () => live.stats().clients === 3, 5000);
    insert(path, 3);
    for (const stream of streams) await stream.waitForRows(3);
    for (const stream of streams) assert.equal(stream.ids(), [1, 2, 3]);
    await Promise.all([first.close(), second.close(), handler.close()]);
    insert(path, 1);
    await streams[0].waitForRows(4);
    assert.is(live.stats().clients, 3, 'the instance still serves: its owner closes it');
  } finally {
    for (const stream of streams) stream.close();
    await live.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

test.run();
