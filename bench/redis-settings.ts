/**
 * What the Redis settings of docs/scaling.md cost, each next to its baseline in the same run:
 * `npm run bench:redis -- [options]` (see --help). Every cell starts its own redis-server (Redis from PATH) on a free
 * loopback port in a temp dir, and publishes through the real RedisPublisher (the origin's side of edges); the rows
 * come from memory in the settings cells, so the figures are Redis' cost, and from a real SQLite table through
 * PublishedSource in the backfill figure. Prints markdown tables.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, appendFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { EncodedEvent } from '../src/hub/encoded-event.js';
import { PublishedSource } from '../src/redis/published-source.js';
import { RedisPublisher } from '../src/redis/redis-publisher.js';
import { RedisStreamSource } from '../src/redis/redis-stream-source.js';
import type { SourceSink } from '../src/source/source.js';
import { TableSource } from '../src/source/table-source.js';
import { killChildrenOnExit } from './processes.js';
import { startNode, startSentinelGroup, type RedisNode } from './redis-servers.js';
import { summarize } from './stats.js';
import { markdownTable } from './table.js';
import { sleep } from './wait.js';

const KEY = 'sqlite-sse:messages';
const SECTIONS = ['aof', 'eviction', 'failover', 'figures'] as const;
type Section = (typeof SECTIONS)[number];

const FLAGS = {
  rows: { type: 'string', default: '50000', help: 'rows published per throughput cell' },
  commits: { type: 'string', default: '400', help: 'commits per latency cell (single-row and 100-row)' },
  rounds: { type: 'string', default: '2', help: 'rounds of the throughput and latency cells, interleaved (median shown)' },
  'figure-rows': { type: 'string', default: '1000000', help: 'rows of the figures: memory per entry, backfill, XRANGE catch-up' },
  'limit-mb': { type: 'string', default: '16', help: 'maxmemory of the "at the limit" cells, MiB' },
  sentinels: { type: 'string', default: '3', help: 'Sentinels of the failover cells' },
  'down-after': { type: 'string', default: '1000', help: 'Sentinel down-after-milliseconds of the failover cells' },
  'hold-ms': { type: 'string', default: '250', help: 'the replica receives nothing this long before the kill (the lag a failover loses)' },
  only: { type: 'string', default: SECTIONS.join(','), help: `sections to run: ${SECTIONS.join(', ')}` },
  out: { type: 'string', default: '', help: 'also append the tables to this file' },
  help: { type: 'boolean', default: false, help: 'show this help' },
} as const;

function helpText(): string {
  const valueName: Record<string, string> = { only: 'LIST', out: 'FILE', 'limit-mb': 'MIB', 'down-after': 'MS', 'hold-ms': 'MS' };
  const rows = Object.entries(FLAGS).map(([name, flag]) => [`  --${name}${flag.type === 'string' ? ` ${valueName[name] ?? 'N'}` : ''}`, `${flag.help}${flag.default !== '' && flag.type === 'string' ? ` (default: ${flag.default})` : ''}`]);
  const width = Math.max(...rows.map(([left]) => left.length)) + 2;
  return [
    'sqlite-sse bench:redis: the cost of the Redis settings docs/scaling.md recommends, each against its baseline:',
    'appendonly/appendfsync, maxmemory-policy (and what happens at the limit), a Sentinel failover; and the',
    'figures: memory per entry, backfill of an empty stream, XRANGE catch-up as an edge reads it.',
    '',
    'Usage: npm run bench:redis -- [options]     (or: node dist/bench/redis-settings.js [options])',
    '',
    'Options:',
    ...rows.map(([left, right]) => left.padEnd(width) + right),
    '',
    'Examples:',
    '  npm run bench:redis',
    '  npm run bench:redis -- --only aof --rows 300000 --commits 2000',
    '  npm run bench:redis -- --only failover --down-after 5000 --hold-ms 1000',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------------------------
// Rows: a realistic chat message, about 130 bytes of JSON.

const BASE_MS = Date.UTC(2026, 11, 7);

function rowEvent(id: number): EncodedEvent {
  const value = { id, message: `message ${id}: the build is green again, merging the fix for the login page now`, user_id: id % 1000, created_at: new Date(BASE_MS + id * 1000).toISOString() };
  return new EncodedEvent(id, 'row', value, JSON.stringify(value), undefined);
}

/** An origin's store in memory: ids 1..last. */
class MemoryStore {
  last = 0;
  readAfter(after: number, limit: number): EncodedEvent[] {
    const events: EncodedEvent[] = [];
    for (let id = after + 1; id <= Math.min(this.last, after + limit); id++) events.push(rowEvent(id));
    return events;
  }
  add(count: number): EncodedEvent[] {
    const events: EncodedEvent[] = [];
    for (let i = 0; i < count; i++) events.push(rowEvent(++this.last));
    return events;
  }
}

