import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as assert from 'uvu/assert';
import { originHistory, serveHistory } from '../src/http/history-endpoint.js';
import type { Hub } from '../src/hub/hub.js';
import { createMessagesDatabase, pythonInsert, sqlite, tempDirectory } from './helpers/database.js';
import { RecordingClient } from './helpers/recording-client.js';
import type { RedisProcess } from './helpers/redis.js';
import { range, redisSuite, startEdge, startOrigin } from './helpers/redis-fixture.js';
import { startTcpProxy } from './helpers/tcp-proxy.js';
import { waitFor } from './helpers/wait.js';

const KEY = 'sqlite-sse:messages';

const test = redisSuite('redis stream source');

function databaseWithRows(count: number): string {
  const db = createMessagesDatabase(tempDirectory());
  if (count > 0) sqlite(db, `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ${count - 1}) INSERT INTO messages(message) SELECT 'pre-' || i FROM n;`);
  return db;
}

/** A client attached to `hub` at `cursor` (none: the newest in memory, then live). */
function attach(hub: Hub, cursor?: number): RecordingClient {
  const client = new RecordingClient();
  hub.attach(client, cursor);
  return client;
}

function waitForIds(client: RecordingClient, lastId: number, what: string): Promise<unknown> {
  return waitFor(`${what} (client at ${client.lastId}, resets ${JSON.stringify(client.resets)})`, () => client.lastId === lastId, 15000);
}

const health = (hub: Hub): Record<string, unknown> => hub.stats() as Record<string, unknown>;

test('an edge writes the same SSE bytes as the origin: ring, XRANGE catch-up and live', async (context) => {
  const db = databaseWithRows(30);
  const origin = await startOrigin(db, context.redis.url, { event: 'msg' });
  context.close.push(() => origin.hub.close());
  await waitFor('the rows in the stream', () => origin.publisher.acknowledgedId === 30);
  // A ring of 10: a cursor of 0 is served from the stream by XRANGE, in pages of 50.
  const edge = await startEdge(context.redis.url, { eventName: 'msg', hub: { historyRows: 10 } });
  context.close.push(() => edge.hub.close());
  const fromOrigin = attach(origin.hub, 0);
  const fromEdge = attach(edge.hub, 0);
  const fromEdgeAt12 = attach(edge.hub, 12);
  const fromEdgeNew = attach(edge.hub);
  await pythonInsert(db, 120, { perCommit: 7, delayMs: 1 });
  // Quotes, a line break (escaped in the JSON) and characters outside ASCII and the BMP survive the trip through Redis.
  sqlite(db, `INSERT INTO messages(message) VALUES ('say "hi"' || char(10) || 'é ✓ 😀');`);
  for (const client of [fromOrigin, fromEdge, fromEdgeAt12, fromEdgeNew]) await waitForIds(client, 151, 'every row');
  assert.ok(fromOrigin.text.includes('id: 150\nevent: msg\ndata: {"id":150,"message":"row-119"}\n\n'), fromOrigin.text.slice(-300));
  assert.ok(fromOrigin.text.endsWith('id: 151\nevent: msg\ndata: {"id":151,"message":"say \\"hi\\"\\né ✓ 😀"}\n\n'), fromOrigin.text.slice(-300));
  assert.is(fromEdge.text, fromOrigin.text);
  assert.equal(fromEdgeAt12.ids, range(13, 151));
  assert.equal(fromEdgeNew.ids, range(21, 151), 'the newest 10 in memory, then live');
  assert.is(health(edge.hub).redis, 'ok');
  assert.is(health(edge.hub).lagRows, 0);
});

test('Redis restarted empty: the origin publishes again and the edge fills the gap, no duplicate, none missing, no reset', async (context) => {
  const db = databaseWithRows(30);
  const origin = await startOrigin(db, context.redis.url);
  context.close.push(() => origin.hub.close());
  await waitFor('the rows in the stream', () => origin.publisher.acknowledgedId === 30);
  const edge = await startEdge(context.redis.url, { lostGraceMs: 15000 });
  context.close.push(() => edge.hub.close());
  const client = attach(edge.hub, 0);
  await waitForIds(client, 30, 'the first rows');
  await context.redis.restart({ empty: true });
  await pythonInsert(db, 40, { perCommit: 4, delayMs: 5 });
  await waitForIds(client, 70, 'the rows written around the restart');
  assert.equal(client.ids, range(1, 70));
  assert.equal(client.resets, []);
});

test('kill -9 with AOF while rows flow: edge clients lose nothing and see nothing twice', async (context) => {
  const db = databaseWithRows(0);
  const origin = await startOrigin(db, context.redis.url);
  context.close.push(() => origin.hub.close());
  const edge = await startEdge(context.redis.url);
  context.close.push(() => edge.hub.close());
  const client = attach(edge.hub, 0);
  const writer = pythonInsert(db, 300, { perCommit: 3, delayMs: 2 });
  await waitFor('the edge to have some rows', () => (client.lastId ?? 0) >= 30);
  await context.redis.kill();
  await waitFor('edge health to say redis is down', () => health(edge.hub).redis === 'down');
  await writer;
  await context.redis.restart();
  await waitForIds(client, 300, 'every row');
  assert.equal(client.ids, range(1, 300));
  assert.equal(client.resets, []);
  await waitFor('edge health to say redis is ok', () => health(edge.hub).redis === 'ok');
  assert.ok(edge.log.lines.some((line) => /is back/.test(line)), edge.log.lines.join('\n'));
});

