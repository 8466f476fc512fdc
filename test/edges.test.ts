import { SignJWT } from 'jose';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cleanUpEverything } from './helpers/cleanup.js';
import { python, pythonInsert, sqlite } from './helpers/database.js';
import { health, insertRows, startEdgeCluster, withoutComments, type EdgeCluster } from './helpers/edge-cluster.js';
import { tableRows } from './helpers/integration.js';
import { runCli, type ServerProcess } from './helpers/server-process.js';
import { startTcpProxy } from './helpers/tcp-proxy.js';
import { range, ResumingSseReader, SseStream } from './helpers/sse-stream.js';
import { waitFor, withTimeout } from './helpers/wait.js';
import { ResumingWsReader, WsRecorder } from './helpers/ws-recorder.js';

/**
 * Issue 12 played as a user plays it: a redis-server, an origin `--db D --redis URL` and edges
 * `--edge URL --table messages [--origin URL]`, each a process of its own, writers in other processes, and real SSE
 * and WebSocket clients that reconnect with their cursor wherever the test sends them.
 */

/** Everything a test opened, closed after it whatever happened. */
const opened: { close(): void }[] = [];

function sse(server: ServerProcess, cursor?: number, keepRaw = false): ResumingSseReader {
  const reader = new ResumingSseReader(server.url, cursor, keepRaw);
  opened.push(reader);
  return reader;
}

/** Opens `/ws` connections on `server` (the function a ResumingWsReader reconnects through). */
function wsOn(server: ServerProcess): (pathAndQuery: string) => WsRecorder {
  const base = server.url.replace(/^http/, 'ws');
  return (pathAndQuery) => new WsRecorder(base + pathAndQuery);
}

function ws(server: ServerProcess, cursor = 0): ResumingWsReader {
  const reader = new ResumingWsReader(wsOn(server), cursor);
  opened.push({ close: () => reader.stop() });
  return reader;
}

type Reader = ResumingSseReader | ResumingWsReader;

/** Waits until every reader has `count` rows (or more: the assertion that follows says what is wrong). */
async function allHave(readers: Reader[], count: number, timeoutMs = 30000): Promise<void> {
  for (const reader of readers) await reader.waitForRows(count, timeoutMs);
}

function assertExactlyOnce(readers: Reader[], expected: number[], what: string): void {
  readers.forEach((reader, i) => assert.equal(reader.ids(), expected, `${what}: reader ${i} (${reader instanceof ResumingSseReader ? 'SSE' : 'WebSocket'})`));
}

/** The raw text of every connection of an SSE reader, heartbeats taken out. */
function sseBytes(reader: ResumingSseReader): string {
  return reader.connections.map((stream) => withoutComments(stream.raw)).join('');
}

async function withCluster(options: Parameters<typeof startEdgeCluster>[0], body: (cluster: EdgeCluster) => Promise<void>): Promise<void> {
  const cluster = await startEdgeCluster(options);
  try {
    await body(cluster);
  } finally {
    for (const reader of opened.splice(0)) reader.close();
    await cluster.dispose();
  }
}

/** Every edge has followed the stream up to `lastId`. */
async function edgesAt(cluster: EdgeCluster, lastId: number, timeoutMs = 15000): Promise<void> {
  for (const edge of cluster.edges) {
    await waitFor(`edge ${edge.url} at id ${lastId}`, async () => (await health(edge.url)).lastId === lastId, timeoutMs, 50);
  }
}

test.after(() => cleanUpEverything());

