/**
 * One measured run: a fresh database in /tmp, the target server as its own process, the load processes, the writer;
 * everything stopped and removed in `finally`, whatever fails.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import type { Baseline, BenchOptions, Transport } from './args.js';
import { wallMs } from './clock.js';
import { expectedDeliveries, filterQuery, NO_FILTER, userOfRow, type FilterPlan } from './filter-plan.js';
import { HealthzProbe } from './healthz-probe.js';
import { LoadPool, type MergedReport } from './load-pool.js';
import { sampleCpu } from './machine-load.js';
import { cpuMs, forgetDirectory, forkScript, trackDirectory, nextMessage, OPEN_FILES, openFilesLimit, processTree, startListening, stopChild, treeCpuMs, treeRssKiB, type ListeningProcess } from './processes.js';
import { Tally, type StreamConnection } from './sse-connection.js';
import { scrapeServerMetrics, type ServerMetrics } from './server-metrics.js';
import { openStream } from './streams.js';
import { Histogram } from './stats.js';
import { sleep } from './wait.js';
import { BENCH_SCHEMA, type WriterCommand, type WriterReport } from './writer.js';

export type Target = 'sqlite-sse' | Baseline;

/**
 * How the server under test runs: its transport and `--workers` count, and the clients' filter (default: none).
 * Baselines always speak SSE in one process, unfiltered.
 */
export interface Variant {
  transport: Transport;
  workers: number;
  filter?: FilterPlan;
}

export const DEFAULT_VARIANT: Variant = { transport: 'sse', workers: 1 };

/** `sqlite-sse/ws`, `sqlite-sse/sse ×2 workers`, `sqlite-sse/sse [own]`, or the baseline's name. */
export function labelOf(target: Target, variant: Variant, showWorkers = variant.workers > 1, showFilter = (variant.filter?.kind ?? 'none') !== 'none'): string {
  if (target !== 'sqlite-sse') return target;
  const workers = showWorkers ? ` ×${variant.workers} worker${variant.workers > 1 ? 's' : ''}` : '';
  return `sqlite-sse/${variant.transport}${workers}${showFilter ? ` [${variant.filter?.kind ?? 'none'}]` : ''}`;
}

/** The stream's request path for a transport and cursor, filtered on one user when `user` is given. */
export function streamPath(transport: Transport, cursor: number, user?: number): string {
  return `${transport === 'ws' ? '/ws' : '/events'}?lastEventId=${cursor}${filterQuery(user)}`;
}

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));
/** The server under test, started the way a user starts it. */
export const SERVER_CLI = here('../src/cli.js');
const POLLING = here('./polling-baseline.js');
const RAW = here('./raw-ceiling.js');
const WRITER = here('./writer.js');

export interface Placement {
  /** CPUs of the process under test (taskset list), or undefined: not pinned. */
  serverCpus?: string;
  /** CPUs of load processes and the writer. */
  loadCpus?: string;
}

export interface CommonResult {
  target: Target;
  /** The target with its transport and worker count, for tables. */
  label: string;
  transport: Transport;
  workers: number;
  /** The clients' filter (kind `none`: unfiltered). */
  filter: FilterPlan;
  /** Server processes measured (primary + workers). */
  serverProcesses: number;
  /** Where the processes ran. */
  placement: string;
  clients: number;
  open: number;
  failed: number;
  openErrors: string[];
  /** Connect to the stream's first byte, ms. */
  openMs: Histogram;
  serverOpenFiles: number;
  rssBeforeKiB: number;
  rssConnectedKiB: number;
  idleCpuPercent: number;
  warnings: string[];
}

export interface StreamResult extends CommonResult {
  writer: WriterReport;
  delivered: MergedReport;
  /** Rows the clients should have received, summed over clients (each client: the rows its filter takes). */
  expected: number;
  deliveriesPerSecond: number;
  serverCpuMs: number;
  /** Server CPU while writing, as a share of one core. */
  serverCpuPercent: number;
  /** CPU of the load processes while writing, as a share of one core: near 100 × their CPUs, they are the bottleneck. */
  loadCpuPercent: number;
  /** Time to the first row for a client connecting with a cursor one row back (undefined for the ceiling). */
  firstEventMs: Histogram | undefined;
  /** The machine's 1-minute load average when the writer started and when every row had arrived (the bench's own processes raise it). */
  loadAverage?: [number, number];
  /** CPU used by work other than the bench's processes while writing and delivering, as a share of one core. */
  otherCpuPercent?: number;
}

