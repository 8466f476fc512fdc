import { SignJWT } from 'jose';
import * as assert from 'uvu/assert';
import { test } from 'uvu';
import { EncodedEvent } from '../src/hub/encoded-event.js';
import type { Hub } from '../src/hub/hub.js';
import { EVERY_EVENT } from '../src/hub/view.js';
import { cleanUpEverything } from './helpers/cleanup.js';
import { lastSeq, TableCopy, assertHolds, type ChangeData } from './helpers/change-stream.js';
import { python, sqlite } from './helpers/database.js';
import { health, startEdgeCluster, withoutComments, type EdgeCluster, type EdgeClusterOptions } from './helpers/edge-cluster.js';
import { RecordingClient } from './helpers/recording-client.js';
import { startRedis } from './helpers/redis.js';
import { startEdge } from './helpers/redis-fixture.js';
import { runCli, type ServerProcess } from './helpers/server-process.js';
import { SseStream } from './helpers/sse-stream.js';
import { waitFor, withTimeout } from './helpers/wait.js';
import { WsRecorder } from './helpers/ws-recorder.js';

/**
 * Issue 12's snapshots on an edge, and the change log's gap through Redis, played as a user plays them: a
 * redis-server, an origin `--db D --changes --redis URL`, edges `--edge URL --changes --origin URL`, each a process of
 * its own, writers in other processes, real SSE and WebSocket clients. Plus two in-process checks of the edge's source
 * against a real Redis (a snapshot seq ahead of the edge's stream; gap markers met live, by catch-up and at start).
 */

/** Everything a test opened, closed after it whatever happened. */
const opened: { close(): void }[] = [];

function sse(server: ServerProcess, query: string, headers: Record<string, string> = {}): SseStream {
  const stream = new SseStream(`${server.url}/events?${query}`, headers, true);
  opened.push(stream);
  return stream;
}

function ws(server: ServerProcess, query: string): WsRecorder {
  const socket = new WsRecorder(`${server.url.replace(/^http/, 'ws')}/ws?${query}`);
  opened.push({ close: () => socket.terminate() });
  return socket;
}

const trackMessages = (keep?: number) => async (db: string) => {
  const result = await runCli(['track', '--db', db, '--table', 'messages', ...(keep === undefined ? [] : ['--keep', String(keep)])]);
  assert.is(result.code, 0, result.stderr);
};

async function withCluster(options: EdgeClusterOptions, body: (cluster: EdgeCluster) => Promise<void>): Promise<void> {
  const cluster = await startEdgeCluster(options);
  try {
    await body(cluster);
  } finally {
    for (const stream of opened.splice(0)) stream.close();
    await cluster.dispose();
  }
}

async function at(servers: ServerProcess[], lastId: number, timeoutMs = 15000): Promise<void> {
  for (const server of servers) await waitFor(`${server.url} at ${lastId}`, async () => (await health(server.url)).lastId === lastId, timeoutMs, 50);
}

const snapshotEnds = (stream: SseStream) => stream.events.filter((event) => event.event === 'snapshot-end');
const lastIdOf = (stream: SseStream) => Number(stream.events.filter((event) => event.event === 'message' && event.id !== '').at(-1)?.id ?? 0);

/** A copy of the tables from WebSocket messages, applied as the README tells a client to. */
function wsCopy(socket: WsRecorder): TableCopy {
  const copy = new TableCopy();
  for (const message of socket.messages) {
    if (message.type === 'change') copy.apply(message.change as unknown as ChangeData);
    else if (message.type === 'reset' && message.reason === 'history-gone') copy.tables.clear();
  }
  return copy;
}

/** Inserts, updates and deletes of random rows, one per commit, `delayMs` apart, from a Python process. */
function churn(db: string, count: number, delayMs: number): Promise<string> {
  return python(
    db,
    `
import random
random.seed(12)
con = sqlite3.connect(db, timeout=30, isolation_level=None)
for i in range(${count}):
    k = i % 3
    if k == 0: con.execute("INSERT INTO messages(message) VALUES (?)", ("churn-%d" % i,))
    elif k == 1: con.execute("UPDATE messages SET message = message || '+' WHERE id = (SELECT id FROM messages ORDER BY random() LIMIT 1)")
    else: con.execute("DELETE FROM messages WHERE id = (SELECT id FROM messages ORDER BY random() LIMIT 1)")
    time.sleep(${delayMs} / 1000.0)
con.close()
`,
  );
}

