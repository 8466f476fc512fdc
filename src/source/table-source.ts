import { SseError, ErrorCodes } from '../errors.js';
import { EncodedEvent } from '../hub/encoded-event.js';
import { ReadLoop, type PassOutcome } from './read-loop.js';
import type { HistoryBounds, PageResult, Source, SourceHealth, SourceHistory, SourceSink } from './source.js';
import type { StoreFilter } from '../hub/view.js';
import { isBusyError, TableReader, type Row, type RowPage, type TableInfo } from './table-reader.js';
import { DatabaseWatcher, type WatcherBackend } from './watcher.js';

export interface TableSourceOptions {
  /** SQLite database file. */
  path: string;
  /** Table whose new rows are the events. */
  table: string;
  /** Column that orders rows; default: the table's INTEGER PRIMARY KEY. */
  idColumn?: string;
  /** SSE event name of row events; default none, so `onmessage` fires. */
  event?: string;
  /** Rows per database read. */
  pageRows: number;
  /** What rings the doorbell: fs.watch (`native`) or chokidar's raw events. */
  watcher: WatcherBackend;
  /** Turns a row into its event, or undefined to leave it out; default: the row itself (the insert stream). */
  encode?: (row: Row, id: number) => EncodedEvent | undefined;
  /**
   * The table deletes its oldest rows (the change log's retention): a client whose cursor is older than the oldest
   * row left is told its history is gone instead of silently missing the deleted rows.
   */
  trimmed?: boolean;
}

export type DatabaseState = 'ok' | 'missing' | 'error';

/** A page of rows read live is cut at this many bytes, so huge rows do not make huge pages. */
const PAGE_BYTES = 1024 * 1024;
/**
 * Rows a filtered catch-up read may scan in one call. Without an index on the filtered column, a filter that matches
 * 1 row in 10,000 would otherwise scan the whole table in one call and hold the event loop; with one
 * (`CREATE INDEX ... ON t(column, id)`) SQLite finds the matches without scanning.
 */
const FILTER_SCAN_ROWS = 10000;

/**
 * The insert stream's source: new rows of one table, noticed through file notifications on the database's
 * directory (a doorbell), read once by a loop (DESIGN.md §3), serialized once, handed to the hub.
 * It also notices a database file that was replaced or vanished, and tells the hub to restart its clients.
 */
export class TableSource implements Source {
  readonly options: Readonly<TableSourceOptions>;
  /** Open while rows flow; closed after about a second without commits (see releaseIfIdle). */
  private reader: TableReader | undefined;
  private info: TableInfo | undefined;
  private journalMode: string | undefined;
  private readonly watcher: DatabaseWatcher;
  private sink: SourceSink | undefined;
  private bounds: HistoryBounds = { rows: 0, bytes: 0 };
  /** The highest id read and handed to the hub. */
  private lastIdRead = 0;
  private state: 'new' | 'running' | 'closed' = 'new';
  private databaseStatus: DatabaseState = 'ok';
  /** The database went missing or could not be opened since the last good read: what comes back is new. */
  private databaseWasGone = false;
  private lastWarning = '';
  private readonly readLoop = new ReadLoop(
    (firstAfterDoorbell) => this.readOnce(firstAfterDoorbell),
    () => this.releaseIfIdle(),
  );
  private closing: Promise<void> | undefined;

  constructor(options: TableSourceOptions) {
    this.options = Object.freeze({ ...options });
    this.watcher = new DatabaseWatcher(options.path, options.watcher);
  }

  get name(): string {
    return this.info?.table ?? this.options.table;
  }

  get tableInfo(): TableInfo | undefined {
    return this.info;
  }

  /** Opens the database (throws SseError with a one-line message), reads the newest rows, starts watching. */
  async start(sink: SourceSink, bounds: HistoryBounds): Promise<SourceHistory> {
    if (this.state !== 'new') throw new Error('a source starts once');
    this.sink = sink;
    this.bounds = bounds;
    const history = await this.openAtStart();
    this.watcher.on('doorbell', () => this.doorbell());
    this.watcher.on('error', (error) => this.warn(`watching ${this.watcher.directory} failed: ${error.message}`));
    await this.watcher.start();
    this.state = 'running';
    // Rows committed while the watch was being set up rang no doorbell.
    this.doorbell();
    return history;
  }

