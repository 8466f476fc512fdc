import type { EncodedEvent } from '../hub/encoded-event.js';
import type { StoreFilter } from '../hub/view.js';

/**
 * The seam between where ordered events come from and the hub that serves them to clients (DESIGN.md §6).
 * A source knows its store (a SQLite table, the change log, a Redis stream) and nothing about clients; the hub knows
 * clients and nothing about the store. Every id a source hands out is greater than the ids before it.
 */
export interface Source {
  /** What the source reads, for logs and the start-up line (a table's name, `_sse_changes`, a stream key). */
  readonly name: string;
  /**
   * Opens the store and starts following it; resolves with its newest events, which fill the ring.
   * Rejects with an SseError whose message is one line a user can act on.
   */
  start(sink: SourceSink, history: HistoryBounds): Promise<SourceHistory>;
  /**
   * Up to `maxEvents` events with `after < id <= upTo`, in id order, stopping once past `maxBytes`: catch-up for a
   * client whose cursor is older than the ring. A source that cannot read now says when to ask again.
   * With a `filter` the store may leave out events it does not match (the hub applies the client's view to the page
   * either way); a source that filters bounds the events it scans per call, not only those it returns, so a rare
   * filter never makes one call read the whole store.
   */
  readPage(after: number, upTo: number, maxEvents: number, maxBytes: number, filter?: StoreFilter): PageResult | Promise<PageResult>;
  /**
   * A client's cursor is beyond the last id published. True when the store holds that id (its events are on their
   * way: the source reads them soon), false when the store was replaced by one that ends before it.
   */
  holds(cursor: number): boolean | Promise<boolean>;
  /**
   * Optional, for change streams: the current rows of `table`, in pages of at most `maxRows` (and past the first,
   * `maxBytes`), starting after the page that ended at `after` (undefined: the first page). Each page is read in one
   * short read transaction together with the change log's highest sequence number (`seq`).
   */
  snapshot?(table: string, after: SnapshotPosition | undefined, maxRows: number, maxBytes: number): SnapshotResult | Promise<SnapshotResult>;
  /** Fields of `/healthz` that describe the store; `ok` says whether it can be read. */
  health(): SourceHealth;
  /** Stops following the store and releases it. Idempotent. */
  close(): Promise<void>;
}

/** How much history the hub keeps in memory, so a source reads no more than that at start. */
export interface HistoryBounds {
  rows: number;
  bytes: number;
}

/** The newest events of the store, oldest first. */
export interface SourceHistory {
  events: EncodedEvent[];
  /** The store's highest id (the last event's, or where an empty store stands). */
  lastId: number;
  /** Every event with `floor < id <= lastId` is in `events`; -Infinity when they are the whole store. */
  floor: number;
}

/** One page of catch-up, and the cursor after it (the last event's id, or `upTo` when the range is exhausted). */
export interface SourcePage {
  events: EncodedEvent[];
  end: number;
}

/**
 * A page; or "ask again in `retryMs`" (the store is locked or unreachable); or "the store no longer holds the events
 * after this cursor" (`historyGone`: the oldest id it still holds), which the hub answers with a `history-gone` reset.
 */
export type PageResult = SourcePage | { retryMs: number } | { historyGone: number };

/** A page of a table's current rows (events without ids), where the next page starts (undefined: the last), and the log's sequence number then. */
export type SnapshotResult = { events: EncodedEvent[]; next: SnapshotPosition | undefined; seq: number } | { retryMs: number };

/** Where a snapshot's next page starts: after a rowid, or after a WITHOUT ROWID table's primary-key values (key order). */
export type SnapshotPosition = number | readonly unknown[];

export interface SourceHealth {
  ok: boolean;
  [field: string]: unknown;
}

/** What a source tells the hub. */
export interface SourceSink {
  /** New events, in id order, each greater than every id published before. */
  publish(events: EncodedEvent[]): void;
  /**
   * The store was replaced by one whose history ends below what was published: clients whose cursor is past
   * `history.lastId` are reset to it, and the ring starts over from `history`.
   */
  restart(history: SourceHistory): void;
  /**
   * A trimmed store (the change log) deleted events the live read had not read yet: its ids are contiguous, so the
   * first id read, `oldest`, above the last id read plus one means the events in between are gone for everybody.
   * Called before the events from `oldest` on are published.
   */
  gap(oldest: number): void;
  /** Something an operator should know; the hub passes it on once per distinct message. */
  warn(message: string): void;
  /** New events were read `seconds` after the notification that announced them (for /metrics). */
  readLatency(seconds: number, events: number): void;
}
