import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pythonInsert } from './helpers/database.js';
import { tableIds } from './helpers/integration.js';
import { LiveFixture } from './helpers/live-fixture.js';
import { httpGet, parseExposition, scrape, type Exposition } from './helpers/prom-text.js';
import { range } from './helpers/sse-stream.js';
import { waitFor, withTimeout } from './helpers/wait.js';

test('the exposition parser reads labels, escapes, special values and timestamps', () => {
  const parsed = parseExposition(
    [
      '# HELP a_total Things',
      '# TYPE a_total counter',
      'a_total{x="1",y="q\\"uo\\\\te\\nd"} 3',
      'a_total{x="2"} 4 1700000000000',
      'b +Inf',
      'c{le="0.5",} NaN',
      'd Nan',
      '',
    ].join('\n'),
  );
  assert.is(parsed.types.get('a_total'), 'counter');
  assert.is(parsed.value('a_total'), 7);
  assert.is(parsed.value('a_total', { y: 'q"uo\\te\nd' }), 3);
  assert.is(parsed.value('a_total', { x: '3' }), undefined);
  assert.is(parsed.value('b'), Infinity);
  assert.ok(Number.isNaN(parsed.value('c', { le: '0.5' })));
  assert.ok(Number.isNaN(parsed.value('d')), 'prom-client writes NaN as Nan');
  assert.throws(() => parseExposition('no_value{x="1"}'));
});

test('without --metrics, /metrics is 404', async () => {
  await LiveFixture.run(async (f) => {
    await f.start();
    assert.is((await httpGet(f.server.url + '/metrics')).status, 404);
    assert.is((await httpGet(f.server.url + '/healthz')).status, 200);
  });
});

/** Poll /metrics until `check` holds (connections close asynchronously); returns the last scrape. */
async function scrapeUntil(url: string, what: string, check: (metrics: Exposition) => boolean, timeoutMs = 5000): Promise<Exposition> {
  let last: Exposition | undefined;
  try {
    await waitFor(what, async () => check((last = await scrape(url))), timeoutMs, 25);
  } catch (error) {
    const lines = last?.samples.filter((sample) => sample.name.startsWith('sqlite_sse_')).map((s) => `${s.name}${JSON.stringify(s.labels)} ${s.value}`);
    throw new Error(`${(error as Error).message}\nlast scrape:\n${lines?.join('\n')}`);
  }
  return last!;
}

