import type { EncodedEvent } from '../hub/encoded-event.js';
import { RedisPublisher, type RedisPublisherOptions } from './redis-publisher.js';
import type { HistoryBounds, PageResult, SnapshotResult, Source, SourceHealth, SourceHistory, SourceSink } from '../source/source.js';
import type { StoreFilter } from '../hub/view.js';

/** Bytes per backfill read from the store: pages stay small even when rows are big. */
const READ_BYTES = 4 * 1024 * 1024;

export type PublishedSourceOptions = Omit<RedisPublisherOptions, 'readAfter' | 'lastId'>;

/**
 * The origin's source with a Redis stream beside it: every event the store yields goes to the hub and then to the
 * stream, in the same order, and the publisher's backfill reads the store through the source's own `readPage`.
 * `/healthz` gains `redis: ok|down`. The hub needs no change: it is handed this instead of the source.
 */
export class PublishedSource implements Source {
  readonly source: Source;
  readonly publisher: RedisPublisher;
  private lastId = 0;

  constructor(source: Source, options: PublishedSourceOptions) {
    this.source = source;
    this.publisher = new RedisPublisher({
      ...options,
      readAfter: (after, limit) => this.readAfter(after, limit),
      lastId: () => this.lastId,
    });
  }

  get name(): string {
    return this.source.name;
  }

  async start(sink: SourceSink, bounds: HistoryBounds): Promise<SourceHistory> {
    const tee: SourceSink = {
      publish: (events) => {
        this.lastId = events[events.length - 1].id;
        // The stream first: XADD only queues a write, while the hub's fan-out to the origin's own clients takes
        // about 10 µs per client; edges would otherwise wait for all of it before Redis even hears of the rows.
        this.publisher.publish(events);
        sink.publish(events);
      },
      restart: (history) => {
        this.lastId = history.lastId;
        sink.restart(history);
        this.publisher.resync();
      },
      gap: (oldest) => {
        sink.gap(oldest);
        // Edges learn it from a marker in the stream, in order with the events (before those from `oldest` on).
        this.publisher.gap(oldest);
      },
      warn: (message) => sink.warn(message),
      readLatency: (seconds, events) => sink.readLatency(seconds, events),
    };
    const history = await this.source.start(tee, bounds);
    this.lastId = Math.max(this.lastId, history.lastId);
    // Not awaited: the origin serves at once; a backfill of maxLen rows or an unreachable Redis must not delay it.
    void this.publisher.start();
    return history;
  }

  readPage(after: number, upTo: number, maxEvents: number, maxBytes: number, filter?: StoreFilter): PageResult | Promise<PageResult> {
    return this.source.readPage(after, upTo, maxEvents, maxBytes, filter);
  }

  /** The store's snapshots, when it has them (the change log's). */
  get snapshot(): Source['snapshot'] {
    const source = this.source;
    return source.snapshot ? (table, after, maxRows, maxBytes): SnapshotResult | Promise<SnapshotResult> => source.snapshot!(table, after, maxRows, maxBytes) : undefined;
  }

  holds(cursor: number): boolean | Promise<boolean> {
    return this.source.holds(cursor);
  }

  health(): SourceHealth {
    return { ...this.source.health(), redis: this.publisher.health() };
  }

  async close(): Promise<void> {
    await this.source.close();
    await this.publisher.close();
  }

  /**
   * The store's events after `after`, for the backfill, up to the last id the hub has: the stream is never ahead of
   * the origin, so a top above the origin's last id reliably means the database was replaced. A store that cannot
   * be read now throws (retried later).
   */
  private async readAfter(after: number, limit: number): Promise<EncodedEvent[] | { historyGone: number }> {
    if (after >= this.lastId) return [];
    const page = await this.source.readPage(after, this.lastId, limit, READ_BYTES);
    if ('retryMs' in page) throw new Error('the store is busy');
    if ('historyGone' in page) return page;
    return page.events;
  }
}
