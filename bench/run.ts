/**
 * The bench: `npm run bench -- [options]` (see `--help`). Runs the server under test and the baselines in the same
 * run, each as its own process, and prints markdown tables.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ArgsError, helpText, parseBenchArgs, type BenchOptions } from './args.js';
import { edgeRunTable, hopTable } from './edge-report.js';
import { edgeLabel, runEdgeStream, type EdgeResult } from './edge-scenario.js';
import { filterRuns, usersFor, type FilterPlan } from './filter-plan.js';
import { otherCpuPercent, sampleCpu } from './machine-load.js';
import { killChildrenOnExit, pinProcess } from './processes.js';
import { profileTables, summarizeProfile } from './profile-summary.js';
import { runBurst, runHold, runStream, type BurstResult, type Placement, type ScenarioContext, type StreamResult, type Target, type Variant } from './scenario.js';
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
const cpuPerCommit = (r: StreamResult) => (r.writer.commits > 0 ? r.serverCpuMs / r.writer.commits : NaN);
const rssPerClient = (r: StreamResult) => (r.open > 0 ? (r.rssConnectedKiB - r.rssBeforeKiB) / r.open : NaN);

function streamTable(results: StreamResult[]): string {
  return markdownTable(
    ['target', 'clients', 'open', 'p50', 'p99', 'max', 'deliveries/s', 'lost', 'dup', 'wrong', 'dropped', 'server CPU ms / 1k deliveries', 'server CPU ms / commit', 'server CPU %', 'load CPU %', 'RSS KiB / client', 'idle CPU %', 'stream open p50', 'first event p50'],
    results.map((r) => [
      r.label,
      r.clients,
      r.open,
      formatMs(r.delivered.latency.percentile(50)),
      formatMs(r.delivered.latency.percentile(99)),
      formatMs(r.delivered.latency.max),
      fixed(r.deliveriesPerSecond, 0),
      r.delivered.lost,
      r.delivered.duplicated,
      r.delivered.wrong,
      r.delivered.dropped,
      fixed(cpuPerThousand(r), 2),
      fixed(cpuPerCommit(r), 3),
      fixed(r.serverCpuPercent, 1),
      fixed(r.loadCpuPercent, 0),
      fixed(rssPerClient(r), 1),
      fixed(r.idleCpuPercent, 2),
      formatMs(r.openMs.percentile(50)),
      r.firstEventMs ? formatMs(r.firstEventMs.percentile(50)) : '–',
    ]),
  );
}

/** One result's figures divided by another's: below 1 is better for latency and CPU. */
function ratioRow(name: string, ours: StreamResult, other: StreamResult): string[] {
  return [
    name,
    String(ours.clients),
    ratio(ours.delivered.latency.percentile(50), other.delivered.latency.percentile(50)),
    ratio(ours.delivered.latency.percentile(99), other.delivered.latency.percentile(99)),
    ratio(cpuPerThousand(ours), cpuPerThousand(other)),
    ratio(ours.deliveriesPerSecond, other.deliveriesPerSecond),
    ratio(rssPerClient(ours), rssPerClient(other)),
    ratio(ours.idleCpuPercent, other.idleCpuPercent),
  ];
}

const RATIO_HEADERS = ['ratio', 'clients', 'p50 latency', 'p99 latency', 'CPU per delivery', 'deliveries/s', 'RSS per client', 'idle CPU'];

/** WebSocket ÷ SSE, and N workers ÷ 1 worker, at the same client count (and the same other setting). */
function variantTable(results: StreamResult[]): string {
  const ours = results.filter((r) => r.target === 'sqlite-sse');
  const rows: string[][] = [];
  for (const ws of ours.filter((r) => r.transport === 'ws')) {
    const sse = ours.find((r) => r.transport === 'sse' && r.clients === ws.clients && r.workers === ws.workers && r.filter.kind === ws.filter.kind);
    if (sse) rows.push(ratioRow(`${ws.label} / ${sse.label}`, ws, sse));
  }
  for (const many of ours.filter((r) => r.workers > 1)) {
    const one = ours.find((r) => r.workers === 1 && r.clients === many.clients && r.transport === many.transport && r.filter.kind === many.filter.kind);
    if (one) rows.push(ratioRow(`${many.label} / ${one.label}`, many, one));
  }
  return rows.length ? markdownTable(RATIO_HEADERS, rows) : '';
}