test.after(() => cleanUpEverything());

test('snapshot=1 through an edge: the origin\'s bytes on a quiet table, the table by pk while a writer churns (SSE and WebSocket); an edge without --origin refuses it in one line', async () => {
  await withCluster(
    {
      edges: 2,
      setup: trackMessages(),
      preRows: 300,
      originArgs: ['--changes'],
      // Edge 0 reads snapshots from the origin in pages of 20 (15 pages for 300 rows, so the writer lands between
      // them); edge 1 has no origin.
      edgeArgs: (origin, index) => (index === 0 ? ['--changes', '--origin', origin, '--page-rows', '20'] : ['--changes']),
    },
    async (cluster) => {
      const [edge, lonely] = cluster.edges;
      await at([cluster.origin, ...cluster.edges], 300);

      const refused = await fetch(`${lonely.url}/events?snapshot=1`);
      assert.is(refused.status, 400);
      assert.match(await refused.text(), /^snapshots are not available on an edge started without --origin[^\n]*--origin URL[^\n]*\n$/);

      // Quiet table: the same request to origin and edge, the same bytes (rows, snapshot-end with id S, changes).
      const fromOrigin = sse(cluster.origin, 'snapshot=1');
      const fromEdge = sse(edge, 'snapshot=1');
      const tableOnEdge = sse(edge, 'table=messages&snapshot=1');
      const tableOnOrigin = sse(cluster.origin, 'table=messages&snapshot=1');
      await waitFor('four snapshot-ends', () => [fromOrigin, fromEdge, tableOnEdge, tableOnOrigin].every((stream) => snapshotEnds(stream).length === 1), 15000);
      assert.equal(JSON.parse(snapshotEnds(fromEdge)[0].data), { table: 'messages', rows: 300, seq: 300 });
      assert.is(snapshotEnds(fromEdge)[0].id, '300');
      sqlite(cluster.db, "UPDATE messages SET message = 'quiet \"one\"' WHERE id = 7; INSERT INTO messages(message) VALUES ('after');");
      await waitFor('the two changes everywhere', () => [fromOrigin, fromEdge, tableOnEdge, tableOnOrigin].every((stream) => lastIdOf(stream) === 302), 15000);
      assert.ok(withoutComments(fromOrigin.raw).startsWith('retry: 2000\n\ndata: {"op":"snapshot","table":"messages","pk":{"id":1},"row":{"id":1,"message":"pre-1"}}\n\n'));
      assert.is(withoutComments(fromEdge.raw), withoutComments(fromOrigin.raw), 'snapshot=1: the origin\'s bytes');
      assert.is(withoutComments(tableOnEdge.raw), withoutComments(tableOnOrigin.raw), 'table=messages&snapshot=1: the origin\'s bytes');

      // A writer churns while snapshots are taken through the edge, page by page: snapshot + the changes after S
      // equals the table by pk.
      const writer = churn(cluster.db, 450, 3);
      const streams: SseStream[] = [sse(edge, 'snapshot=1')];
      const sockets: WsRecorder[] = [ws(edge, 'snapshot=1')];
      await waitFor('the writer under way', () => lastSeq(cluster.db) > 302 + 100, 20000, 20);
      streams.push(sse(edge, 'table=messages&snapshot=1'));
      await waitFor('the writer further', () => lastSeq(cluster.db) > 302 + 250, 20000, 20);
      sockets.push(ws(edge, 'table=messages&snapshot=1'));
      await withTimeout(writer, 60000, 'the writer');
      const last = lastSeq(cluster.db);
      assert.is(last, 302 + 450);
      await waitFor('every SSE client at the last change', () => streams.every((stream) => lastIdOf(stream) === last), 20000);
      await waitFor('every WebSocket client at the last change', () => sockets.every((socket) => socket.changes().at(-1)?.id === last), 20000);
      for (const [i, stream] of streams.entries()) {
        assert.is(snapshotEnds(stream).length, 1, `SSE ${i}: one snapshot`);
        assert.ok(Number(snapshotEnds(stream)[0].id) >= 302, `SSE ${i}: snapshot-end id S`);
        const copy = new TableCopy();
        copy.applyEvents(stream.events);
        assertHolds(copy, cluster.db, 'messages', ['id'], `SSE ${i}: snapshot + changes = the table`);
        const changes = stream.events.filter((event) => event.event === 'message' && event.id !== '' && Number(event.id) > Number(snapshotEnds(stream)[0].id));
        const ids = changes.map((event) => Number(event.id));
        assert.ok(ids.every((id, k) => k === 0 || id === ids[k - 1] + 1), `SSE ${i}: every change after S, once, in order`);
      }
      sockets.forEach((socket, i) => assertHolds(wsCopy(socket), cluster.db, 'messages', ['id'], `WebSocket ${i}: snapshot + changes = the table`));
    },
  );
});

