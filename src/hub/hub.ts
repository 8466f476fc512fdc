import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { CatchUpCache, type CatchUpPage } from './catch-up-cache.js';
import type { Client } from './client.js';
import { EncodedEvent, EventBatch } from './encoded-event.js';
import { Ring } from './ring.js';
import type { PageResult, SnapshotPosition, SnapshotResult, Source, SourceHistory, SourceSink } from '../source/source.js';
import { EVERY_EVENT, EVERY_TERM, type View, type ViewIndex } from './view.js';

export interface HubOptions {
  /** Events kept in memory for resuming clients. */
  historyRows: number;
  /** Bytes kept in memory for resuming clients. */
  historyBytes: number;
  /** Events a client without a cursor gets first (from memory). */
  recentRows: number;
  /** One heartbeat timer for all clients. */
  heartbeatMs: number;
  /** A live client with more than this buffered is parked and caught up when it drains. */
  clientBufferBytes: number;
  /** A client that takes nothing for this long is closed. */
  slowClientTimeoutMs: number;
  /** Events per catch-up read. */
  pageRows: number;
  /** Events one connection may be served from the store before its stream is ended (it resumes); 0: no limit. */
  maxCatchUpRows: number;
}

type HubEvents = {
  /** Something an operator should know: the database vanished, was replaced, a read failed. */
  warning: [message: string];
  /** New events are in memory, `seconds` after the notification that announced them. */
  read: [seconds: number, events: number];
  /** One batch was written to every live client in `seconds`. */
  fanout: [seconds: number, clients: number];
};

/** Plain counters, cheap to bump on hot paths; /metrics reads them when scraped. */
export interface HubCounters {
  rowsRead: number;
  replaysFromMemory: number;
  replaysFromDatabase: number;
  rowsFromDatabase: number;
}

/** The hub's own state for one client. */
interface Subscription {
  /** What the client sees. */
  readonly view: View;
  /** The id of the last event considered for the client (written, or left out by its view). */
  cursor: number;
  /** When the client began to hold up a write (0: it is keeping up). */
  stalledSince: number;
  /** Events this connection was served from the store. */
  rowsFromDatabase: number;
  /** A catch-up read is under way (an asynchronous source): the client waits for it. */
  reading: boolean;
  /** The tables a snapshot would cover (change streams): sent at `snapshot=1`, and again when history is gone. */
  snapshotTables: readonly string[];
  /** A snapshot being sent: the client joins the changes after it once every table is sent. */
  snapshot?: SnapshotState;
}

/** Where a client's snapshot stands. */
interface SnapshotState {
  readonly tables: readonly string[];
  /** The table being sent. */
  index: number;
  /** Where the table's next page starts (undefined: at its first row). */
  after: SnapshotPosition | undefined;
  /** Rows of the table sent so far. */
  rows: number;
  /** The change log's sequence number when the first page was read: the changes after it follow the snapshot. */
  seq: number | undefined;
}

/** What a client asks of a change stream's snapshot. */
export interface SnapshotRequest {
  /** The tables a snapshot covers. */
  readonly tables: readonly string[];
  /** Start with a snapshot (a client without a cursor that asked for one). */
  readonly now: boolean;
}

/** Live clients with the same view: each batch is transformed and encoded once for all of them. */
interface Group {
  readonly view: View;
  readonly clients: Map<Client, Subscription>;
  /** The events of the batch being published that pass the view. */
  out: EncodedEvent[];
  /** The publish step that last considered this group, so an event reached through two terms is taken once. */
  stamp: number;
}

/** Groups indexed by the equality terms of their views, for one field. */
interface FieldIndex {
  termsOf: ViewIndex['termsOf'];
  groups: Map<string, Set<Group>>;
}

/** Bytes per write while a client catches up, so a resuming client never holds much more than this. */
const CATCH_UP_CHUNK_BYTES = 256 * 1024;
/** Memory for catch-up pages shared by clients resuming from the same place. */
const CATCH_UP_CACHE_BYTES = 8 * 1024 * 1024;
/** Catch-up steps run until this much of an event-loop turn is used, then yield to live events and sockets. */
const CATCH_UP_TURN_MS = 5;
/**
 * Clients sent a heartbeat in one event-loop turn. A heartbeat costs a write each (≈ 14 µs measured, bench/RESULTS.md
 * "Heartbeat in slices"), so 10,000 clients in one turn held the loop ≈ 140 ms and every row committed meanwhile waited.
 */