export interface BurstResult extends StreamResult {
  healthz: Histogram;
  healthzFailures: number;
  peakRssKiB: number;
  /** From `/metrics` when the server runs with `--metrics`. */
  metrics: ServerMetrics | undefined;
}

export interface ScenarioContext {
  options: BenchOptions;
  placement: Placement;
  log: (line: string) => void;
  /** Show the worker count in labels (several counts compared in one run). */
  showWorkers?: boolean;
  /** Show the filter in labels (several filters compared in one run). */
  showFilter?: boolean;
}

/** More than one worker: nothing is pinned, so the workers can use every core (and the load shares them). */
function placementFor(variant: Variant, context: ScenarioContext): Placement {
  return variant.workers > 1 ? {} : context.placement;
}

function describePlacement(placement: Placement): string {
  return placement.serverCpus ? `server CPU ${placement.serverCpus}, load CPU ${placement.loadCpus}` : 'not pinned';
}

export function createDatabase(directory: string): string {
  const path = join(directory, 'bench.db');
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.exec(BENCH_SCHEMA);
  db.close();
  return path;
}

function targetArgs(target: Target, db: string, context: ScenarioContext, variant: Variant): string[] {
  switch (target) {
    case 'sqlite-sse': {
      const prof = context.options.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', context.options.cpuProf] : [];
      const workers = variant.workers > 1 ? ['--workers', String(variant.workers)] : [];
      return [...prof, context.options.server ?? SERVER_CLI, '--db', db, '--table', 'messages', '--port', '0', '--host', '127.0.0.1', ...workers, ...context.options.serverArgs];
    }
    case 'poll100':
      return [POLLING, '--db', db, '--port', '0', '--interval-ms', '100'];
    case 'poll5000':
      return [POLLING, '--db', db, '--port', '0', '--interval-ms', '5000'];
    case 'raw':
      return [RAW, '--port', '0', '--feed-port', '0'];
  }
}

/** Runs `body` with a fresh database, the target and `clients` connected streams; cleans everything up. */
async function withConnected<T>(
  target: Target,
  clients: number,
  context: ScenarioContext,
  variant: Variant,
  body: (setup: { db: string; server: ListeningProcess; pool: LoadPool; common: CommonResult; placement: Placement }) => Promise<T>,
): Promise<T> {
  if (target !== 'sqlite-sse') variant = DEFAULT_VARIANT;
  const placement = placementFor(variant, context);
  const directory = trackDirectory(mkdtempSync(join(tmpdir(), 'sqlite-sse-bench-')));
  let server: ListeningProcess | undefined;
  let pool: LoadPool | undefined;
  try {
    const db = createDatabase(directory);
    server = await startListening(targetArgs(target, db, context, variant), { cpus: placement.serverCpus });
    const warnings: string[] = [];
    const serverOpenFiles = openFilesLimit(server.pid);
    if (serverOpenFiles < clients + 64) warnings.push(`${target} may open only ${serverOpenFiles} files (wanted ${OPEN_FILES}): fewer than ${clients} clients need`);
    await sleep(300);
    const serverProcesses = processTree(server.pid).length;
    if (serverProcesses < variant.workers + (variant.workers > 1 ? 1 : 0)) warnings.push(`only ${serverProcesses} server process(es) found for --workers ${variant.workers}`);
    const rssBeforeKiB = treeRssKiB(server.pid);
    pool = new LoadPool(clients, context.options.perProcess, placement.loadCpus);
    warnings.push(...pool.warnings);
    const filter = variant.filter ?? NO_FILTER;
    const opened = await pool.open(server.host, server.port, streamPath(variant.transport, 0), 30000 + clients * 5, 64, filter.kind === 'none' ? undefined : filter);
    if (opened.failed > 0) warnings.push(`${opened.failed} of ${clients} connections failed: ${opened.errors.join('; ')}`);
    // Let the server settle (allocations, the first GC) before reading its memory.
    await sleep(1000);
    const rssConnectedKiB = treeRssKiB(server.pid);
    const idleStart = treeCpuMs(server.pid);
    const idleAt = wallMs();
    await sleep(context.options.idleSeconds * 1000);
    const idleCpuPercent = ((treeCpuMs(server.pid) - idleStart) / (wallMs() - idleAt)) * 100;
    const common: CommonResult = {
      target,
      label: labelOf(target, variant, context.showWorkers, context.showFilter),
      transport: variant.transport,
      filter,
      workers: variant.workers,
      serverProcesses,
      placement: describePlacement(placement),
      clients,
      open: opened.open,
      failed: opened.failed,
      openErrors: opened.errors,
      openMs: opened.openMs,
      serverOpenFiles,
      rssBeforeKiB,
      rssConnectedKiB,
      idleCpuPercent,
      warnings,
    };
    return await body({ db, server, pool, common, placement });
  } catch (error) {
    // A server that died explains the failure better than whatever failed next.
    if (server && server.child.exitCode !== null) {
      throw new Error(`${target} exited ${server.child.exitCode} during the run: ${server.output().trim().split('\n').slice(-5).join(' | ')}`);
    }
    throw error;
  } finally {
    await pool?.close().catch(() => undefined);
    if (server) await server.stop(3000);
    rmSync(directory, { recursive: true, force: true });
    forgetDirectory(directory);
  }
}