test('a row filter (--row-filter) holds on an edge\'s snapshot rows as on the origin\'s, byte for byte', async () => {
  const secret = 'a-shared-secret-of-32-bytes-long!';
  const rule = ['--jwt-secret', secret, '--row-filter', 'message=in.{rooms}'];
  await withCluster(
    {
      edges: 1,
      setup: trackMessages(),
      preRows: 30,
      originArgs: ['--changes', ...rule],
      edgeArgs: (origin) => ['--changes', '--origin', origin, '--page-rows', '7', ...rule],
    },
    async (cluster) => {
      const [edge] = cluster.edges;
      await at([cluster.origin, edge], 30);
      const token = await new SignJWT({ rooms: ['pre-3', 'pre-17', 'pre-29'] }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(new TextEncoder().encode(secret));
      const auth = { Authorization: `Bearer ${token}` };
      // A client asking for more (every row with an id above 0) is still held to its rule.
      const onEdge = sse(edge, 'table=messages&snapshot=1&id=gt.0', auth);
      const onOrigin = sse(cluster.origin, 'table=messages&snapshot=1&id=gt.0', auth);
      const everything = sse(edge, 'snapshot=1', auth);
      await waitFor('the snapshot-ends', () => [onEdge, onOrigin, everything].every((stream) => snapshotEnds(stream).length === 1), 15000);
      const rows = (stream: SseStream) => stream.events.filter((event) => event.event === 'message').map((event) => (JSON.parse(event.data) as ChangeData).row?.message);
      assert.equal(rows(onEdge), ['pre-3', 'pre-17', 'pre-29'], 'only the rows the token allows, from five pages of the origin');
      assert.equal(rows(everything), ['pre-3', 'pre-17', 'pre-29'], 'without table= too');
      assert.equal(JSON.parse(snapshotEnds(onEdge)[0].data), { table: 'messages', rows: 3, seq: 30 });
      sqlite(cluster.db, "INSERT INTO messages(message) VALUES ('pre-17'), ('other'); UPDATE messages SET message = 'moved' WHERE id = 3;");
      await waitFor('the changes', () => [onEdge, onOrigin].every((stream) => lastIdOf(stream) === 33), 15000);
      assert.equal(rows(onEdge).slice(3), ['pre-17', undefined], 'the new row, then the row that moved out (key only)');
      assert.is(withoutComments(onEdge.raw), withoutComments(onOrigin.raw), 'the origin\'s bytes');
    },
  );
});

test('a transaction larger than track --keep: edge clients get the history-gone reset and a fresh snapshot from the origin, as origin clients do; a cursor from before the gap too; and after Redis was down during such a transaction, the backfill marks the gap again', async () => {
  await withCluster(
    {
      edges: 1,
      setup: trackMessages(10),
      preRows: 100,
      originArgs: ['--changes'],
      edgeArgs: (origin) => ['--changes', '--origin', origin, '--page-rows', '20'],
    },
    async (cluster) => {
      const [edge] = cluster.edges;
      await at([cluster.origin, edge], 100);
      const onEdge = sse(edge, 'snapshot=1');
      const onOrigin = sse(cluster.origin, 'snapshot=1');
      const socket = ws(edge, 'table=messages&snapshot=1');
      const plain = sse(edge, 'lastEventId=100');
      await waitFor('the first snapshots', () => snapshotEnds(onEdge).length === 1 && snapshotEnds(onOrigin).length === 1 && socket.messages.some((message) => message.type === 'snapshot-end'), 15000);

      // 50 deletes in one statement: the log keeps 10, so 40 are trimmed before the origin can read them.
      sqlite(cluster.db, 'DELETE FROM messages WHERE id % 2 = 0;');
      assert.is(lastSeq(cluster.db), 150);
      await waitFor('the resets and fresh snapshots', () => [onEdge, onOrigin].every((stream) => snapshotEnds(stream).length === 2) && socket.messages.filter((message) => message.type === 'snapshot-end').length === 2, 15000);
      for (const [name, stream] of [['edge', onEdge], ['origin', onOrigin]] as const) {
        const reset = stream.events.filter((event) => event.event === 'reset');
        assert.equal(reset.map((event) => JSON.parse(event.data)), [{ reason: 'history-gone', lastEventId: 100, oldestSeq: 141 }], `${name}: told once, not left with a gap`);
      }
      assert.ok(socket.messages.some((message) => message.type === 'reset' && message.reason === 'history-gone'), 'WebSocket: the same reset');
      // A client without a snapshot (it asked for none) is reset too, from the origin's snapshot as on the origin.
      await waitFor('the plain client\'s reset', () => plain.events.some((event) => event.event === 'reset'), 15000);
      assert.equal(JSON.parse(plain.events.find((event) => event.event === 'reset')!.data), { reason: 'history-gone', lastEventId: 100, oldestSeq: 141 });
      assert.match(edge.output(), /the change log was trimmed past changes not yet read \(oldest now 141/);

      // A client that resumes from before the gap: the edge's catch-up meets the marker, and answers as the origin does.
      await at([cluster.origin, edge], 150);
      const resumedEdge = sse(edge, 'lastEventId=95');
      const resumedOrigin = sse(cluster.origin, 'lastEventId=95');
      await waitFor('their snapshots', () => [resumedEdge, resumedOrigin].every((stream) => snapshotEnds(stream).length === 1), 15000);
      assert.equal(JSON.parse(resumedEdge.events[0].data), { reason: 'history-gone', lastEventId: 95, oldestSeq: 141 });
      assert.is(withoutComments(resumedEdge.raw), withoutComments(resumedOrigin.raw), 'resumed across the gap: the origin\'s bytes');

      // Redis down while another oversized transaction trims the log: the publisher's live marker is lost with Redis,
      // the backfill finds the store trimmed past the stream's top and writes the marker again.
      await cluster.redis.stop();
      sqlite(cluster.db, 'DELETE FROM messages WHERE id % 4 = 1;');
      assert.is(lastSeq(cluster.db), 175);
      await waitFor('the origin to read it', async () => (await health(cluster.origin.url)).lastId === 175, 15000, 50);
      await cluster.redis.restart();
      await waitFor('the second resets on the edge', () => snapshotEnds(onEdge).length === 3 && socket.messages.filter((message) => message.type === 'snapshot-end').length === 3, 30000);
      assert.equal(JSON.parse(onEdge.events.filter((event) => event.event === 'reset')[1].data), { reason: 'history-gone', lastEventId: 150, oldestSeq: 166 });
      assert.match(cluster.origin.output(), /redis: the store no longer holds events 151 to 165: marked the gap in stream sqlite-sse:changes/);

      sqlite(cluster.db, "UPDATE messages SET message = 'last' WHERE id = 3; INSERT INTO messages(message) VALUES ('new');");
      await waitFor('the changes after it', () => lastIdOf(onEdge) === 177 && lastIdOf(onOrigin) === 177 && socket.changes().at(-1)?.id === 177, 15000);
      for (const [name, copy] of [['edge SSE', onEdge], ['origin SSE', onOrigin]] as const) {
        const table = new TableCopy();
        table.applyEvents(copy.events);
        assertHolds(table, cluster.db, 'messages', ['id'], `${name}: the table, never a silent gap`);
      }
      assertHolds(wsCopy(socket), cluster.db, 'messages', ['id'], 'edge WebSocket: the table');
    },
  );
});

/** An event of the change stream as the origin writes it into Redis. */
function changeEntry(id: number): string[] {
  const d = JSON.stringify({ op: 'insert', table: 't', pk: { id }, row: { id } });
  return [`${id}-0`, 'k', 'change', 'd', d];
}

test('in process: a snapshot whose seq is ahead of the edge\'s stream: the client waits for the changes after it, none skipped, none twice', async () => {
  const redis = await startRedis();
  let hub: Hub | undefined;
  try {
    const client = redis.client();
    for (let id = 1; id <= 10; id++) await client.xadd('sqlite-sse:changes', ...(changeEntry(id) as [string, ...string[]]));
    const row = JSON.stringify({ op: 'snapshot', table: 't', pk: { id: 1 }, row: { id: 1 } });
    const edge = await startEdge(redis.url, {
      key: 'sqlite-sse:changes',
      // The origin's snapshot was read at seq 50: the edge's stream is at 10.
      snapshotPages: async () => ({ events: [new EncodedEvent(50, 'snapshot', JSON.parse(row), row, undefined)], next: undefined, seq: 50 }),
    });
    hub = edge.hub;
    assert.is(hub.lastId, 10);
    const reader = new RecordingClient();
    hub.attach(reader, undefined, EVERY_EVENT, { tables: ['t'], now: true });
    await waitFor('the snapshot-end', () => reader.controls.some(([name]) => name === 'snapshot-end'), 5000);
    assert.equal(reader.controls[0], ['snapshot-end', { id: 50, table: 't', rows: 1, seq: 50 }]);
    for (let id = 11; id <= 60; id++) await client.xadd('sqlite-sse:changes', ...(changeEntry(id) as [string, ...string[]]));
    await waitFor('the changes after S', () => reader.lastId === 60, 5000);
    const changes = reader.batches.flatMap((batch) => batch.events).filter((event) => event.kind === 'change');
    assert.equal(changes.map((event) => event.id), Array.from({ length: 10 }, (_, i) => 51 + i));
  } finally {
    await hub?.close();
    await redis.dispose();
  }
});

test('in process: gap markers in the stream: the ring starts after the newest, catch-up meets one with history-gone, and one read live resets live clients', async () => {
  const redis = await startRedis();
  let hub: Hub | undefined;
  try {
    const client = redis.client();
    const key = 'sqlite-sse:messages';
    const row = (id: number) => [`${id}-0`, 'k', 'row', 'd', JSON.stringify({ id, message: `m${id}` })] as [string, ...string[]];
    for (const id of [1, 2, 3, 4, 5]) await client.xadd(key, ...row(id));
    await client.xadd(key, '9-0', 'k', 'gap', 'd', '{"oldest":10}');
    for (const id of [10, 11, 12]) await client.xadd(key, ...row(id));
    const edge = await startEdge(redis.url, { key });
    hub = edge.hub;
    assert.is(hub.stats().ringOldestId, 10, 'the ring holds nothing from before the marker');
    assert.is(hub.stats().ringRows, 3);

    const behind = new RecordingClient();
    hub.attach(behind, 3);
    const after = new RecordingClient();
    hub.attach(after, 9);
    const live = new RecordingClient();
    hub.attach(live, 12);
    await waitFor('the catch-ups', () => behind.lastId === 12 && after.lastId === 12, 5000);
    assert.equal(behind.resets, [{ reason: 'history-gone', id: 9, lastEventId: 3, oldestSeq: 10 }]);
    assert.equal(behind.ids, [10, 11, 12], 'no event from before the gap, then every one after it');
    assert.equal(after.resets, [], 'a cursor at the marker lost nothing');
    assert.equal(after.ids, [10, 11, 12]);

    await client.xadd(key, '20-0', 'k', 'gap', 'd', '{"oldest":21}');
    await client.xadd(key, ...row(21));
    await waitFor('the live reset and the row after it', () => live.lastId === 21, 5000);
    assert.equal(live.resets, [{ reason: 'history-gone', id: 20, lastEventId: 12, oldestSeq: 21 }]);
    assert.equal(live.ids, [21]);
  } finally {
    await hub?.close();
    await redis.dispose();
  }
});

test.run();
