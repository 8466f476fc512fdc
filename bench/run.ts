/**
 * The bench: `npm run bench -- [options]` (see `--help`). Runs the server under test and the baselines in the same
 * run, each as its own process, and prints markdown tables.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, readdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ArgsError, helpText, parseBenchArgs, type BenchOptions } from './args.js';
import { killChildrenOnExit, pinProcess } from './processes.js';
import { profileTables, summarizeProfile } from './profile-summary.js';
import { runBurst, runHold, runStream, type BurstResult, type Placement, type ScenarioContext, type StreamResult, type Target } from './scenario.js';
import { formatMs, Histogram } from './stats.js';
import { markdownTable } from './table.js';

function placement(options: BenchOptions): Placement {
  const count = cpus().length;
  if (!options.pin || count < 2) return {};
  return { serverCpus: '0', loadCpus: count === 2 ? '1' : `1-${count - 1}` };
}

const fixed = (value: number, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : '–');
const ratio = (ours: number, theirs: number) => (Number.isFinite(ours) && Number.isFinite(theirs) && theirs > 0 ? `${(ours / theirs).toFixed(2)}×` : '–');
const cpuPerThousand = (r: StreamResult) => (r.delivered.deliveries > 0 ? (r.serverCpuMs / r.delivered.deliveries) * 1000 : NaN);
const rssPerClient = (r: StreamResult) => (r.open > 0 ? (r.rssConnectedKiB - r.rssBeforeKiB) / r.open : NaN);

function streamTable(results: StreamResult[]): string {
  return markdownTable(
    ['target', 'clients', 'open', 'p50', 'p99', 'max', 'deliveries/s', 'lost', 'dup', 'dropped', 'server CPU ms / 1k deliveries', 'server CPU %', 'load CPU %', 'RSS KiB / client', 'idle CPU %', 'stream open p50', 'first event p50'],
    results.map((r) => [
      r.target,
      r.clients,
      r.open,
      formatMs(r.delivered.latency.percentile(50)),
      formatMs(r.delivered.latency.percentile(99)),
      formatMs(r.delivered.latency.max),
      fixed(r.deliveriesPerSecond, 0),
      r.delivered.lost,
      r.delivered.duplicated,
      r.delivered.dropped,
      fixed(cpuPerThousand(r), 2),
      fixed(r.serverCpuPercent, 1),
      fixed(r.loadCpuPercent, 0),
      fixed(rssPerClient(r), 1),
      fixed(r.idleCpuPercent, 2),
      formatMs(r.openMs.percentile(50)),
      r.firstEventMs ? formatMs(r.firstEventMs.percentile(50)) : '–',
    ]),
  );
}

/** Ours divided by each other target's figure at the same client count: below 1 is better for latency and CPU. */
function comparisonTable(results: StreamResult[]): string {
  const rows: string[][] = [];
  for (const ours of results.filter((r) => r.target === 'sqlite-sse')) {
    for (const other of results.filter((r) => r.target !== 'sqlite-sse' && r.clients === ours.clients)) {
      rows.push([
        `sqlite-sse / ${other.target}`,
        String(ours.clients),
        ratio(ours.delivered.latency.percentile(50), other.delivered.latency.percentile(50)),
        ratio(ours.delivered.latency.percentile(99), other.delivered.latency.percentile(99)),
        ratio(cpuPerThousand(ours), cpuPerThousand(other)),
        ratio(ours.deliveriesPerSecond, other.deliveriesPerSecond),
        ratio(rssPerClient(ours), rssPerClient(other)),
        ratio(ours.idleCpuPercent, other.idleCpuPercent),
      ]);
    }
  }
  return markdownTable(['ratio', 'clients', 'p50 latency', 'p99 latency', 'CPU per delivery', 'deliveries/s', 'RSS per client', 'idle CPU'], rows);
}

function writerTable(results: StreamResult[]): string {
  return markdownTable(
    ['target', 'clients', 'commits', 'rows', 'late commits', 'commit p50', 'commit p99'],
    results.map((r) => [
      r.target,
      r.clients,
      r.writer.commits,
      r.writer.rows,
      r.writer.late,
      formatMs(Histogram.from(r.writer.commitMs).percentile(50)),
      formatMs(Histogram.from(r.writer.commitMs).percentile(99)),
    ]),
  );
}