export const HEARTBEAT_SLICE = 128;
/**
 * The share of the interval a sweep's slices are spread over. Sent as fast as the loop allows, 10,000 heartbeats
 * still reached the peers within ≈ 150 ms, and rows delivered in that burst waited behind them (p99 76-97 ms against
 * 11-19 ms without heartbeats, bench/RESULTS.md); spread, they are a trickle, and a sweep ends before the next tick.
 */
const HEARTBEAT_SPREAD = 0.5;

/**
 * One hub per stream: it is handed a source, keeps the newest events in a ring, brings resuming clients up to date
 * from the ring or from the source's store, and writes each live batch, encoded once, to every client. It knows
 * clients and nothing of SQLite, Redis or HTTP (DESIGN.md §6).
 */
export class Hub extends EventEmitter<HubEvents> {
  readonly options: Readonly<HubOptions>;
  readonly source: Source;
  private ring: Ring<EncodedEvent>;
  private lastPublished = 0;
  private readonly live = new Map<Client, Subscription>();
  private readonly groups = new Map<string, Group>();
  /** Groups asked about every event: views without an equality index. */
  private readonly scannedGroups = new Set<Group>();
  private readonly index = new Map<string, FieldIndex>();
  private stamp = 0;
  private readonly catchingUp = new Map<Client, Subscription>();
  private state: 'new' | 'running' | 'closed' = 'new';
  private heartbeatTimer: NodeJS.Timeout | undefined;
  /** The clients of the heartbeat sweep under way, as they were when it began; `sweepNext` is the next to visit. */
  private sweep: Client[] = [];
  private sweepNext = 0;
  /** The sweep's one timer: the next slice is due. */
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweepGapMs = 0;
  private readonly heartbeatSliceBound = () => this.heartbeatSlice();
  private closing: Promise<void> | undefined;
  private readonly catchUpCache = new CatchUpCache(CATCH_UP_CACHE_BYTES);
  /** Clients whose next catch-up step is due, served a few at a time (see runCatchUps). */
  private catchUpQueue: Client[] = [];
  private catchUpArmed = false;
  private readonly runCatchUpsBound = () => this.runCatchUps();
  readonly counters: HubCounters = { rowsRead: 0, replaysFromMemory: 0, replaysFromDatabase: 0, rowsFromDatabase: 0 };

  constructor(source: Source, options: HubOptions) {
    super();
    this.source = source;
    this.options = Object.freeze({ ...options });
    this.ring = new Ring(options.historyRows, options.historyBytes, 0);
  }

  /** Starts the source (rejects with its one-line SseError), fills the ring, starts the heartbeat. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error('a hub starts once');
    const sink: SourceSink = {
      publish: (events) => this.publish(events),
      restart: (history) => this.restart(history),
      gap: (oldest) => this.gap(oldest),
      warn: (message) => this.emit('warning', message),
      readLatency: (seconds, events) => this.emit('read', seconds, events),
    };
    // Running before the source starts: it may publish rows committed while its watch was being set up.
    this.state = 'running';
    try {
      this.loadRing(await this.source.start(sink, { rows: this.options.historyRows, bytes: this.options.historyBytes }));
    } catch (error) {
      this.state = 'closed';
      await this.source.close();
      throw error;
    }
    this.heartbeatTimer = setInterval(() => this.heartbeat(), this.options.heartbeatMs);
  }

  /** The highest id published. */
  get lastId(): number {
    return this.lastPublished;
  }

  get clientCount(): number {
    return this.live.size + this.catchingUp.size;
  }

  /** Read-only figures for /healthz: the hub's and the source's. */
  stats() {
    const { ok, ...store } = this.source.health();
    return {
      ok,
      clients: this.clientCount,
      /** Clients still being brought up to date (from memory or the store) before they join the live stream. */
      catchingUp: this.catchingUp.size,
      lastId: this.lastPublished,
      ...store,
      ringRows: this.ring.size,
      ringBytes: this.ring.bytes,
      ringOldestId: this.ring.oldestId ?? null,
    };
  }

