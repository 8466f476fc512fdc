import { Redis } from 'ioredis';
import type { EncodedEvent } from '../hub/encoded-event.js';
import type { Logger } from '../logger.js';
import { createRedis } from './redis-connection.js';
import { boundsOfInfo, entryId, eventOfEntry, gapOfEntry, idOfEntry, isNoSuchKey, redactUrl, type StreamBounds, type StreamEntry } from './redis-entry.js';
import type { OriginSnapshot } from '../http/snapshot-endpoint.js';
import type { HistoryBounds, PageResult, SnapshotPosition, SnapshotResult, Source, SourceHealth, SourceHistory, SourceSink } from '../source/source.js';

/** Reads events a stream no longer holds (the origin's `/history`, see history-endpoint.ts). */
export type OlderHistory = (after: number, upTo: number, maxEvents: number) => Promise<PageResult>;

export interface RedisStreamSourceOptions {
  /** `redis://[user:password@]host:port[/db]`. */
  url: string;
  /** The stream the origin publishes to, e.g. `sqlite-sse:messages`. */
  key: string;
  /** SSE event name of the events, as on the origin; default none. */
  eventName?: string;
  log: Pick<Logger, 'info' | 'warn'>;
  /** `XREAD BLOCK` time. Default 5000 ms. */
  blockMs?: number;
  /** A blocking read still unanswered this long after `blockMs` is abandoned with its connection. Default 3000 ms. */
  watchdogMs?: number;
  /** Entries per `XREAD`. Default 1000. */
  pageRows?: number;
  /** Where cursors older than the stream are served from; without it they get a `history-gone` reset. */
  olderHistory?: OlderHistory;
  /**
   * Where a change stream's snapshots are read (the origin's `/snapshot`): with it the source has `snapshot`, and the
   * hub serves `snapshot=1` and the fresh snapshot after a `history-gone` reset as the origin does. Without it, none.
   */
  snapshotPages?: OriginSnapshot;
  /**
   * A stream found ending below the last id served is given this long to climb back (the origin re-publishing after
   * Redis lost data: the same ids, so clients see no seam) before clients ahead of it are restarted. Default 10000 ms.
   */
  lostGraceMs?: number;
}

const DEFAULTS = { blockMs: 5000, watchdogMs: 3000, pageRows: 1000, lostGraceMs: 10000 };

/** The stream's top is asked at least this often while entries flow, for `lagRows`. */
const TOP_CHECK_MS = 1000;

/**
 * An edge's source (DESIGN.md §6): the events of a Redis stream the origin publishes, with no database. Fills the
 * ring from the stream's newest entries, follows it with `XREAD BLOCK` on a connection of its own, serves catch-up
 * with `XRANGE`, and cursors older than the stream from the origin or with `history-gone`.
 *
 * Blocking reads are known to hang silently after a reconnect (ioredis #1285, #610), and a dead peer can hold one
 * forever: a watchdog abandons a read that outlives `blockMs + watchdogMs` and the next read gets a fresh
 * connection; the blocking connection never reconnects by itself, so there is no reconnect for a read to hang after.
 */
export class RedisStreamSource implements Source {
  readonly options: Readonly<RedisStreamSourceOptions & typeof DEFAULTS>;
  /** Short commands: XRANGE, XREVRANGE, XINFO. Reconnects by itself. */
  private readonly commands: Redis;
  /** The current blocking connection, replaced after any failure. */
  private blocking: Redis | undefined;
  private sink: SourceSink | undefined;
  private bounds: HistoryBounds = { rows: 0, bytes: 0 };
  private state: 'new' | 'running' | 'closed' = 'new';
  private status: 'ok' | 'down' = 'ok';
  private lastWarning = '';
  /** The highest id handed to the hub. */
  private lastId = 0;
  /** The stream's top when last asked. */
  private top = 0;
  private lastTopCheck = 0;
  /** When the stream was first seen below `lastId`, while it is. */
  private lowSince: number | undefined;
  /** The ring could not be filled at start (Redis down): fill it when Redis answers. */
  private needsFill = false;
  private following: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private closing: Promise<void> | undefined;
  /** Blocking reads abandoned by the watchdog, for tests and metrics. */
  watchdogResets = 0;
  /** Present when the origin's snapshots can be read (`snapshotPages`); see Source.snapshot. */
  readonly snapshot?: (table: string, after: SnapshotPosition | undefined, maxRows: number, maxBytes: number) => Promise<SnapshotResult>;

