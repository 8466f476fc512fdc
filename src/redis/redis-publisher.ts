import { Redis } from 'ioredis';
import type { EncodedEvent } from '../hub/encoded-event.js';
import type { Logger } from '../logger.js';
import { createRedis } from './redis-connection.js';
import { boundsOfInfo, entryId, gapMarker, isAlreadyThere, isNoSuchKey, redactUrl, xaddArguments, type StreamBounds, type StreamItem } from './redis-entry.js';

export interface RedisPublisherOptions {
  /** `redis://[user:password@]host:port[/db]`. */
  url: string;
  /** The stream, e.g. `sqlite-sse:messages`. */
  key: string;
  /** `XADD ... MAXLEN ~ maxLen`; also the most events a backfill publishes into an empty stream. */
  maxLen: number;
  /**
   * Up to `limit` events with an id above `after`, in id order, from the origin's store; throws when it cannot read
   * now. `{historyGone: oldest}`: a trimmed store (the change log) no longer holds the events after `after`, the
   * oldest it holds is `oldest` (the backfill then writes a gap marker, see gapMarker).
   */
  readAfter: (after: number, limit: number) => EncodedEvent[] | { historyGone: number } | Promise<EncodedEvent[] | { historyGone: number }>;
  /** The origin's highest id: the stream is complete when its top reaches it. */
  lastId: () => number;
  log: Pick<Logger, 'info' | 'warn'>;
  /** Events per backfill read and transaction. Default 1000. */
  pageRows?: number;
  /** How often the stream's top is compared with what Redis acknowledged (a failover can lose a tail silently). Default 5000 ms. */
  checkMs?: number;
  /** Live events held while a write is in flight or a backfill runs; past it they are dropped and read again from the store. Default 10000. */
  maxPendingEvents?: number;
  /**
   * What edges need to know about the stream and cannot read from a database they do not have (the tables' columns,
   * for filters), as one string kept at `<key>:schema`; written after each sync and whenever it changes. Optional.
   */
  meta?: () => string | undefined;
}

const DEFAULTS = { pageRows: 1000, checkMs: 5000, maxPendingEvents: 10000, meta: () => undefined };

/**
 * The origin's side of edges (docs/scaling.md): appends every event to a Redis stream with the event's id as the entry
 * id (`<id>-0`), so an edge's `Last-Event-ID` means the same as the origin's.
 *
 * Writes are one `MULTI` at a time, in id order: a batch lands whole or not at all (an OOM refusal aborts it), so
 * the stream always holds a gap-free prefix of the origin's events and "what is missing" is simply "after its top".
 * Whenever that may have changed (start, reconnect, a failed write, a top found lower than acknowledged) a backfill
 * reads the missing events from the store and re-publishes them with their ids; Redis refuses ids at or below its top,
 * which makes re-publishing idempotent. It never blocks the caller and never buffers without bound.
 */
export class RedisPublisher {
  readonly options: Readonly<Required<RedisPublisherOptions>>;
  private readonly redis: Redis;
  private state: 'new' | 'running' | 'closed' = 'new';
  private status: 'ok' | 'down' = 'down';
  private downWarned = false;
  /** Live publishing is on: the stream's top was caught up with the store and every write since succeeded. */
  private inSync = false;
  /** The highest id Redis holds, as far as this publisher knows. */
  private acknowledged = 0;
  private pending: StreamItem[] = [];
  private writing: Promise<void> | undefined;
  private syncing: Promise<void> | undefined;
  private syncAgain = false;
  private checkTimer: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;
  /** The meta string Redis holds (undefined: not written since the last connection). */
  private metaWritten: string | undefined;

  constructor(options: RedisPublisherOptions) {
    this.options = Object.freeze({ ...DEFAULTS, ...options });
    this.redis = createRedis(options.url, {
      lazyConnect: true,
      // Fail at once while disconnected instead of queueing without bound: the backfill recovers what was refused.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      // A command resent after a reconnect could land after later ones: the backfill decides what to send instead.
      autoResendUnfulfilledCommands: false,
      retryStrategy: (times) => Math.min(50 * 2 ** times, 2000),
      connectTimeout: 5000,
      commandTimeout: 10000,
    });
    this.redis.on('ready', () => void this.sync());
    this.redis.on('error', (error) => this.markDown(error));
    this.redis.on('close', () => {
      this.inSync = false;
      if (this.state === 'running') this.markDown(new Error('connection closed'));
    });
  }