test('one origin, three edges, a dozen SSE and WebSocket clients, three writers: every client gets every row once, in order, and every edge sends the origin\'s bytes', async () => {
  // Small rings on the edges, so the clients that join late are caught up with XRANGE, not only from memory.
  await withCluster({ edges: 3, preRows: 40, edgeArgs: ['--history-rows', '100'] }, async (cluster) => {
    await edgesAt(cluster, 40);
    const fromOrigin = sse(cluster.origin, 0, true);
    const originWs = ws(cluster.origin, 0);
    const early: Reader[] = [];
    const edgeSse: ResumingSseReader[] = [];
    const edgeWs: ResumingWsReader[] = [];
    for (const edge of cluster.edges) {
      const bytes = sse(edge, 0, true);
      edgeSse.push(bytes);
      const socket = ws(edge, 0);
      edgeWs.push(socket);
      early.push(bytes, sse(edge, 0), socket);
    }
    const writers = [
      pythonInsert(cluster.db, 200, { perCommit: 1, delayMs: 2, prefix: 'a' }),
      pythonInsert(cluster.db, 200, { perCommit: 5, delayMs: 5, prefix: 'b' }),
      pythonInsert(cluster.db, 200, { perCommit: 20, delayMs: 20, prefix: 'c' }),
    ];
    // Three more clients join mid-stream from the start, one per edge, while the writers write.
    await waitFor('the writers under way', async () => ((await health(cluster.origin.url)).lastId as number) > 240, 30000, 20);
    const late: Reader[] = [sse(cluster.edges[0], 0), ws(cluster.edges[1], 0), sse(cluster.edges[2], 0)];
    await withTimeout(Promise.all(writers), 60000, 'the writers');

    const rows = tableRows(cluster.db);
    assert.is(rows.length, 640);
    const everyone = [fromOrigin, originWs, ...early, ...late];
    assert.is(everyone.length - 2, 12, 'a dozen clients on the edges');
    await allHave(everyone, 640);
    assertExactlyOnce(everyone, range(1, 640), 'every row once, in order');
    for (const reader of [...edgeSse, late[0] as ResumingSseReader]) {
      assert.equal(reader.events().map((event) => JSON.parse(event.data)), rows, 'the rows as the table holds them');
    }
    const originBytes = sseBytes(fromOrigin);
    assert.ok(originBytes.startsWith('retry: 2000\n\nid: 1\ndata: {"id":1,"message":"pre-1"}\n\n'), originBytes.slice(0, 80));
    edgeSse.forEach((reader, i) => assert.is(sseBytes(reader), originBytes, `edge ${i}: the origin's SSE bytes`));
    const originFrames = originWs.connections.flatMap((connection) => connection.raw);
    edgeWs.forEach((reader, i) => assert.equal(reader.connections.flatMap((connection) => connection.raw), originFrames, `edge ${i}: the origin's WebSocket frames`));
  });
});

test('a client moved to another edge mid-stream with its Last-Event-ID gets every later row exactly once', async () => {
  await withCluster({ edges: 3 }, async (cluster) => {
    const [a, b, c] = cluster.edges;
    const hopper = sse(a, 0);
    const socket = ws(a, 0);
    const writer = pythonInsert(cluster.db, 600, { perCommit: 1, delayMs: 3, prefix: 'hop' });
    // Each hop lands at a row the writer has just committed: the new edge may be a little behind or ahead of the old.
    for (const [next, after] of [[b, 100], [c, 250], [a, 400], [c, 500]] as const) {
      await hopper.waitForRows(after, 30000);
      hopper.moveTo(next.url);
      await socket.waitForRows(after, 30000);
      socket.moveTo(wsOn(next));
    }
    await withTimeout(writer, 60000, 'the writer');
    await allHave([hopper, socket], 600);
    assert.is(hopper.connections.length, 5);
    assert.is(socket.connections.length, 5);
    assertExactlyOnce([hopper, socket], range(1, 600), 'across five connections on three edges');
    assert.equal(hopper.events().filter((event) => event.event !== 'message'), [], 'no reset on the way');
  });
});

test('an edge whose Redis connections go silent (a NAT forgot the flow): its watchdog replaces them, and a client that moved to it from an edge ahead gets every row once', async () => {
  await withCluster({ edges: 1 }, async (cluster) => {
    const proxy = await startTcpProxy(cluster.redis.port);
    try {
      const [ahead] = cluster.edges;
      const silent = await cluster.addEdge([], `redis://127.0.0.1:${proxy.port}`);
      const mover = sse(ahead, 0);
      const socket = ws(ahead, 0);
      const stays = sse(silent, 0);
      insertRows(cluster.db, 50, 'before');
      await allHave([mover, socket, stays], 50);
      proxy.freezeOpenConnections();
      insertRows(cluster.db, 50, 'frozen');
      await allHave([mover, socket], 100);
      // The silent edge is behind (at 50): the clients arrive with cursor 100, ahead of it.
      mover.moveTo(silent.url);
      socket.moveTo(wsOn(silent));
      insertRows(cluster.db, 50, 'after');
      await allHave([mover, socket, stays], 150, 40000);
      assertExactlyOnce([mover, socket, stays], range(1, 150), 'through the silent connections');
      assert.equal(mover.events().filter((event) => event.event !== 'message'), [], 'no reset');
      // Which of its two guards notices first depends on timing: the watchdog on the blocking read (block time + 3 s)
      // or the 5 s timeout of a command on the other connection, which drops the blocking one too. Either way the
      // operator reads one line saying so.
      assert.match(
        silent.output(),
        /a blocking read of sqlite-sse:messages got no answer in \d+ ms: its connection is replaced|redis redis:\/\/127\.0\.0\.1:\d+ is unreachable \(Command timed out\)/,
      );
    } finally {
      await proxy.close();
    }
  });
});

