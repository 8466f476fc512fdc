/**
 * A load-generator process: holds many SSE or WebSocket connections (by the path: `/ws...`) over raw sockets and reports what they received.
 * Started by the orchestrator with `fork()`; driven by IPC messages (see `LoadCommand`), so several of these
 * spread the connections (and the open files) over processes.
 */
import { filterQuery, matchOf, userOfClient, type FilterPlan } from './filter-plan.js';
import { Tally, type ConnectionTarget, type StreamConnection } from './sse-connection.js';
import { openStream } from './streams.js';
import { Histogram, type HistogramData } from './stats.js';

export type LoadCommand =
  /**
   * `target.path` is the stream's path without a filter; with `filter`, connection j asks for client
   * `firstIndex + j`'s filter (appended to the path) and checks that it gets exactly that filter's rows.
   * With `ports`, client i connects to `ports[i mod ports.length]` (clients split across edges).
   */
  | { cmd: 'open'; target: ConnectionTarget; count: number; concurrency: number; timeoutMs: number; filter?: FilterPlan; firstIndex?: number; ports?: number[] }
  | { cmd: 'finish'; finalId: number; timeoutMs: number }
  | { cmd: 'close' };

export interface OpenReport {
  type: 'opened';
  open: number;
  failed: number;
  errors: string[];
  /** Connect to first body byte (headers + `retry:`), ms. */
  openMs: HistogramData;
}

export interface LoadReport {
  type: 'report';
  connections: number;
  /** Connections that ended before the run did. */
  dropped: number;
  errors: string[];
  deliveries: number;
  lost: number;
  duplicated: number;
  /** Rows received by a filtered client that its filter does not take. */
  wrong: number;
  otherEvents: number;
  unstamped: number;
  bytes: number;
  firstReceiptAt: number;
  lastReceiptAt: number;
  latency: HistogramData;
}

const tally = new Tally();
const connections: StreamConnection[] = [];

function send(message: OpenReport | LoadReport): void {
  process.send?.(message);
}

/** Opens `count` connections, at most `concurrency` still connecting at once; resolves when each is open or failed. */
function open(command: Extract<LoadCommand, { cmd: 'open' }>): Promise<OpenReport> {
  const openMs = new Histogram();
  const errors = new Set<string>();
  let started = 0;
  let settled = 0;
  let failed = 0;
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      resolve({ type: 'opened', open: settled - failed, failed: failed + (command.count - settled), errors: [...errors].slice(0, 5), openMs: openMs.toJSON() });
    };
    const timer = setTimeout(() => {
      errors.add(`${command.count - settled} connection(s) not open after ${command.timeoutMs} ms`);
      done();
    }, command.timeoutMs);
    const startNext = () => {
      while (started < command.count && started - settled < command.concurrency) {
        started++;
        let counted = false;
        const finishOne = (connection: StreamConnection, ok: boolean) => {
          if (counted) return;
          counted = true;
          settled++;
          if (ok) openMs.record(connection.openedAt - connection.startedAt);
          else {
            failed++;
            errors.add(connection.error ?? 'failed');
          }
          if (settled === command.count) done();
          else startNext();
        };
        const index = (command.firstIndex ?? 0) + started - 1;
        const port = command.ports ? command.ports[index % command.ports.length] : command.target.port;
        const target = command.filter
          ? { ...command.target, port, path: command.target.path + filterQuery(userOfClient(command.filter, index)), match: matchOf(command.filter, index) }
          : { ...command.target, port };
        const connection = openStream(target, cursorOf(command.target.path), tally, {
          onOpen: (c) => finishOne(c, true),
          onEnd: (c) => finishOne(c, false),
        });
        connections.push(connection);
      }
    };
    if (command.count === 0) done();
    else startNext();
  });
}

function cursorOf(path: string): number {
  const match = /lastEventId=(\d+)/.exec(path);
  return match ? Number(match[1]) : 0;
}

/** Waits (bounded) until every open connection has received `finalId`, then counts what is missing. */
function finish(command: Extract<LoadCommand, { cmd: 'finish' }>): Promise<LoadReport> {
  const deadline = Date.now() + command.timeoutMs;
  return new Promise((resolve) => {
    const check = () => {
      const waiting = connections.some((c) => !c.ended && !c.caughtUp(command.finalId));
      if (waiting && Date.now() < deadline) {
        setTimeout(check, 20);
        return;
      }
      const errors = new Set<string>();
      let dropped = 0;
      for (const connection of connections) {
        if (connection.ended) {
          dropped++;
          errors.add(connection.error ?? 'ended');
        }
        connection.settle(command.finalId);
      }
      resolve({
        type: 'report',
        connections: connections.length,
        dropped,
        errors: [...errors].slice(0, 5),
        deliveries: tally.deliveries,
        lost: tally.lost,
        duplicated: tally.duplicated,
        wrong: tally.wrong,
        otherEvents: tally.otherEvents,
        unstamped: tally.unstamped,
        bytes: tally.bytes,
        firstReceiptAt: Number.isFinite(tally.firstReceiptAt) ? tally.firstReceiptAt : 0,
        lastReceiptAt: tally.lastReceiptAt,
        latency: tally.latency.toJSON(),
      });
    };
    check();
  });
}

function closeAll(): void {
  for (const connection of connections) connection.close();
  connections.length = 0;
}

process.on('message', (message: LoadCommand) => {
  switch (message.cmd) {
    case 'open':
      void open(message).then(send);
      break;
    case 'finish':
      void finish(message).then(send);
      break;
    case 'close':
      closeAll();
      // Exit once the sockets are gone; never linger.
      setTimeout(() => process.exit(0), 50);
      break;
  }
});
// The orchestrator died or closed the channel: nothing more to do here.
process.on('disconnect', () => {
  closeAll();
  process.exit(0);
});
// A hard bound, whatever happens: a load process never outlives a bench run.
setTimeout(() => process.exit(3), Number(process.env.BENCH_MAX_SECONDS ?? 600) * 1000).unref();