/** Ours divided by each other target's figure at the same client count: below 1 is better for latency and CPU. */
function comparisonTable(results: StreamResult[]): string {
  const rows: string[][] = [];
  for (const ours of results.filter((r) => r.target === 'sqlite-sse' && r.filter.kind === 'none')) {
    for (const other of results.filter((r) => r.target !== 'sqlite-sse' && r.clients === ours.clients)) {
      rows.push(ratioRow(`${ours.label} / ${other.target}`, ours, other));
    }
  }
  return markdownTable(RATIO_HEADERS, rows);
}

/** What each filtered run's clients asked for and got: every row to exactly its clients, nobody else's. */
function filterTable(results: StreamResult[]): string {
  return markdownTable(
    ['target', 'clients', 'filter', 'users', 'rows written', 'rows per client (mean)', 'expected deliveries', 'delivered', 'lost', 'dup', 'wrong', 'server CPU ms / commit'],
    results
      .filter((r) => r.target === 'sqlite-sse')
      .map((r) => [
        r.label,
        r.clients,
        r.filter.kind === 'none' ? 'none' : r.filter.kind === 'own' ? 'client i: user_id=eq.(i mod users)' : 'every client: user_id=eq.0',
        r.filter.users,
        r.writer.rows,
        fixed(r.open > 0 ? r.expected / r.open : NaN, 2),
        r.expected,
        r.delivered.deliveries,
        r.delivered.lost,
        r.delivered.duplicated,
        r.delivered.wrong,
        fixed(cpuPerCommit(r), 3),
      ]),
  );
}

/**
 * Each filtered run beside every unfiltered run of the same transport and workers in this run (any client count):
 * server CPU per commit (issue 11: `own` at 10,000 clients within 2× of unfiltered at 100), latency, CPU per delivery.
 */
function filterComparisonTable(results: StreamResult[]): string {
  const ours = results.filter((r) => r.target === 'sqlite-sse');
  const rows: string[][] = [];
  for (const filtered of ours.filter((r) => r.filter.kind !== 'none')) {
    for (const plain of ours.filter((r) => r.filter.kind === 'none' && r.transport === filtered.transport && r.workers === filtered.workers)) {
      rows.push([
        `${filtered.label} ${filtered.clients} / ${plain.label} ${plain.clients}`,
        `${fixed(cpuPerCommit(filtered), 3)} / ${fixed(cpuPerCommit(plain), 3)}`,
        ratio(cpuPerCommit(filtered), cpuPerCommit(plain)),
        ratio(filtered.delivered.latency.percentile(50), plain.delivered.latency.percentile(50)),
        ratio(filtered.delivered.latency.percentile(99), plain.delivered.latency.percentile(99)),
        ratio(cpuPerThousand(filtered), cpuPerThousand(plain)),
        ratio(filtered.deliveriesPerSecond, plain.deliveriesPerSecond),
        ratio(rssPerClient(filtered), rssPerClient(plain)),
      ]);
    }
  }
  return rows.length
    ? markdownTable(['filtered clients / unfiltered clients', 'server CPU ms / commit', 'CPU per commit', 'p50 latency', 'p99 latency', 'CPU per delivery', 'deliveries/s', 'RSS per client'], rows)
    : '';
}

