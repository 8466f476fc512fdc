/** The scale-out runs' tables: each run's figures, and what the hop through Redis and an edge adds (issue 12). */
import type { EdgeResult } from './edge-scenario.js';
import { formatMs } from './stats.js';
import { markdownTable } from './table.js';

const fixed = (value: number, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : '–');
const p = (r: EdgeResult, percentile: number) => r.delivered.latency.percentile(percentile);

export function edgeRunTable(results: EdgeResult[]): string {
  return markdownTable(
    ['run', 'clients', 'open', 'p50', 'p99', 'max', 'deliveries/s', 'lost', 'dup', 'dropped', 'origin CPU %', 'edge CPU % (each)', 'Redis CPU %', 'all servers CPU ms / 1k deliveries', 'RSS KiB / client (all)', 'first event p50'],
    results.map((r) => [
      r.label,
      r.clients,
      r.open,
      formatMs(p(r, 50)),
      formatMs(p(r, 99)),
      formatMs(r.delivered.latency.max),
      fixed(r.deliveriesPerSecond, 0),
      r.delivered.lost,
      r.delivered.duplicated,
      r.delivered.dropped,
      fixed(r.originCpuPercent),
      r.edgeCpuPercent.length ? r.edgeCpuPercent.map((value) => fixed(value)).join(' / ') : '–',
      fixed(r.redisCpuPercent),
      fixed(r.delivered.deliveries > 0 ? (r.serverCpuMs / r.delivered.deliveries) * 1000 : NaN, 2),
      fixed(r.open > 0 ? (r.rssConnectedKiB - r.rssBeforeKiB) / r.open : NaN),
      r.firstEventMs ? formatMs(r.firstEventMs.percentile(50)) : '–',
    ]),
  );
}

/** Each edge run minus the origin-direct run of the same clients and transport (target: ≤ +1 ms p50, ≤ +3 ms p99). */
export function hopTable(results: EdgeResult[]): string {
  const rows: string[][] = [];
  for (const edge of results.filter((r) => r.edges > 0)) {
    const direct = results.find((r) => r.edges === 0 && r.clients === edge.clients && r.transport === edge.transport);
    if (!direct) continue;
    const added = (percentile: number) => p(edge, percentile) - p(direct, percentile);
    const sign = (ms: number) => (Number.isFinite(ms) ? `${ms >= 0 ? '+' : '−'}${formatMs(Math.abs(ms))}` : '–');
    rows.push([
      `${edge.label} − ${direct.label}`,
      String(edge.clients),
      sign(added(50)),
      added(50) <= 1 ? 'yes' : 'no',
      sign(added(99)),
      added(99) <= 3 ? 'yes' : 'no',
      fixed(edge.deliveriesPerSecond / direct.deliveriesPerSecond, 2) + '×',
    ]);
  }
  return markdownTable(['hop', 'clients', 'p50 added', '≤ 1 ms', 'p99 added', '≤ 3 ms', 'deliveries/s ratio'], rows);
}