  constructor(options: RedisStreamSourceOptions) {
    this.options = Object.freeze({ ...DEFAULTS, ...options });
    if (options.snapshotPages) this.snapshot = (table, after, maxRows) => this.snapshotFromOrigin(options.snapshotPages!, table, after, maxRows);
    this.commands = createRedis(options.url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: (times) => Math.min(50 * 2 ** times, 2000),
      connectTimeout: 5000,
      commandTimeout: 5000,
    });
    this.commands.on('error', (error) => this.markDown(error));
  }

  get name(): string {
    return this.options.key;
  }

  /** Reads the stream's newest entries (up to the hub's bounds) and starts following it. Redis down: starts empty. */
  async start(sink: SourceSink, bounds: HistoryBounds): Promise<SourceHistory> {
    if (this.state !== 'new') throw new Error('a source starts once');
    this.sink = sink;
    this.bounds = bounds;
    this.state = 'running';
    let history: SourceHistory;
    try {
      await this.commands.connect();
      history = await this.newest();
    } catch (error) {
      this.markDown(error as Error);
      this.needsFill = true;
      history = { events: [], lastId: 0, floor: 0 };
    }
    this.lastId = history.lastId;
    this.following = this.follow();
    return history;
  }

  health(): SourceHealth {
    return { ok: this.status === 'ok', redis: this.status, lagRows: Math.max(0, this.top - this.lastId) };
  }

  /** A cursor beyond the last id served: the stream holds it when its top reaches it (the follow loop reads it next). */
  async holds(cursor: number): Promise<boolean> {
    const top = await this.topId();
    return top >= cursor;
  }

  /** `XRANGE (after upTo COUNT maxEvents`, atomically with the stream's floor: below it the events are elsewhere. */
  async readPage(after: number, upTo: number, maxEvents: number, maxBytes: number): Promise<PageResult> {
    let bounds: StreamBounds;
    let entries: StreamEntry[];
    try {
      const end = Number.isFinite(upTo) ? entryId(upTo) : '+';
      const results = await this.commands.multi().call('XINFO', 'STREAM', this.options.key).xrange(this.options.key, `(${entryId(after)}`, end, 'COUNT', maxEvents).exec();
      if (!results) return { retryMs: 250 };
      const [[infoError, info], [rangeError, range]] = results;
      if (rangeError) throw rangeError;
      if (infoError && !isNoSuchKey(infoError)) throw infoError;
      bounds = boundsOfInfo(infoError ? null : (info as unknown[]));
      entries = range as StreamEntry[];
      this.markUp();
    } catch (error) {
      this.markDown(error as Error);
      return { retryMs: 250 };
    }
    if (after < bounds.floor) {
      if (!this.options.olderHistory) return { historyGone: bounds.firstId ?? bounds.lastId + 1 };
      try {
        return await this.options.olderHistory(after, Math.min(upTo, bounds.floor), maxEvents);
      } catch (error) {
        this.warn(`reading history older than the stream failed: ${(error as Error).message}`);
        return { retryMs: 1000 };
      }
    }
    // Fix (found by test/edges.test.ts): a stream whose top is below `upTo` lost entries this edge already served
    // (Redis restarted empty, or a failover lost the tail). A short read of it is not the end of the range: taken as
    // complete, it moved the client's cursor to `upTo` and the client silently skipped the lost events. They are read
    // from the origin when there is one, or after the origin has published them again (it does so with their ids).
    const lost = Number.isFinite(upTo) && bounds.lastId < upTo;
    if (lost && entries.length === 0) {
      if (!this.options.olderHistory) return { retryMs: 1000 };
      try {
        return await this.options.olderHistory(after, upTo, maxEvents);
      } catch (error) {
        this.warn(`reading history the stream lost failed: ${(error as Error).message}`);
        return { retryMs: 1000 };
      }
    }
    const events: EncodedEvent[] = [];
    let bytes = 0;
    let taken = 0;
    for (const entry of entries) {
      // A gap marker in the range: the events up to it that the origin did not read are gone for everybody. The
      // origin answers a cursor below its trimmed log with history-gone at once; here the pages before the marker
      // may already have been sent, which changes nothing: the reset tells the client to start over from a snapshot.
      const gone = gapOfEntry(entry);
      if (gone !== undefined) return { historyGone: gone };
      const event = eventOfEntry(entry, this.options.eventName);
      events.push(event);
      taken++;
      bytes += event.bytes;
      if (bytes >= maxBytes) break;
    }
    const complete = !lost && taken === entries.length && entries.length < maxEvents;
    return { events, end: complete ? upTo : events[events.length - 1].id };
  }

  /** A page of the origin's snapshot; an unreachable origin is asked again in a second (the client waits, told nothing). */
  private async snapshotFromOrigin(read: OriginSnapshot, table: string, after: SnapshotPosition | undefined, maxRows: number): Promise<SnapshotResult> {
    try {
      return await read(table, after, maxRows);
    } catch (error) {
      this.warn(`reading a snapshot of ${table} from the origin failed: ${(error as Error).message}`);
      return { retryMs: 1000 };
    }
  }

  /**
   * The newest entries, up to the hub's bounds, and the top from the same read (a later XREAD starts after it).
   * The floor is the first entry's predecessor: older cursors ask readPage, which knows whether they are gone.
   */
  private async newest(): Promise<SourceHistory> {
    const entries = (await this.commands.xrevrange(this.options.key, '+', '-', 'COUNT', Math.max(1, this.bounds.rows))) as StreamEntry[];
    const events: EncodedEvent[] = [];
    let bytes = 0;
    let marker: number | undefined;
    for (const entry of entries.slice(0, this.bounds.rows)) {
      // The ring never reaches back across a gap marker: an older cursor goes to readPage, which meets it.
      if (gapOfEntry(entry) !== undefined) {
        marker = idOfEntry(entry[0]);
        break;
      }
      const event = eventOfEntry(entry, this.options.eventName);
      bytes += event.bytes;
      if (bytes > this.bounds.bytes) break;
      events.push(event);
    }
    events.reverse();
    if (events.length > 0) {
      this.top = idOfEntry(entries[0][0]);
      return { events, lastId: this.top, floor: events[0].id - 1 };
    }
    if (marker !== undefined) {
      this.top = marker;
      return { events: [], lastId: marker, floor: marker };
    }
    // Empty ring: an entry too big for it, or an empty stream; either way start after the stream's top.
    this.top = entries.length > 0 ? idOfEntry(entries[0][0]) : await this.topId();
    return { events: [], lastId: this.top, floor: this.top };
  }

  /** Follows the stream until closed: one blocking read at a time, a fresh connection after any failure. */
  private async follow(): Promise<void> {
    let delay = 0;
    while (this.state === 'running') {
      if (delay > 0) await this.pause(delay);
      if (this.state !== 'running') break;
      try {
        if (this.needsFill) await this.refill();
        const reply = await this.blockingRead();
        delay = 0;
        if (this.state !== 'running') break;
        if (reply) await this.take(reply[0][1]);
        if (!reply || Date.now() - this.lastTopCheck > TOP_CHECK_MS) await this.checkTop();
      } catch (error) {
        if (this.state !== 'running') break;
        this.blocking?.disconnect();
        this.blocking = undefined;
        this.markDown(error as Error);
        delay = Math.min(Math.max(delay * 2, 100), 2000);
      }
    }
  }

  /** XREAD BLOCK after the last id, on the blocking connection, abandoned by the watchdog if it outlives its block. */
  private blockingRead(): Promise<[string, StreamEntry[]][] | null> {
    const connection = (this.blocking ??= this.blockingConnection());
    const { key, blockMs, watchdogMs, pageRows } = this.options;
    const read = connection.xread('COUNT', pageRows, 'BLOCK', blockMs, 'STREAMS', key, entryId(this.lastId)) as Promise<[string, StreamEntry[]][] | null>;
    return new Promise((resolve, reject) => {
      const watchdog = setTimeout(() => {
        this.watchdogResets++;
        this.warn(`a blocking read of ${key} got no answer in ${blockMs + watchdogMs} ms: its connection is replaced (a dead peer, or ioredis #1285)`);
        if (this.blocking === connection) this.blocking = undefined;
        connection.disconnect();
        resolve(null);
      }, blockMs + watchdogMs);
      read.then(
        (reply) => {
          clearTimeout(watchdog);
          resolve(reply);
        },
        (error) => {
          clearTimeout(watchdog);
          reject(error);
        },
      );
    });
  }

  /** No reconnect of its own: a failed connection is dropped and the next read opens a new one. */
  private blockingConnection(): Redis {
    const connection = createRedis(this.options.url, {
      retryStrategy: () => null,
      maxRetriesPerRequest: 0,
      connectTimeout: this.options.blockMs + this.options.watchdogMs,
    });
    // Its failures reach the read that was waiting on it; the event itself needs no handling.
    connection.on('error', () => {});
    return connection;
  }

  /**
   * New entries. An entry far past the last id may follow a hole (a publisher that skipped to the newest maxLen
   * after Redis lost everything): if the stream's floor is past the last id, the entries in between are gone from it,
   * and the hub restarts from the stream so catch-up finds them (origin) or says history-gone, never skips them.
   */
  private async take(entries: StreamEntry[]): Promise<void> {
    if (entries.length === 0) return;
    if (idOfEntry(entries[0][0]) > this.lastId + 1) {
      const bounds = await this.streamBounds();
      if (bounds.floor > this.lastId) {
        this.restartFromStream(`stream ${this.options.key} now starts after id ${bounds.floor}, past the last id served ${this.lastId}`);
        return;
      }
    }
    this.markUp();
    this.lowSince = undefined;
    let events: EncodedEvent[] = [];
    for (const entry of entries) {
      const gone = gapOfEntry(entry);
      if (gone === undefined) {
        events.push(eventOfEntry(entry, this.options.eventName));
        continue;
      }
      // A gap marker: the origin's store trimmed events before they were read. The hub resets its clients as the
      // origin's hub did (history-gone, and on a change stream a fresh snapshot), before the events after it.
      this.handOut(events);
      events = [];
      this.lastId = gone - 1;
      this.top = Math.max(this.top, this.lastId);
      this.sink!.gap(gone);
    }
    this.handOut(events);
  }

  private handOut(events: EncodedEvent[]): void {
    if (events.length === 0) return;
    this.lastId = events[events.length - 1].id;
    this.top = Math.max(this.top, this.lastId);
    this.sink!.publish(events);
  }

  /**
   * Reads the stream's top for `lagRows`, and notices a stream that ends below the last id served (Redis lost data):
   * after `lostGraceMs` without the origin bringing it back, clients ahead are restarted.
   */
  private async checkTop(): Promise<void> {
    this.lastTopCheck = Date.now();
    this.top = await this.topId();
    this.markUp();
    if (this.top >= this.lastId) {
      this.lowSince = undefined;
      return;
    }
    this.lowSince ??= Date.now();
    if (Date.now() - this.lowSince >= this.options.lostGraceMs) {
      this.restartFromStream(`stream ${this.options.key} ends at id ${this.top}, below the last id served ${this.lastId}, for ${this.options.lostGraceMs} ms`);
    }
  }

  /** The ring starts over from the stream (as the table source does for a replaced database file). */
  private restartFromStream(why: string): void {
    this.needsFill = true;
    this.warn(`${why}: clients continue from the stream`);
  }

  /** Fills the ring from the stream again and tells the hub; clients whose cursor is ahead are reset. */
  private async refill(): Promise<void> {
    const history = await this.newest();
    this.needsFill = false;
    this.lowSince = undefined;
    this.lastId = history.lastId;
    this.markUp();
    this.sink!.restart(history);
  }

  /** What the origin wrote beside the stream (`<key>:schema`: the tables' columns), or undefined when unreadable. */
  async readMeta(): Promise<string | undefined> {
    try {
      return (await this.commands.get(`${this.options.key}:schema`)) ?? undefined;
    } catch {
      return undefined;
    }
  }

  private async topId(): Promise<number> {
    const entries = (await this.commands.xrevrange(this.options.key, '+', '-', 'COUNT', 1)) as StreamEntry[];
    if (entries.length > 0) return idOfEntry(entries[0][0]);
    return (await this.streamBounds()).lastId;
  }

  private async streamBounds(): Promise<StreamBounds> {
    try {
      return boundsOfInfo((await this.commands.xinfo('STREAM', this.options.key)) as unknown[]);
    } catch (error) {
      if (isNoSuchKey(error)) return boundsOfInfo(null);
      throw error;
    }
  }

  /** Sleeps `ms`, or less when the source closes. */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  private markDown(error: Error): void {
    if (this.state !== 'running') return;
    // A command that never came back: the connection is dead without knowing it (ioredis does not reconnect then).
    if (/timed out/i.test(error.message) && this.commands.status === 'ready') this.commands.disconnect(true);
    // Fix (found by test/edges.test.ts): the URL as given carries the password (redis://:PASSWORD@host); the start-up
    // line hid it but these lines printed it. Logs get it redacted.
    if (this.status === 'ok') this.warn(`redis ${redactUrl(this.options.url)} is unreachable (${error.message}): serving what the ring holds; following again when it is back`);
    this.status = 'down';
  }

  private markUp(): void {
    if (this.status === 'ok') return;
    // Fix (found by test/edges.test.ts under load): the fresh blocking connection answered while the command
    // connection was still in its reconnect back-off; the next XINFO failed ("Stream isn't writeable") and the same
    // outage was reported a second time. Redis is back when both connections are.
    if (this.commands.status !== 'ready') return;
    this.status = 'ok';
    this.lastWarning = '';
    this.options.log.info(`redis ${redactUrl(this.options.url)} is back: following stream ${this.options.key} after id ${this.lastId}`);
  }

  /** Warn once per distinct message. */
  private warn(message: string): void {
    if (message === this.lastWarning) return;
    this.lastWarning = message;
    this.options.log.warn(message);
  }

  /** Stops following and closes both connections. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    this.state = 'closed';
    this.wake?.();
    // A blocked XREAD would hold quit() for up to blockMs: cut it.
    this.blocking?.disconnect();
    this.blocking = undefined;
    await this.following;
    try {
      await this.commands.quit();
    } catch {
      this.commands.disconnect();
    }
  }
}