test('Redis stopped: edge health says down and clients keep their streams; back: it follows again, lagRows 0', async (context) => {
  const db = databaseWithRows(20);
  const origin = await startOrigin(db, context.redis.url);
  context.close.push(() => origin.hub.close());
  await waitFor('the rows in the stream', () => origin.publisher.acknowledgedId === 20);
  const edge = await startEdge(context.redis.url);
  context.close.push(() => edge.hub.close());
  const client = attach(edge.hub);
  await context.redis.stop();
  await waitFor('edge health to say redis is down', () => health(edge.hub).redis === 'down' && health(edge.hub).ok === false);
  const late = attach(edge.hub, 5);
  await pythonInsert(db, 30, { perCommit: 5 });
  await context.redis.restart();
  await waitForIds(client, 50, 'the rows written while Redis was down');
  await waitForIds(late, 50, 'a client that came while Redis was down');
  assert.equal(late.ids, range(6, 50));
  assert.equal(client.ids, range(11, 50));
  assert.is(client.closedWith, undefined);
  await waitFor('lagRows 0 and redis ok', () => health(edge.hub).redis === 'ok' && health(edge.hub).lagRows === 0);
});

test('the watchdog replaces a blocking read whose connection went silent', async (context) => {
  const db = databaseWithRows(10);
  const origin = await startOrigin(db, context.redis.url);
  context.close.push(() => origin.hub.close());
  const proxy = await startTcpProxy(context.redis.port);
  context.close.push(() => proxy.close());
  const edge = await startEdge(`redis://127.0.0.1:${proxy.port}`, { blockMs: 300, watchdogMs: 300 });
  context.close.push(() => edge.hub.close());
  const client = attach(edge.hub, 0);
  await waitForIds(client, 10, 'the first rows');
  // The blocked XREAD's connection now drops every byte and is never closed: only a watchdog can notice.
  proxy.freezeOpenConnections();
  await pythonInsert(db, 10);
  await waitForIds(client, 20, 'rows written after the connection went silent');
  assert.equal(client.ids, range(1, 20));
  assert.ok(edge.source.watchdogResets >= 1);
});

test('connections killed by the server (CLIENT KILL TYPE normal) are replaced; nothing is lost', async (context) => {
  const db = databaseWithRows(10);
  const origin = await startOrigin(db, context.redis.url);
  context.close.push(() => origin.hub.close());
  const edge = await startEdge(context.redis.url);
  context.close.push(() => edge.hub.close());
  const client = attach(edge.hub, 0);
  await waitForIds(client, 10, 'the first rows');
  const writer = pythonInsert(db, 60, { perCommit: 2, delayMs: 5 });
  for (let kill = 0; kill < 3; kill++) {
    await waitFor('more rows', () => (client.lastId ?? 0) >= 15 + kill * 10);
    await context.redis.client().client('KILL', 'TYPE', 'normal');
  }
  await writer;
  await waitForIds(client, 70, 'every row');
  assert.equal(client.ids, range(1, 70));
});

test('a cursor older than the stream: a history-gone reset without an origin, the origin\'s rows with one', async (context) => {
  const db = databaseWithRows(100);
  const origin = await startOrigin(db, context.redis.url, { maxLen: 10 });
  context.close.push(() => origin.hub.close());
  await waitFor('the newest rows in the stream', () => origin.publisher.acknowledgedId === 100);
  const http: Server = createServer((request, response) => {
    void serveHistory(request, response, origin.source, { lastId: () => origin.hub.lastId, maxLimit: 30 });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  context.close.push(() => new Promise((resolve) => http.close(() => resolve())));
  const originUrl = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;

  const alone = await startEdge(context.redis.url);
  context.close.push(() => alone.hub.close());
  const reset = attach(alone.hub, 0);
  await waitForIds(reset, 100, 'the rows the stream holds');
  assert.equal(reset.resets, [{ reason: 'history-gone', id: 90, lastEventId: 0, oldestSeq: 91 }]);
  assert.ok(reset.text.startsWith('id: 90\nevent: reset\ndata: {"reason":"history-gone","lastEventId":0,"oldestSeq":91}\n\n'), reset.text.slice(0, 200));
  assert.equal(reset.ids, range(91, 100));

  const withOrigin = await startEdge(context.redis.url, { olderHistory: originHistory(originUrl) });
  context.close.push(() => withOrigin.hub.close());
  const fromEdge = attach(withOrigin.hub, 0);
  const fromOrigin = attach(origin.hub, 0);
  await waitForIds(fromEdge, 100, 'every row, the older ones from the origin');
  await waitForIds(fromOrigin, 100, 'every row from the origin');
  assert.equal(fromEdge.resets, []);
  assert.is(fromEdge.text, fromOrigin.text);
});

test('a stream that ends below what was served and does not climb back restarts the clients ahead of it', async (context) => {
  const client = context.redis.client();
  const add = async (from: number, to: number) => {
    for (const id of range(from, to)) await client.xadd(KEY, `${id}-0`, 'k', 'row', 'd', JSON.stringify({ id, message: `m${id}` }));
  };
  await add(1, 20);
  const edge = await startEdge(context.redis.url, { lostGraceMs: 300, blockMs: 200 });
  context.close.push(() => edge.hub.close());
  const recorder = attach(edge.hub, 0);
  await waitForIds(recorder, 20, 'the first entries');
  // A different history: the stream now ends at 5, and nothing will bring 6..20 back.
  await client.del(KEY);
  await add(1, 5);
  await waitFor('a reset', () => recorder.resets.length > 0, 15000);
  assert.equal(recorder.resets, [{ reason: 'cursor-ahead', id: 5, lastEventId: 20, lastId: 5 }]);
  await add(6, 8);
  await waitForIds(recorder, 8, 'the entries after the reset');
  assert.equal(recorder.ids, [...range(1, 20), 6, 7, 8]);
});

test.run();
