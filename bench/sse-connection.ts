import { connect, type Socket } from 'node:net';
import { wallMs } from './clock.js';
import { matchingBetween, nextMatching, userIdOf, userOfRow, type RowMatch } from './filter-plan.js';
import { HttpStreamReader } from './http-stream.js';
import { SseParser, type SseEvent } from './sse-parser.js';
import { Histogram } from './stats.js';

/** Counters shared by every connection of one load process. */
export class Tally {
  /** Commit-to-receipt latency of every row delivered after the run's start. */
  readonly latency = new Histogram();
  deliveries = 0;
  lost = 0;
  duplicated = 0;
  /** Rows a filtered client received that its filter does not take (another user's row). */
  wrong = 0;
  /** Events that were not rows (for example a `reset`). */
  otherEvents = 0;
  /** Rows whose JSON had no numeric `sent_at`. */
  unstamped = 0;
  bytes = 0;
  firstReceiptAt = Infinity;
  lastReceiptAt = 0;

  /**
   * Counts row `id` received at `at` by a connection expecting `expected` next (ids have no gaps: the bench's writer
   * is the only writer; a filtered connection, `match`, expects only its user's ids); returns the id it expects next,
   * or -1 for a duplicate or a row that is not the connection's. `sentAt` undefined: no stamp. `userId`: the row's
   * own `user_id`, checked too when given.
   */
  row(expected: number, id: number, at: number, sentAt: number | undefined, match?: RowMatch, userId?: number): number {
    if (match && (userOfRow(id, match.users) !== match.user || (userId !== undefined && userId !== match.user))) {
      this.wrong++;
      return -1;
    }
    if (id < expected) {
      this.duplicated++;
      return -1;
    }
    if (id > expected) this.lost += matchingBetween(expected, id - 1, match);
    this.deliveries++;
    if (at < this.firstReceiptAt) this.firstReceiptAt = at;
    if (at > this.lastReceiptAt) this.lastReceiptAt = at;
    if (sentAt === undefined) this.unstamped++;
    else this.latency.record(at - sentAt);
    return nextMatching(id + 1, match);
  }
}

/** What the load processes need of a stream, whatever its transport. */
export interface StreamConnection {
  readonly startedAt: number;
  openedAt: number;
  firstEventAt: number;
  error: string | undefined;
  ended: boolean;
  /** Every row up to `finalId` that the connection takes has arrived (or been counted lost). */
  caughtUp(finalId: number): boolean;
  settle(finalId: number): void;
  close(): void;
}

export interface StreamCallbacks<C> {
  onOpen?: (c: C) => void;
  onFirstEvent?: (c: C) => void;
  onEnd?: (c: C) => void;
}

export interface ConnectionTarget {
  host: string;
  port: number;
  /** Request path, e.g. `/events?lastEventId=0` or `/events?lastEventId=0&user_id=eq.7`. */
  path: string;
  /** The rows the path's filter takes (undefined: every row). */
  match?: RowMatch;
}

/**
 * One SSE stream over a raw socket, cheap enough to hold thousands per process. It checks that ids arrive
 * exactly once and in order from its cursor on (`id = cursor + 1, cursor + 2, ...`: the bench's writer is the only
 * writer, so ids have no gaps; a filtered stream: its user's ids only, and any other row counts as wrong) and records each row's commit-to-receipt latency from its `sent_at` column.
 */
export class SseConnection implements StreamConnection {
  readonly socket: Socket;
  /** The next id expected. */
  private expected: number;
  private readonly tally: Tally;
  private readonly match: RowMatch | undefined;
  private readonly reader: HttpStreamReader;
  private readonly parser: SseParser;
  private receivedAt = 0;
  readonly startedAt = wallMs();
  /** When the first body byte (the `retry:` line) arrived: the stream is open. */
  openedAt = 0;
  /** When the first row event arrived. */
  firstEventAt = 0;
  status = 0;
  error: string | undefined;
  ended = false;
  private onOpen: ((connection: SseConnection) => void) | undefined;
  private onFirstEvent: ((connection: SseConnection) => void) | undefined;

  constructor(
    target: ConnectionTarget,
    cursor: number,
    tally: Tally,
    callbacks: StreamCallbacks<SseConnection> = {},
  ) {
    this.match = target.match;
    this.expected = nextMatching(cursor + 1, this.match);
    this.tally = tally;
    this.onOpen = callbacks.onOpen;
    this.onFirstEvent = callbacks.onFirstEvent;
    this.parser = new SseParser({ onEvent: (event) => this.event(event) });
    this.reader = new HttpStreamReader({
      onHead: (status) => {
        this.status = status;
        if (status !== 200) this.fail(`status ${status}`);
      },
      onBody: (chunk) => {
        if (this.openedAt === 0) {
          this.openedAt = this.receivedAt;
          const onOpen = this.onOpen;
          this.onOpen = undefined;
          onOpen?.(this);
        }
        this.parser.feed(chunk);
      },
      onEnd: () => this.fail('stream ended'),
      onError: (message) => this.fail(message),
    });
    this.socket = connect({ host: target.host, port: target.port, noDelay: true });
    this.socket.on('connect', () => {
      this.socket.write(`GET ${target.path} HTTP/1.1\r\nHost: ${target.host}:${target.port}\r\nAccept: text/event-stream\r\n\r\n`);
    });
    this.socket.on('data', (chunk: Buffer) => {
      // One timestamp per chunk: every event in it arrived at the same moment.
      this.receivedAt = wallMs();
      tally.bytes += chunk.length;
      this.reader.feed(chunk);
    });
    this.socket.on('error', (error) => this.fail(error.message));
    this.socket.on('close', () => {
      if (!this.ended) this.fail('connection closed');
      callbacks.onEnd?.(this);
    });
  }

  caughtUp(finalId: number): boolean {
    return this.expected > finalId;
  }

  private event(event: SseEvent): void {
    if (event.event !== 'message') {
      this.tally.otherEvents++;
      return;
    }
    const at = this.receivedAt;
    const next = this.tally.row(this.expected, Number(event.id), at, sentAtOf(event.data), this.match, this.match && userIdOf(event.data));
    if (next === -1) return;
    this.expected = next;
    if (this.firstEventAt === 0) {
      this.firstEventAt = at;
      const onFirstEvent = this.onFirstEvent;
      this.onFirstEvent = undefined;
      onFirstEvent?.(this);
    }
  }

  /** Counts the rows up to `finalId` that never came, once, when the run ends. */
  settle(finalId: number): void {
    if (finalId >= this.expected) {
      this.tally.lost += matchingBetween(this.expected, finalId, this.match);
      this.expected = nextMatching(finalId + 1, this.match);
    }
  }

  private fail(message: string): void {
    if (this.ended) return;
    this.ended = true;
    this.error = message;
    this.socket.destroy();
  }

  close(): void {
    this.ended = true;
    this.socket.destroy();
  }
}

/** The `sent_at` of a row's JSON, found without parsing the whole row. */
export function sentAtOf(json: string): number | undefined {
  const at = json.lastIndexOf('"sent_at":');
  if (at === -1) return undefined;
  const value = parseFloat(json.slice(at + 10));
  return Number.isFinite(value) ? value : undefined;
}