test('an edge killed with SIGKILL and started again: its clients reconnect with their cursor and resume exactly', async () => {
  await withCluster({ edges: 2 }, async (cluster) => {
    const readers: Reader[] = [sse(cluster.edges[0], 0), ws(cluster.edges[0], 0), sse(cluster.edges[0])];
    const bystander = sse(cluster.edges[1], 0);
    const writer = pythonInsert(cluster.db, 500, { perCommit: 2, delayMs: 4, prefix: 'k' });
    await readers[0].waitForRows(100, 30000);
    await cluster.edges[0].stop('SIGKILL');
    await waitFor('the SSE streams ended', () => readers.every((reader) => !(reader instanceof ResumingSseReader) || reader.current.ended), 5000);
    await (readers[1] as ResumingWsReader).current.waitForClose();
    // The writer goes on while the edge is down; it comes back on its port and its clients reconnect there.
    await waitFor('more rows committed while the edge is down', async () => ((await health(cluster.origin.url)).lastId as number) > 250, 30000, 20);
    const edge = await cluster.restartEdge(0);
    assert.match(edge.output(), /listening on http:\/\/127\.0\.0\.1:\d+ \(edge of redis:\/\/127\.0\.0\.1:\d+, stream sqlite-sse:messages, last id \d+\)/);
    (readers[0] as ResumingSseReader).moveTo(edge.url);
    (readers[1] as ResumingWsReader).moveTo(wsOn(edge));
    (readers[2] as ResumingSseReader).moveTo(edge.url);
    await withTimeout(writer, 60000, 'the writer');
    await allHave([readers[0], readers[1], bystander], 500);
    assertExactlyOnce([readers[0], readers[1], bystander], range(1, 500), 'across the kill');
    // The client that started without a cursor got the newest rows then live ones, and never a row twice.
    await waitFor('the client without a cursor at row 500', () => readers[2].ids().at(-1) === 500, 30000);
    assert.equal(readers[2].ids(), range(readers[2].ids()[0], 500), 'the client without a cursor: no gap, no duplicate');
  });
});

test('Redis killed and restarted with its append-only file while rows flow: no row lost, none twice, at edge and origin clients', async () => {
  await withCluster({ edges: 2, appendonly: true }, async (cluster) => {
    const readers: Reader[] = [sse(cluster.edges[0], 0), ws(cluster.edges[1], 0), sse(cluster.edges[1], 0), sse(cluster.origin, 0)];
    const writer = pythonInsert(cluster.db, 500, { perCommit: 1, delayMs: 4, prefix: 'aof' });
    await readers[0].waitForRows(120, 30000);
    await cluster.redis.kill();
    await waitFor('rows committed while Redis is down', async () => ((await health(cluster.origin.url)).lastId as number) > 250, 30000, 20);
    await cluster.redis.restart();
    await withTimeout(writer, 60000, 'the writer');
    await allHave(readers, 500);
    assertExactlyOnce(readers, range(1, 500), 'across the Redis restart');
    const entries = await cluster.redis.client().xrange('sqlite-sse:messages', '-', '+');
    assert.equal(entries.map(([id]) => id), range(1, 500).map((id) => `${id}-0`), 'the stream holds every row once, with its id');
  });
});

test('Redis restarted empty: the origin publishes the rows again with the same ids and the edges fill the gap, with no reset', async () => {
  await withCluster({ edges: 2, appendonly: false }, async (cluster) => {
    const readers: Reader[] = [sse(cluster.edges[0], 0, true), ws(cluster.edges[1], 0), sse(cluster.edges[1], 0, true)];
    const writer = pythonInsert(cluster.db, 400, { perCommit: 1, delayMs: 4, prefix: 'empty' });
    await readers[0].waitForRows(100, 30000);
    await cluster.redis.restart({ empty: true });
    await withTimeout(writer, 60000, 'the writer');
    await allHave(readers, 400);
    assertExactlyOnce(readers, range(1, 400), 'across the loss of every entry');
    for (const reader of [readers[0], readers[2]] as ResumingSseReader[]) {
      assert.equal(reader.events().filter((event) => event.event !== 'message'), [], 'no reset');
    }
    const fromOrigin = sse(cluster.origin, 0, true);
    await fromOrigin.waitForRows(400);
    assert.is(sseBytes(readers[0] as ResumingSseReader), sseBytes(fromOrigin), 'the origin\'s bytes, the re-published rows too');
    assert.is((await cluster.redis.client().xlen('sqlite-sse:messages')), 400, 'the stream was filled again');
  });
});

