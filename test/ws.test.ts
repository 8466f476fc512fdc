import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pythonInsert, pythonInsertBig, sqlite } from './helpers/database.js';
import { tableIds, tableRows } from './helpers/integration.js';
import { LiveFixture } from './helpers/live-fixture.js';
import { scrape } from './helpers/prom-text.js';
import { range, SseStream } from './helpers/sse-stream.js';
import { sleep, waitFor, withTimeout } from './helpers/wait.js';
import { ResumingWsReader, type WsRecorder } from './helpers/ws-recorder.js';

/** After the expected rows arrived, give a duplicate the chance to show up before comparing. */
const SETTLE_MS = 300;

test('live rows arrive as {"type":"row","id":N,"row":{...}} text messages', async () => {
  await LiveFixture.run(async (f) => {
    await f.start();
    const client = f.ws();
    await client.waitForOpen();
    sqlite(f.db, "INSERT INTO messages(message) VALUES ('hello');");
    sqlite(f.db, `INSERT INTO messages(message) VALUES ('line one' || char(10) || 'line "two" <img src=x onerror=alert(1)>');`);
    await client.waitForRows(2);
    assert.is(client.raw[0], '{"type":"row","id":1,"row":{"id":1,"message":"hello"}}');
    assert.equal(client.messages[1], { type: 'row', id: 2, row: { id: 2, message: 'line one\nline "two" <img src=x onerror=alert(1)>' } });
    assert.is(client.binaryMessages, 0, 'every message is a text frame');
    await sleep(SETTLE_MS);
    assert.is(client.messages.length, 2);
  });
});

test('a cursor resumes exactly once, in order: ?lastEventId=, the Last-Event-ID header, and the header wins', async () => {
  await LiveFixture.run(async (f) => {
    f.seed(20);
    await f.start();
    const byQuery = f.ws('/ws?lastEventId=7');
    const byHeader = f.ws('/ws', { headers: { 'Last-Event-ID': '12' } });
    const both = f.ws('/ws?lastEventId=3', { headers: { 'Last-Event-ID': '15' } });
    const fromZero = f.ws('/ws?lastEventId=0');
    const all = [byQuery, byHeader, both, fromZero];
    for (const client of all) await client.waitForOpen();
    await byQuery.waitForRows(13);
    await byHeader.waitForRows(8);
    await both.waitForRows(5);
    await fromZero.waitForRows(20);
    // Then live rows, from another process.
    await withTimeout(pythonInsert(f.db, 10, { perCommit: 3 }), 20000, 'python writer');
    await byQuery.waitForRows(23);
    await byHeader.waitForRows(18);
    await both.waitForRows(15);
    await fromZero.waitForRows(30);
    await sleep(SETTLE_MS);
    assert.equal(tableIds(f.db), range(1, 30));
    assert.equal(byQuery.ids(), range(8, 30));
    assert.equal(byHeader.ids(), range(13, 30));
    assert.equal(both.ids(), range(16, 30), 'Last-Event-ID takes precedence over ?lastEventId=');
    assert.equal(fromZero.ids(), range(1, 30));
    assert.equal(
      fromZero.rows().map((message) => message.row),
      tableRows(f.db),
      'every row, every column, as the table holds it',
    );
  });
});

test('without a cursor (or an empty one): the newest --recent-rows rows, then live rows', async () => {
  await LiveFixture.run(async (f) => {
    f.seed(20);
    await f.start(['--recent-rows', '5']);
    const none = f.ws();
    const empty = f.ws('/ws?lastEventId=');
    await none.waitForOpen();
    await empty.waitForOpen();
    await none.waitForRows(5);
    await empty.waitForRows(5);
    sqlite(f.db, "INSERT INTO messages(message) VALUES ('a'); INSERT INTO messages(message) VALUES ('b');");
    await none.waitForRows(7);
    await empty.waitForRows(7);
    await sleep(SETTLE_MS);
    assert.equal(none.ids(), range(16, 22));
    assert.equal(empty.ids(), range(16, 22));
  });
});

test('a cursor ahead of the table gets one reset message, then every row that comes next', async () => {
  await LiveFixture.run(async (f) => {
    f.seed(5);
    await f.start();
    const client = f.ws('/ws?lastEventId=100');
    await client.waitForOpen();
    await waitFor('the reset message', () => client.messages.length >= 1, 5000);
    assert.equal(client.messages[0], { type: 'reset', id: 5, reason: 'cursor-ahead', lastEventId: 100, lastId: 5 });
    sqlite(f.db, "INSERT INTO messages(message) VALUES ('after reset');");
    await client.waitForRows(1);
    await sleep(SETTLE_MS);
    assert.is(client.messages.length, 2);
    assert.equal(client.messages[1], { type: 'row', id: 6, row: { id: 6, message: 'after reset' } });
  });
});