export async function write(
  db: string,
  server: ListeningProcess,
  context: ScenarioContext,
  placement: Placement,
  variant: Variant,
  overrides: Partial<WriterCommand> = {},
): Promise<WriterReport> {
  const { options } = context;
  const command: WriterCommand = {
    cmd: 'write',
    db,
    rate: options.rate,
    rowsPerCommit: options.rowsPerCommit,
    rowBytes: options.rowBytes,
    duration: options.duration,
    synchronous: options.synchronous,
    users: variant.filter?.users ?? 1,
    feed: server.feedPort ? { host: server.host, port: server.feedPort } : undefined,
    ...overrides,
  };
  const writer = forkScript(WRITER, { cpus: placement.loadCpus });
  try {
    const reply = nextMessage<WriterReport>(writer, 'written', command.duration * 1000 + 120000);
    writer.send(command);
    return await reply;
  } finally {
    await stopChild(writer, 1000);
  }
}

/**
 * Connects `count` probe streams at once with a cursor one row back and times each one's first row; in a filtered
 * run, each probe filters on the user of that row.
 */
export async function firstEventTimes(server: ListeningProcess, transport: Transport, cursor: number, count: number, timeoutMs: number, filter: FilterPlan = NO_FILTER): Promise<Histogram> {
  const user = filter.kind === 'none' ? undefined : userOfRow(cursor + 1, filter.users);
  const match = user === undefined ? undefined : { user, users: filter.users };
  const times = new Histogram();
  const tally = new Tally();
  const probes: StreamConnection[] = [];
  await new Promise<void>((resolve) => {
    let left = count;
    const timer = setTimeout(resolve, timeoutMs);
    const one = () => {
      if (--left === 0) {
        clearTimeout(timer);
        resolve();
      }
    };
    for (let i = 0; i < count; i++) {
      let counted = false;
      const once = (connection: StreamConnection) => {
        if (counted) return;
        counted = true;
        if (connection.firstEventAt) times.record(connection.firstEventAt - connection.startedAt);
        one();
      };
      probes.push(openStream({ host: server.host, port: server.port, path: streamPath(transport, cursor, user), match }, cursor, tally, { onFirstEvent: once, onEnd: once }));
    }
  });
  for (const probe of probes) probe.close();
  return times;
}

/** Summed CPU ms of processes that may have exited (then they count 0). */
export function cpuOf(pids: number[]): number {
  let total = 0;
  for (const pid of pids) {
    try {
      total += cpuMs(pid);
    } catch {
      /* exited */
    }
  }
  return total;
}

export function streamResult(
  common: CommonResult,
  writer: WriterReport,
  delivered: MergedReport,
  cpu: number,
  wallMs: number,
  firstEventMs: Histogram | undefined,
  loadCpu = NaN,
): StreamResult {
  const seconds = Math.max(0.001, (delivered.lastReceiptAt - writer.startedAt) / 1000);
  return {
    ...common,
    writer,
    delivered,
    expected: expectedDeliveries(common.filter, common.open, writer.firstId, writer.lastId),
    deliveriesPerSecond: delivered.deliveries / seconds,
    serverCpuMs: cpu,
    serverCpuPercent: (cpu / wallMs) * 100,
    loadCpuPercent: (loadCpu / wallMs) * 100,
    firstEventMs,
  };
}

