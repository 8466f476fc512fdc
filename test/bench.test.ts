import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ArgsError, parseBenchArgs } from '../bench/args.js';
import { expectedDeliveries, filterRuns, matchingBetween, matchOf, nextMatching, userIdOf, userIdOfBytes, userOfRow, usersFor } from '../bench/filter-plan.js';
import { buildTable, createIndex, replayOnce } from '../bench/filter-replay.js';
import { HttpStreamReader } from '../bench/http-stream.js';
import { otherCpuPercent, sampleCpu } from '../bench/machine-load.js';
import { killAll, processTree, treeCpuMs } from '../bench/processes.js';
import { runEdgeStream } from '../bench/edge-scenario.js';
import { runStream, type ScenarioContext } from '../bench/scenario.js';
import { parseServerMetrics } from '../bench/server-metrics.js';
import { rowMessageFields } from '../bench/ws-connection.js';
import { acceptFor, closePayload, encodeFrame, Opcodes, WsFrameParser } from '../bench/ws-frame.js';
import { sentAtOf, Tally } from '../bench/sse-connection.js';
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

interface Parsed {
  messages: string[];
  pings: string[];
  pongs: string[];
  closes: [number, string][];
  errors: string[];
}

function parseFrames(chunks: Buffer[]): Parsed {
  const out: Parsed = { messages: [], pings: [], pongs: [], closes: [], errors: [] };
  const parser = new WsFrameParser({
    onMessage: (payload, binary) => out.messages.push((binary ? 'bin:' : '') + payload.toString('utf8')),
    onPing: (payload) => out.pings.push(payload.toString()),
    onPong: (payload) => out.pongs.push(payload.toString()),
    onClose: (code, reason) => out.closes.push([code, reason]),
    onError: (message) => out.errors.push(message),
  });
  for (const chunk of chunks) parser.feed(chunk);
  return out;
}

const server = (opcode: number, payload: string | Buffer, fin = true) => encodeFrame(opcode, Buffer.isBuffer(payload) ? payload : Buffer.from(payload), { mask: false, fin });
const row = (id: number, text = 'é€😀') => `{"type":"row","id":${id},"row":{"id":${id},"message":${JSON.stringify(text)},"sent_at":1764050778123.25}}`;

test('ws frames: 7-, 16- and 64-bit lengths, ping, fragments and close, however the bytes are split', () => {
  const medium = row(2, 'm'.repeat(300)); // 126..65535 bytes: 16-bit length
  const large = row(3, 'L'.repeat(70000)); // over 65535: 64-bit length
  const stream = Buffer.concat([
    server(Opcodes.TEXT, row(1)),
    server(Opcodes.PING, 'are you there'),
    server(Opcodes.TEXT, medium),
    server(Opcodes.TEXT, large),
    server(Opcodes.TEXT, 'frag-', false),
    server(Opcodes.PING, 'mid'),
    server(Opcodes.CONTINUATION, 'ment', false),
    server(Opcodes.CONTINUATION, 'ed', true),
    server(Opcodes.BINARY, Buffer.from([1, 2])),
    server(Opcodes.PONG, ''),
    server(Opcodes.TEXT, ''),
    server(Opcodes.CLOSE, closePayload(1001, 'server shutting down')),
  ]);
  const mediumAt = server(Opcodes.TEXT, row(1)).length + server(Opcodes.PING, 'are you there').length;
  assert.is(stream[mediumAt + 1] & 0x7f, 126, 'the medium frame uses a 16-bit length');
  const expected: Parsed = {
    messages: [row(1), medium, large, 'frag-mented', 'bin:\u0001\u0002', ''],
    pings: ['are you there', 'mid'],
    pongs: [''],
    closes: [[1001, 'server shutting down']],
    errors: [],
  };
  // Every cut within the small frames, then cuts around the large frame's header and body, then one byte at a time.
  const cuts: Buffer[][] = [[stream]];
  for (let i = 1; i < 400; i++) cuts.push([stream.subarray(0, i), stream.subarray(i)]);
  const largeAt = stream.indexOf(Buffer.from([0x81, 127]));
  assert.ok(largeAt > 0);
  for (let i = largeAt - 2; i < largeAt + 14; i++) cuts.push([stream.subarray(0, i), stream.subarray(i)]);
  for (let i = stream.length - 120; i < stream.length; i++) cuts.push([stream.subarray(0, i), stream.subarray(i)]);
  cuts.push([...stream].map((b) => Buffer.from([b])));
  for (const chunks of cuts) assert.equal(parseFrames(chunks), expected, `split at ${chunks.length > 2 ? 'every byte' : chunks[0].length}`);
});