function burstTable(r: BurstResult): string {
  return markdownTable(
    ['rows', 'clients', 'delivered', 'expected', 'lost', 'dup', 'commit took', 'all delivered after', 'latency p50', 'deliveries/s', 'server CPU ms / 1k deliveries', 'peak RSS MiB', '/healthz probes', '/healthz p50', '/healthz p99', '/healthz max', 'probe failures'],
    [
      [
        r.writer.rows,
        r.open,
        r.delivered.deliveries,
        r.expected,
        r.delivered.lost,
        r.delivered.duplicated,
        formatMs(Histogram.from(r.writer.commitMs).max),
        formatMs(r.delivered.lastReceiptAt - r.writer.startedAt),
        formatMs(r.delivered.latency.percentile(50)),
        fixed(r.deliveriesPerSecond, 0),
        fixed(cpuPerThousand(r), 3),
        fixed(r.peakRssKiB / 1024, 0),
        r.healthz.count,
        formatMs(r.healthz.percentile(50)),
        formatMs(r.healthz.percentile(99)),
        formatMs(r.healthz.max),
        r.healthzFailures,
      ],
    ],
  );
}

function holdTable(results: StreamResult[]): string {
  return markdownTable(
    ['target', 'wanted', 'held', 'failed', 'server open-files limit', 'RSS before MiB', 'RSS held MiB', 'KiB / idle client', 'idle CPU %', 'one row to all: p50', 'p99', 'max', 'lost', 'dup', 'first event p50'],
    results.map((r) => [
      r.target,
      r.clients,
      r.open,
      r.failed,
      r.serverOpenFiles,
      fixed(r.rssBeforeKiB / 1024, 0),
      fixed(r.rssConnectedKiB / 1024, 0),
      fixed(rssPerClient(r), 2),
      fixed(r.idleCpuPercent, 2),
      formatMs(r.delivered.latency.percentile(50)),
      formatMs(r.delivered.latency.percentile(99)),
      formatMs(r.delivered.latency.max),
      r.delivered.lost,
      r.delivered.duplicated,
      r.firstEventMs ? formatMs(r.firstEventMs.percentile(50)) : '–',
    ]),
  );
}

function environment(argv: string[]): string {
  let sqliteVersion = '?';
  try {
    const db = new Database(':memory:');
    sqliteVersion = String(db.prepare('select sqlite_version()').pluck().get());
    db.close();
  } catch {
    /* reported as ? */
  }
  const cpu = cpus();
  return [
    `- date: ${new Date().toISOString()}`,
    `- machine: ${cpu.length} CPUs (${cpu[0]?.model ?? '?'}), ${(totalmem() / 1024 ** 3).toFixed(1)} GiB RAM`,
    `- Node ${process.version}, SQLite ${sqliteVersion} (better-sqlite3)`,
    `- command: node dist/bench/run.js ${argv.join(' ')}`,
    `- load average at start: ${loadavg().map((l) => l.toFixed(2)).join(' ')} (other work on the machine skews every figure)`,
  ].join('\n');
}