/** Streaming run: `clients` connected, the writer at the configured rate, then time-to-first-event probes. */
export function runStream(target: Target, clients: number, context: ScenarioContext, variant: Variant = DEFAULT_VARIANT): Promise<StreamResult> {
  return withConnected(target, clients, context, variant, async ({ db, server, pool, common, placement }) => {
    const cpuStart = treeCpuMs(server.pid);
    const loadStart = cpuOf(pool.pids);
    const machineStart = sampleCpu();
    const loadAverageStart = loadavg()[0];
    const startedAt = wallMs();
    const writer = await write(db, server, context, placement, variant);
    const loadCpu = cpuOf(pool.pids) - loadStart;
    const writeElapsed = wallMs() - startedAt;
    const delivered = await pool.finish(writer.lastId, target === 'poll5000' ? 20000 : 15000);
    const cpu = treeCpuMs(server.pid) - cpuStart;
    const elapsed = wallMs() - startedAt;
    // Machine busy time minus the server's, the load processes' and ours (with the writer, reaped by now).
    const machineEnd = sampleCpu();
    const benchMs = cpu + (cpuOf(pool.pids) - loadStart) + (machineEnd.oursMs - machineStart.oursMs);
    const otherCpuPercent = Math.max(0, (machineEnd.machineMs - machineStart.machineMs - benchMs) / Math.max(1, machineEnd.at - machineStart.at)) * 100;
    const loadAverage: [number, number] = [loadAverageStart, loadavg()[0]];
    const firstEventMs = target === 'raw' ? undefined : await firstEventTimes(server, common.transport, writer.lastId - 1, 10, 12000, common.filter);
    return { ...streamResult(common, writer, delivered, cpu, elapsed, firstEventMs), loadCpuPercent: (loadCpu / writeElapsed) * 100, loadAverage, otherCpuPercent };
  });
}

/** Burst run: `rows` rows in one transaction with `clients` connected, /healthz probed all along. */
export function runBurst(rows: number, clients: number, context: ScenarioContext, variant: Variant = DEFAULT_VARIANT): Promise<BurstResult> {
  return withConnected('sqlite-sse', clients, context, variant, async ({ db, server, pool, common, placement }) => {
    const probe = new HealthzProbe(server.host, server.port, 5, 200000);
    let peakRssKiB = common.rssConnectedKiB;
    const sampler = setInterval(() => {
      try {
        peakRssKiB = Math.max(peakRssKiB, treeRssKiB(server.pid));
      } catch {
        /* the server exited; the run reports it */
      }
    }, 50);
    try {
      await sleep(300);
      // Restart prom-client's event-loop histogram: the scrape after the burst then covers the burst only.
      const scrape = context.options.serverArgs.includes('--metrics');
      if (scrape) await scrapeServerMetrics(server.host, server.port);
      const cpuStart = treeCpuMs(server.pid);
      const startedAt = wallMs();
      const writer = await write(db, server, context, placement, variant, { burst: rows, duration: 0 });
      const delivered = await pool.finish(writer.lastId, 150000);
      const cpu = treeCpuMs(server.pid) - cpuStart;
      const elapsed = wallMs() - startedAt;
      await sleep(200);
      const probed = await probe.stop();
      const metrics = scrape ? await scrapeServerMetrics(server.host, server.port) : undefined;
      return { ...streamResult(common, writer, delivered, cpu, elapsed, undefined), healthz: probed.ttfb, healthzFailures: probed.failures, peakRssKiB, metrics };
    } finally {
      clearInterval(sampler);
      await probe.stop();
    }
  });
}

/** Capacity run: hold `clients` idle streams, then one row to all of them. */
export function runHold(target: Target, clients: number, context: ScenarioContext, variant: Variant = DEFAULT_VARIANT): Promise<StreamResult> {
  return withConnected(target, clients, context, variant, async ({ db, server, pool, common, placement }) => {
    const cpuStart = treeCpuMs(server.pid);
    const startedAt = wallMs();
    const writer = await write(db, server, context, placement, variant, { burst: 1, duration: 0 });
    const delivered = await pool.finish(writer.lastId, 60000);
    const cpu = treeCpuMs(server.pid) - cpuStart;
    const elapsed = wallMs() - startedAt;
    const firstEventMs = target === 'raw' ? undefined : await firstEventTimes(server, common.transport, writer.lastId - 1, 10, 12000);
    return streamResult(common, writer, delivered, cpu, elapsed, firstEventMs);
  });
}