  /**
   * Connects and publishes what the stream lacks; resolves when that is done or Redis is found unreachable (the
   * origin serves on either way, and catches up when Redis is back).
   */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error('a publisher starts once');
    this.state = 'running';
    this.checkTimer = setInterval(() => void this.check(), this.options.checkMs);
    this.checkTimer.unref();
    try {
      await this.redis.connect();
    } catch (error) {
      this.markDown(error as Error);
      return;
    }
    await this.syncing;
  }

  /** `ok` while Redis takes every write; `down` while it is unreachable or refusing (the store is then caught up later). */
  health(): 'ok' | 'down' {
    return this.status;
  }

  /** The highest id Redis is known to hold. */
  get acknowledgedId(): number {
    return this.acknowledged;
  }

  /**
   * Appends new events (in id order, after every id published before). Never blocks: while a write is in flight they
   * wait, bounded; while Redis is down or a backfill runs, what does not fit is read again from the store later.
   */
  publish(events: readonly StreamItem[]): void {
    if (this.state !== 'running' || events.length === 0) return;
    if (this.pending.length + events.length > this.options.maxPendingEvents) {
      this.pending = [];
      if (this.syncing) this.syncAgain = true;
      else this.outOfSync();
      return;
    }
    for (const event of events) this.pending.push(event);
    if (this.inSync && !this.writing) this.flush();
  }

  /**
   * The store trimmed events before they were read (`SourceSink.gap`): a gap marker goes into the stream in order
   * with the events, so edges reset their clients as the origin does. Dropped with the pending events when Redis is
   * down, it is written again by the backfill, which meets the same trimmed store.
   */
  gap(oldest: number): void {
    this.publish([gapMarker(oldest)]);
  }

  /** The store was replaced (its ids may restart lower): compare the stream with it again. */
  resync(): void {
    if (this.state === 'running') void this.sync();
  }

  private flush(): void {
    const events = this.pending;
    this.pending = [];
    this.writing = this.write(events).then(
      () => {
        this.writing = undefined;
        this.markUp();
        if (this.inSync && this.pending.length > 0) this.flush();
      },
      (error: Error) => {
        this.writing = undefined;
        this.pending = [];
        this.markDown(error);
        this.outOfSync();
      },
    );
  }

  /**
   * One transaction: XADD per event (already-there replies are fine), and, for a stream that starts above the store's
   * first id, XSETID ... MAXDELETEDID so edges know the history below `floor` is elsewhere.
   */
  private async write(events: readonly StreamItem[], floor?: number): Promise<void> {
    const { key, maxLen } = this.options;
    const multi = this.redis.multi();
    for (const event of events) multi.call('XADD', key, ...xaddArguments(event, maxLen));
    const last = events[events.length - 1].id;
    if (floor !== undefined) multi.call('XSETID', key, entryId(last), 'MAXDELETEDID', entryId(floor));
    const results = await multi.exec();
    if (!results) throw new Error('the transaction was aborted');
    for (const [error] of results) {
      if (error && !isAlreadyThere(error)) throw error;
    }
    this.acknowledged = Math.max(this.acknowledged, last);
  }

  /** Live publishing stops until a backfill has compared the stream with the store again. */
  private outOfSync(): void {
    this.inSync = false;
    if (this.redis.status === 'ready') void this.sync();
  }

  /** One backfill at a time; a request during one makes it run once more. Live publishing resumes after it. */
  private sync(): Promise<void> {
    if (this.state !== 'running') return Promise.resolve();
    if (this.syncing) {
      this.syncAgain = true;
      return this.syncing;
    }
    this.inSync = false;
    this.syncing = this.runSync().finally(() => {
      this.syncing = undefined;
    });
    return this.syncing;
  }

  private async runSync(): Promise<void> {
    try {
      // Writes are serial: the stream's top is only read once the write in flight has landed or failed.
      await this.writing;
      let published: number;
      do {
        this.syncAgain = false;
        published = await this.backfill();
      } while (this.state === 'running' && (this.syncAgain || (published > 0 && this.options.lastId() > this.acknowledged)));
      if (this.state !== 'running') return;
      this.inSync = true;
      this.metaWritten = undefined;
      await this.writeMeta();
      this.markUp();
      // Events published while the backfill read: those it already wrote are refused as already there.
      if (this.pending.length > 0 && !this.writing) this.flush();
    } catch (error) {
      if ((error as { fromStore?: boolean }).fromStore) this.options.log.warn((error as Error).message);
      else this.markDown(error as Error);
    }
  }

  /**
   * Publishes what the stream lacks, in pages: everything after its top, or for an empty stream the newest `maxLen`
   * ids. A stream whose top is beyond the store (the database was replaced by an older one) is deleted first, or its
   * top would refuse every id the store hands out next. Returns the events written.
   */
  private async backfill(): Promise<number> {
    const { key, maxLen, pageRows } = this.options;
    let bounds = await this.bounds();
    const target = this.options.lastId();
    if (bounds.lastId > target) {
      this.options.log.warn(`redis stream ${key} ends at id ${bounds.lastId}, beyond the store's last id ${target} (the database was replaced?): recreating it`);
      await this.redis.del(key);
      bounds = { length: 0, lastId: 0, firstId: undefined, floor: 0 };
    }
    let after = bounds.lastId;
    const empty = bounds.length === 0 && bounds.lastId === 0;
    let floor: number | undefined;
    if (bounds.length === 0 && bounds.lastId === 0 && target > maxLen) {
      after = target - maxLen;
      floor = after;
    }
    this.acknowledged = after;
    let written = 0;
    let first = 0;
    for (;;) {
      const page = await this.readStore(after, pageRows);
      if (this.state !== 'running') break;
      if ('historyGone' in page) {
        // The events between the stream's top and the store's oldest were trimmed before anybody published them
        // (a transaction larger than track --keep while Redis was down or the publisher behind): mark the gap, or an
        // edge's clients would skip them silently. Idempotent like every XADD here.
        const marker = gapMarker(page.historyGone);
        if (marker.id <= after) throw Object.assign(new Error(`the store says events after ${after} are gone but its oldest is ${page.historyGone}`), { fromStore: true });
        // Into an empty stream (a first start, or Redis restarted empty) it only says where the stream's history starts.
        const line = `redis: the store no longer holds events ${after + 1} to ${marker.id}: marked the gap in stream ${key} (edges reset clients behind it)`;
        if (empty) this.options.log.info(line);
        else this.options.log.warn(`${line}; they were trimmed before they were published: raise track --keep`);
        await this.write([marker], floor);
        floor = undefined;
        after = marker.id;
        written++;
        continue;
      }
      if (page.length === 0) break;
      await this.write(page, floor);
      floor = undefined;
      first ||= page[0].id;
      after = page[page.length - 1].id;
      written += page.length;
    }
    if (written > 0) this.options.log.info(`redis: published ${written} events missing from stream ${key} (ids ${first || after} to ${after})`);
    return written;
  }

  /** readAfter, with its failure told apart from Redis': a busy store is retried at the next check, Redis stays `ok`. */
  private async readStore(after: number, limit: number): Promise<EncodedEvent[] | { historyGone: number }> {
    try {
      return await this.options.readAfter(after, limit);
    } catch (error) {
      throw Object.assign(new Error(`reading the store after id ${after} failed: ${(error as Error).message}`), { fromStore: true });
    }
  }

  /** The stream's top and floor from XINFO STREAM; a missing stream is empty. */
  private async bounds(): Promise<StreamBounds> {
    try {
      return boundsOfInfo((await this.redis.xinfo('STREAM', this.options.key)) as unknown[]);
    } catch (error) {
      if (isNoSuchKey(error)) return boundsOfInfo(null);
      throw error;
    }
  }

  /**
   * Runs every `checkMs`: retries a backfill that failed (Redis refusing writes), and notices a tail lost without a
   * reconnect (a failover to a replica that had not received it), which only the stream's top can tell.
   */
  private async check(): Promise<void> {
    if (this.state !== 'running' || this.syncing || this.writing || this.redis.status !== 'ready') return;
    if (!this.inSync) {
      void this.sync();
      return;
    }
    // Compared with what was acknowledged before asking: a write landing meanwhile only raises the top.
    const expected = this.acknowledged;
    let top: number;
    try {
      top = (await this.bounds()).lastId;
    } catch (error) {
      this.markDown(error as Error);
      return;
    }
    if (this.writing || this.syncing || !this.inSync) return;
    await this.writeMeta().catch((error: Error) => this.markDown(error));
    if (top < expected) {
      this.options.log.warn(`redis stream ${this.options.key} ends at id ${top}, below the ${expected} Redis acknowledged (data lost by a restart or a failover): publishing the missing events again`);
      void this.sync();
    } else if (this.options.lastId() > top && this.pending.length === 0) {
      void this.sync();
    }
  }

  /** Writes the meta string beside the stream when it changed since it was last written. */
  private async writeMeta(): Promise<void> {
    const meta = this.options.meta();
    if (meta === undefined || meta === this.metaWritten) return;
    await this.redis.set(`${this.options.key}:schema`, meta);
    this.metaWritten = meta;
  }

  private markDown(error: Error): void {
    if (this.state !== 'running') return;
    this.status = 'down';
    if (/timed out/i.test(error.message) && this.redis.status === 'ready') {
      // A command that never came back: the connection is dead without knowing it. Start a fresh one.
      this.redis.disconnect(true);
    }
    if (this.downWarned) return;
    this.downWarned = true;
    // Fix (found by test/edges.test.ts): the URL as given carries the password (redis://:PASSWORD@host); the start-up
    // line hid it but these lines printed it. Logs get it redacted.
    this.options.log.warn(`redis ${redactUrl(this.options.url)} is unreachable or refusing writes (${error.message}): serving on; the stream ${this.options.key} catches up when it is back`);
  }

  private markUp(): void {
    this.status = 'ok';
    if (!this.downWarned) return;
    this.downWarned = false;
    this.options.log.info(`redis ${redactUrl(this.options.url)} is back: stream ${this.options.key} is caught up to id ${this.acknowledged}`);
  }

  /** Waits briefly for the write in flight, then closes the connection. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    this.state = 'closed';
    clearInterval(this.checkTimer);
    const landed = this.writing ?? Promise.resolve();
    await Promise.race([landed, new Promise((resolve) => setTimeout(resolve, 1000).unref())]);
    try {
      await this.redis.quit();
    } catch {
      this.redis.disconnect();
    }
  }
}
