import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ArgsError, parseBenchArgs } from '../bench/args.js';
import { HttpStreamReader } from '../bench/http-stream.js';
import { killAll } from '../bench/processes.js';
import { runStream, type ScenarioContext } from '../bench/scenario.js';
import { sentAtOf } from '../bench/sse-connection.js';
import { SseParser, type SseEvent } from '../bench/sse-parser.js';
import { Histogram, percentile, summarize } from '../bench/stats.js';
import { withTimeout } from '../bench/wait.js';

function parseAll(chunks: (string | Buffer)[]): { events: SseEvent[]; comments: string[]; retries: number[] } {
  const events: SseEvent[] = [];
  const comments: string[] = [];
  const retries: number[] = [];
  const parser = new SseParser({ onEvent: (e) => events.push(e), onComment: (c) => comments.push(c), onRetry: (r) => retries.push(r) });
  for (const chunk of chunks) parser.feed(chunk);
  return { events, comments, retries };
}

/** Every way of cutting `bytes` in two, plus one byte at a time. */
function splits(bytes: Buffer): Buffer[][] {
  const out: Buffer[][] = [[bytes]];
  for (let i = 1; i < bytes.length; i++) out.push([bytes.subarray(0, i), bytes.subarray(i)]);
  out.push([...bytes].map((b) => Buffer.from([b])));
  return out;
}

const STREAM = Buffer.from('retry: 2000\n\n: hello\r\nid: 1\r\ndata: {"a":"é€😀"}\r\n\r\nid: 2\rdata: one\rdata: two\r\rid: 3\nevent: reset\ndata\n\n', 'utf8');
const EXPECTED: SseEvent[] = [
  { id: '1', event: 'message', data: '{"a":"é€😀"}' },
  { id: '2', event: 'message', data: 'one\ntwo' },
  { id: '3', event: 'reset', data: '' },
];

test('sse parser: the same events however the bytes are split (CRLF, CR, LF, UTF-8 cut mid-character)', () => {
  for (const chunks of splits(STREAM)) {
    const { events, comments, retries } = parseAll(chunks);
    assert.equal(events, EXPECTED, `split at ${chunks.map((c) => c.length).join('+')}`);
    assert.equal(comments, ['hello']);
    assert.equal(retries, [2000]);
  }
});

test('sse parser: comments are not events, id persists, a blank line without data dispatches nothing', () => {
  const { events, comments } = parseAll([': c1\n\n:c2\nid: 7\n\ndata: x\n\n', 'data:no-space\n\n', 'event: e\n\n']);
  assert.equal(comments, ['c1', 'c2']);
  assert.equal(events, [
    { id: '7', event: 'message', data: 'x' },
    { id: '7', event: 'message', data: 'no-space' },
  ]);
});

test('sse parser: an unfinished event waits for its blank line', () => {
  const events: SseEvent[] = [];
  const parser = new SseParser({ onEvent: (e) => events.push(e) });
  parser.feed('id: 1\ndata: a\n');
  assert.is(events.length, 0);
  parser.feed('\r');
  assert.is(events.length, 1);
  parser.feed('\nid: 2\ndata: b\n\n');
  // The LF after the CR belongs to the same line break: no extra blank line, one more event.
  assert.equal(events.map((e) => e.id), ['1', '2']);
});

test('http stream reader: head then de-chunked body, split anywhere', () => {
  const body = 'retry: 2000\n\nid: 1\ndata: {}\n\n';
  const chunked = `HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\nd\r\n${body.slice(0, 13)}\r\n${(body.length - 13).toString(16)};ext=1\r\n${body.slice(13)}\r\n0\r\n\r\n`;
  for (const chunks of splits(Buffer.from(chunked))) {
    let got = '';
    let status = 0;
    let ended = false;
    const reader = new HttpStreamReader({ onHead: (s) => (status = s), onBody: (b) => (got += b.toString()), onEnd: () => (ended = true), onError: (m) => assert.unreachable(m) });
    for (const chunk of chunks) reader.feed(chunk);
    assert.is(status, 200);
    assert.is(got, body);
    assert.ok(ended);
  }
  let raw = '';
  const reader = new HttpStreamReader({ onHead: () => undefined, onBody: (b) => (raw += b.toString()), onError: (m) => assert.unreachable(m) });
  reader.feed(Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: x\n\n'));
  assert.is(raw, 'data: x\n\n');
});

test('http stream reader: a non-HTTP answer is an error', () => {
  let error = '';
  new HttpStreamReader({ onHead: () => undefined, onBody: () => undefined, onError: (m) => (error = m) }).feed(Buffer.from('SSH-2.0\r\n\r\n'));
  assert.match(error, /not an HTTP response/);
});

test('stats: nearest-rank percentiles', () => {
  const values = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.is(percentile(values, 50), 50);
  assert.is(percentile(values, 99), 99);
  assert.is(percentile(values, 100), 100);
  assert.is(percentile(values, 0), 1);
  assert.is(percentile([7], 99), 7);
  assert.ok(Number.isNaN(percentile([], 50)));
  const summary = summarize([3, 1, 2]);
  assert.equal([summary.count, summary.p50, summary.max, summary.mean], [3, 2, 3, 2]);
});

test('stats: the histogram agrees with exact percentiles within 1 %, merges, and survives JSON', () => {
  const values: number[] = [];
  let seed = 42;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let i = 0; i < 20000; i++) values.push(random() ** 3 * 500);
  const a = new Histogram();
  const b = new Histogram();
  values.forEach((v, i) => (i % 2 ? a : b).record(v));
  const merged = Histogram.from(JSON.parse(JSON.stringify(a)));
  merged.merge(b);
  const sorted = [...values].sort((x, y) => x - y);
  assert.is(merged.count, values.length);
  for (const p of [1, 50, 90, 99, 99.9]) {
    const exact = percentile(sorted, p);
    const approx = merged.percentile(p);
    assert.ok(approx >= exact && approx <= exact * 1.0101 + 0.001, `p${p}: ${approx} vs ${exact}`);
  }
  assert.is(merged.max, sorted[sorted.length - 1]);
  assert.is(merged.min, sorted[0]);
  const negative = new Histogram();
  negative.record(-0.5);
  assert.equal([negative.negative, negative.min], [1, 0]);
});

