/**
 * Reads a few figures from the server's `GET /metrics` (with `--metrics`) after a run: prom-client's event-loop
 * delay (its histogram restarts at each scrape, so one scrape after the run covers the whole run) and the fan-out
 * histogram. With `--workers N` the answer describes the one worker that took the request.
 */
import { get } from 'node:http';

export interface ServerMetrics {
  eventLoopLagMaxMs: number;
  eventLoopLagP99Ms: number;
  /** Batches written to every client, and the mean and worst-bucket time of one. */
  fanouts: number;
  fanoutMeanMs: number;
  /** Upper bound of the bucket holding the 99th percentile fan-out ("+Inf" as Infinity). */
  fanoutP99BucketMs: number;
}

export function fetchText(host: string, port: number, path: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = get({ host, port, path, timeout: timeoutMs }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (text: string) => (body += text));
      response.on('end', () => (response.statusCode === 200 ? resolve(body) : reject(new Error(`GET ${path}: ${response.statusCode}`))));
    });
    request.on('timeout', () => request.destroy(new Error(`GET ${path}: timed out`)));
    request.on('error', reject);
  });
}

/** Parses the Prometheus text; absent figures are NaN. */
export function parseServerMetrics(text: string): ServerMetrics {
  const value = (name: string) => {
    const match = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
    return match ? Number(match[1]) : NaN;
  };
  const buckets: [number, number][] = [];
  for (const match of text.matchAll(/^sqlite_sse_fanout_latency_seconds_bucket\{[^}]*le="([^"]+)"[^}]*\} (\S+)$/gm)) {
    buckets.push([match[1] === '+Inf' ? Infinity : Number(match[1]), Number(match[2])]);
  }
  buckets.sort((a, b) => a[0] - b[0]);
  const fanouts = value('sqlite_sse_fanout_latency_seconds_count');
  const p99 = buckets.find(([, count]) => count >= fanouts * 0.99);
  return {
    eventLoopLagMaxMs: value('nodejs_eventloop_lag_max_seconds') * 1000,
    eventLoopLagP99Ms: value('nodejs_eventloop_lag_p99_seconds') * 1000,
    fanouts,
    fanoutMeanMs: (value('sqlite_sse_fanout_latency_seconds_sum') / fanouts) * 1000,
    fanoutP99BucketMs: p99 && fanouts > 0 ? p99[0] * 1000 : NaN,
  };
}

export async function scrapeServerMetrics(host: string, port: number): Promise<ServerMetrics | undefined> {
  try {
    return parseServerMetrics(await fetchText(host, port, '/metrics'));
  } catch {
    return undefined;
  }
}