test('Redis restarted empty while the origin is down: an edge client resuming from before the edge\'s ring is not jumped past the lost rows, and gets them once the origin publishes them again', async () => {
  const edgeArgs = (origin: string, i: number) => ['--history-rows', '20', ...(i === 1 ? ['--origin', origin] : [])];
  await withCluster({ edges: 2, appendonly: false, edgeArgs }, async (cluster) => {
    const [edge, withOrigin] = cluster.edges;
    insertRows(cluster.db, 100, 'r');
    await edgesAt(cluster, 100);
    await cluster.origin.stop('SIGKILL');
    await cluster.redis.restart({ empty: true });
    // The edge still holds rows 81..100 in its ring; rows 11..80 are neither there nor in the stream now.
    const resuming = sse(edge, 10);
    const socket = ws(edge, 10);
    // With --origin, the lost rows are read from the origin's /history (once it is back).
    const viaOrigin = sse(withOrigin, 10);
    await waitFor('heartbeats', () => resuming.current.comments >= 3 && viaOrigin.current.comments >= 3, 10000, 20);
    await cluster.restartOrigin();
    await allHave([resuming, socket, viaOrigin], 90, 30000);
    assertExactlyOnce([resuming, socket, viaOrigin], range(11, 100), 'no silent jump to the ring');
    assert.equal(resuming.events().filter((event) => event.event !== 'message'), [], 'no reset');
  });
});

test('the origin killed with SIGKILL and restarted: it continues after the stream\'s top, and no client gets a row twice', async () => {
  await withCluster({ edges: 2 }, async (cluster) => {
    const onEdges: Reader[] = [sse(cluster.edges[0], 0), ws(cluster.edges[0], 0), sse(cluster.edges[1], 0)];
    const onOrigin = sse(cluster.origin, 0);
    const originSocket = ws(cluster.origin, 0);
    const writer = pythonInsert(cluster.db, 500, { perCommit: 1, delayMs: 4, prefix: 'o' });
    await onEdges[0].waitForRows(100, 30000);
    await cluster.origin.stop('SIGKILL');
    // The writers do not need the origin: rows keep coming into the database while it is down.
    await waitFor('rows committed while the origin is down', () => tableRows(cluster.db).length > 250, 30000, 50);
    const origin = await cluster.restartOrigin();
    onOrigin.moveTo(origin.url);
    originSocket.moveTo(wsOn(origin));
    await withTimeout(writer, 60000, 'the writer');
    const readers = [...onEdges, onOrigin, originSocket];
    await allHave(readers, 500);
    assertExactlyOnce(readers, range(1, 500), 'across the origin\'s restart');
    const entries = await cluster.redis.client().xrange('sqlite-sse:messages', '-', '+');
    assert.equal(entries.map(([id]) => id), range(1, 500).map((id) => `${id}-0`), 'the stream holds every row once');
  });
});

test('Redis unreachable: origin and edges keep their clients\' streams open with heartbeats, /healthz says redis down, and everyone catches up when it is back', async () => {
  await withCluster({ edges: 2, appendonly: true }, async (cluster) => {
    insertRows(cluster.db, 20, 'before');
    const edgeSse = sse(cluster.edges[0], 0);
    const edgeWs = ws(cluster.edges[1], 0);
    const originSse = sse(cluster.origin, 0);
    const readers: Reader[] = [edgeSse, edgeWs, originSse];
    await allHave(readers, 20);

    await cluster.redis.stop();
    const edgeHealth = await waitFor('the edge to say redis is down', async () => {
      const figures = await health(cluster.edges[0].url);
      return figures.redis === 'down' ? figures : undefined;
    }, 15000, 50);
    assert.is(edgeHealth!.ok, false);
    assert.type(edgeHealth!.lagRows, 'number');
    await waitFor('the other edge to say redis is down', async () => (await health(cluster.edges[1].url)).redis === 'down', 15000, 50);
    insertRows(cluster.db, 30, 'during');
    await waitFor('the origin to say redis is down', async () => (await health(cluster.origin.url)).redis === 'down', 15000, 50);
    // The origin's own clients are served from the database as ever.
    await originSse.waitForRows(50);
    // Heartbeats go on: the streams are open, not left to die.
    const comments = edgeSse.current.comments;
    await waitFor('heartbeats on the edge while Redis is down', () => edgeSse.current.comments >= comments + 3, 5000, 20);
    assert.is(edgeSse.current.ended, false);
    assert.is(edgeWs.current.closed, false, edgeWs.current.describe());
    assert.is(edgeSse.ids().length, 20, 'the edge cannot have the rows Redis never got');

    await cluster.redis.restart();
    await allHave(readers, 50);
    assertExactlyOnce(readers, range(1, 50), 'after Redis came back');
    for (const server of [cluster.origin, ...cluster.edges]) {
      await waitFor(`${server.url} to say redis ok`, async () => (await health(server.url)).redis === 'ok', 15000, 50);
      const lines = server.output().split('\n');
      assert.is(lines.filter((line) => /redis .* is unreachable/.test(line)).length, 1, `said once in the log of ${server.url}:\n${server.output()}`);
      assert.ok(lines.some((line) => /redis .* is back/.test(line)), `said in the log that it is back:\n${server.output()}`);
    }
    for (const edge of cluster.edges) {
      await waitFor(`${edge.url} caught up`, async () => (await health(edge.url)).lagRows === 0, 15000, 50);
    }
    assert.equal(edgeSse.events().filter((event) => event.event !== 'message'), [], 'no reset');
  });
});