  /**
   * Start streaming to `client`: every event after `cursor` exactly once and in id order, then live events.
   * Without a cursor, the newest `recentRows` events in memory, then live events.
   */
  attach(client: Client, cursor?: number, view: View = EVERY_EVENT, snapshot?: SnapshotRequest): void {
    if (this.state !== 'running') {
      client.close('shutdown');
      return;
    }
    const snapshotTables = this.source.snapshot ? (snapshot?.tables ?? []) : [];
    // Clients of one group hold the group's view, not each its own copy of equal compiled filters (about 2 KiB each,
    // measured by the bench's --filter same).
    view = this.groups.get(view.key)?.view ?? view;
    const subscription: Subscription = { view, cursor: 0, stalledSince: 0, rowsFromDatabase: 0, reading: false, snapshotTables };
    if (cursor === undefined && snapshot?.now && snapshotTables.length > 0) {
      subscription.snapshot = newSnapshot(snapshotTables);
    } else if (cursor === undefined) {
      subscription.cursor = this.ring.cursorBeforeNewest(this.options.recentRows, this.lastPublished);
    } else if (cursor > this.lastPublished) {
      this.attachAhead(client, subscription, cursor);
      return;
    } else {
      subscription.cursor = cursor;
      if (this.ring.covers(cursor)) this.counters.replaysFromMemory++;
      else this.counters.replaysFromDatabase++;
    }
    this.catchingUp.set(client, subscription);
    this.scheduleCatchUp(client);
  }

  /** Forget a client whose stream ended. Safe to call more than once. */
  detach(client: Client): void {
    this.leaveLive(client);
    this.catchingUp.delete(client);
  }

  /** Into the live set and its view's group (made on first use, and indexed by its view's terms). */
  private enterLive(client: Client, subscription: Subscription): void {
    this.live.set(client, subscription);
    let group = this.groups.get(subscription.view.key);
    if (!group) {
      group = { view: subscription.view, clients: new Map(), out: [], stamp: 0 };
      this.groups.set(subscription.view.key, group);
      this.indexGroup(group, true);
    }
    group.clients.set(client, subscription);
  }

  private leaveLive(client: Client): void {
    const subscription = this.live.get(client);
    if (!subscription) return;
    this.live.delete(client);
    const group = this.groups.get(subscription.view.key)!;
    group.clients.delete(client);
    if (group.clients.size > 0) return;
    this.groups.delete(subscription.view.key);
    this.indexGroup(group, false);
  }

  private indexGroup(group: Group, add: boolean): void {
    const index = group.view.index;
    if (!index) {
      if (add) this.scannedGroups.add(group);
      else this.scannedGroups.delete(group);
      return;
    }
    let field = this.index.get(index.field);
    if (!field) {
      if (!add) return;
      field = { termsOf: index.termsOf, groups: new Map() };
      this.index.set(index.field, field);
    }
    for (const term of index.terms) {
      let groups = field.groups.get(term);
      if (add) {
        if (!groups) field.groups.set(term, (groups = new Set()));
        groups.add(group);
      } else if (groups) {
        groups.delete(group);
        if (groups.size === 0) field.groups.delete(term);
      }
    }
    if (field.groups.size === 0) this.index.delete(index.field);
  }

  /**
   * A cursor beyond the last id published: either the source has not read the newest events yet (its store holds
   * that id), or the store was replaced by one that ends before it; then the client is told to restart from the
   * last id, so no event that comes next is skipped.
   */
  private attachAhead(client: Client, subscription: Subscription, cursor: number): void {
    const join = (storeHoldsCursor: boolean): void => {
      if (this.state !== 'running') return;
      // Fix (found by test/edges.test.ts): the wait for a remote store's answer below set `reading`, and nothing
      // cleared it. The client joined the live set with it still set, so once it was moved back to catching up (an
      // edge refilling its ring when Redis came back, or a slow client parked) catchUp() took it for a read under way
      // and never served it again: it got heartbeats and no rows, for good.
      subscription.reading = false;
      if (storeHoldsCursor) {
        // The events up to `cursor` are on their way; publish() skips what this client already has.
        subscription.cursor = cursor;
      } else {
        client.sendControl('reset', { reason: 'cursor-ahead', id: this.lastPublished, lastEventId: cursor, lastId: this.lastPublished });
        subscription.cursor = this.lastPublished;
      }
      this.enterLive(client, subscription);
    };
    const holds = this.source.holds(cursor);
    if (typeof holds === 'boolean') {
      join(holds);
      return;
    }
    // Asked of a remote store: the client waits, counted among those catching up, until the answer comes.
    subscription.reading = true;
    this.catchingUp.set(client, subscription);
    holds.then(
      (answer) => {
        if (this.catchingUp.delete(client)) join(answer);
      },
      () => {
        if (this.catchingUp.delete(client)) join(true);
      },
    );
  }

