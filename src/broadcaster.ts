import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { CatchUpCache, type CatchUpPage } from './catch-up-cache.js';
import type { Client } from './client.js';
import { EncodedRow, RowBatch } from './encoded-row.js';
import { ErrorCodes, type SseError } from './errors.js';
import { ReadLoop, type PassOutcome } from './read-loop.js';
import { Ring } from './ring.js';
import { isBusyError, TableReader, type Row, type RowPage, type TableInfo } from './table-reader.js';
import { DatabaseWatcher, type WatcherBackend } from './watcher.js';

export interface BroadcasterOptions {
  /** SQLite database file. */
  path: string;
  /** Table whose rows are streamed. */
  table: string;
  /** Column that orders rows; default: the table's INTEGER PRIMARY KEY. */
  idColumn?: string;
  /** SSE event name of row events; default none, so `onmessage` fires. */
  event?: string;
  /** Rows kept in memory for resuming clients. */
  historyRows: number;
  /** Bytes kept in memory for resuming clients. */
  historyBytes: number;
  /** Rows a client without a cursor gets first (from memory). */
  recentRows: number;
  /** One heartbeat timer for all clients. */
  heartbeatMs: number;
  /** A live client with more than this buffered is parked and caught up when it drains. */
  clientBufferBytes: number;
  /** A client that takes nothing for this long is closed. */
  slowClientTimeoutMs: number;
  /** Rows per database read. */
  pageRows: number;
  /** Rows one connection may be served from the database before its stream is ended (it resumes); 0: no limit. */
  maxCatchUpRows: number;
  /** What rings the doorbell: fs.watch (`native`) or chokidar's raw events. */
  watcher: WatcherBackend;
}

export type DatabaseState = 'ok' | 'missing' | 'error';

type BroadcasterEvents = {
  /** Something an operator should know: the database vanished, was replaced, a read failed. */
  warning: [message: string];
  /** New rows are in memory, `seconds` after the doorbell that announced them. */
  read: [seconds: number, rows: number];
  /** One batch was written to every live client in `seconds`. */
  fanout: [seconds: number, clients: number];
};

/** Plain counters, cheap to bump on hot paths; /metrics reads them when scraped. */
export interface BroadcasterCounters {
  rowsRead: number;
  replaysFromMemory: number;
  replaysFromDatabase: number;
  rowsFromDatabase: number;
}

/** The broadcaster's own state for one client. */
interface Subscription {
  /** The id of the last row written to the client. */
  cursor: number;
  /** When the client began to hold up a write (0: it is keeping up). */
  stalledSince: number;
  /** Rows this connection was served from the database. */
  rowsFromDatabase: number;
}

/** Bytes per write while a client catches up, so a resuming client never holds much more than this. */
const CATCH_UP_CHUNK_BYTES = 256 * 1024;
/** A page of rows read live is cut at this many bytes, so huge rows do not make huge pages. */
const PAGE_BYTES = 1024 * 1024;
/** Memory for catch-up pages shared by clients resuming from the same place. */
const CATCH_UP_CACHE_BYTES = 8 * 1024 * 1024;
/** Catch-up steps run until this much of an event-loop turn is used, then yield to live rows and sockets. */
const CATCH_UP_TURN_MS = 5;

/**
 * One broadcaster per database: it watches the database's files, reads the rows after the highest id it has seen
 * once, keeps recent rows in a ring, and writes the same frames to every client.
 */
export class Broadcaster extends EventEmitter<BroadcasterEvents> {
  readonly options: Readonly<BroadcasterOptions>;
  /** Open while rows flow; closed after about a second without commits (see releaseIfIdle). */
  private reader: TableReader | undefined;
  private info: TableInfo | undefined;
  private journalMode: string | undefined;
  private readonly watcher: DatabaseWatcher;
  private ring: Ring<EncodedRow>;
  private lastIdRead = 0;
  private readonly live = new Map<Client, Subscription>();
  private readonly catchingUp = new Map<Client, Subscription>();
  private state: 'new' | 'running' | 'closed' = 'new';
  private databaseStatus: DatabaseState = 'ok';
  /** The database went missing or could not be opened since the last good read: what comes back is new. */
  private databaseWasGone = false;
  private lastWarning = '';
  private readonly readLoop = new ReadLoop(
    (firstAfterDoorbell) => this.readOnce(firstAfterDoorbell),
    () => this.releaseIfIdle(),
  );
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;
  private readonly catchUpCache = new CatchUpCache(CATCH_UP_CACHE_BYTES);
  /** Clients whose next catch-up step is due, served a few at a time (see runCatchUps). */
  private catchUpQueue: Client[] = [];
  private catchUpArmed = false;
  private readonly runCatchUpsBound = () => this.runCatchUps();
  readonly counters: BroadcasterCounters = { rowsRead: 0, replaysFromMemory: 0, replaysFromDatabase: 0, rowsFromDatabase: 0 };