function writerTable(results: StreamResult[]): string {
  return markdownTable(
    ['target', 'clients', 'commits', 'rows', 'late commits', 'commit p50', 'commit p99'],
    results.map((r) => [
      r.label,
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
    ['target', 'processes', 'placement', 'wanted', 'held', 'failed', 'server open-files limit', 'RSS before MiB', 'RSS held MiB', 'KiB / idle client', 'idle CPU %', 'one row to all: p50', 'p99', 'max', 'deliveries/s', 'lost', 'dup', 'first event p50'],
    results.map((r) => [
      r.label,
      r.serverProcesses,
      r.placement,
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
      fixed(r.deliveriesPerSecond, 0),
      r.delivered.lost,
      r.delivered.duplicated,
      r.firstEventMs ? formatMs(r.firstEventMs.percentile(50)) : '–',
    ]),
  );
}

/** Where each streaming run's processes ran and how many server processes were measured (CPU and RSS are summed). */
function placementTable(results: StreamResult[]): string {
  const seen = new Set<string>();
  const rows: string[][] = [];
  for (const r of results) {
    const key = `${r.label}|${r.clients}|${r.placement}|${r.serverProcesses}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const load = r.loadAverage ? `${r.loadAverage[0].toFixed(2)} → ${r.loadAverage[1].toFixed(2)}` : '–';
    rows.push([r.label, String(r.clients), String(r.serverProcesses), r.placement, load, fixed(r.otherCpuPercent ?? NaN, 1)]);
  }
  return markdownTable(['target', 'clients', 'server processes measured', 'placement', 'load average (1 min) start → end', 'other work CPU %'], rows);
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
    `- load average at start: ${loadavg().map((l) => l.toFixed(2)).join(' ')} (includes any bench run just before; the CPU used by other work during this run is reported at the end)`,
  ].join('\n');
}

function gitRevision(options: BenchOptions): string {
  if (options.server) {
    // A snapshot made with `git archive` has no .git: a REVISION file at its root may name the commit.
    const revisionFile = join(options.server, '..', '..', '..', 'REVISION');
    const revision = existsSync(revisionFile) ? readFileSync(revisionFile, 'utf8').trim() : '';
    return `server ${options.server}${revision ? ` (snapshot of ${revision})` : ''}`;
  }
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
  const cpuAtStart = sampleCpu();
  const where = placement(options);
  if (where.loadCpus) pinProcess(process.pid, where.loadCpus);
  const output: string[] = [];
  const emit = (text: string) => {
    console.log(text);
    output.push(text);
  };
  const log = (line: string) => console.error(line);
  const context: ScenarioContext = {
    options,
    placement: where,
    log,
    showWorkers: options.workers.length > 1 || options.workers[0] > 1,
    showFilter: options.filters.length > 1 || options.filters[0].kind !== 'none',
  };
  const variants: Variant[] = options.workers.flatMap((workers) => options.transports.map((transport) => ({ transport, workers })));
  emit(environment(argv));
  emit(`- server revision: ${gitRevision(options)}; placement: ${where.serverCpus ? `server on CPU ${where.serverCpus}, load, writer and orchestrator on CPU ${where.loadCpus}` : 'not pinned'}`);
  emit(
    `- writer: ${options.rate || 'max'} commits/s × ${options.rowsPerCommit} row(s) of ~${options.rowBytes} B JSON, synchronous=${options.synchronous}, ${options.duration} s per streaming run; idle CPU over ${options.idleSeconds} s`,
  );
  const warnings: string[] = [];

  const streams: StreamResult[] = [];
  if (options.edges.length) {
    const edgeRuns: EdgeResult[] = [];
    for (const clients of options.clients) {
      for (const transport of options.transports) {
        for (const edges of [0, ...options.edges]) {
          log(`… ${edgeLabel(edges, transport)} with ${clients} client(s) (load average ${loadavg().map((l) => l.toFixed(2)).join(' ')})`);
          try {
            const result = await runEdgeStream(clients, edges, transport, context);
            edgeRuns.push(result);
            warnings.push(...result.warnings.map((w) => `${result.label}/${clients}: ${w}`));
          } catch (error) {
            warnings.push(`${edgeLabel(edges, transport)}/${clients}: run failed: ${(error as Error).message}`);
          }
        }
      }
    }
    if (edgeRuns.length) {
      emit('\n### Scale-out: origin --redis serving directly, then the clients split across edges (every server process and Redis on the server CPU)\n');
      emit(edgeRunTable(edgeRuns));
      emit('\n### What the hop through Redis and an edge adds (edge run − origin direct, same clients; issue 12 target: ≤ 1 ms p50, ≤ 3 ms p99)\n');
      emit(hopTable(edgeRuns));
      emit('\n### Placement and machine load\n');
      emit(placementTable(edgeRuns));
      emit('\n### Writer\n');
      emit(writerTable(edgeRuns));
    }
  }
  // Baselines run next to the unfiltered runs only: they have no filters.
  // With --edges the single-server runs are replaced by the scale-out runs above; baselines asked for still run.
  for (const { clients, kind } of filterRuns(options.clients, options.filters)) {
    const filter: FilterPlan = { kind, users: usersFor(kind, clients, options.users) };
    const runs: [Target, Variant][] = [
      ...(options.edges.length ? [] : variants.map((v): [Target, Variant] => ['sqlite-sse', { ...v, filter }])),
      ...(kind === 'none' ? options.baselines.map((b): [Target, Variant] => [b, { transport: 'sse', workers: 1, filter }]) : []),
    ];
    for (const [target, variant] of runs) {
      const filterName = context.showFilter ? `, filter ${kind} over ${filter.users} user(s)` : '';
      const name = target === 'sqlite-sse' ? `sqlite-sse/${variant.transport}, ${variant.workers} worker(s)${filterName}` : target;
      log(`… ${name} with ${clients} client(s) (load average ${loadavg().map((l) => l.toFixed(2)).join(' ')})`);
      try {
        const result = await runStream(target, clients, context, variant);
        streams.push(result);
        warnings.push(...result.warnings.map((w) => `${result.label}/${clients}: ${w}`));
      } catch (error) {
        warnings.push(`${name}/${clients}: run failed: ${(error as Error).message}`);
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
    const variantsCompared = variantTable(streams);
    if (variantsCompared) {
      emit('\n### Transports and worker counts side by side (same client count; below 1× is better except deliveries/s)\n');
      emit(variantsCompared);
    }
    if (context.showFilter) {
      emit('\n### Filters: what the clients asked for and got (each client counts exactly the rows its filter takes; wrong = a row of another user)\n');
      emit(filterTable(streams));
      const compared = filterComparisonTable(streams);
      if (compared) {
        emit('\n### Filtered runs beside the unfiltered runs of this bench (filtered ÷ unfiltered; below 1× is better except deliveries/s)\n');
        emit(compared);
      }
    }
    emit(
      "\n### Placement and machine load (server CPU and RSS are summed over every server process; the load average includes the bench's own processes, 'other work' is machine busy time minus the bench's processes)\n",
    );
    emit(placementTable(streams));
    emit('\n### Writer\n');
    emit(writerTable(streams));
  }

  if (options.burst > 0) {
    log(`… burst of ${options.burst} rows with ${options.burstClients} client(s)`);
    try {
      const burst = await runBurst(options.burst, options.burstClients, context, variants[0]);
      warnings.push(...burst.warnings.map((w) => `burst: ${w}`));
      emit('\n### Burst: one transaction, /healthz time-to-first-byte probed throughout (event-loop blocking seen from outside)\n');
      emit(burstTable(burst));
      if (burst.metrics) {
        const m = burst.metrics;
        emit('\nFrom the server\'s /metrics, scraped before and after the burst (the event-loop histogram restarts at each scrape):\n');
        emit(
          markdownTable(
            ['event-loop delay max', 'event-loop delay p99', 'fan-outs', 'fan-out mean', 'fan-out p99 (bucket bound)'],
            [[formatMs(m.eventLoopLagMaxMs), formatMs(m.eventLoopLagP99Ms), fixed(m.fanouts, 0), formatMs(m.fanoutMeanMs), Number.isFinite(m.fanoutP99BucketMs) ? `≤ ${formatMs(m.fanoutP99BucketMs)}` : '–']],
          ),
        );
      }
    } catch (error) {
      warnings.push(`burst: run failed: ${(error as Error).message}`);
    }
  }

  if (options.idleClients > 0) {
    const holds: StreamResult[] = [];
    const holdRuns: [Target, Variant][] = [...variants.map((v): [Target, Variant] => ['sqlite-sse', v])];
    if (options.baselines.includes('raw')) holdRuns.push(['raw', { transport: 'sse', workers: 1 }]);
    for (const [target, variant] of holdRuns) {
      const name = target === 'sqlite-sse' ? `sqlite-sse/${variant.transport}, ${variant.workers} worker(s)` : target;
      log(`… ${name} holding ${options.idleClients} idle client(s)`);
      try {
        const hold = await runHold(target, options.idleClients, context, variant);
        holds.push(hold);
        warnings.push(...hold.warnings.map((w) => `hold/${hold.label}: ${w}`));
      } catch (error) {
        warnings.push(`hold/${name}: run failed: ${(error as Error).message}`);
      }
    }
    if (holds.length) {
      emit('\n### Capacity: idle clients held by the server (summed over its processes), then one row to all\n');
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
  // Every child has exited by now (each run stops its own), so their CPU time is in ours.
  const other = otherCpuPercent(cpuAtStart, sampleCpu());
  emit(`\n- load average at end: ${load.map((l) => l.toFixed(2)).join(' ')} (the bench's own processes raise it)`);
  emit(`- CPU used by other work on the machine during the bench: ${other.toFixed(1)} % of one core (machine busy time minus the bench's own)`);
  if (other > 20) warnings.push(`other work used ${other.toFixed(0)} % of one core during the bench: latency figures are unreliable, rerun on a quiet machine`);
  if (warnings.length) {
    emit('\n### Warnings\n');
    emit(warnings.map((w) => `- ${w}`).join('\n'));
  }
  if (options.out) appendFileSync(options.out, output.join('\n') + '\n\n');
  const failed = streams.some((r) => r.delivered.lost > 0 || r.delivered.duplicated > 0 || r.delivered.wrong > 0);
  process.exitCode = failed ? 1 : 0;
}

main().catch((error: unknown) => {
  console.error(`bench failed: ${(error as Error)?.stack ?? String(error)}`);
  process.exit(1);
});
