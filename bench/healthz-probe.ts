/**
 * Measures a server's event-loop blocking from outside: one `GET /healthz` after another, each on a fresh
 * connection, recording the time to the first byte of the answer. While the loop is busy (a long synchronous
 * read or fan-out), the answer waits, so the worst time to first byte bounds the longest block.
 */
import { connect } from 'node:net';
import { wallMs } from './clock.js';
import { Histogram } from './stats.js';

export interface ProbeResult {
  ttfb: Histogram;
  /** Requests that failed or took longer than the per-request timeout. */
  failures: number;
}

export class HealthzProbe {
  private readonly ttfb = new Histogram();
  private failures = 0;
  private running = true;
  private readonly done: Promise<void>;

  /** Starts probing at once; `gapMs` between one answer and the next request; stops by itself after `maxMs`. */
  constructor(host: string, port: number, gapMs = 5, maxMs = 300000) {
    const stopAt = Date.now() + maxMs;
    this.done = (async () => {
      while (this.running && Date.now() < stopAt) {
        const ms = await probeOnce(host, port, 30000);
        if (ms === undefined) this.failures++;
        else this.ttfb.record(ms);
        await new Promise((resolve) => setTimeout(resolve, gapMs));
      }
    })();
  }

  async stop(): Promise<ProbeResult> {
    this.running = false;
    await this.done;
    return { ttfb: this.ttfb, failures: this.failures };
  }
}

/** Time from connecting to the first byte of the answer, or undefined on error or timeout. */
export function probeOnce(host: string, port: number, timeoutMs: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const started = wallMs();
    const socket = connect({ host, port, noDelay: true });
    const finish = (ms: number | undefined) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ms);
    };
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    socket.once('connect', () => socket.write(`GET /healthz HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`));
    socket.once('data', () => finish(wallMs() - started));
    socket.once('error', () => finish(undefined));
  });
}