  constructor(options: BroadcasterOptions) {
    super();
    this.options = Object.freeze({ ...options });
    this.watcher = new DatabaseWatcher(options.path, options.watcher);
    this.ring = new Ring(options.historyRows, options.historyBytes, 0);
  }

  /** Opens the database (throws SseError with a one-line message), fills the ring, starts watching. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error('a broadcaster starts once');
    await this.openAtStart();
    this.watcher.on('doorbell', () => this.doorbell());
    this.watcher.on('error', (error) => this.warn(`watching ${this.watcher.directory} failed: ${error.message}`));
    await this.watcher.start();
    this.state = 'running';
    this.heartbeatTimer = setInterval(() => this.heartbeat(), this.options.heartbeatMs);
    // Rows committed while the watch was being set up rang no doorbell.
    this.doorbell();
  }

  /** Reads the table's end and fills the ring; a writer's lock is waited out (up to 30 s) without blocking. */
  private async openAtStart(): Promise<void> {
    const deadline = Date.now() + 30000;
    for (let delay = 5; ; delay = Math.min(delay * 2, 250)) {
      try {
        this.reader = this.openReader();
        this.loadRing(this.reader, this.reader.maxId());
        return;
      } catch (error) {
        this.reader?.close();
        this.reader = undefined;
        if (!isBusyError(error) || Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  /** The highest id read and sent. */
  get lastId(): number {
    return this.lastIdRead;
  }

  get clientCount(): number {
    return this.live.size + this.catchingUp.size;
  }

  get tableInfo(): TableInfo | undefined {
    return this.info;
  }

  /** Read-only figures for /healthz. */
  stats() {
    const journalMode = this.journalMode;
    return {
      clients: this.clientCount,
      lastId: this.lastIdRead,
      database: this.databaseStatus,
      journalMode,
      ringRows: this.ring.size,
      ringBytes: this.ring.bytes,
      ringOldestId: this.ring.oldestId ?? null,
    };
  }

  /**
   * Start streaming to `client`: every row after `cursor` exactly once and in id order, then live rows.
   * Without a cursor, the newest `recentRows` rows in memory, then live rows.
   */
  attach(client: Client, cursor?: number): void {
    if (this.state !== 'running') {
      client.close('shutdown');
      return;
    }
    const subscription: Subscription = { cursor: 0, stalledSince: 0, rowsFromDatabase: 0 };
    if (cursor === undefined) {
      subscription.cursor = this.ring.cursorBeforeNewest(this.options.recentRows, this.lastIdRead);
    } else if (cursor > this.lastIdRead) {
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
    this.live.delete(client);
    this.catchingUp.delete(client);
  }

  /**
   * A cursor beyond the last id read: either this broadcaster has not read the newest commit yet (the table has
   * that id), or the database was replaced by one with fewer rows; then the client is told to restart from
   * the last id, so no row that comes next is skipped.
   */
  private attachAhead(client: Client, subscription: Subscription, cursor: number): void {
    let tableHasCursor: boolean;
    try {
      const reader = this.currentReader();
      tableHasCursor = reader !== undefined && reader.maxId() >= cursor;
    } catch {
      // Locked this instant: a cursor from this table is far likelier than a replaced file; wait for the rows.
      tableHasCursor = true;
    }
    this.releaseIfIdle();
    if (tableHasCursor) {
      // The rows up to `cursor` are on their way (read them now); publish() skips what this client already has.
      subscription.cursor = cursor;
      this.doorbell();
    } else {
      client.sendReset(this.lastIdRead, cursor);
      subscription.cursor = this.lastIdRead;
    }
    this.live.set(client, subscription);
  }

  /**
   * One step of bringing a client up to date, from the ring or, for an older cursor, from the database in
   * bounded pages. Each step waits for the client to drain, so a slow reader holds at most one chunk.
   * The last step and the move into the live set happen in one synchronous step: no gap, no duplicate.
   */
  private catchUp(client: Client): void {
    const subscription = this.catchingUp.get(client);
    if (!subscription || this.state !== 'running') return;
    subscription.stalledSince = 0;
    if (this.ring.covers(subscription.cursor)) {
      const rows = this.ring.after(subscription.cursor, this.options.pageRows, CATCH_UP_CHUNK_BYTES);
      if (rows.length > 0) {
        client.send(new RowBatch(rows));
        subscription.cursor = rows[rows.length - 1].id;
      }
      if (subscription.cursor >= this.lastIdRead) {
        this.catchingUp.delete(client);
        this.live.set(client, subscription);
        return;
      }
    } else if (!this.catchUpFromDatabase(client, subscription)) {
      return;
    }
    this.waitForDrain(client, subscription);
  }

  /** Sends the next page of rows between the client's cursor and the ring. False when it must retry later. */
  private catchUpFromDatabase(client: Client, subscription: Subscription): boolean {
    const limit = this.options.maxCatchUpRows;
    if (limit > 0 && subscription.rowsFromDatabase >= limit) {
      // Bounds the work one request can cause; the client resumes from its cursor and goes on.
      this.detach(client);
      client.close('catch-up-limit');
      return false;
    }
    let page: CatchUpPage;
    try {
      page = this.catchUpPage(subscription.cursor);
    } catch (error) {
      // Locked or vanished: try again shortly; the client keeps its place.
      if (!isBusyError(error)) this.warn(`catching a client up failed: ${(error as Error).message}`);
      setTimeout(() => this.scheduleCatchUp(client), isBusyError(error) ? 5 : 250);
      return false;
    }
    let rows = page.rows;
    let end = page.end;
    // No more than what is left of the connection's budget, so it never reads past --max-catchup-rows.
    if (limit > 0 && rows.length > limit - subscription.rowsFromDatabase) {
      rows = rows.slice(0, limit - subscription.rowsFromDatabase);
      end = rows[rows.length - 1].id;
    }
    subscription.rowsFromDatabase += rows.length;
    if (rows.length > 0) client.send(new RowBatch(rows));
    subscription.cursor = end;
    return true;
  }

  /** The rows after `after` and below the ring, read and serialized once for every client that needs them. */
  private catchUpPage(after: number): CatchUpPage {
    const cached = this.catchUpCache.get(after);
    if (cached) return cached;
    const reader = this.currentReader();
    if (!reader) throw new Error('database not open');
    const upTo = this.ring.floor;
    const read = reader.rowsBetween(after, upTo, this.options.pageRows, CATCH_UP_CHUNK_BYTES);
    this.releaseIfIdle();
    const encoded = read.rows.map((row) => this.encode(row));
    this.counters.rowsFromDatabase += encoded.length;
    const complete = encoded.length < this.options.pageRows && !read.cut;
    const page = {
      rows: encoded,
      end: complete ? upTo : encoded[encoded.length - 1].id,
      bytes: encoded.reduce((sum, row) => sum + row.bytes, 0),
    };
    this.catchUpCache.set(after, page);
    return page;
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
   * their database pages are not all read in one turn of the event loop.
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

  /** A file event (or anything that may have left rows unread): read soon. */
  private doorbell(): void {
    if (this.state === 'running') this.readLoop.ring();
  }

  /** One read of the rows after the last id, one page, published at once; the read loop decides what comes next. */
  private readOnce(firstAfterDoorbell: boolean): PassOutcome {
    if (this.state !== 'running') return 'wait';
    let page: RowPage;
    try {
      // Whether the file was replaced is asked once per doorbell, not on every look that follows it.
      const reader = this.currentReader(firstAfterDoorbell);
      if (!reader) return 'wait';
      page = reader.rowsAfter(this.lastIdRead, this.options.pageRows, PAGE_BYTES);
      // A doorbell that brought no row may mean the file was overwritten in place by an older copy. Inside this
      // try: its MAX(id) query can meet a writer's lock too (found by test/chaos.test.ts: an uncaught SQLITE_BUSY).
      if (page.rows.length === 0 && firstAfterDoorbell && !this.checkTableEnd(reader)) return 'wait';
    } catch (error) {
      if (isBusyError(error)) return 'busy';
      this.setDatabaseStatus('error', `reading ${this.options.path} failed: ${(error as Error).message}; will reopen it at the next change`);
      this.reader?.close();
      this.reader = undefined;
      return 'wait';
    }
    this.setDatabaseStatus('ok');
    if (page.rows.length === 0) return 'nothing';
    const encoded = page.rows.map((row) => this.encode(row));
    this.counters.rowsRead += encoded.length;
    const latency = this.readLoop.takeLatency();
    if (latency !== undefined) this.emit('read', latency, encoded.length);
    this.publish(encoded);
    return encoded.length === this.options.pageRows || page.cut ? 'more' : 'rows';
  }

  /** The open reader, reopening the database when its file was replaced (checked unless `checkFile` is false) or came back. */
  private currentReader(checkFile = true): TableReader | undefined {
    if (this.reader && !checkFile) return this.reader;
    if (this.reader) {
      const file = this.reader.fileState();
      if (file === 'same') return this.reader;
      this.reader.close();
      this.reader = undefined;
      this.catchUpCache.clear();
      if (file === 'missing') {
        this.databaseWasGone = true;
        this.setDatabaseStatus('missing', `database ${this.options.path} disappeared; streams stay open and resume when it is back`);
        return undefined;
      }
    }
    try {
      this.reader = this.openReader();
      return this.checkTableEnd(this.reader) ? this.reader : undefined;
    } catch (error) {
      this.reader?.close();
      this.reader = undefined;
      // Locked: the caller tries again shortly.
      if (isBusyError(error)) throw error;
      if ((error as SseError).code === ErrorCodes.DB_MISSING) {
        this.databaseWasGone = true;
        this.setDatabaseStatus('missing', `database ${this.options.path} disappeared; streams stay open and resume when it is back`);
      } else {
        this.databaseWasGone = true;
        this.setDatabaseStatus('error', `cannot open ${this.options.path}: ${(error as Error).message}; will retry at the next change`);
      }
      return undefined;
    }
  }

  /**
   * Compares the table's highest id with the last one served. Below it, the database was replaced: restart.
   * Returns false when the caller's read is moot (the table was restarted and a new read is queued).
   */
  private checkTableEnd(reader: TableReader): boolean {
    const tableMax = reader.maxId();
    const cameBack = this.databaseWasGone;
    const replaced = tableMax < this.lastIdRead;
    if (replaced) this.restartFrom(reader, tableMax, cameBack ? 0 : tableMax);
    // Only now: a busy error above keeps the flag for the retry.
    this.databaseWasGone = false;
    this.setDatabaseStatus('ok');
    return !(replaced && cameBack);
  }

  /** Opens the database read-only and remembers what healthz and the encoder need from it. */
  private openReader(): TableReader {
    const reader = new TableReader(this.options);
    this.info = reader.info;
    try {
      this.journalMode = reader.journalMode();
    } catch {
      // Locked right now: keep the mode seen last.
    }
    return reader;
  }

  /**
   * Close the connection when nothing is being read. An open connection, even an idle reader, makes SQLite refuse a
   * writer's switch out of WAL mode; reopening costs about 0.2 ms, paid once per burst of commits.
   */
  private releaseIfIdle(): void {
    if (!this.readLoop.idle || !this.reader) return;
    this.reader.close();
    this.reader = undefined;
  }

  /**
   * The database was replaced by one whose highest id is below what was served. Later rows reuse ids clients have
   * seen, so every client whose cursor is ahead is told to restart from `restartId`, and nothing after it is skipped.
   * A file replaced in one step (a restored backup) restarts from its highest id: the rows it brings are old.
   * A database that went missing and came back restarts from 0: its rows were written after it came back.
   */
  private restartFrom(reader: TableReader, tableMax: number, restartId: number): void {
    const served = this.lastIdRead;
    // Read first: a busy error here leaves every state as it was, and the retry restarts again.
    if (restartId === tableMax) {
      this.loadRing(reader, restartId);
    } else {
      this.lastIdRead = restartId;
      this.ring.reset(restartId);
    }
    this.warn(`database ${this.options.path} was replaced: its highest id ${tableMax} is below the last id served ${served}; clients continue from ${restartId}`);
    this.catchUpCache.clear();
    for (const map of [this.live, this.catchingUp]) {
      for (const [client, subscription] of map) {
        if (subscription.cursor > restartId) {
          client.sendReset(restartId, subscription.cursor);
          subscription.cursor = restartId;
        }
      }
    }
    // Rows committed since the table's end was read are already in the ring: live clients behind them catch up.
    for (const [client, subscription] of this.live) {
      if (subscription.cursor >= this.lastIdRead) continue;
      this.live.delete(client);
      this.catchingUp.set(client, subscription);
      this.scheduleCatchUp(client);
    }
    if (restartId < tableMax) this.doorbell();
  }

  /**
   * Fill the ring with the newest rows, newest first, until either bound is reached, and take the last id from
   * the same read: a commit between two separate reads would otherwise enter the ring and the live read twice.
   */
  private loadRing(reader: TableReader, emptyTableLastId: number): void {
    const { historyRows, historyBytes } = this.options;
    const { rows, cut } = reader.newestRows(historyRows, historyBytes);
    this.lastIdRead = rows.length > 0 ? this.idOf(rows[rows.length - 1]) : emptyTableLastId;
    const wholeTable = !cut && rows.length < historyRows;
    const floor = rows.length === 0 ? this.lastIdRead : wholeTable ? -Infinity : this.idOf(rows[0]) - 1;
    this.ring = new Ring(historyRows, historyBytes, floor);
    // The ring's own byte bound evicts the oldest of these if their frames take more than the rows did.
    for (const row of rows) this.ring.push(this.encode(row));
  }

  private encode(row: Row): EncodedRow {
    return new EncodedRow(this.idOf(row), row, this.options.event);
  }

  private idOf(row: Row): number {
    return Number(row[this.info!.idColumn] as bigint);
  }

  /** Rows read once, serialized once, kept in the ring, and the same batch written to every live client. */
  private publish(rows: EncodedRow[]): void {
    for (const row of rows) this.ring.push(row);
    const batch = new RowBatch(rows);
    this.lastIdRead = batch.lastId;
    const budget = this.options.clientBufferBytes;
    const started = performance.now();
    for (const [client, subscription] of this.live) {
      if (subscription.cursor >= batch.lastId) continue;
      client.send(subscription.cursor >= batch.firstId ? batch.after(subscription.cursor) : batch);
      subscription.cursor = batch.lastId;
      if (client.bufferedBytes > budget) this.fellBehind(client, subscription);
    }
    this.emit('fanout', (performance.now() - started) / 1000, this.live.size);
  }

  /**
   * A client over its budget is either closed (it resumes with its cursor) or parked: it leaves the live set and is
   * caught up from the ring or the database once it drains. Either way the server holds no more for it.
   */
  private fellBehind(client: Client, subscription: Subscription): void {
    this.live.delete(client);
    if (client.lagPolicy === 'close') {
      client.close('too-slow');
      return;
    }
    this.catchingUp.set(client, subscription);
    this.waitForDrain(client, subscription);
  }

  /** One timer for every client: a heartbeat comment, and the end of clients that took nothing for too long. */
  private heartbeat(): void {
    const now = Date.now();
    for (const client of this.live.keys()) client.sendHeartbeat();
    for (const [client, subscription] of this.catchingUp) {
      if (subscription.stalledSince && now - subscription.stalledSince > this.options.slowClientTimeoutMs) {
        client.close('too-slow');
        this.detach(client);
      } else {
        client.sendHeartbeat();
      }
    }
  }

  private setDatabaseStatus(status: DatabaseState, message?: string): void {
    this.databaseStatus = status;
    if (status === 'ok') this.lastWarning = '';
    else if (message) this.warn(message);
  }

  /** Warn once per distinct message, so a failing database does not flood the log. */
  private warn(message: string): void {
    if (message === this.lastWarning) return;
    this.lastWarning = message;
    this.emit('warning', message);
  }

  /** Ends every stream, stops every timer and the watcher, closes the database. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    this.state = 'closed';
    this.readLoop.stop();
    clearInterval(this.heartbeatTimer);
    for (const map of [this.live, this.catchingUp]) {
      for (const client of map.keys()) client.close('shutdown');
      map.clear();
    }
    await this.watcher.close();
    this.reader?.close();
    this.reader = undefined;
  }
}