test('ws frames: a client frame is masked and reads back the same; a close without a code is 1005', () => {
  const pong = encodeFrame(Opcodes.PONG, Buffer.from('hi'));
  assert.is(pong[0], 0x8a);
  assert.is(pong[1], 0x80 | 2, 'mask bit and length');
  assert.equal(parseFrames([pong]).pongs, ['hi'], 'unmasked with its key');
  const big = Buffer.alloc(70000, 'z');
  const masked = encodeFrame(Opcodes.TEXT, big);
  assert.is(masked[1], 0x80 | 127);
  assert.is(masked.length, 2 + 8 + 4 + 70000);
  assert.equal(parseFrames([masked]).messages, ['z'.repeat(70000)]);
  assert.equal(parseFrames([server(Opcodes.CLOSE, '')]).closes, [[1005, '']]);
  assert.is(acceptFor('dGhlIHNhbXBsZSBub25jZQ=='), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=', 'RFC 6455 section 1.3');
});

test('ws frames: protocol errors stop the parser', () => {
  assert.match(parseFrames([server(Opcodes.CONTINUATION, 'x')]).errors[0], /continuation without a message/);
  assert.match(parseFrames([Buffer.concat([server(Opcodes.TEXT, 'a', false), server(Opcodes.TEXT, 'b')])]).errors[0], /new message inside/);
  assert.match(parseFrames([Buffer.from([0x83, 0])]).errors[0], /unknown opcode 3/);
  assert.match(parseFrames([Buffer.from([0xc1, 0])]).errors[0], /RSV/);
  assert.match(parseFrames([server(Opcodes.PING, 'x', false)]).errors[0], /control frame/);
  const after = parseFrames([Buffer.from([0x83, 0]), server(Opcodes.TEXT, 'ignored')]);
  assert.equal([after.errors.length, after.messages.length], [1, 0]);
});

test('ws row messages: id and sent_at read from the bytes; other messages are not rows', () => {
  assert.equal(rowMessageFields(Buffer.from(row(42))), { id: 42, sentAt: 1764050778123.25 });
  assert.equal(rowMessageFields(Buffer.from('{"type":"row","id":7,"row":{"id":7}}')), { id: 7, sentAt: undefined });
  assert.is(rowMessageFields(Buffer.from('{"type":"reset","id":17,"reason":"cursor-ahead","lastEventId":250,"lastId":17}')), undefined);
  assert.is(rowMessageFields(Buffer.from('{"type":"row","id":x}')), undefined);
});

test('process tree: this process and its children; CPU summed over them', () => {
  const tree = processTree(process.pid);
  assert.is(tree[0], process.pid);
  assert.ok(treeCpuMs(process.pid) > 0);
  assert.equal(processTree(2 ** 22 + 12345), [2 ** 22 + 12345], 'a missing process is just itself');
});

test('server metrics: event-loop delay and the fan-out histogram from the Prometheus text', () => {
  const text = [
    '# HELP nodejs_eventloop_lag_max_seconds The maximum recorded event loop delay.',
    'nodejs_eventloop_lag_max_seconds 0.65',
    'nodejs_eventloop_lag_p99_seconds 0.0123',
    'sqlite_sse_fanout_latency_seconds_bucket{le="0.001"} 90',
    'sqlite_sse_fanout_latency_seconds_bucket{le="0.01"} 99',
    'sqlite_sse_fanout_latency_seconds_bucket{le="+Inf"} 100',
    'sqlite_sse_fanout_latency_seconds_sum 0.2',
    'sqlite_sse_fanout_latency_seconds_count 100',
  ].join('\n');
  const m = parseServerMetrics(text);
  assert.equal([m.eventLoopLagMaxMs, m.fanouts, m.fanoutP99BucketMs], [650, 100, 10]);
  assert.ok(Math.abs(m.eventLoopLagP99Ms - 12.3) < 1e-9 && Math.abs(m.fanoutMeanMs - 2) < 1e-9);
  assert.ok(Number.isNaN(parseServerMetrics('').eventLoopLagMaxMs));
});

test('machine load: CPU of other work is machine busy time minus ours, never negative', () => {
  const from = sampleCpu();
  assert.ok(from.machineMs > 0 && from.oursMs > 0);
  assert.is(otherCpuPercent({ at: 0, machineMs: 1000, oursMs: 100 }, { at: 1000, machineMs: 1800, oursMs: 600 }), 30);
  assert.is(otherCpuPercent({ at: 0, machineMs: 1000, oursMs: 100 }, { at: 1000, machineMs: 1100, oursMs: 600 }), 0);
});

test('args: defaults, lists, quick, and one-line errors that name the flag', () => {
  const defaults = parseBenchArgs([]);
  assert.equal(defaults.clients, [1, 100, 1000]);
  assert.equal(defaults.baselines, ['poll100', 'poll5000', 'raw']);
  assert.equal([defaults.rate, defaults.rowsPerCommit, defaults.rowBytes, defaults.duration, defaults.transports, defaults.workers], [100, 1, 100, 10, ['sse'], [1]]);
  const both = parseBenchArgs(['--transport', 'sse,ws', '--workers', '1,2']);
  assert.equal([both.transports, both.workers], [['sse', 'ws'], [1, 2]]);
  const given = parseBenchArgs(['--clients', '10,20', '--rate=5', '--baseline', 'raw', '--burst', '100', '--no-pin', '--server-arg', '--history-rows 5']);
  assert.equal(given.clients, [10, 20]);
  assert.equal([given.rate, given.burst, given.pin], [5, 100, false]);
  assert.equal(given.baselines, ['raw']);
  assert.equal(given.serverArgs, ['--history-rows', '5']);
  assert.equal(parseBenchArgs(['--clients', '0']).clients, []);
  assert.equal(parseBenchArgs(['--baseline', 'none']).baselines, []);
  assert.equal([defaults.filters, defaults.users], [[{ kind: 'none' }], 0]);
  const filtered = parseBenchArgs(['--filter', 'none@100,own,same', '--users', '50']);
  assert.equal(filtered.filters, [{ kind: 'none', clients: 100 }, { kind: 'own' }, { kind: 'same' }]);
  assert.is(filtered.users, 50);
  const quick = parseBenchArgs(['--quick']);
  assert.equal([quick.clients, quick.duration], [[10, 100], 3]);
  assert.equal(parseBenchArgs(['--quick', '--clients', '5']).clients, [5]);
  assert.ok(parseBenchArgs(['--help']).help);
  assert.equal(defaults.edges, []);
  const edges = parseBenchArgs(['--edges', '1,2,3']);
  assert.equal([edges.edges, edges.clients, edges.baselines], [[1, 2, 3], [1000], []]);
  assert.equal(parseBenchArgs(['--edges', '2', '--clients', '50', '--baseline', 'raw']).clients, [50]);
  for (const [argv, message] of [
    [['--edges', '0'], /--edges expects at least one edge count/],
    [['--edges', '1', '--workers', '2'], /--edges runs one origin process/],
    [['--edges', '1', '--filter', 'own'], /--edges runs are unfiltered/],
    [['--clients', 'ten'], /--clients expects a whole number/],
    [['--rate'], /--rate expects N/],
    [['--bogus'], /unknown option --bogus/],
    [['--baseline', 'php'], /--baseline expects/],
    [['--transport', 'sse,h3'], /--transport expects one of sse, ws/],
    [['--workers', '0'], /--workers expects at least one/],
    [['--workers', '2', '--server-arg', '--workers 2'], /either as --workers N,N or in --server-arg/],
    [['--synchronous', 'sometimes'], /--synchronous expects one of full, normal, off/],
    [['positional'], /unexpected argument/],
    [['--filter', 'mine'], /--filter expects one of none, own, same/],
    [['--filter', 'own@x'], /--filter expects a whole number/],
    [['--filter', 'own@1@2'], /--filter expects KIND or KIND@CLIENTS/],
    [['--users', '0'], /--users expects a whole number of at least 1/],
  ] as [string[], RegExp][]) {
    assert.throws(() => parseBenchArgs(argv), (error: Error) => error instanceof ArgsError && message.test(error.message));
  }
});

test('filter plan: users by id, the ids a client takes, and the deliveries a run expects', () => {
  assert.equal([1, 2, 3, 4, 5].map((id) => userOfRow(id, 3)), [0, 1, 2, 0, 1]);
  assert.equal([usersFor('own', 100, 0), usersFor('none', 100, 0), usersFor('same', 100, 0), usersFor('same', 100, 7)], [100, 100, 1, 7]);
  assert.equal(matchOf({ kind: 'own', users: 4 }, 6), { user: 2, users: 4 });
  assert.equal(matchOf({ kind: 'same', users: 4 }, 6), { user: 0, users: 4 });
  assert.is(matchOf({ kind: 'none', users: 4 }, 6), undefined);
  const user2 = { user: 2, users: 4 };
  assert.equal([nextMatching(1, user2), nextMatching(3, user2), nextMatching(4, user2), nextMatching(8, undefined)], [3, 3, 7, 8]);
  assert.equal([matchingBetween(1, 10, user2), matchingBetween(4, 6, user2), matchingBetween(1, 10, undefined), matchingBetween(5, 4, user2)], [2, 0, 10, 0]);
  // 5 clients over 4 users: clients 0 and 4 share user 0; ids 1..9 give users 0,1,2,3,0,1,2,3,0.
  assert.is(expectedDeliveries({ kind: 'own', users: 4 }, 5, 1, 9), 3 + 2 + 2 + 2 + 3);
  assert.is(expectedDeliveries({ kind: 'same', users: 1 }, 5, 1, 9), 45);
  assert.is(expectedDeliveries({ kind: 'none', users: 9 }, 5, 1, 9), 45);
  assert.is(userIdOf('{"id":5,"user_id":42,"message":"x","sent_at":1}'), 42);
  assert.is(userIdOf('{"id":5}'), undefined);
  assert.is(userIdOfBytes(Buffer.from('{"type":"row","id":5,"row":{"id":5,"user_id":7}}')), 7);
  assert.equal(filterRuns([100, 10000], [{ kind: 'none', clients: 100 }, { kind: 'own' }]), [
    { clients: 100, kind: 'none' },
    { clients: 100, kind: 'own' },
    { clients: 10000, kind: 'own' },
  ]);
  assert.equal(filterRuns([10], [{ kind: 'none' }, { kind: 'same' }]), [
    { clients: 10, kind: 'none' },
    { clients: 10, kind: 'same' },
  ]);
});

test('tally: a filtered client counts its own rows, gaps in them as lost, and any other row as wrong', () => {
  const tally = new Tally();
  const match = { user: 1, users: 3 }; // ids 2, 5, 8, 11, ...
  let expected = nextMatching(1, match);
  assert.is(expected, 2);
  expected = tally.row(expected, 2, 10, 9, match, 1);
  assert.is(expected, 5);
  assert.is(tally.row(expected, 3, 11, 10, match, 2), -1, "another user's row");
  assert.is(tally.row(expected, 5, 11, 10, match, 0), -1, 'an id of the user but a row of another: wrong too');
  expected = tally.row(expected, 11, 12, 10, match, 1); // 5 and 8 never came
  assert.is(expected, 14);
  assert.is(tally.row(expected, 8, 13, 10, match, 1), -1, 'an old row again');
  assert.equal([tally.deliveries, tally.lost, tally.duplicated, tally.wrong], [2, 2, 1, 2]);
  const plain = new Tally();
  assert.is(plain.row(1, 3, 1, 0), 4);
  assert.equal([plain.deliveries, plain.lost, plain.wrong], [1, 2, 0]);
});

test('bench --help lists every flag and exits 0', () => {
  const script = fileURLToPath(new URL('../bench/run.js', import.meta.url));
  const help = execFileSync(process.execPath, [script, '--help'], { encoding: 'utf8', timeout: 10000 });
  for (const flag of ['--clients', '--rate', '--rows-per-commit', '--row-bytes', '--duration', '--transport', '--workers', '--baseline', '--quick', '--burst', '--idle-clients', '--filter', '--users']) {
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

test('smoke: the same over WebSocket (raw-socket client: handshake, frames, exactly once)', async () => {
  const options = parseBenchArgs(['--clients', '3', '--rate', '20', '--duration', '1', '--idle-seconds', '0.2', '--baseline', 'none', '--no-pin', '--transport', 'ws']);
  const context: ScenarioContext = { options, placement: {}, log: () => undefined };
  try {
    const result = await withTimeout(runStream('sqlite-sse', 3, context, { transport: 'ws', workers: 1 }), 60000, 'ws smoke run');
    assert.is(result.label, 'sqlite-sse/ws');
    assert.equal([result.open, result.failed], [3, 0]);
    assert.ok(result.writer.rows >= 5, `rows written: ${result.writer.rows}`);
    assert.is(result.delivered.deliveries, 3 * result.writer.rows);
    assert.equal([result.delivered.lost, result.delivered.duplicated, result.delivered.dropped, result.delivered.unstamped, result.delivered.otherEvents], [0, 0, 0, 0, 0]);
    assert.is(result.delivered.latency.count, result.delivered.deliveries);
    assert.ok(result.firstEventMs && result.firstEventMs.count === 10);
  } finally {
    killAll();
  }
});

test('smoke: clients split across 2 edges fed through a real redis-server get every row exactly once', async () => {
  const options = parseBenchArgs(['--edges', '2', '--clients', '4', '--rate', '20', '--duration', '1', '--idle-seconds', '0.2', '--no-pin']);
  const context: ScenarioContext = { options, placement: {}, log: () => undefined };
  try {
    const result = await withTimeout(runEdgeStream(4, 2, 'sse', context), 60000, 'edge smoke run');
    assert.is(result.label, '2 edges/sse');
    assert.equal([result.open, result.failed, result.edges, result.edgeCpuPercent.length], [4, 0, 2, 2]);
    assert.ok(result.writer.rows >= 5, `rows written: ${result.writer.rows}`);
    assert.is(result.delivered.deliveries, 4 * result.writer.rows);
    assert.equal([result.delivered.lost, result.delivered.duplicated, result.delivered.dropped], [0, 0, 0]);
    assert.ok(result.edgeCpuPercent.reduce((sum, percent) => sum + percent, 0) > 0, `the edges did the work: ${result.edgeCpuPercent}`);
  } finally {
    killAll();
  }
});

test('smoke: own filter, each client its own user: every row to exactly its client, nobody else', async () => {
  const options = parseBenchArgs(['--clients', '4', '--rate', '20', '--duration', '1', '--idle-seconds', '0.2', '--baseline', 'none', '--no-pin', '--filter', 'own']);
  const context: ScenarioContext = { options, placement: {}, log: () => undefined, showFilter: true };
  try {
    const result = await withTimeout(runStream('sqlite-sse', 4, context, { transport: 'sse', workers: 1, filter: { kind: 'own', users: 4 } }), 60000, 'own-filter smoke run');
    assert.is(result.label, 'sqlite-sse/sse [own]');
    assert.equal([result.open, result.failed], [4, 0]);
    assert.ok(result.writer.rows >= 5, `rows written: ${result.writer.rows}`);
    assert.is(result.expected, result.writer.rows, 'each row belongs to exactly one of the 4 clients');
    assert.is(result.delivered.deliveries, result.expected);
    assert.equal([result.delivered.lost, result.delivered.duplicated, result.delivered.wrong, result.delivered.dropped], [0, 0, 0, 0]);
    assert.is(result.delivered.latency.count, result.delivered.deliveries);
    assert.ok(result.firstEventMs && result.firstEventMs.count === 10, 'filtered probes get their row');
  } finally {
    killAll();
  }
});

test('smoke: same filter over WebSocket, rows spread over 2 users: every client gets the rows of user 0 only', async () => {
  const options = parseBenchArgs(['--clients', '3', '--rate', '20', '--duration', '1', '--idle-seconds', '0.2', '--baseline', 'none', '--no-pin', '--filter', 'same', '--transport', 'ws']);
  const context: ScenarioContext = { options, placement: {}, log: () => undefined, showFilter: true };
  try {
    const result = await withTimeout(runStream('sqlite-sse', 3, context, { transport: 'ws', workers: 1, filter: { kind: 'same', users: 2 } }), 60000, 'same-filter smoke run');
    assert.equal([result.open, result.failed], [3, 0]);
    const rowsOfUser0 = matchingBetween(result.writer.firstId, result.writer.lastId, { user: 0, users: 2 });
    assert.ok(rowsOfUser0 >= 3, `rows of user 0: ${rowsOfUser0}`);
    assert.is(result.expected, 3 * rowsOfUser0);
    assert.is(result.delivered.deliveries, result.expected);
    assert.equal([result.delivered.lost, result.delivered.duplicated, result.delivered.wrong, result.delivered.dropped], [0, 0, 0, 0]);
  } finally {
    killAll();
  }
});

test('smoke: filtered replay from the table, without then with an index, in steps of at most 10,000 ids', async () => {
  const built = buildTable(25000, 100, 60);
  const options = { rows: 25000, users: 100, user: 42, rowBytes: 60, indexes: ['without', 'with'] as ('without' | 'with')[], serverArgs: ['--history-rows', '1000'], pin: false, timeoutMs: 30000 };
  try {
    for (const index of ['without', 'with'] as const) {
      if (index === 'with') createIndex(built.path);
      const result = await withTimeout(replayOnce(built.path, index, options), 60000, `replay ${index} the index`);
      assert.is(result.expected, 250);
      assert.equal([result.received, result.lost, result.duplicated, result.wrong], [250, 0, 0, 0], index);
      // (0, 24000] from the table (the newest 1,000 rows are in memory): 10,000 + 10,000 + 4,000 ids.
      assert.equal(result.steps.map((step) => (step.end ?? step.after) - step.after), [10000, 10000, 4000], index);
      assert.is(result.rowsFromTable, 240);
      assert.ok(result.allRowsMs >= result.firstRowMs && result.firstRowMs > 0);
      assert.ok(Number.isFinite(result.eventLoopLagMaxMs), 'read from /metrics');
      assert.match(result.queryPlan, index === 'with' ? /USING INDEX messages_user_id/ : /INTEGER PRIMARY KEY/);
    }
  } finally {
    killAll();
  }
});

test.run();