test('an edge started while Redis is down serves at once, says so, and fills its ring when Redis answers: clients with and without a cursor get every row once', async () => {
  await withCluster({ edges: 0, preRows: 30, appendonly: true }, async (cluster) => {
    await waitFor('the rows in the stream', async () => (await cluster.redis.client().xlen('sqlite-sse:messages')) === 30, 15000, 50);
    await cluster.redis.stop();
    const edge = await cluster.addEdge();
    assert.match(edge.output(), /listening on .* \(edge of redis:\/\/127\.0\.0\.1:\d+, stream sqlite-sse:messages, last id 0\)/);
    const figures = await health(edge.url);
    assert.equal({ redis: figures.redis, ok: figures.ok, lastId: figures.lastId }, { redis: 'down', ok: false, lastId: 0 });
    const readers: Reader[] = [sse(edge, 10), ws(edge, 10), sse(edge, 0)];
    const noCursor = sse(edge);
    insertRows(cluster.db, 20, 'meanwhile');
    const comments = (readers[0] as ResumingSseReader).current.comments;
    await waitFor('heartbeats while Redis is down', () => (readers[0] as ResumingSseReader).current.comments >= comments + 3, 5000, 20);

    await cluster.redis.restart();
    await readers[0].waitForRows(40, 30000);
    await readers[1].waitForRows(40, 30000);
    await readers[2].waitForRows(50, 30000);
    assertExactlyOnce(readers.slice(0, 2), range(11, 50), 'after cursor 10');
    assertExactlyOnce(readers.slice(2), range(1, 50), 'after cursor 0');
    await waitFor('the client without a cursor at row 50', () => noCursor.ids().at(-1) === 50, 15000);
    assert.equal(noCursor.ids(), range(noCursor.ids()[0], 50), 'the client without a cursor: no gap, no duplicate');
    for (const reader of [readers[0], readers[2], noCursor] as ResumingSseReader[]) {
      assert.equal(reader.events().filter((event) => event.event !== 'message'), [], 'no reset');
    }
    await waitFor('the edge to say redis ok', async () => (await health(edge.url)).redis === 'ok', 15000, 50);
  });
});

test('a cursor older than the trimmed stream: served from the origin\'s /history with --origin, a history-gone reset without', async () => {
  await withCluster(
    { edges: 2, preRows: 300, originArgs: ['--redis-maxlen', '50'], edgeArgs: (origin, i) => (i === 0 ? ['--origin', origin] : []) },
    async (cluster) => {
      const [withOrigin, alone] = cluster.edges;
      await edgesAt(cluster, 300);
      const fromOrigin = sse(cluster.origin, 0, true);
      const viaOrigin = sse(withOrigin, 0, true);
      const viaOriginWs = ws(withOrigin, 100);
      const reset = sse(alone, 0, true);
      const resetWs = ws(alone, 100);
      await allHave([fromOrigin, viaOrigin], 300);
      await viaOriginWs.waitForRows(200);
      await reset.waitForRows(50);
      await resetWs.current.waitForRows(50);

      assert.equal(viaOrigin.ids(), range(1, 300));
      assert.is(sseBytes(viaOrigin), sseBytes(fromOrigin), 'the older rows from the origin, byte for byte');
      assert.equal(viaOriginWs.ids(), range(101, 300));

      const first = reset.events()[0];
      assert.is(first.event, 'reset');
      const fields = JSON.parse(first.data) as { reason: string; lastEventId: number; oldestSeq: number };
      assert.is(fields.reason, 'history-gone');
      assert.is(fields.lastEventId, 0);
      assert.is(first.id, String(fields.oldestSeq - 1), 'the reset carries the id to resume from');
      assert.ok(fields.oldestSeq > 1 && fields.oldestSeq <= 251, `oldestSeq ${fields.oldestSeq}: the stream keeps at least the newest 50`);
      assert.equal(reset.ids(), range(fields.oldestSeq, 300), 'then every row the stream holds, never a silent gap');
      const wsReset = resetWs.current.messages[0];
      assert.equal({ type: wsReset.type, reason: wsReset.reason, lastEventId: wsReset.lastEventId }, { type: 'reset', reason: 'history-gone', lastEventId: 100 });
      assert.equal(resetWs.ids(), range(fields.oldestSeq, 300));

      // Live rows go on arriving after the older ones, and trimming while they flow changes nothing.
      const writer = pythonInsert(cluster.db, 300, { perCommit: 3, delayMs: 2, prefix: 'live' });
      await withTimeout(writer, 60000, 'the writer');
      await allHave([fromOrigin, viaOrigin], 600);
      await reset.waitForRows(600 - fields.oldestSeq + 1);
      assert.equal(viaOrigin.ids(), range(1, 600));
      assert.equal(reset.ids(), range(fields.oldestSeq, 600));
      const length = await cluster.redis.client().xlen('sqlite-sse:messages');
      assert.ok(length < 600, `the stream was trimmed (${length} entries)`);
      const late = sse(alone, 10);
      await waitFor('a reset for a late client too', () => late.events().length > 0, 10000);
      assert.is(late.events()[0].event, 'reset');
    },
  );
});