test('a bad cursor: the upgrade completes and is closed with 4400 and a reason naming the cursor', async () => {
  await LiveFixture.run(async (f) => {
    f.seed(3);
    await f.start();
    for (const value of ['abc', '-1', '1e3', '%205', '9007199254740992']) {
      const client = f.ws(`/ws?lastEventId=${value}`);
      const { code, reason } = await client.waitForClose();
      assert.is(code, 4400, `lastEventId=${value}: ${client.describe()}`);
      assert.match(reason, /lastEventId/, `lastEventId=${value}: reason ${JSON.stringify(reason)}`);
      assert.is(client.ids().length, 0, 'no row is sent');
    }
    const twice = f.ws('/ws?lastEventId=1&lastEventId=2');
    assert.is((await twice.waitForClose()).code, 4400);
    const header = f.ws('/ws', { headers: { 'Last-Event-ID': 'x1' } });
    const closed = await header.waitForClose();
    assert.is(closed.code, 4400);
    assert.match(closed.reason, /Last-Event-ID/);
    assert.ok(Buffer.byteLength(closed.reason) <= 123, 'a close reason fits in a control frame');
    await f.waitForClients(0);
  });
});

test('an upgrade on any path other than /ws gets 404', async () => {
  await LiveFixture.run(async (f) => {
    await f.start();
    for (const path of ['/wsx', '/ws/', '/events', '/', '/WS', '/%77s']) {
      const client = f.ws(path);
      const refusal = await client.waitForRefusal();
      assert.is(refusal.status, 404, `${path}: ${client.describe()}`);
    }
    // /ws itself still works afterwards.
    const client = f.ws();
    await client.waitForOpen();
  });
});

test('--max-clients 2: SSE and WebSocket streams share the limit; the third gets 503 with Retry-After', async () => {
  await LiveFixture.run(async (f) => {
    await f.start(['--max-clients', '2']);
    const sse = f.sse();
    assert.is((await sse.waitForResponse()).statusCode, 200);
    const ws = f.ws();
    await ws.waitForOpen();
    await f.waitForClients(2);

    const thirdSse = f.sse();
    const refusedSse = await thirdSse.waitForResponse();
    assert.is(refusedSse.statusCode, 503);
    assert.match(String(refusedSse.headers['retry-after']), /^\d+$/);

    const thirdWs = f.ws();
    const refusedWs = await thirdWs.waitForRefusal();
    assert.is(refusedWs.status, 503, thirdWs.describe());
    assert.match(String(refusedWs.headers['retry-after']), /^\d+$/);
    assert.not.ok(thirdWs.opened);

    // A slot that frees up is taken again.
    ws.terminate();
    await f.waitForClients(1);
    const again = f.ws();
    await again.waitForOpen();
    await f.waitForClients(2);
  });
});

test('--max-clients-per-ip 1: a second stream from the same address gets 429, another address is let in', async () => {
  await LiveFixture.run(async (f) => {
    await f.start(['--max-clients-per-ip', '1']);
    const first = f.ws();
    await first.waitForOpen();
    const secondWs = f.ws();
    const refusal = await secondWs.waitForRefusal();
    assert.is(refusal.status, 429, secondWs.describe());
    assert.match(String(refusal.headers['retry-after']), /^\d+$/);
    const secondSse = f.sse();
    assert.is((await secondSse.waitForResponse()).statusCode, 429);
    const elsewhere = f.ws('/ws', { localAddress: '127.0.0.2' });
    await elsewhere.waitForOpen();
    await f.waitForClients(2);
  });
});

test('10 SSE and 10 WebSocket clients get identical id sequences from 3 concurrent writer processes', async () => {
  await LiveFixture.run(async (f) => {
    await f.start();
    const sse: SseStream[] = [];
    const ws: WsRecorder[] = [];
    for (let i = 0; i < 5; i++) {
      sse.push(f.sse());
      ws.push(f.ws());
    }
    for (const stream of sse) await stream.waitForResponse();
    for (const client of ws) await client.waitForOpen();

    const writers = Promise.all([
      pythonInsert(f.db, 500, { perCommit: 1, prefix: 'a' }),
      pythonInsert(f.db, 500, { perCommit: 7, delayMs: 1, prefix: 'b' }),
      pythonInsert(f.db, 500, { perCommit: 50, delayMs: 5, prefix: 'c' }),
    ]);
    // Half the clients join while the writers run, from the beginning: caught up, then live, with no gap.
    await waitFor('the first rows', () => ws[0].ids().length > 0, 10000);
    for (let i = 0; i < 5; i++) {
      sse.push(f.sse('/events?lastEventId=0'));
      ws.push(f.ws('/ws?lastEventId=0'));
    }
    await withTimeout(writers, 60000, 'three python writers');

    const ids = tableIds(f.db);
    assert.is(ids.length, 1500);
    for (const stream of sse) await stream.waitForRows(ids.length, 20000);
    for (const client of ws) await client.waitForRows(ids.length, 20000);
    await sleep(SETTLE_MS);
    sse.forEach((stream, i) => assert.equal(stream.ids(), ids, `SSE client ${i}`));
    ws.forEach((client, i) => assert.equal(client.ids(), ids, `WebSocket client ${i}`));
    const rows = tableRows(f.db);
    assert.equal(ws[9].rows().map((message) => message.row), rows);
    assert.equal(sse[9].rows(), rows);
  });
});