function gitRevision(options: BenchOptions): string {
  if (options.server) return `server ${options.server}`;
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', 'src'], { encoding: 'utf8' }).trim() ? ' (src/ has uncommitted changes)' : '';
    return head + dirty;
  } catch {
    return '?';
  }
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let options: BenchOptions;
  try {
    options = parseBenchArgs(argv);
  } catch (error) {
    if (error instanceof ArgsError) {
      console.error(`error: ${error.message}`);
      process.exit(2);
    }
    throw error;
  }
  if (options.help) {
    console.log(helpText());
    return;
  }
  killChildrenOnExit();
  const where = placement(options);
  if (where.loadCpus) pinProcess(process.pid, where.loadCpus);
  const output: string[] = [];
  const emit = (text: string) => {
    console.log(text);
    output.push(text);
  };
  const log = (line: string) => console.error(line);
  const context: ScenarioContext = { options, placement: where, log };
  emit(environment(argv));
  emit(`- server revision: ${gitRevision(options)}; placement: ${where.serverCpus ? `server on CPU ${where.serverCpus}, load, writer and orchestrator on CPU ${where.loadCpus}` : 'not pinned'}`);
  emit(
    `- writer: ${options.rate || 'max'} commits/s × ${options.rowsPerCommit} row(s) of ~${options.rowBytes} B JSON, synchronous=${options.synchronous}, ${options.duration} s per streaming run; idle CPU over ${options.idleSeconds} s`,
  );
  const warnings: string[] = [];

  const streams: StreamResult[] = [];
  const targets: Target[] = ['sqlite-sse', ...options.baselines];
  for (const clients of options.clients) {
    for (const target of targets) {
      log(`… ${target} with ${clients} client(s)`);
      try {
        const result = await runStream(target, clients, context);
        streams.push(result);
        warnings.push(...result.warnings.map((w) => `${target}/${clients}: ${w}`));
      } catch (error) {
        warnings.push(`${target}/${clients}: run failed: ${(error as Error).message}`);
      }
    }
  }
  if (streams.length) {
    emit('\n### Streaming: commit-to-receipt latency, throughput, cost\n');
    emit(streamTable(streams));
    if (streams.some((r) => r.target !== 'sqlite-sse')) {
      emit('\n### sqlite-sse compared with the baselines in the same run (ours ÷ theirs; below 1× is better except deliveries/s)\n');
      emit(comparisonTable(streams));
    }
    emit('\n### Writer\n');
    emit(writerTable(streams));
  }

  if (options.burst > 0) {
    log(`… burst of ${options.burst} rows with ${options.burstClients} client(s)`);
    try {
      const burst = await runBurst(options.burst, options.burstClients, context);
      warnings.push(...burst.warnings.map((w) => `burst: ${w}`));
      emit('\n### Burst: one transaction, /healthz time-to-first-byte probed throughout (event-loop blocking seen from outside)\n');
      emit(burstTable(burst));
    } catch (error) {
      warnings.push(`burst: run failed: ${(error as Error).message}`);
    }
  }

  if (options.idleClients > 0) {
    const holds: StreamResult[] = [];
    for (const target of ['sqlite-sse', ...options.baselines.filter((b) => b === 'raw')] as Target[]) {
      log(`… ${target} holding ${options.idleClients} idle client(s)`);
      try {
        const hold = await runHold(target, options.idleClients, context);
        holds.push(hold);
        warnings.push(...hold.warnings.map((w) => `hold/${target}: ${w}`));
      } catch (error) {
        warnings.push(`hold/${target}: run failed: ${(error as Error).message}`);
      }
    }
    if (holds.length) {
      emit('\n### Capacity: idle clients held by one server process, then one row to all\n');
      emit(holdTable(holds));
    }
  }

  if (options.cpuProf) {
    const files = readdirSync(options.cpuProf).filter((f) => f.endsWith('.cpuprofile'));
    for (const file of files) {
      emit(`\n### CPU profile of the server: ${file}\n`);
      emit(profileTables(summarizeProfile(JSON.parse(readFileSync(join(options.cpuProf, file), 'utf8')), 15)));
    }
  }

  const load = loadavg();
  emit(`\n- load average at end: ${load.map((l) => l.toFixed(2)).join(' ')}`);
  if (load[0] > cpus().length * 0.75) warnings.push(`the machine was busy (1-minute load ${load[0].toFixed(1)} on ${cpus().length} CPUs): latency figures are unreliable, rerun on a quiet machine`);
  if (warnings.length) {
    emit('\n### Warnings\n');
    emit(warnings.map((w) => `- ${w}`).join('\n'));
  }
  if (options.out) appendFileSync(options.out, output.join('\n') + '\n\n');
  const failed = streams.some((r) => r.delivered.lost > 0 || r.delivered.duplicated > 0);
  process.exitCode = failed ? 1 : 0;
}

main().catch((error: unknown) => {
  console.error(`bench failed: ${(error as Error)?.stack ?? String(error)}`);
  process.exit(1);
});