test('the origin down while an edge client needs history older than the stream: the client waits with heartbeats, then gets every row once when the origin is back', async () => {
  await withCluster({ edges: 1, preRows: 300, originArgs: ['--redis-maxlen', '50'], edgeArgs: (origin) => ['--origin', origin] }, async (cluster) => {
    const [edge] = cluster.edges;
    await edgesAt(cluster, 300);
    await cluster.origin.stop('SIGKILL');
    const waiting = sse(edge, 0);
    const socket = ws(edge, 0);
    const current = sse(edge, 280);
    // Rows the stream holds still flow to the clients that need nothing older.
    await current.waitForRows(20);
    await waitFor('heartbeats while the origin is down', () => waiting.current.comments >= 3, 10000, 20);
    assert.equal(waiting.events(), [], 'no row out of order, no reset: it waits');
    assert.is(waiting.current.ended, false);
    assert.is(socket.current.closed, false);
    await cluster.restartOrigin();
    await allHave([waiting, socket], 300, 30000);
    assertExactlyOnce([waiting, socket], range(1, 300), 'once the origin is back');
    assert.ok(/reading history older than the stream failed/.test(edge.output()), edge.output());
  });
});

test('an origin guarded by --token: an edge started with the same --token reads older history from it; the client needs the token too', async () => {
  const token = 'deployment-secret-1234';
  await withCluster(
    { edges: 1, preRows: 300, originArgs: ['--redis-maxlen', '50', '--token', token], edgeArgs: (origin) => ['--origin', origin, '--token', token] },
    async (cluster) => {
      const [edge] = cluster.edges;
      await edgesAt(cluster, 300);
      assert.is((await fetch(`${cluster.origin.url}/history?after=0`)).status, 401, "the origin's /history is guarded like /metrics");
      assert.is((await fetch(`${edge.url}/events?lastEventId=0`)).status, 401);
      const client = new SseStream(`${edge.url}/events?lastEventId=0`, { Authorization: `Bearer ${token}` });
      opened.push(client);
      await client.waitForRows(300, 30000);
      assert.equal(client.ids(), range(1, 300));
      assert.equal(client.events.filter((event) => event.event !== 'message'), []);
    },
  );
});