const BIG_ROWS = 2000;
const BIG_ROW_BYTES = 10 * 1024;

/** BIG_ROWS rows of BIG_ROW_BYTES characters (20 MB) from a Python process. */
function insertBigRows(path: string): Promise<string> {
  return pythonInsertBig(path, BIG_ROWS, BIG_ROW_BYTES);
}

test('a stalled WebSocket reader is closed with 4429 while others get everything; it resumes with ?lastEventId= and gets the rest once', async () => {
  await LiveFixture.run(async (f) => {
    await f.start(['--client-buffer', '256k', '--metrics']);
    const stalled = f.ws('/ws?lastEventId=0', { pauseOnOpen: true });
    await stalled.waitForOpen();
    // The other clients: SSE is parked and caught up when it lags; a WebSocket reader that lags is closed with 4429
    // (on a loaded machine any reader may), so it does what clients are told to: reconnect with its cursor.
    const readerWs = new ResumingWsReader((path) => f.ws(path));
    const readerSse = f.sse('/events?lastEventId=0');
    await readerWs.current.waitForOpen();
    await readerSse.waitForResponse();

    await withTimeout(insertBigRows(f.db), 60000, 'big-row writer');
    const ids = tableIds(f.db);
    assert.is(ids.length, BIG_ROWS);
    try {
      await readerWs.waitForRows(BIG_ROWS, 40000);
      await readerSse.waitForRows(BIG_ROWS, 40000);
    } catch (error) {
      const health = await f.health().catch((e: Error) => e.message);
      const metrics = await scrape(f.server.url).then(
        (m) => m.samples.filter((s) => s.name.startsWith('sqlite_sse_') && !s.name.includes('latency')).map((s) => `${s.name}${JSON.stringify(s.labels)} ${s.value}`),
        (e: Error) => [e.message],
      );
      throw new Error(
        `${(error as Error).message}\nws reader ${readerWs.ids().length} rows over ${readerWs.connections.length} connection(s), sse reader ${readerSse.ids().length} rows, stalled ${stalled.ids().length} rows\n` +
          `healthz ${JSON.stringify(health)}\n${metrics.join('\n')}`,
      );
    }
    await sleep(SETTLE_MS);
    assert.equal(readerWs.ids(), ids, `the reading WebSocket client gets every row once, in order (${readerWs.connections.length} connection(s))`);
    assert.equal(readerSse.ids(), ids, 'the reading SSE client gets every row once, in order');
    assert.ok(!readerSse.ended, 'the SSE reader is still connected');
    assert.ok(stalled.ids().length < BIG_ROWS, 'the stalled client has not read everything');

    // It reads again: what the server had buffered for it, then the 4429 close.
    stalled.resume();
    const { code, reason } = await stalled.waitForClose(30000);
    assert.is(code, 4429, stalled.describe());
    assert.match(reason, /lastEventId/);
    const got = stalled.ids();
    assert.ok(got.length < BIG_ROWS, `it was closed before the end (it has ${got.length} rows)`);
    assert.equal(got, ids.slice(0, got.length), 'what it got is a gap-free prefix');

    // Counted as too-slow: the stalled client, and each time the reader had to reconnect (the server counts a close
    // once the socket is gone, a moment after the client saw it).
    let tooSlow: number | undefined;
    await waitFor(
      `${readerWs.connections.length} too-slow closes counted (last scrape: ${tooSlow})`,
      async () => (tooSlow = (await scrape(f.server.url)).value('sqlite_sse_connections_closed_total', { transport: 'ws', reason: 'too-slow' })) === readerWs.connections.length,
      5000,
      50,
    ).catch(() => assert.unreachable(`too-slow closes counted: ${tooSlow}, expected ${readerWs.connections.length}`));

    const resumed = f.ws(`/ws?lastEventId=${got.length === 0 ? 0 : got[got.length - 1]}`);
    await resumed.waitForRows(BIG_ROWS - got.length, 40000);
    await sleep(SETTLE_MS);
    assert.equal([...got, ...resumed.ids()], ids, 'with the resumed stream: every row exactly once');
    assert.ok(!resumed.closed, resumed.describe());
    readerWs.stop();
  });
});

test('SIGTERM closes WebSocket clients with 1001, ends SSE streams, and exits 0', async () => {
  await LiveFixture.run(async (f) => {
    f.seed(3);
    await f.start();
    const ws = [f.ws(), f.ws('/ws?lastEventId=0'), f.ws('/ws?lastEventId=1')];
    const sse = f.sse();
    for (const client of ws) await client.waitForOpen();
    await sse.waitForResponse();
    await f.waitForClients(4);
    assert.is(await f.server.stop('SIGTERM', 5000), 0);
    for (const client of ws) {
      const { code } = await client.waitForClose(3000);
      assert.is(code, 1001, client.describe());
    }
    await waitFor('the SSE stream to end', () => sse.ended, 3000);
  });
});

test.run();