  /**
   * One step of bringing a client up to date, from the ring or, for an older cursor, from the source's store in
   * bounded pages. Each step waits for the client to drain, so a slow reader holds at most one chunk.
   * The last step and the move into the live set happen in one synchronous step: no gap, no duplicate.
   */
  private catchUp(client: Client): void {
    const subscription = this.catchingUp.get(client);
    if (!subscription || subscription.reading || this.state !== 'running') return;
    subscription.stalledSince = 0;
    if (subscription.snapshot) {
      if (this.snapshotStep(client, subscription)) this.waitForDrain(client, subscription);
      return;
    }
    if (this.ring.covers(subscription.cursor)) {
      const events = this.ring.after(subscription.cursor, this.options.pageRows, CATCH_UP_CHUNK_BYTES);
      if (events.length > 0) {
        const seen = applyView(subscription.view, events);
        if (seen.length > 0) client.send(new EventBatch(seen));
        subscription.cursor = events[events.length - 1].id;
      }
      if (subscription.cursor >= this.lastPublished) {
        this.catchingUp.delete(client);
        this.enterLive(client, subscription);
        return;
      }
    } else if (!this.catchUpFromStore(client, subscription)) {
      return;
    }
    this.waitForDrain(client, subscription);
  }

  /** Sends the next page of events between the client's cursor and the ring. False when it must go on later. */
  private catchUpFromStore(client: Client, subscription: Subscription): boolean {
    const limit = this.options.maxCatchUpRows;
    if (limit > 0 && subscription.rowsFromDatabase >= limit) {
      // Bounds the work one request can cause; the client resumes from its cursor and goes on.
      this.detach(client);
      client.close('catch-up-limit');
      return false;
    }
    const after = subscription.cursor;
    const cached = this.catchUpCache.get(cacheKey(subscription.view, after));
    if (cached) {
      this.sendPage(client, subscription, cached);
      return true;
    }
    const upTo = this.ring.floor;
    const result = this.source.readPage(after, upTo, this.options.pageRows, CATCH_UP_CHUNK_BYTES, subscription.view.storeFilter);
    if (!(result instanceof Promise)) return this.takePage(client, subscription, after, upTo, result);
    subscription.reading = true;
    result.then(
      (page) => this.pageArrived(client, subscription, after, upTo, page),
      () => this.pageArrived(client, subscription, after, upTo, { retryMs: 250 }),
    );
    return false;
  }

  /** A page from an asynchronous source: the client goes on from where it waited, if it is still here. */
  private pageArrived(client: Client, subscription: Subscription, after: number, upTo: number, result: PageResult): void {
    subscription.reading = false;
    if (this.state !== 'running' || this.catchingUp.get(client) !== subscription) return;
    // The ring may have moved on or been reset while the page was read: ask again from the same cursor.
    if (upTo !== this.ring.floor || subscription.cursor !== after) {
      this.scheduleCatchUp(client);
      return;
    }
    if (this.takePage(client, subscription, after, upTo, result)) this.waitForDrain(client, subscription);
  }

  /** Caches and sends a page read from the store; a source that could not read is asked again later. */
  private takePage(client: Client, subscription: Subscription, after: number, upTo: number, result: PageResult): boolean {
    if ('retryMs' in result) {
      setTimeout(() => this.scheduleCatchUp(client), result.retryMs);
      return false;
    }
    if ('historyGone' in result) {
      this.historyGone(client, subscription, result.historyGone);
      return false;
    }
    const events = applyView(subscription.view, result.events);
    const page: CatchUpPage = { events, end: result.end, bytes: events.reduce((sum, event) => sum + event.bytes, 0) };
    this.counters.rowsFromDatabase += events.length;
    if (upTo === this.ring.floor) this.catchUpCache.set(cacheKey(subscription.view, after), page);
    this.sendPage(client, subscription, page);
    return true;
  }