test('an access rule (--row-filter) holds on an edge: each signed-in client gets only its rows, the anonymous none', async () => {
  const secret = 'a-shared-secret-of-32-bytes-long!';
  await withCluster({ edges: 1, preRows: 5, edgeArgs: ['--jwt-secret', secret, '--row-filter', 'message=eq.{sub}'] }, async (cluster) => {
    const [edge] = cluster.edges;
    await edgesAt(cluster, 5);
    const token = await new SignJWT({ sub: 'pre-2' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(new TextEncoder().encode(secret));
    const anonymous = await fetch(`${edge.url}/events?lastEventId=0`);
    assert.is(anonymous.status, 401);
    await anonymous.body?.cancel();
    // The edge learns the table's columns from what the origin publishes beside the stream, and filters with them.
    const signedIn = new SseStream(`${edge.url}/events?lastEventId=0`, { Authorization: `Bearer ${token}` });
    opened.push({ close: () => signedIn.close() });
    const wider = new SseStream(`${edge.url}/events?lastEventId=0&message=in.(pre-1,pre-2,pre-3)`, { Authorization: `Bearer ${token}` });
    opened.push({ close: () => wider.close() });
    const socket = new WsRecorder(`${edge.url.replace(/^http/, 'ws')}/ws?lastEventId=0`, { headers: { Authorization: `Bearer ${token}` } });
    opened.push({ close: () => socket.terminate() });
    await signedIn.waitForRows(1);
    await wider.waitForRows(1);
    await waitFor('the WebSocket row', () => socket.messages.length >= 1, 10000);
    sqlite(cluster.db, "INSERT INTO messages(message) VALUES ('pre-2'), ('other');");
    await signedIn.waitForRows(2);
    await wider.waitForRows(2);
    await waitFor('the second WebSocket row', () => socket.messages.length >= 2, 10000);
    assert.equal(signedIn.ids(), [2, 6], 'only the rows whose message is the token\'s sub');
    assert.equal(wider.ids(), [2, 6], 'a client asking for more is still held to its rule');
    assert.equal(socket.messages.map((message) => message.id), [2, 6]);
  });
});

test('/healthz on origin and edge, and filters on an edge as on the origin', async () => {
  await withCluster({ edges: 1, preRows: 5, edgeArgs: ['--metrics'] }, async (cluster) => {
    const [edge] = cluster.edges;
    await edgesAt(cluster, 5);
    const origin = await health(cluster.origin.url);
    assert.is(origin.redis, 'ok');
    assert.is(origin.ok, true);
    assert.is(origin.lastId, 5);
    const figures = await health(edge.url);
    assert.is(figures.redis, 'ok');
    assert.is(figures.ok, true);
    assert.is(figures.lagRows, 0);
    assert.is(figures.lastId, 5);
    assert.match(edge.output(), new RegExp(`^listening on ${edge.url} \\(edge of ${cluster.redis.url}, stream sqlite-sse:messages, last id 5\\)$`, 'm'));

    const filtered = new SseStream(`${edge.url}/events?lastEventId=0&message=eq.pre-1`);
    opened.push({ close: () => filtered.close() });
    await filtered.waitForRows(1);
    assert.equal(filtered.ids(), [1]);
    const unknown = await fetch(`${edge.url}/events?messag=eq.pre-1`);
    assert.is(unknown.status, 400);
    assert.is(await unknown.text(), 'filter messag=eq.pre-1: no column messag in messages (columns: id, message)\n');
    const socket = new WsRecorder(`${edge.url.replace(/^http/, 'ws')}/ws?lastEventId=3&select=id`);
    opened.push({ close: () => socket.terminate() });
    await waitFor('the selected WebSocket rows', () => socket.messages.length >= 2, 10000);
    assert.equal(socket.messages.map((message) => message.row), [{ id: 4 }, { id: 5 }]);
    // A cursor beyond the stream's top (a client from another deployment) is told where the stream ends.
    const ahead = sse(edge, 999);
    await waitFor('the cursor-ahead reset', () => ahead.events().length > 0, 10000);
    assert.equal(ahead.events()[0], { id: '5', event: 'reset', data: JSON.stringify({ reason: 'cursor-ahead', lastEventId: 999, lastId: 5 }) });
    const metrics = await fetch(`${edge.url}/metrics`);
    assert.is(metrics.status, 200);
    assert.match(await metrics.text(), /^# HELP /m);
    // The history endpoint is the origin's: an edge has none.
    assert.is((await fetch(`${edge.url}/history?after=0`)).status, 404);
    const page = await fetch(`${cluster.origin.url}/history?after=2&upTo=4`);
    assert.is(page.status, 200);
    assert.equal(await page.json(), {
      events: [3, 4].map((id) => ({ id, k: 'row', d: JSON.stringify({ id, message: `pre-${id}` }) })),
      end: 4,
    });
    // SIGTERM ends an edge (its blocking XREAD cut) and the origin cleanly, clients and all.
    const client = sse(edge, 0);
    await client.waitForRows(5);
    assert.is(await edge.stop('SIGTERM', 5000), 0);
    assert.is(await cluster.origin.stop('SIGTERM', 5000), 0);
    await waitFor('the client\'s stream ended', () => client.current.ended, 5000);
  });
});

test('change mode through an edge: inserts, updates and deletes arrive with the origin\'s bytes; snapshot=1 there is refused with one line', async () => {
  const track = async (db: string) => {
    const result = await runCli(['track', '--db', db, '--table', 'messages']);
    assert.is(result.code, 0, result.stderr);
  };
  await withCluster({ edges: 2, setup: track, preRows: 10, originArgs: ['--changes'], edgeArgs: ['--changes'] }, async (cluster) => {
    await edgesAt(cluster, 10);
    assert.match(cluster.edges[0].output(), /\(edge of redis:\/\/127\.0\.0\.1:\d+, stream sqlite-sse:changes, last id 10\)/);
    const fromOrigin = sse(cluster.origin, 0, true);
    const onEdges = cluster.edges.map((edge) => sse(edge, 0, true));
    const socket = ws(cluster.edges[1], 0);
    await python(
      cluster.db,
      `
con = sqlite3.connect(db, isolation_level=None)
for i in range(40):
    con.execute("BEGIN IMMEDIATE")
    con.execute("INSERT INTO messages(message) VALUES (?)", ("c-%d" % i,))
    con.execute("UPDATE messages SET message = message || '!' WHERE id = last_insert_rowid()")
    if i % 4 == 0: con.execute("DELETE FROM messages WHERE id = (SELECT MIN(id) FROM messages)")
    con.execute("COMMIT")
`,
    );
    const total = 10 + 40 + 40 + 10;
    await allHave([fromOrigin, ...onEdges], total);
    assertExactlyOnce([fromOrigin, ...onEdges], range(1, total), 'every change once, in order');
    // WebSocket messages of the change stream are {"type":"change","id":N,"change":{...}}.
    const changeIds = () => socket.current.messages.filter((message) => message.type === 'change').map((message) => message.id);
    await waitFor(`${total} changes over WebSocket (have ${changeIds().length})`, () => changeIds().length >= total, 30000);
    assert.equal(changeIds(), range(1, total), 'every change once, in order, over WebSocket');
    const ops = fromOrigin.events().map((event) => (JSON.parse(event.data) as { op: string }).op);
    assert.equal([...new Set(ops)].sort(), ['delete', 'insert', 'update']);
    onEdges.forEach((reader, i) => assert.is(sseBytes(reader), sseBytes(fromOrigin), `edge ${i}: the origin's bytes`));

    const snapshot = await fetch(`${cluster.edges[0].url}/events?snapshot=1`);
    assert.is(snapshot.status, 400);
    const line = await snapshot.text();
    assert.match(line, /^snapshots are not available on an edge[^\n]*\n$/);
    // What the line advises works: the snapshot from the origin, then the changes after it from an edge.
    const snapshotStream = new SseStream(`${cluster.origin.url}/events?snapshot=1`);
    opened.push(snapshotStream);
    const end = (await waitFor('the origin\'s snapshot-end', () => snapshotStream.events.find((event) => event.event === 'snapshot-end'), 10000))!;
    assert.is(end.id, String(total));
    assert.is(snapshotStream.events.filter((event) => event.event === 'message').length, 40, 'the 40 rows the table holds');
    const after = sse(cluster.edges[0], Number(end.id));
    sqlite(cluster.db, "INSERT INTO messages(message) VALUES ('after the snapshot');");
    await after.waitForRows(1);
    assert.equal(after.ids(), [total + 1]);
  });
});

test('a Redis password never reaches the logs: start-up line, unreachable and back lines of origin and edge', async () => {
  const password = 'redis-pass-word-5678';
  await withCluster({ edges: 1, preRows: 3, redisPassword: password }, async (cluster) => {
    const [edge] = cluster.edges;
    await edgesAt(cluster, 3);
    await cluster.redis.stop();
    await waitFor('both to say redis is down', async () => (await health(edge.url)).redis === 'down' && (await health(cluster.origin.url)).redis === 'down', 15000, 50);
    await cluster.redis.restart();
    insertRows(cluster.db, 2, 'back');
    await edgesAt(cluster, 5);
    await waitFor('the back lines', () => /is back/.test(edge.output()) && /is back/.test(cluster.origin.output()), 15000, 50);
    assert.match(edge.output(), /listening on .* \(edge of redis:\/\/:\*\*\*@127\.0\.0\.1:\d+, stream sqlite-sse:messages, last id 3\)/);
    for (const server of [cluster.origin, edge]) {
      assert.ok(/redis redis:\/\/:\*\*\*@127\.0\.0\.1:\d+ is unreachable/.test(server.output()), server.output());
      assert.not.ok(server.output().includes(password), `the password is in the log:\n${server.output()}`);
    }
  });
});

test('flags that do not go together fail at once with one line', async () => {
  const cases: [string[], string][] = [
    [['--edge', 'redis://127.0.0.1:6379', '--redis', 'redis://127.0.0.1:6379'], 'error: --edge and --redis go alone: an edge reads the stream an origin (started with --redis) publishes'],
    [['--origin', 'http://127.0.0.1:8000'], 'error: --origin goes with --edge'],
    [['--edge', 'http://127.0.0.1:6379'], 'error: --edge expects a Redis URL like redis://127.0.0.1:6379 or redis+sentinel://127.0.0.1:26379/mymaster, got "http://127.0.0.1:6379": unknown scheme http://'],
    [['--edge', 'redis://127.0.0.1:6379', '--table', 'a', '--table', 'b'], 'error: --edge serves one stream: pass one --table (or --changes)'],
    [['--redis', 'redis://127.0.0.1:6379', '--workers', '2'], 'error: --redis publishes from one process: --workers does not apply (run edges for more connections)'],
  ];
  for (const [args, line] of cases) {
    const { code, stdout, stderr } = await runCli(args);
    assert.is(code, 1, args.join(' '));
    assert.is(stdout, '');
    assert.is(stderr, line + '\n', args.join(' '));
  }
});

test.run();