  /** Reads the table's end and newest rows; a writer's lock is waited out (up to 30 s) without blocking. */
  private async openAtStart(): Promise<SourceHistory> {
    const deadline = Date.now() + 30000;
    for (let delay = 5; ; delay = Math.min(delay * 2, 250)) {
      try {
        this.reader = this.openReader();
        return this.newest(this.reader, this.reader.maxId());
      } catch (error) {
        this.reader?.close();
        this.reader = undefined;
        if (!isBusyError(error) || Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  health(): SourceHealth {
    return { ok: this.databaseStatus === 'ok', database: this.databaseStatus, journalMode: this.journalMode };
  }

  /**
   * A cursor beyond the last id read: either the newest commit is not read yet (the table has that id: read it now),
   * or the database was replaced by one with fewer rows.
   */
  holds(cursor: number): boolean {
    let tableHasCursor: boolean;
    try {
      const reader = this.currentReader();
      tableHasCursor = reader !== undefined && reader.maxId() >= cursor;
    } catch {
      // Locked this instant: a cursor from this table is far likelier than a replaced file; wait for the rows.
      tableHasCursor = true;
    }
    this.releaseIfIdle();
    if (tableHasCursor) this.doorbell();
    return tableHasCursor;
  }

  readPage(after: number, upTo: number, maxEvents: number, maxBytes: number, filter?: StoreFilter): PageResult {
    let read: RowPage;
    try {
      const reader = this.currentReader();
      if (!reader) return { retryMs: 250 };
      if (this.options.trimmed) {
        const oldest = reader.minId();
        if (oldest !== undefined && oldest > after + 1) return { historyGone: oldest };
      }
      if (filter) {
        // Scan at most FILTER_SCAN_ROWS rows per call: the page ends where the scan ended, matches or not.
        upTo = Math.min(upTo, reader.idAfter(after, FILTER_SCAN_ROWS) ?? upTo);
        read = reader.rowsBetween(after, upTo, maxEvents, maxBytes, filter);
      } else {
        read = reader.rowsBetween(after, upTo, maxEvents, maxBytes);
      }
    } catch (error) {
      // Locked or vanished: try again shortly; the client keeps its place.
      if (!isBusyError(error)) this.warn(`catching a client up failed: ${(error as Error).message}`);
      return { retryMs: isBusyError(error) ? 5 : 250 };
    } finally {
      this.releaseIfIdle();
    }
    const complete = read.rows.length < maxEvents && !read.cut;
    return { events: this.encodeAll(read.rows), end: complete ? upTo : this.idOf(read.rows[read.rows.length - 1]) };
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
    const events = this.encodeAll(page.rows);
    const first = this.idOf(page.rows[0]);
    // The log's ids are contiguous: a first id beyond the next one means the triggers trimmed rows not yet read.
    if (this.options.trimmed && first > this.lastIdRead + 1) this.sink!.gap(first);
    this.lastIdRead = this.idOf(page.rows[page.rows.length - 1]);
    const latency = this.readLoop.takeLatency();
    if (latency !== undefined) this.sink!.readLatency(latency, events.length);
    this.sink!.publish(events);
    return page.rows.length === this.options.pageRows || page.cut ? 'more' : 'rows';
  }

  /** The open reader, reopening the database when its file was replaced (checked unless `checkFile` is false) or came back. */
  private currentReader(checkFile = true): TableReader | undefined {
    if (this.reader && !checkFile) return this.reader;
    if (this.reader) {
      const file = this.reader.fileState();
      if (file === 'same') return this.reader;
      this.reader.close();
      this.reader = undefined;
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
      this.databaseWasGone = true;
      if ((error as SseError).code === ErrorCodes.DB_MISSING) {
        this.setDatabaseStatus('missing', `database ${this.options.path} disappeared; streams stay open and resume when it is back`);
      } else {
        this.setDatabaseStatus('error', `cannot open ${this.options.path}: ${(error as Error).message}; will retry at the next change`);
      }
      return undefined;
    }
  }

  /**
   * Compares the table's highest id with the last one read. Below it, the database was replaced: restart.
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

  /**
   * The database was replaced by one whose highest id is below what was read. Later rows reuse ids clients have
   * seen, so the hub restarts every client whose cursor is ahead from `restartId`, and nothing after it is skipped.
   * A file replaced in one step (a restored backup) restarts from its highest id: the rows it brings are old.
   * A database that went missing and came back restarts from 0: its rows were written after it came back.
   */
  private restartFrom(reader: TableReader, tableMax: number, restartId: number): void {
    const served = this.lastIdRead;
    // Read first: a busy error here leaves every state as it was, and the retry restarts again.
    const history = restartId === tableMax ? this.newest(reader, restartId) : { events: [], lastId: restartId, floor: restartId };
    this.lastIdRead = history.lastId;
    this.warn(`database ${this.options.path} was replaced: its highest id ${tableMax} is below the last id served ${served}; clients continue from ${restartId}`);
    this.sink!.restart(history);
    if (restartId < tableMax) this.doorbell();
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
   * The newest rows, up to the hub's bounds, and the last id from the same read: a commit between two separate
   * reads would otherwise enter the ring and the live read twice.
   */
  private newest(reader: TableReader, emptyTableLastId: number): SourceHistory {
    const { rows, cut } = reader.newestRows(this.bounds.rows, this.bounds.bytes);
    const lastId = rows.length > 0 ? this.idOf(rows[rows.length - 1]) : emptyTableLastId;
    this.lastIdRead = lastId;
    // A trimmed table (the change log) that fits whole still starts at its oldest row, not at the beginning of time:
    // ids below it were trimmed, so an older cursor must go to readPage, which answers history-gone. With -Infinity
    // the ring claimed to cover such a cursor and served the rows it holds, silently skipping the trimmed ones.
    const wholeTable = !cut && rows.length < this.bounds.rows && !this.options.trimmed;
    const floor = rows.length === 0 ? lastId : wholeTable ? -Infinity : this.idOf(rows[0]) - 1;
    return { events: this.encodeAll(rows), lastId, floor };
  }

  private encodeAll(rows: Row[]): EncodedEvent[] {
    const { encode, event } = this.options;
    if (!encode) return rows.map((row) => EncodedEvent.row(this.idOf(row), row, event));
    const events: EncodedEvent[] = [];
    for (const row of rows) {
      const encoded = encode(row, this.idOf(row));
      if (encoded) events.push(encoded);
    }
    return events;
  }

  private idOf(row: Row): number {
    return Number(row[this.info!.idColumn] as bigint);
  }

  private setDatabaseStatus(status: DatabaseState, message?: string): void {
    this.databaseStatus = status;
    if (status === 'ok') this.lastWarning = '';
    else if (message) this.warn(message);
  }

  /** Warn once per distinct message, so a failing database does not flood the log. */
  protected warn(message: string): void {
    if (message === this.lastWarning) return;
    this.lastWarning = message;
    this.sink?.warn(message);
  }

  /** Stops the watcher and the read loop, closes the database. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    this.state = 'closed';
    this.readLoop.stop();
    await this.watcher.close();
    this.reader?.close();
    this.reader = undefined;
  }
}