  /**
   * The store no longer holds the events after the client's cursor (trimmed): the client is told, never silently left
   * with a gap, and continues from the oldest event still held.
   */
  private historyGone(client: Client, subscription: Subscription, oldest: number): void {
    if (subscription.snapshotTables.length > 0) {
      // A change stream: a fresh snapshot of the client's tables, then the changes after it, never a gap.
      client.sendControl('reset', { reason: 'history-gone', lastEventId: subscription.cursor, oldestSeq: oldest });
      subscription.snapshot = newSnapshot(subscription.snapshotTables);
      this.scheduleCatchUp(client);
      return;
    }
    const restartId = oldest - 1;
    client.sendControl('reset', { reason: 'history-gone', id: restartId, lastEventId: subscription.cursor, oldestSeq: oldest });
    subscription.cursor = restartId;
    this.scheduleCatchUp(client);
  }

  /**
   * One page of a snapshot: a table's current rows through the client's view, without ids (a client cut off here
   * starts over), then `snapshot-end` after each table; the last one carries `id:` the log's sequence number, from
   * which the client continues with changes. Not counted against --max-catchup-rows: a snapshot is bounded by the
   * tables' size, sent a page at a time as the client drains, and ended by --slow-client-timeout for a stalled one.
   */
  private snapshotStep(client: Client, subscription: Subscription): boolean {
    const state = subscription.snapshot!;
    const table = state.tables[state.index];
    const result = this.source.snapshot!(table, state.after, this.options.pageRows, CATCH_UP_CHUNK_BYTES);
    if (!(result instanceof Promise)) return this.takeSnapshotPage(client, subscription, result);
    subscription.reading = true;
    result.then(
      (page) => this.snapshotPageArrived(client, subscription, page),
      () => this.snapshotPageArrived(client, subscription, { retryMs: 250 }),
    );
    return false;
  }

  private snapshotPageArrived(client: Client, subscription: Subscription, result: SnapshotResult): void {
    subscription.reading = false;
    if (this.state !== 'running' || this.catchingUp.get(client) !== subscription) return;
    if (this.takeSnapshotPage(client, subscription, result)) this.waitForDrain(client, subscription);
  }

  private takeSnapshotPage(client: Client, subscription: Subscription, result: SnapshotResult): boolean {
    if ('retryMs' in result) {
      setTimeout(() => this.scheduleCatchUp(client), result.retryMs);
      return false;
    }
    const state = subscription.snapshot!;
    state.seq ??= result.seq;
    const events = applyView(subscription.view, result.events);
    if (events.length > 0) client.send(new EventBatch(events));
    state.rows += events.length;
    state.after = result.next;
    if (result.next !== undefined) return true;
    const last = state.index === state.tables.length - 1;
    client.sendControl('snapshot-end', { id: last ? state.seq : undefined, table: state.tables[state.index], rows: state.rows, seq: state.seq });
    state.index++;
    state.after = undefined;
    state.rows = 0;
    if (last) {
      subscription.snapshot = undefined;
      subscription.cursor = state.seq;
    }
    return true;
  }

  private sendPage(client: Client, subscription: Subscription, page: CatchUpPage): void {
    const limit = this.options.maxCatchUpRows;
    let events = page.events;
    let end = page.end;
    // No more than what is left of the connection's budget, so it never reads past --max-catchup-rows.
    if (limit > 0 && events.length > limit - subscription.rowsFromDatabase) {
      events = events.slice(0, limit - subscription.rowsFromDatabase);
      end = events[events.length - 1].id;
    }
    subscription.rowsFromDatabase += events.length;
    if (events.length > 0) client.send(new EventBatch(events));
    subscription.cursor = end;
  }

  private waitForDrain(client: Client, subscription: Subscription): void {
    subscription.stalledSince = Date.now();
    client.whenDrained(() => this.scheduleCatchUp(client));
  }

  private scheduleCatchUp(client: Client): void {
    this.catchUpQueue.push(client);
    if (!this.catchUpArmed) {
      this.catchUpArmed = true;
      setImmediate(this.runCatchUpsBound);
    }
  }

  /**
   * Runs due catch-up steps for at most CATCH_UP_TURN_MS, then yields: when a hundred parked clients drain at once,
   * their pages are not all read in one turn of the event loop.
   */
  private runCatchUps(): void {
    this.catchUpArmed = false;
    const deadline = performance.now() + CATCH_UP_TURN_MS;
    let done = 0;
    while (done < this.catchUpQueue.length) {
      this.catchUp(this.catchUpQueue[done++]);
      if (performance.now() > deadline) break;
    }
    this.catchUpQueue = this.catchUpQueue.slice(done);
    if (this.catchUpQueue.length > 0) {
      this.catchUpArmed = true;
      setImmediate(this.runCatchUpsBound);
    }
  }