function memoryLog() {
  const lines: string[] = [];
  return { lines, info: (message: string) => void lines.push(`info: ${message}`), warn: (message: string) => void lines.push(`warning: ${message}`) };
}

function publisherOver(url: string, store: MemoryStore, options: { maxLen?: number; checkMs?: number } = {}) {
  const log = memoryLog();
  const publisher = new RedisPublisher({ url, key: KEY, maxLen: options.maxLen ?? 10_000_000, readAfter: (after, limit) => store.readAfter(after, limit), lastId: () => store.last, log, checkMs: options.checkMs ?? 60000 });
  return { publisher, log };
}

/** Resolves once Redis acknowledged `id` (polled every turn of the event loop: sub-millisecond resolution). */
async function acknowledged(publisher: RedisPublisher, id: number, timeoutMs = 30000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (publisher.acknowledgedId < id) {
    if (Date.now() > deadline) throw new Error(`Redis did not acknowledge id ${id} within ${timeoutMs} ms (at ${publisher.acknowledgedId}, ${publisher.health()})`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

const fmt = (value: number, digits = 0): string => (Number.isFinite(value) ? value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : '–');
const ms = (value: number): string => fmt(value, value < 10 ? 2 : 1);

// ---------------------------------------------------------------------------------------------------------------
// Publishing: throughput (a backfill: MULTI of 1000 XADDs, one at a time) and per-commit latency.

interface PublishFigures {
  rowsPerSecond: number;
  single: { p50: number; p99: number };
  batch: { p50: number; p99: number };
}

async function measurePublishing(settings: Record<string, string>, rows: number, commits: number): Promise<PublishFigures> {
  const node = await startNode(settings);
  try {
    const store = new MemoryStore();
    store.last = rows;
    const throughput = publisherOver(node.url, store);
    const started = performance.now();
    await throughput.publisher.start();
    await acknowledged(throughput.publisher, rows);
    const rowsPerSecond = rows / ((performance.now() - started) / 1000);
    await throughput.publisher.close();
    await node.client.del(KEY);

    const live = new MemoryStore();
    const { publisher } = publisherOver(node.url, live);
    await publisher.start();
    const latencies = async (perCommit: number): Promise<{ p50: number; p99: number }> => {
      const samples: number[] = [];
      for (let i = 0; i < commits; i++) {
        const events = live.add(perCommit);
        const start = performance.now();
        publisher.publish(events);
        await acknowledged(publisher, live.last);
        samples.push(performance.now() - start);
      }
      return summarize(samples);
    };
    const single = await latencies(1);
    const batch = await latencies(100);
    await publisher.close();
    return { rowsPerSecond, single, batch };
  } finally {
    await node.kill();
  }
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

/** Runs every cell once per round, interleaved (background load hits every cell alike); each figure's median and range. */
async function inRounds<T extends Record<string, number>>(cells: number, rounds: number, measure: (cell: number) => Promise<T>): Promise<{ median: T; min: T; max: T }[]> {
  const samples: T[][] = Array.from({ length: cells }, () => []);
  for (let round = 0; round < rounds; round++) for (let cell = 0; cell < cells; cell++) samples[cell].push(await measure(cell));
  const each = (list: T[], pick: (values: number[]) => number) => Object.fromEntries(Object.keys(list[0]).map((key) => [key, pick(list.map((one) => one[key]))])) as T;
  return samples.map((list) => ({ median: each(list, median), min: each(list, (values) => Math.min(...values)), max: each(list, (values) => Math.max(...values)) }));
}

/** A median with the range of the rounds when there were several: `30,481 (27,100–33,020)`. */
function withRange(cell: { median: Record<string, number>; min: Record<string, number>; max: Record<string, number> }, key: string, rounds: number, format: (value: number) => string): string {
  return rounds > 1 ? `${format(cell.median[key])} (${format(cell.min[key])}–${format(cell.max[key])})` : format(cell.median[key]);
}

async function aofSection(rows: number, commits: number, rounds: number): Promise<string> {
  const cells: [string, Record<string, string>][] = [
    ['appendonly no (baseline)', { appendonly: 'no' }],
    ['appendonly yes, appendfsync everysec', { appendonly: 'yes', appendfsync: 'everysec' }],
    ['appendonly yes, appendfsync always', { appendonly: 'yes', appendfsync: 'always' }],
  ];
  // Warm-up (JIT, page cache), not counted.
  await measurePublishing({ appendonly: 'no' }, Math.min(rows, 20000), Math.min(commits, 50));
  const results = await inRounds(cells.length, rounds, async (cell) => {
    const r = await measurePublishing({ ...cells[cell][1], 'maxmemory-policy': 'noeviction' }, rows, commits);
    return { rowsPerSecond: r.rowsPerSecond, singleP50: r.single.p50, singleP99: r.single.p99, batchP50: r.batch.p50, batchP99: r.batch.p99 };
  });
  const base = results[0].median;
  return markdownTable(
    ['persistence', `rows/s (MULTI of 1000, ${fmt(rows)} rows; median (range) of ${rounds})`, 'vs baseline', '1-row commit p50 ms', 'p99 ms', '100-row commit p50 ms', 'p99 ms'],
    cells.map(([name], i) => {
      const r = results[i];
      const range = (key: string) => withRange(r, key, rounds, ms);
      return [name, withRange(r, 'rowsPerSecond', rounds, fmt), i === 0 ? '–' : `${Math.round((r.median.rowsPerSecond / base.rowsPerSecond) * 100)}%`, range('singleP50'), range('singleP99'), range('batchP50'), range('batchP99')];
    }),
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Eviction: throughput under each policy, then what each does at the limit.

async function atTheLimit(policy: string, limitMb: number): Promise<string[]> {
  const node = await startNode({ appendonly: 'no', maxmemory: `${limitMb}mb`, 'maxmemory-policy': policy });
  try {
    const store = new MemoryStore();
    // About three times what fits: about 300 bytes of Redis memory per entry.
    store.last = Math.ceil((limitMb * 1024 * 1024 * 3) / 300);
    const { publisher, log } = publisherOver(node.url, store, { checkMs: 1000 });
    const started = performance.now();
    await publisher.start();
    const lengths: number[] = [];
    for (let i = 0; i < 10; i++) {
      await sleep(500);
      lengths.push(await node.client.xlen(KEY));
    }
    const seconds = (performance.now() - started) / 1000;
    const stats = await node.client.info('stats');
    const evicted = Number(/evicted_keys:(\d+)/.exec(stats)?.[1] ?? 0);
    const first = await node.client.xrange(KEY, '-', '+', 'COUNT', 1);
    const refused = log.lines.find((line) => /refusing writes/.test(line));
    const health = publisher.health();
    const top = Number((await node.client.xrevrange(KEY, '+', '-', 'COUNT', 1))[0]?.[0].split('-')[0] ?? 0);
    await publisher.close();
    const firstId = first.length ? Number(first[0][0].split('-')[0]) : undefined;
    const edgesSee =
      firstId !== undefined && firstId > 1 ? `ids 1–${fmt(firstId - 1)} gone, no error anywhere (the key was evicted whole)`
      : health === 'down' ? `the stream stops at id ${fmt(top)}; /healthz redis: down; nothing lost, the origin retries`
      : 'every row';
    return [
      policy,
      `${limitMb} MiB`,
      fmt(store.last),
      health === 'down' ? `down${refused && /OOM|EXECABORT/.test(refused) ? ' (OOM: writes refused)' : ''}` : 'ok',
      fmt(evicted),
      `${fmt(Math.min(...lengths))}–${fmt(Math.max(...lengths))}`,
      firstId === undefined ? '(no stream)' : fmt(firstId),
      fmt(seconds, 1),
      edgesSee,
    ];
  } finally {
    await node.kill();
  }
}

async function evictionSection(rows: number, limitMb: number, rounds: number): Promise<string> {
  const policies = ['noeviction', 'allkeys-lru'];
  const results = await inRounds(policies.length, rounds, async (cell) => {
    const node = await startNode({ appendonly: 'no', maxmemory: '2gb', 'maxmemory-policy': policies[cell] });
    try {
      const store = new MemoryStore();
      store.last = rows;
      const { publisher } = publisherOver(node.url, store);
      const started = performance.now();
      await publisher.start();
      await acknowledged(publisher, rows);
      const rowsPerSecond = rows / ((performance.now() - started) / 1000);
      await publisher.close();
      return { rowsPerSecond };
    } finally {
      await node.kill();
    }
  });
  const throughput = results.map((r) => r.median.rowsPerSecond);
  const table1 = markdownTable(
    ['maxmemory-policy (maxmemory 2gb, not reached)', `rows/s (median (range) of ${rounds})`, 'vs noeviction'],
    policies.map((policy, i) => [policy, withRange(results[i], 'rowsPerSecond', rounds, fmt), i === 0 ? '–' : `${Math.round((throughput[i] / throughput[0]) * 100)}%`]),
  );
  const limit: string[][] = [];
  for (const policy of policies) limit.push(await atTheLimit(policy, limitMb));
  const table2 = markdownTable(
    ['policy at the limit', 'maxmemory', 'rows to publish', 'publisher health', 'evicted keys', 'stream length (every 0.5 s for 5 s)', 'first id held', 's', 'what edges see'],
    limit,
  );
  return `${table1}\n\n${table2}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Sentinel failover: the primary SIGKILLed while rows flow at about 1,000 rows/s.

async function failoverCell(sentinels: number, downAfterMs: number, holdMs: number): Promise<string[]> {
  const group = await startSentinelGroup(sentinels, downAfterMs, { appendonly: 'no' });
  const timer: { handle?: NodeJS.Timeout } = {};
  try {
    const store = new MemoryStore();
    const { publisher, log } = publisherOver(group.url, store, { checkMs: 5000 });
    await publisher.start();
    const flowStart = performance.now();
    timer.handle = setInterval(() => publisher.publish(store.add(1)), 1);
    await sleep(1000);
    const topOf = async (node: RedisNode) => Number((await node.client.xrevrange(KEY, '+', '-', 'COUNT', 1))[0]?.[0].split('-')[0] ?? 0);
    if (holdMs > 0) {
      group.proxy.freeze();
      await sleep(holdMs);
    }
    const topAtKill = await topOf(group.primary);
    const logBefore = log.lines.length;
    const killedAt = performance.now();
    await group.primary.kill();
    await group.proxy.close();
    let promotedMs = NaN;
    let publishingMs = NaN;
    const deadline = killedAt + 60000;
    while (performance.now() < deadline && (Number.isNaN(promotedMs) || Number.isNaN(publishingMs))) {
      if (Number.isNaN(promotedMs) && (await group.masterPort().catch(() => 0)) === group.replica.port) promotedMs = performance.now() - killedAt;
      if (Number.isNaN(publishingMs) && publisher.health() === 'ok' && publisher.acknowledgedId > topAtKill) publishingMs = performance.now() - killedAt;
      await sleep(2);
    }
    await sleep(500);
    clearInterval(timer.handle);
    const rate = store.last / ((performance.now() - flowStart) / 1000);
    await acknowledged(publisher, store.last, 20000);
    const entries = await group.replica.client.xlen(KEY);
    const first = (await group.replica.client.xrange(KEY, '-', '+', 'COUNT', 1))[0]?.[0];
    const after = log.lines.slice(logBefore);
    const republished = after.map((line) => /published (\d+) events missing .* \(ids (\d+) to (\d+)\)/.exec(line)).find(Boolean);
    const from = republished ? Number(republished[2]) : NaN;
    const lacked = Number.isFinite(from) ? Math.max(0, topAtKill - from + 1) : 0;
    await publisher.close();
    return [
      `${holdMs > 0 ? `replica held ${holdMs} ms before the kill` : 'no lag injected'} (${fmt(rate)} rows/s)`,
      `${sentinels}, down-after ${fmt(downAfterMs)} ms`,
      fmt(promotedMs),
      fmt(publishingMs),
      fmt(publishingMs - promotedMs),
      fmt(lacked),
      republished ? `${fmt(Number(republished[1]))} (ids ${republished[2]}–${republished[3]})` : '0',
      entries === store.last && first === '1-0' ? `yes (${fmt(entries)})` : `NO: ${fmt(entries)} of ${fmt(store.last)}`,
    ];
  } finally {
    clearInterval(timer.handle);
    await group.dispose();
  }
}

async function failoverSection(sentinels: number, downAfterMs: number, holdMs: number): Promise<string> {
  const rows = [await failoverCell(sentinels, downAfterMs, 0), await failoverCell(sentinels, downAfterMs, holdMs)];
  return markdownTable(
    ['case (rows/s published)', 'Sentinels', 'kill → promoted ms', 'kill → publishing again ms', 'promoted → publishing ms', 'rows the new primary lacked (re-published)', 'first backfill on the new primary: rows (ids)', 'new primary holds 1..N once'],
    rows,
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Figures: memory per entry, backfill of an empty stream from a SQLite table, XRANGE catch-up as an edge reads it.

async function figuresSection(rows: number): Promise<string> {
  const node = await startNode({ appendonly: 'yes', appendfsync: 'everysec', maxmemory: '4gb', 'maxmemory-policy': 'noeviction' });
  const directory = mkdtempSync(join(tmpdir(), 'sqlite-sse-bench-db-'));
  try {
    const path = join(directory, 'figures.db');
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE messages(id INTEGER PRIMARY KEY AUTOINCREMENT, message TEXT, user_id INTEGER, created_at TEXT)');
    const insert = db.prepare('INSERT INTO messages(message, user_id, created_at) VALUES (?, ?, ?)');
    db.transaction(() => {
      for (let id = 1; id <= rows; id++) {
        const { message, user_id, created_at } = rowEvent(id).value as { message: string; user_id: number; created_at: string };
        insert.run(message, user_id, created_at);
      }
    })();
    db.close();
    const sample = rowEvent(rows).json;

    const memoryBefore = Number(/used_memory:(\d+)/.exec(await node.client.info('memory'))?.[1]);
    const log = memoryLog();
    const source = new PublishedSource(new TableSource({ path, table: 'messages', pageRows: 1000, watcher: 'native' }), { url: node.url, key: KEY, maxLen: rows, log, checkMs: 60000 });
    const sink: SourceSink = { publish: () => {}, restart: () => {}, gap: () => {}, warn: () => {}, readLatency: () => {} };
    const started = performance.now();
    await source.start(sink, { rows: 100, bytes: 1 << 20 });
    await acknowledged(source.publisher, rows, 600000);
    const backfillSeconds = (performance.now() - started) / 1000;
    await source.close();

    const length = await node.client.xlen(KEY);
    const usage = Number(await node.client.call('MEMORY', 'USAGE', KEY, 'SAMPLES', '0'));
    const memoryAfter = Number(/used_memory:(\d+)/.exec(await node.client.info('memory'))?.[1]);

    const edge = new RedisStreamSource({ url: node.url, key: KEY, log: memoryLog() });
    await edge.start(sink, { rows: 0, bytes: 0 });
    const catchUpStart = performance.now();
    let after = 0;
    let read = 0;
    while (after < rows) {
      const page = await edge.readPage(after, rows, 1000, 1 << 20);
      if (!('events' in page) || page.events.length === 0) throw new Error(`catch-up stopped at ${after}: ${JSON.stringify(page)}`);
      read += page.events.length;
      after = page.events[page.events.length - 1].id;
    }
    const catchUpSeconds = (performance.now() - catchUpStart) / 1000;
    await edge.close();

    return markdownTable(
      ['figure', 'value'],
      [
        ['row (JSON the origin publishes)', `${sample.length} bytes: \`${sample}\``],
        [`backfill of ${fmt(rows)} rows into an empty stream (SQLite → PublishedSource → MULTI of 1000; AOF everysec)`, `${fmt(rows / backfillSeconds)} rows/s (${fmt(backfillSeconds, 1)} s)`],
        ['`MEMORY USAGE` of the stream (SAMPLES 0)', `${fmt(usage / 1024 / 1024, 1)} MiB for ${fmt(length)} entries: ${fmt(usage / length)} bytes per entry`],
        ['`INFO memory` used_memory growth', `${fmt((memoryAfter - memoryBefore) / 1024 / 1024, 1)} MiB: ${fmt((memoryAfter - memoryBefore) / length)} bytes per entry`],
        [`edge catch-up: \`readPage\` (MULTI XINFO + XRANGE COUNT 1000, parsed into events) over ${fmt(rows)} entries`, `${fmt(read / catchUpSeconds)} rows/s (${fmt(catchUpSeconds, 1)} s)`],
      ],
    );
  } finally {
    await node.kill();
    rmSync(directory, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------------------------

function count(name: string, text: string, min: number): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < min) {
    console.error(`error: --${name} expects a whole number of at least ${min}, got ${JSON.stringify(text)}`);
    process.exit(1);
  }
  return value;
}

async function main(): Promise<void> {
  let values;
  try {
    values = parseArgs({ options: Object.fromEntries(Object.entries(FLAGS).map(([name, flag]) => [name, { type: flag.type, default: flag.default }])) as never }).values as Record<string, string | boolean>;
  } catch (error) {
    console.error(`error: ${(error as Error).message} (see --help)`);
    process.exit(1);
  }
  if (values.help) {
    console.log(helpText());
    return;
  }
  killChildrenOnExit();
  const rows = count('rows', String(values.rows), 1000);
  const commits = count('commits', String(values.commits), 10);
  const rounds = count('rounds', String(values.rounds), 1);
  const figureRows = count('figure-rows', String(values['figure-rows']), 1000);
  const limitMb = count('limit-mb', String(values['limit-mb']), 2);
  const sentinels = count('sentinels', String(values.sentinels), 1);
  const downAfter = count('down-after', String(values['down-after']), 100);
  const holdMs = count('hold-ms', String(values['hold-ms']), 1);
  const only = String(values.only).split(',').map((part) => part.trim());
  for (const section of only) {
    if (!(SECTIONS as readonly string[]).includes(section)) {
      console.error(`error: --only expects a list of ${SECTIONS.join(', ')}, got ${JSON.stringify(section)}`);
      process.exit(1);
    }
  }
  const redisVersion = execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).trim().replace(/^Redis server /, '');
  const out: string[] = [];
  const print = (text: string) => {
    console.log(text);
    out.push(text);
  };
  const load = () => loadavg().map((value) => value.toFixed(2)).join(', ');
  print(`bench:redis ${new Date().toISOString().slice(0, 16)}Z, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, redis-server ${redisVersion}, dir ${tmpdir()}`);
  print(`command: node dist/bench/redis-settings.js ${process.argv.slice(2).join(' ')}`.trimEnd());
  const titles: Record<Section, string> = {
    aof: `Persistence: publish rate (a backfill, MULTI of 1000) and per-commit latency (publish → acknowledged, one commit at a time, ${fmt(commits)} commits each)`,
    eviction: 'maxmemory-policy: throughput, and what happens at the limit (about 3× the limit published, the publisher checking every 1 s)',
    failover: `Sentinel failover: primary SIGKILLed while the origin publishes one row per millisecond timer tick (publisher reconnect backoff 100 ms doubling up to 2 s)`,
    figures: `Figures: ${fmt(figureRows)} entries, Redis with the recommended settings (AOF everysec, noeviction)`,
  };
  for (const section of SECTIONS) {
    if (!only.includes(section)) continue;
    const started = performance.now();
    const loadBefore = load();
    const table =
      section === 'aof' ? await aofSection(rows, commits, rounds)
      : section === 'eviction' ? await evictionSection(rows, limitMb, rounds)
      : section === 'failover' ? await failoverSection(sentinels, downAfter, holdMs)
      : await figuresSection(figureRows);
    print(`\n### ${titles[section]}\n\n_load average before: ${loadBefore}; after: ${load()}; ${fmt((performance.now() - started) / 1000, 1)} s_\n\n${table}`);
  }
  if (values.out) appendFileSync(String(values.out), out.join('\n') + '\n');
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(`error: ${(error as Error).stack ?? error}`);
    process.exit(1);
  },
);
