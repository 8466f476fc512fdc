/**
 * One measured run of the scale-out shape (docs/scaling.md): a redis-server, an origin publishing to it with
 * `--redis`, and N edges (`--edge`) serving the clients, split evenly across them. N = 0 is the same origin, still
 * publishing to Redis, serving every client itself: the comparison that shows what the hop through Redis adds.
 * Every server process, Redis included, runs on the server CPU; load and writer on the others.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Transport } from './args.js';
import { wallMs } from './clock.js';
import { NO_FILTER } from './filter-plan.js';
import { LoadPool } from './load-pool.js';
import { cpuMs, forgetDirectory, rssKiB, startListening, trackDirectory, type ListeningProcess } from './processes.js';
import { RECOMMENDED_SETTINGS, startNode, type RedisNode } from './redis-servers.js';
import { cpuOf, createDatabase, firstEventTimes, SERVER_CLI, streamPath, streamResult, write, type CommonResult, type ScenarioContext, type StreamResult } from './scenario.js';
import { sleep } from './wait.js';

export interface EdgeResult extends StreamResult {
  /** Edges serving the clients; 0: the origin served them directly. */
  edges: number;
  /** CPU while writing and delivering, as a share of one core, per process. */
  originCpuPercent: number;
  edgeCpuPercent: number[];
  redisCpuPercent: number;
}

/** `origin direct` or `3 edges`. */
export function edgeLabel(edges: number, transport: Transport): string {
  const shape = edges === 0 ? 'origin direct' : `${edges} edge${edges > 1 ? 's' : ''}`;
  return `${shape}/${transport}`;
}

export async function runEdgeStream(clients: number, edges: number, transport: Transport, context: ScenarioContext): Promise<EdgeResult> {
  const { options, placement } = context;
  const directory = trackDirectory(mkdtempSync(join(tmpdir(), 'sqlite-sse-bench-edges-')));
  const servers: ListeningProcess[] = [];
  let redis: RedisNode | undefined;
  let pool: LoadPool | undefined;
  try {
    const db = createDatabase(directory);
    redis = await startNode(RECOMMENDED_SETTINGS, { cpus: placement.serverCpus });
    const common = ['--table', 'messages', '--port', '0', '--host', '127.0.0.1', ...options.serverArgs];
    const origin = await startListening([options.server ?? SERVER_CLI, '--db', db, '--redis', redis.url, ...common], { cpus: placement.serverCpus });
    servers.push(origin);
    const originUrl = `http://${origin.host}:${origin.port}`;
    for (let i = 0; i < edges; i++) {
      servers.push(await startListening([options.server ?? SERVER_CLI, '--edge', redis.url, '--origin', originUrl, ...common], { cpus: placement.serverCpus }));
    }
    const serving = edges === 0 ? [origin] : servers.slice(1);
    const pids = [...servers.map((server) => server.pid), redis.child.pid!];
    const rssOf = () => pids.reduce((sum, pid) => sum + rssKiB(pid), 0);
    await sleep(300);
    const rssBeforeKiB = rssOf();
    pool = new LoadPool(clients, options.perProcess, placement.loadCpus);
    const warnings = [...pool.warnings];
    const opened = await pool.open(
      origin.host,
      serving.map((server) => server.port),
      streamPath(transport, 0),
      30000 + clients * 5,
    );
    if (opened.failed > 0) warnings.push(`${opened.failed} of ${clients} connections failed: ${opened.errors.join('; ')}`);
    await sleep(1000);
    const rssConnectedKiB = rssOf();
    const idleStart = cpuOf(pids);
    const idleAt = wallMs();
    await sleep(options.idleSeconds * 1000);
    const idleCpuPercent = ((cpuOf(pids) - idleStart) / (wallMs() - idleAt)) * 100;
    const result: CommonResult = {
      target: 'sqlite-sse',
      label: edgeLabel(edges, transport),
      transport,
      workers: 1,
      filter: NO_FILTER,
      serverProcesses: pids.length,
      placement: placement.serverCpus ? `origin, edges and Redis on CPU ${placement.serverCpus}, load CPU ${placement.loadCpus}` : 'not pinned',
      clients,
      open: opened.open,
      failed: opened.failed,
      openErrors: opened.errors,
      openMs: opened.openMs,
      serverOpenFiles: NaN,
      rssBeforeKiB,
      rssConnectedKiB,
      idleCpuPercent,
      warnings,
    };

    const cpuStart = pids.map(cpuMs);
    const loadAverageStart = loadavg()[0];
    const startedAt = wallMs();
    const writer = await write(db, origin, context, placement, { transport, workers: 1 });
    const delivered = await pool.finish(writer.lastId, 15000);
    const elapsed = wallMs() - startedAt;
    const cpu = pids.map((pid, i) => cpuOf([pid]) - cpuStart[i]);
    const percent = (ms: number) => (ms / elapsed) * 100;
    const firstEventMs = await firstEventTimes(serving[0], transport, writer.lastId - 1, 10, 12000);
    const total = cpu.reduce((sum, ms) => sum + ms, 0);
    return {
      ...streamResult(result, writer, delivered, total, elapsed, firstEventMs),
      loadAverage: [loadAverageStart, loadavg()[0]],
      edges,
      originCpuPercent: percent(cpu[0]),
      edgeCpuPercent: cpu.slice(1, 1 + edges).map(percent),
      redisCpuPercent: percent(cpu[cpu.length - 1]),
    };
  } catch (error) {
    const dead = servers.find((server) => server.child.exitCode !== null);
    if (dead) throw new Error(`a server exited ${dead.child.exitCode} during the run: ${dead.output().trim().split('\n').slice(-5).join(' | ')}`);
    throw error;
  } finally {
    await pool?.close().catch(() => undefined);
    for (const server of servers.reverse()) await server.stop(3000);
    await redis?.kill();
    rmSync(directory, { recursive: true, force: true });
    forgetDirectory(directory);
  }
}