  /**
   * The source's store was replaced by one whose history ends below what was published. Later events reuse ids
   * clients have seen, so every client whose cursor is ahead is told to restart from the new end, and nothing after
   * it is skipped.
   */
  private restart(history: SourceHistory): void {
    // A live client is at the last id published, whatever its view left out (see publish).
    for (const subscription of this.live.values()) subscription.cursor = Math.max(subscription.cursor, this.lastPublished);
    this.loadRing(history);
    this.catchUpCache.clear();
    const restartId = history.lastId;
    for (const map of [this.live, this.catchingUp]) {
      for (const [client, subscription] of map) {
        if (subscription.cursor > restartId) {
          client.sendControl('reset', { reason: 'cursor-ahead', id: restartId, lastEventId: subscription.cursor, lastId: restartId });
          subscription.cursor = restartId;
        }
      }
    }
    // Events published since the store's end was read are already in the ring: live clients behind them catch up.
    for (const [client, subscription] of this.live) {
      if (subscription.cursor >= this.lastPublished) continue;
      this.leaveLive(client);
      this.catchingUp.set(client, subscription);
      this.scheduleCatchUp(client);
    }
  }

  /**
   * The store trimmed events before the live read reached them (a transaction changed more rows than the change log
   * keeps, or the read fell that far behind). Found by test/changes.test.ts: live clients were silently left without
   * those changes. Now the ring starts again below `oldest`, and every live client, being behind the gap, gets the
   * history-gone reset (and on a change stream a fresh snapshot), as a resuming client with such a cursor does.
   * Clients still catching up meet the gap in their own next step (the ring no longer covers their cursor).
   */
  private gap(oldest: number): void {
    this.emit('warning', `the change log was trimmed past changes not yet read (oldest now ${oldest}, last read ${this.lastPublished}): clients get a history-gone reset; raise track --keep above the changes one transaction makes`);
    this.ring.reset(oldest - 1);
    this.catchUpCache.clear();
    for (const [client, subscription] of [...this.live]) {
      subscription.cursor = Math.max(subscription.cursor, this.lastPublished);
      // A cursor at or past the gap lost nothing: a snapshot taken from the store's sequence number after the trim
      // (on an edge, from the origin while the edge's stream was behind it) already holds what the gap dropped.
      if (subscription.cursor >= oldest - 1) continue;
      this.leaveLive(client);
      this.catchingUp.set(client, subscription);
      this.historyGone(client, subscription, oldest);
    }
  }

  /** A new ring holding the source's newest events; the ring's own byte bound evicts the oldest if they take more. */
  private loadRing(history: SourceHistory): void {
    this.lastPublished = history.lastId;
    this.ring = new Ring(this.options.historyRows, this.options.historyBytes, history.floor);
    for (const event of history.events) this.ring.push(event);
  }

  /**
   * Events read once, serialized once, kept in the ring, and fanned out by group: each group that an event concerns
   * (found through the index of equality terms, or asked because its view has none) transforms the batch once, and
   * the same bytes go to every client of the group. A group the batch does not concern costs nothing: its clients'
   * cursors are taken to be the last id published (see restart).
   */
  private publish(events: EncodedEvent[]): void {
    if (events.length === 0 || this.state !== 'running') return;
    for (const event of events) this.ring.push(event);
    this.counters.rowsRead += events.length;
    const all = new EventBatch(events);
    this.lastPublished = all.lastId;
    const started = performance.now();
    const touched: Group[] = [];
    for (const event of events) {
      const stamp = ++this.stamp;
      for (const group of this.scannedGroups) this.consider(group, event, stamp, touched);
      for (const field of this.index.values()) {
        for (const term of field.termsOf(event)) {
          if (term === EVERY_TERM) {
            for (const groups of field.groups.values()) for (const group of groups) this.consider(group, event, stamp, touched);
            continue;
          }
          const groups = field.groups.get(term);
          if (groups) for (const group of groups) this.consider(group, event, stamp, touched);
        }
      }
    }
    for (const group of touched) {
      const batch = group.view === EVERY_EVENT ? all : new EventBatch(group.out);
      group.out = [];
      this.sendToGroup(group, batch, all.lastId);
    }
    this.emit('fanout', (performance.now() - started) / 1000, this.live.size);
  }