test('sentAtOf: reads the stamp from a row', () => {
  assert.is(sentAtOf('{"id":1,"message":"a \\"sent_at\\":","sent_at":1764050778123.456}'), 1764050778123.456);
  assert.is(sentAtOf('{"id":1}'), undefined);
});

test('args: defaults, lists, quick, and one-line errors that name the flag', () => {
  const defaults = parseBenchArgs([]);
  assert.equal(defaults.clients, [1, 100, 1000]);
  assert.equal(defaults.baselines, ['poll100', 'poll5000', 'raw']);
  assert.equal([defaults.rate, defaults.rowsPerCommit, defaults.rowBytes, defaults.duration, defaults.transport], [100, 1, 100, 10, 'sse']);
  const given = parseBenchArgs(['--clients', '10,20', '--rate=5', '--baseline', 'raw', '--burst', '100', '--no-pin', '--server-arg', '--history-rows 5']);
  assert.equal(given.clients, [10, 20]);
  assert.equal([given.rate, given.burst, given.pin], [5, 100, false]);
  assert.equal(given.baselines, ['raw']);
  assert.equal(given.serverArgs, ['--history-rows', '5']);
  assert.equal(parseBenchArgs(['--clients', '0']).clients, []);
  assert.equal(parseBenchArgs(['--baseline', 'none']).baselines, []);
  const quick = parseBenchArgs(['--quick']);
  assert.equal([quick.clients, quick.duration], [[10, 100], 3]);
  assert.equal(parseBenchArgs(['--quick', '--clients', '5']).clients, [5]);
  assert.ok(parseBenchArgs(['--help']).help);
  for (const [argv, message] of [
    [['--clients', 'ten'], /--clients expects a whole number/],
    [['--rate'], /--rate expects N/],
    [['--bogus'], /unknown option --bogus/],
    [['--baseline', 'php'], /--baseline expects/],
    [['--transport', 'ws'], /no WebSocket transport yet/],
    [['--synchronous', 'sometimes'], /--synchronous expects one of full, normal, off/],
    [['positional'], /unexpected argument/],
  ] as [string[], RegExp][]) {
    assert.throws(() => parseBenchArgs(argv), (error: Error) => error instanceof ArgsError && message.test(error.message));
  }
});

test('bench --help lists every flag and exits 0', () => {
  const script = fileURLToPath(new URL('../bench/run.js', import.meta.url));
  const help = execFileSync(process.execPath, [script, '--help'], { encoding: 'utf8', timeout: 10000 });
  for (const flag of ['--clients', '--rate', '--rows-per-commit', '--row-bytes', '--duration', '--transport', '--baseline', '--quick', '--burst', '--idle-clients']) {
    assert.ok(help.includes(flag), flag);
  }
});

test('smoke: a tiny run of the real server counts every row exactly once', async () => {
  const options = parseBenchArgs(['--clients', '3', '--rate', '20', '--duration', '1', '--idle-seconds', '0.2', '--baseline', 'none', '--no-pin']);
  const context: ScenarioContext = { options, placement: {}, log: () => undefined };
  try {
    const result = await withTimeout(runStream('sqlite-sse', 3, context), 60000, 'smoke run');
    assert.is(result.open, 3);
    assert.is(result.failed, 0);
    assert.ok(result.writer.rows >= 5, `rows written: ${result.writer.rows}`);
    assert.is(result.writer.lastId - result.writer.firstId + 1, result.writer.rows);
    assert.is(result.expected, 3 * result.writer.rows);
    assert.is(result.delivered.deliveries, result.expected);
    assert.is(result.delivered.lost, 0);
    assert.is(result.delivered.duplicated, 0);
    assert.is(result.delivered.dropped, 0);
    assert.is(result.delivered.unstamped, 0);
    assert.is(result.delivered.latency.count, result.delivered.deliveries);
    assert.is(result.delivered.latency.negative, 0);
    assert.ok(result.delivered.latency.min >= 0);
    assert.ok(result.delivered.latency.percentile(50) <= result.delivered.latency.percentile(99));
    assert.ok(result.delivered.latency.percentile(99) <= result.delivered.latency.max);
    assert.ok(result.serverCpuMs >= 0 && result.deliveriesPerSecond > 0);
    assert.ok(result.firstEventMs && result.firstEventMs.count === 10 && result.firstEventMs.min >= 0);
  } finally {
    killAll();
  }
});

test.run();
