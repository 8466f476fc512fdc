/**
 * Filtered replay (issue 11): a client resuming from `lastEventId=0` with a filter that matches 1 row in 10,000 of a
 * 1,000,000-row table. `npm run bench:filter-replay -- [options]` (see `--help`).
 *
 * Builds the table in one transaction (a recursive CTE through better-sqlite3; row `id` belongs to user
 * `(id - 1) mod users`, as in the streaming bench), starts the server with `--metrics` and the step hook
 * (bench/step-hook.ts, which prints every catch-up read the server makes), opens one client with
 * `?lastEventId=0&user_id=eq.X` and reports the time to receive all of X's rows, the catch-up steps (ids covered and
 * synchronous time of each read), and the server's longest event-loop delay, seen from inside (/metrics
 * `nodejs_eventloop_lag_max_seconds`) and from outside (/healthz time to first byte, probed all along); without and
 * then with an index on (user_id, id).
 */
import { appendFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { wallMs } from './clock.js';
import { filterQuery, matchingBetween, type RowMatch } from './filter-plan.js';
import { HealthzProbe } from './healthz-probe.js';
import { sampleCpu, otherCpuPercent } from './machine-load.js';
import { forgetDirectory, killAll, killChildrenOnExit, startListening, trackDirectory, treeCpuMs, type ListeningProcess } from './processes.js';
import { SERVER_CLI } from './scenario.js';
import { scrapeServerMetrics, type ServerMetrics } from './server-metrics.js';
import { Tally } from './sse-connection.js';
import { openStream } from './streams.js';
import { formatMs, Histogram } from './stats.js';
import { markdownTable } from './table.js';
import { sleep } from './wait.js';
import { BENCH_SCHEMA, messageFor } from './writer.js';

const STEP_HOOK = fileURLToPath(new URL('./step-hook.js', import.meta.url));

export interface ReplayOptions {
  rows: number;
  users: number;
  /** The user the client filters on. */
  user: number;
  rowBytes: number;
  /** Which runs: without the index, with it, or both (in that order, on the same table). */
  indexes: ('without' | 'with')[];
  /** The server's cli.js (default: this checkout's). */
  server?: string;
  serverArgs: string[];
  /** Pin the server to CPU 0 (when there are 2+ CPUs). */
  pin: boolean;
  /** Give up waiting for the rows after this long. */
  timeoutMs: number;
}

export interface ReplayStep {
  after: number;
  upTo: number;
  end: number | undefined;
  rows: number | undefined;
  /** The whole read, synchronous: the event loop waits this long. */
  ms: number;
  /** Part of it spent finding the step's end (the 10,000th id after the cursor). */
  boundMs: number;
  filtered: boolean;
}

export interface ReplayResult {
  index: 'without' | 'with';
  rows: number;
  users: number;
  user: number;
  /** Rows of the user in the table. */
  expected: number;
  received: number;
  lost: number;
  duplicated: number;
  wrong: number;
  /** Connect to the first row, and to the last one. */
  firstRowMs: number;
  allRowsMs: number;
  /** The server's catch-up reads of the table, for this client. */
  steps: ReplayStep[];
  /** Rows the server returned from the table; the rest came from its memory (the newest rows). */
  rowsFromTable: number;
  eventLoopLagMaxMs: number;
  healthz: Histogram;
  healthzFailures: number;
  serverCpuMs: number;
  queryPlan: string;
  loadAverage: [number, number];
  otherCpuPercent: number;
}

export interface BuiltTable {
  path: string;
  directory: string;
  buildMs: number;
}

/** A fresh database of `rows` rows in one transaction; row `id` is user `(id - 1) mod users`'s. */
export function buildTable(rows: number, users: number, rowBytes: number): BuiltTable {
  const directory = trackDirectory(mkdtempSync(join(tmpdir(), 'sqlite-sse-replay-')));
  const path = join(directory, 'bench.db');
  const started = wallMs();
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = normal');
  db.exec(BENCH_SCHEMA);
  db.transaction(() => {
    db.prepare(
      `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
       INSERT INTO messages(id, user_id, message, sent_at) SELECT i, (i - 1) % ?, ?, ? FROM n`,
    ).run(rows, users, messageFor(rowBytes), Date.now());
  })();
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  return { path, directory, buildMs: wallMs() - started };
}

export function createIndex(path: string): number {
  const started = wallMs();
  const db = new Database(path);
  db.exec('CREATE INDEX IF NOT EXISTS messages_user_id ON messages(user_id, id)');
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  return wallMs() - started;
}

/** SQLite's plan for the server's filtered catch-up read (the statement of src/source/table-reader.ts with the filter of src/filter/filter-sql.ts). */
function queryPlan(path: string): string {
  const db = new Database(path, { readonly: true });
  try {
    const plan = db
      .prepare('EXPLAIN QUERY PLAN SELECT * FROM "messages" WHERE "id" > ? AND "id" <= ? AND ("user_id" = ?) ORDER BY "id" LIMIT ?')
      .all(0, 10000, '1', 1000) as { detail: string }[];
    return plan.map((row) => row.detail).join('; ');
  } finally {
    db.close();
  }
}

export function parseSteps(output: string): ReplayStep[] {
  const steps: ReplayStep[] = [];
  for (const match of output.matchAll(/^bench-step (\{.*\})$/gm)) steps.push(JSON.parse(match[1]) as ReplayStep);
  return steps;
}

/** The server's table-source.js: in src/source/ since src/ has folders, beside cli.js in builds from before. */
function tableSourceOf(serverCli: string): string {
  const inFolder = join(dirname(serverCli), 'source', 'table-source.js');
  return existsSync(inFolder) ? inFolder : join(dirname(serverCli), 'table-source.js');
}

/** Starts the server on `path`, replays the user's rows to one client, and measures it. */
export async function replayOnce(path: string, index: 'without' | 'with', options: ReplayOptions): Promise<ReplayResult> {
  const serverCli = options.server ?? SERVER_CLI;
  const env = { ...process.env, BENCH_TABLE_SOURCE: pathToFileURL(tableSourceOf(serverCli)).href };
  const pinned = options.pin && cpus().length >= 2;
  let server: ListeningProcess | undefined;
  let probe: HealthzProbe | undefined;
  try {
    server = await startListening(
      ['--import', STEP_HOOK, serverCli, '--db', path, '--table', 'messages', '--port', '0', '--host', '127.0.0.1', '--metrics', ...options.serverArgs],
      { cpus: pinned ? '0' : undefined, env, timeoutMs: 60000 },
    );
    await sleep(500);
    const stepsBefore = parseSteps(server.output()).length;
    // Restarts prom-client's event-loop histogram: the scrape after the replay covers the replay only.
    await scrapeServerMetrics(server.host, server.port);
    probe = new HealthzProbe(server.host, server.port, 5, options.timeoutMs + 10000);
    await sleep(200);
    const match: RowMatch = { user: options.user, users: options.users };
    const expected = matchingBetween(1, options.rows, match);
    const tally = new Tally();
    const cpuStart = treeCpuMs(server.pid);
    const machineStart = sampleCpu();
    const loadStart = loadavg()[0];
    const connection = openStream({ host: server.host, port: server.port, path: `/events?lastEventId=0${filterQuery(options.user)}`, match }, 0, tally);
    const deadline = wallMs() + options.timeoutMs;
    while (!connection.caughtUp(options.rows) && !connection.ended && wallMs() < deadline) await sleep(1);
    const serverCpuMs = treeCpuMs(server.pid) - cpuStart;
    const machineEnd = sampleCpu();
    const loadEnd = loadavg()[0];
    connection.settle(options.rows);
    connection.close();
    await sleep(100);
    const probed = await probe.stop();
    probe = undefined;
    const metrics: ServerMetrics | undefined = await scrapeServerMetrics(server.host, server.port);
    const steps = parseSteps(server.output()).slice(stepsBefore);
    const machineWall = Math.max(1, machineEnd.at - machineStart.at);
    return {
      index,
      rows: options.rows,
      users: options.users,
      user: options.user,
      expected,
      received: tally.deliveries,
      lost: tally.lost,
      duplicated: tally.duplicated,
      wrong: tally.wrong,
      firstRowMs: connection.firstEventAt ? connection.firstEventAt - connection.startedAt : NaN,
      allRowsMs: tally.lastReceiptAt ? tally.lastReceiptAt - connection.startedAt : NaN,
      steps,
      rowsFromTable: steps.reduce((sum, step) => sum + (step.rows ?? 0), 0),
      eventLoopLagMaxMs: metrics?.eventLoopLagMaxMs ?? NaN,
      healthz: probed.ttfb,
      healthzFailures: probed.failures,
      serverCpuMs,
      queryPlan: queryPlan(path),
      loadAverage: [loadStart, loadEnd],
      otherCpuPercent: Math.max(0, otherCpuPercent(machineStart, machineEnd) - (serverCpuMs / machineWall) * 100),
    };
  } finally {
    await probe?.stop();
    await server?.stop(3000);
  }
}

const fixed = (value: number, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : '–');

export function replayTable(results: ReplayResult[]): string {
  return markdownTable(
    [
      'index on (user_id, id)',
      'table rows',
      'filter',
      'rows of the user',
      'received',
      'lost',
      'dup',
      'wrong',
      'first row after',
      'all rows after',
      'catch-up steps (table reads)',
      'ids per step (max)',
      'rows from table / from memory',
      'step read p50',
      'step read max',
      'of which finding the step end: p50',
      'max',
      'event-loop delay max (/metrics)',
      '/healthz probes',
      '/healthz p99',
      '/healthz max',
      'server CPU ms',
    ],
    results.map((r) => {
      const covered = r.steps.map((s) => (s.end ?? s.after) - s.after);
      const reads = new Histogram();
      const bounds = new Histogram();
      for (const step of r.steps) {
        reads.record(step.ms);
        bounds.record(step.boundMs);
      }
      return [
        r.index,
        r.rows,
        `user_id=eq.${r.user} (1 in ${r.users})`,
        r.expected,
        r.received,
        r.lost,
        r.duplicated,
        r.wrong,
        formatMs(r.firstRowMs),
        formatMs(r.allRowsMs),
        r.steps.length,
        covered.length ? Math.max(...covered) : 0,
        `${r.rowsFromTable} / ${r.received - r.rowsFromTable}`,
        formatMs(reads.percentile(50)),
        formatMs(reads.max),
        formatMs(bounds.percentile(50)),
        formatMs(bounds.max),
        formatMs(r.eventLoopLagMaxMs),
        r.healthz.count,
        formatMs(r.healthz.percentile(99)),
        formatMs(r.healthz.max),
        fixed(r.serverCpuMs, 0),
      ];
    }),
  );
}

export function planTable(results: ReplayResult[]): string {
  return markdownTable(
    ['index on (user_id, id)', "SQLite's plan for the filtered catch-up read", 'load average (1 min) start → end', 'other work CPU %'],
    results.map((r) => [r.index, r.queryPlan, `${r.loadAverage[0].toFixed(2)} → ${r.loadAverage[1].toFixed(2)}`, fixed(r.otherCpuPercent, 1)]),
  );
}

const HELP = `sqlite-sse filtered-replay bench (issue 11): one client resumes from lastEventId=0 with a filter matching
1 row in USERS of a ROWS-row table; time to all rows, catch-up steps, the server's longest event-loop delay;
without and with an index on (user_id, id).

Usage: npm run bench:filter-replay -- [options]   (or: node dist/bench/filter-replay.js [options])

Options:
  --rows N          rows in the table (default: 1000000)
  --users N         users the rows go to, round robin by id (default: 10000)
  --user N          the user the client filters on (default: 4242, or 0 when there are fewer users)
  --row-bytes N     approximate size of a row's JSON (default: 100)
  --index LIST      without, with, or without,with (default: without,with)
  --server PATH     the server's cli.js (default: dist/src/cli.js)
  --server-arg F    extra flags for the server (quoted, space-separated)
  --no-pin          do not pin the server to CPU 0
  --timeout S       give up waiting for the rows after S seconds (default: 120)
  --out FILE        also append the tables to FILE
  --help            show this help`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rows: { type: 'string', default: '1000000' },
      users: { type: 'string', default: '10000' },
      user: { type: 'string' },
      'row-bytes': { type: 'string', default: '100' },
      index: { type: 'string', default: 'without,with' },
      server: { type: 'string' },
      'server-arg': { type: 'string', default: '' },
      'no-pin': { type: 'boolean', default: false },
      timeout: { type: 'string', default: '120' },
      out: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return;
  }
  const whole = (name: string, text: string, min: number): number => {
    const value = Number(text);
    if (!Number.isInteger(value) || value < min) {
      console.error(`error: --${name} expects a whole number of at least ${min}, got ${JSON.stringify(text)}`);
      process.exit(2);
    }
    return value;
  };
  const users = whole('users', values.users!, 1);
  const indexes = values.index!.split(',').map((part) => part.trim());
  if (indexes.length === 0 || indexes.some((part) => part !== 'without' && part !== 'with')) {
    console.error(`error: --index expects without, with or without,with, got ${JSON.stringify(values.index)}`);
    process.exit(2);
  }
  const options: ReplayOptions = {
    rows: whole('rows', values.rows!, 1),
    users,
    user: values.user !== undefined ? whole('user', values.user, 0) : 4242 < users ? 4242 : 0,
    rowBytes: whole('row-bytes', values['row-bytes']!, 1),
    indexes: [...new Set(indexes)].sort((a, b) => (a === 'without' ? -1 : b === 'without' ? 1 : 0)) as ReplayOptions['indexes'],
    server: values.server,
    serverArgs: values['server-arg']!.split(/\s+/).filter(Boolean),
    pin: !values['no-pin'],
    timeoutMs: whole('timeout', values.timeout!, 1) * 1000,
  };
  killChildrenOnExit();
  const output: string[] = [];
  const emit = (text: string) => {
    console.log(text);
    output.push(text);
  };
  const cpu = cpus();
  emit(`- date: ${new Date().toISOString()}; machine: ${cpu.length} CPUs (${cpu[0]?.model ?? '?'}); Node ${process.version}`);
  emit(`- command: node dist/bench/filter-replay.js ${process.argv.slice(2).join(' ')}`);
  emit(`- server: ${options.server ?? 'dist/src/cli.js'} --metrics ${options.serverArgs.join(' ')}, ${options.pin && cpu.length >= 2 ? 'pinned to CPU 0' : 'not pinned'}; load average at start: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  const built = buildTable(options.rows, options.users, options.rowBytes);
  emit(`- table: ${options.rows} rows of ~${options.rowBytes} B over ${options.users} users, built in one transaction in ${formatMs(built.buildMs)}`);
  const results: ReplayResult[] = [];
  try {
    for (const index of options.indexes) {
      if (index === 'with') emit(`- CREATE INDEX messages_user_id ON messages(user_id, id): ${formatMs(createIndex(built.path))}`);
      console.error(`… replay ${index} the index (load average ${loadavg().map((l) => l.toFixed(2)).join(' ')})`);
      results.push(await replayOnce(built.path, index, options));
    }
  } finally {
    rmSync(built.directory, { recursive: true, force: true });
    forgetDirectory(built.directory);
  }
  emit('\n### Filtered replay: one client, lastEventId=0, a filter matching 1 row in ' + options.users + '\n');
  emit(replayTable(results));
  emit('\n');
  emit(planTable(results));
  if (values.out) appendFileSync(values.out, output.join('\n') + '\n\n');
  process.exitCode = results.some((r) => r.lost > 0 || r.duplicated > 0 || r.wrong > 0 || r.received !== r.expected) ? 1 : 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((error: unknown) => {
    console.error(`filter-replay failed: ${(error as Error)?.stack ?? String(error)}`);
    killAll();
    process.exit(1);
  });
}