  private consider(group: Group, event: EncodedEvent, stamp: number, touched: Group[]): void {
    if (group.stamp === stamp) return;
    group.stamp = stamp;
    const seen = group.view.apply(event);
    if (seen === undefined) return;
    if (group.out.length === 0) touched.push(group);
    group.out.push(seen);
  }

  private sendToGroup(group: Group, batch: EventBatch, lastId: number): void {
    const budget = this.options.clientBufferBytes;
    for (const [client, subscription] of group.clients) {
      if (subscription.cursor >= batch.lastId) continue;
      client.send(subscription.cursor >= batch.firstId ? batch.after(subscription.cursor) : batch);
      subscription.cursor = lastId;
      if (client.bufferedBytes > budget) this.fellBehind(client, subscription);
    }
  }

  /**
   * A client over its budget is either closed (it resumes with its cursor) or parked: it leaves the live set and is
   * caught up from the ring or the store once it drains. Either way the server holds no more for it.
   */
  private fellBehind(client: Client, subscription: Subscription): void {
    this.leaveLive(client);
    if (client.lagPolicy === 'close') {
      client.close('too-slow');
      return;
    }
    this.catchingUp.set(client, subscription);
    this.waitForDrain(client, subscription);
  }

  /**
   * One timer for every client: a heartbeat comment (a ping on WebSocket), and the end of clients that took nothing for
   * too long. A sweep visits the clients HEARTBEAT_SLICE at a time, its slices spread over the first half of the
   * interval (one timer at a time, never one per client), so rows and sockets are served between slices and the peers
   * get no burst; it ends before the next tick, so every client still gets one each interval. Clients written to
   * recently are not skipped: on WebSocket the ping is what finds a dead peer (data written to one only sits in the
   * kernel), and the writes saved would be one per client per interval.
   */
  private heartbeat(): void {
    // A sweep still under way (a loop too busy for the interval) finishes first: starting over would starve its tail.
    if (this.sweepTimer) return;
    this.sweep = [...this.live.keys(), ...this.catchingUp.keys()];
    this.sweepNext = 0;
    const slices = Math.ceil(this.sweep.length / HEARTBEAT_SLICE);
    this.sweepGapMs = slices > 1 ? (this.options.heartbeatMs * HEARTBEAT_SPREAD) / (slices - 1) : 0;
    this.heartbeatSlice();
  }

  private heartbeatSlice(): void {
    this.sweepTimer = undefined;
    if (this.state !== 'running') return;
    const now = Date.now();
    const end = Math.min(this.sweepNext + HEARTBEAT_SLICE, this.sweep.length);
    while (this.sweepNext < end) this.beat(this.sweep[this.sweepNext++], now);
    if (end < this.sweep.length) this.sweepTimer = setTimeout(this.heartbeatSliceBound, this.sweepGapMs);
    else this.sweep = [];
  }

  /** One client of the sweep, as it is now: it may have moved between live and catching up, or left, since it began. */
  private beat(client: Client, now: number): void {
    if (this.live.has(client)) {
      client.sendHeartbeat();
      return;
    }
    const subscription = this.catchingUp.get(client);
    if (!subscription) return;
    if (subscription.stalledSince && now - subscription.stalledSince > this.options.slowClientTimeoutMs) {
      client.close('too-slow');
      this.detach(client);
    } else {
      client.sendHeartbeat();
    }
  }

  /** Ends every stream, stops the heartbeat and the source. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    this.state = 'closed';
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.sweepTimer);
    this.sweepTimer = undefined;
    this.sweep = [];
    for (const map of [this.live, this.catchingUp]) {
      for (const client of map.keys()) client.close('shutdown');
      map.clear();
    }
    this.groups.clear();
    this.scannedGroups.clear();
    this.index.clear();
    await this.source.close();
  }
}

/** The events a view sends, each in the form it sends it. */
function applyView(view: View, events: readonly EncodedEvent[]): EncodedEvent[] {
  if (view === EVERY_EVENT) return events as EncodedEvent[];
  const out: EncodedEvent[] = [];
  for (const event of events) {
    const seen = view.apply(event);
    if (seen !== undefined) out.push(seen);
  }
  return out;
}

function cacheKey(view: View, after: number): string {
  return view.key + '\u0000' + after;
}

function newSnapshot(tables: readonly string[]): SnapshotState {
  return { tables, index: 0, after: undefined, rows: 0, seq: undefined };
}
