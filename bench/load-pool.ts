/**
 * The load-generator processes of one run: connections spread over as many processes as needed so none holds more
 * than `perProcess` sockets, and their reports merged.
 */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { FilterPlan } from './filter-plan.js';
import type { LoadCommand, LoadReport, OpenReport } from './load-client.js';
import { forkScript, nextMessage, openFilesLimit, stopChild } from './processes.js';
import { Histogram } from './stats.js';

const LOAD_CLIENT = fileURLToPath(new URL('./load-client.js', import.meta.url));

export interface MergedOpen {
  open: number;
  failed: number;
  errors: string[];
  openMs: Histogram;
}

export interface MergedReport extends Omit<LoadReport, 'type' | 'latency'> {
  latency: Histogram;
}

export class LoadPool {
  private readonly processes: ChildProcess[] = [];
  private readonly shares: number[] = [];
  readonly warnings: string[] = [];

  constructor(total: number, perProcess: number, cpus?: string) {
    const count = Math.max(1, Math.ceil(total / perProcess));
    for (let i = 0; i < count; i++) {
      const share = Math.floor(total / count) + (i < total % count ? 1 : 0);
      const child = forkScript(LOAD_CLIENT, { cpus });
      this.processes.push(child);
      this.shares.push(share);
      const limit = child.pid ? safeLimit(child.pid) : NaN;
      if (limit < share + 50) this.warnings.push(`load process ${child.pid} may open ${limit} files, fewer than its ${share} connections need`);
    }
  }

  /** Process ids of the load processes (to read their CPU time). */
  get pids(): number[] {
    return this.processes.map((child) => child.pid!).filter(Boolean);
  }

  get size(): number {
    return this.processes.length;
  }

  /**
   * Opens every connection; with `filter`, client i (numbered across processes) asks for client i's filter. With
   * several ports, client i connects to `port[i mod n]`: clients split evenly across servers (edges).
   */
  async open(host: string, port: number | number[], path: string, timeoutMs: number, concurrency = 64, filter?: FilterPlan): Promise<MergedOpen> {
    const ports = Array.isArray(port) ? port : [port];
    let firstIndex = 0;
    const replies = await Promise.all(
      this.processes.map((child, i) => {
        const reply = nextMessage<OpenReport>(child, 'opened', timeoutMs + 5000);
        send(child, { cmd: 'open', target: { host, port: ports[0], path }, count: this.shares[i], concurrency, timeoutMs, filter, firstIndex, ports });
        firstIndex += this.shares[i];
        return reply;
      }),
    );
    const openMs = new Histogram();
    for (const reply of replies) openMs.merge(reply.openMs);
    return {
      open: replies.reduce((sum, r) => sum + r.open, 0),
      failed: replies.reduce((sum, r) => sum + r.failed, 0),
      errors: [...new Set(replies.flatMap((r) => r.errors))].slice(0, 5),
      openMs,
    };
  }

  /** Every process waits (at most `timeoutMs`) for `finalId` on all its streams, then reports. */
  async finish(finalId: number, timeoutMs: number): Promise<MergedReport> {
    const replies = await Promise.all(
      this.processes.map((child) => {
        const reply = nextMessage<LoadReport>(child, 'report', timeoutMs + 5000);
        send(child, { cmd: 'finish', finalId, timeoutMs });
        return reply;
      }),
    );
    const latency = new Histogram();
    for (const reply of replies) latency.merge(reply.latency);
    const sum = (key: keyof LoadReport) => replies.reduce((total, r) => total + (r[key] as number), 0);
    const firsts = replies.map((r) => r.firstReceiptAt).filter((t) => t > 0);
    return {
      connections: sum('connections'),
      dropped: sum('dropped'),
      errors: [...new Set(replies.flatMap((r) => r.errors))].slice(0, 5),
      deliveries: sum('deliveries'),
      lost: sum('lost'),
      duplicated: sum('duplicated'),
      wrong: sum('wrong'),
      otherEvents: sum('otherEvents'),
      unstamped: sum('unstamped'),
      bytes: sum('bytes'),
      firstReceiptAt: firsts.length ? Math.min(...firsts) : 0,
      lastReceiptAt: Math.max(0, ...replies.map((r) => r.lastReceiptAt)),
      latency,
    };
  }

  /** Close every connection and end every process (killed if it does not exit within a second). */
  async close(): Promise<void> {
    await Promise.all(
      this.processes.map((child) => {
        send(child, { cmd: 'close' });
        return stopChild(child, 1000);
      }),
    );
  }
}

function send(child: ChildProcess, command: LoadCommand): void {
  if (child.connected) child.send(command);
}

function safeLimit(pid: number): number {
  try {
    return openFilesLimit(pid);
  } catch {
    return NaN;
  }
}