test('/metrics counts what the clients and the writer did: connections, refusals, rows, frames, replays, ring, latencies', async () => {
  await LiveFixture.run(async (f) => {
    await f.start(['--metrics', '--history-rows', '10', '--heartbeat', '60']);
    const url = f.server.url;

    const answer = await httpGet(url + '/metrics');
    assert.is(answer.status, 200);
    assert.match(String(answer.headers['content-type']), /^text\/plain; version=0\.0\.4; charset=utf-8$/i);
    const first = parseExposition(answer.body);
    for (const name of ['sqlite_sse_connections_opened_total', 'sqlite_sse_connections_closed_total', 'sqlite_sse_connections_refused_total', 'sqlite_sse_rows_read_total', 'sqlite_sse_frames_written_total', 'sqlite_sse_replays_total']) {
      assert.is(first.types.get(name), 'counter', name);
    }
    for (const name of ['sqlite_sse_clients', 'sqlite_sse_ring_rows', 'sqlite_sse_ring_bytes']) assert.is(first.types.get(name), 'gauge', name);
    for (const name of ['sqlite_sse_read_latency_seconds', 'sqlite_sse_fanout_latency_seconds']) assert.is(first.types.get(name), 'histogram', name);
    assert.ok(first.has('nodejs_eventloop_lag_seconds'), 'the event-loop lag of the server process is exported');
    assert.is(first.value('sqlite_sse_connections_opened_total', { transport: 'sse' }), 0);
    assert.is(first.value('sqlite_sse_rows_read_total'), 0);

    // 3 SSE and 2 WebSocket clients without a cursor, on an empty table.
    const sse = [f.sse(), f.sse(), f.sse()];
    const ws = [f.ws(), f.ws()];
    for (const stream of sse) await stream.waitForResponse();
    for (const client of ws) await client.waitForOpen();
    // Refusals for a bad cursor, one per transport: never counted as opened.
    assert.is((await httpGet(url + '/events?lastEventId=abc')).status, 400);
    const badWs = f.ws('/ws?lastEventId=-1');
    assert.is((await badWs.waitForClose()).code, 4400);

    let metrics = await scrape(url);
    assert.is(metrics.value('sqlite_sse_clients', { transport: 'sse' }), 3);
    assert.is(metrics.value('sqlite_sse_clients', { transport: 'ws' }), 2);
    assert.is(metrics.value('sqlite_sse_connections_opened_total', { transport: 'sse' }), 3);
    assert.is(metrics.value('sqlite_sse_connections_opened_total', { transport: 'ws' }), 2);
    assert.is(metrics.value('sqlite_sse_connections_refused_total', { transport: 'sse', reason: 'bad-cursor' }), 1);
    assert.is(metrics.value('sqlite_sse_connections_refused_total', { transport: 'ws', reason: 'bad-cursor' }), 1);

    // A writer process: 200 rows, 20 per transaction.
    const ROWS = 200;
    await withTimeout(pythonInsert(f.db, ROWS, { perCommit: 20 }), 20000, 'python writer');
    assert.equal(tableIds(f.db), range(1, ROWS));
    for (const stream of sse) await stream.waitForRows(ROWS);
    for (const client of ws) await client.waitForRows(ROWS);

    metrics = await scrape(url);
    assert.is(metrics.value('sqlite_sse_rows_read_total'), ROWS, 'each row read once, whatever the number of clients');
    assert.is(metrics.value('sqlite_sse_frames_written_total', { transport: 'sse' }), ROWS * 3);
    assert.is(metrics.value('sqlite_sse_frames_written_total', { transport: 'ws' }), ROWS * 2);
    assert.ok(metrics.value('sqlite_sse_bytes_written_total', { transport: 'sse' })! > 0);
    assert.ok(metrics.value('sqlite_sse_bytes_written_total', { transport: 'ws' })! > 0);
    assert.is(metrics.value('sqlite_sse_last_id'), ROWS);
    const health = await f.health();
    assert.is(metrics.value('sqlite_sse_ring_rows'), 10, '--history-rows 10');
    assert.is(metrics.value('sqlite_sse_ring_rows'), health.ringRows);
    assert.ok(metrics.value('sqlite_sse_ring_bytes')! > 0);
    assert.is(metrics.value('sqlite_sse_ring_bytes'), health.ringBytes);
    assert.is(health.ringOldestId, ROWS - 9);
    assert.ok(metrics.value('sqlite_sse_read_latency_seconds_count')! > 0, 'read latency observed');
    assert.ok(metrics.value('sqlite_sse_fanout_latency_seconds_count')! > 0, 'fan-out latency observed');
    assert.is(metrics.value('sqlite_sse_read_latency_seconds_bucket', { le: '+Inf' }), metrics.value('sqlite_sse_read_latency_seconds_count'));
    assert.ok(metrics.has('nodejs_eventloop_lag_seconds'));

    // One client of each transport leaves.
    sse[0].close();
    ws[0].terminate();
    metrics = await scrapeUntil(
      url,
      'the two closes to be counted',
      (m) => m.value('sqlite_sse_connections_closed_total', { transport: 'sse', reason: 'client-left' }) === 1 && m.value('sqlite_sse_connections_closed_total', { transport: 'ws', reason: 'client-left' }) === 1,
    );
    assert.is(metrics.value('sqlite_sse_clients', { transport: 'sse' }), 2);
    assert.is(metrics.value('sqlite_sse_clients', { transport: 'ws' }), 1);
    assert.is(metrics.value('sqlite_sse_connections_closed_total'), 2, 'nothing else closed');

    // Replays: a recent cursor from memory (the ring holds 191..200), old ones from the database. The two old cursors
    // differ: clients resuming from the same place may share one database read.
    const recentSse = f.sse('/events?lastEventId=195');
    const recentWs = f.ws('/ws?lastEventId=195');
    await recentSse.waitForRows(5);
    await recentWs.waitForRows(5);
    const oldSse = f.sse('/events?lastEventId=5');
    const oldWs = f.ws('/ws', { headers: { 'Last-Event-ID': '50' } });
    await oldSse.waitForRows(ROWS - 5);
    await oldWs.waitForRows(ROWS - 50);
    assert.equal(oldSse.ids(), range(6, ROWS));
    assert.equal(oldWs.ids(), range(51, ROWS));

    metrics = await scrape(url);
    assert.is(metrics.value('sqlite_sse_replays_total', { source: 'memory' }), 2);
    assert.is(metrics.value('sqlite_sse_replays_total', { source: 'database' }), 2);
    assert.is(metrics.value('sqlite_sse_replay_rows_from_database_total'), ROWS - 10 - 5 + (ROWS - 10 - 50), 'rows 6..190 and 51..190');
    assert.is(metrics.value('sqlite_sse_rows_read_total'), ROWS, 'replays are not live reads');
    assert.is(metrics.value('sqlite_sse_frames_written_total', { transport: 'sse' }), ROWS * 3 + 5 + (ROWS - 5));
    assert.is(metrics.value('sqlite_sse_frames_written_total', { transport: 'ws' }), ROWS * 2 + 5 + (ROWS - 50));
    assert.is(metrics.value('sqlite_sse_connections_opened_total', { transport: 'sse' }), 5);
    assert.is(metrics.value('sqlite_sse_connections_opened_total', { transport: 'ws' }), 4);
    assert.is(metrics.value('sqlite_sse_clients', { transport: 'sse' }), 4);
    assert.is(metrics.value('sqlite_sse_clients', { transport: 'ws' }), 3);
  });
});

test.run();
