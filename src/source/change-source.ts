import Database from 'better-sqlite3';
import { changeToJson, CHANGE_LOG_TABLE, decodeChange, type ChangeLogRow } from './change-log.js';
import { trackedTables, untrackedColumns } from './change-triggers.js';
import { EncodedEvent } from '../hub/encoded-event.js';
import { ErrorCodes, SseError } from '../errors.js';
import type { HistoryBounds, SnapshotPosition, SnapshotResult, SourceHistory, SourceSink } from './source.js';
import { isBusyError, openError, type Row } from './table-reader.js';
import { TableSource } from './table-source.js';
import type { WatcherBackend } from './watcher.js';

export interface ChangeSourceOptions {
  /** SQLite database file, with tables tracked by `sqlite-sse track`. */
  path: string;
  /** Stream only these tables' changes; empty: every tracked table. */
  tables: readonly string[];
  /** SSE event name of change and snapshot events; default none, so `onmessage` fires. */
  event?: string;
  pageRows: number;
  watcher: WatcherBackend;
}

/** A table's columns, for filters, and its key, for snapshots. */
export interface TableSchema {
  table: string;
  columns: { name: string; type: string }[];
  /** The primary-key columns in key order; empty for a table keyed by its rowid. */
  keyColumns: string[];
  /** A WITHOUT ROWID table: it has no rowid, so its snapshot is paged by its primary key. */
  withoutRowid: boolean;
}

const quote = (name: string): string => '"' + name.replace(/"/g, '""') + '"';

/**
 * The change stream's source: the change log `_sse_changes` that `track`'s triggers fill, read like any table whose
 * ids only grow (the watcher, the read loop, replaced files: all of TableSource), each log row decoded into one
 * change event. The log is trimmed by the triggers, so a cursor below its oldest row gets `history-gone`. It also
 * reads snapshots: a tracked table's current rows, a page per short read transaction.
 */
export class ChangeSource extends TableSource {
  private readonly narrowTo: ReadonlySet<string> | undefined;
  private readonly schemas = new Map<string, TableSchema>();
  private served: string[] = [];

  constructor(private readonly changeOptions: ChangeSourceOptions) {
    const narrowTo = changeOptions.tables.length > 0 ? new Set(changeOptions.tables.map((table) => table.toLowerCase())) : undefined;
    super({
      path: changeOptions.path,
      table: CHANGE_LOG_TABLE,
      idColumn: 'seq',
      event: changeOptions.event,
      pageRows: changeOptions.pageRows,
      watcher: changeOptions.watcher,
      trimmed: true,
      encode: (row, id) => this.encodeChange(row, id),
    });
    this.narrowTo = narrowTo;
  }

  /** The tables whose changes this stream carries (a table tracked after start is picked up when asked for). */
  get tables(): readonly string[] {
    return this.served;
  }

  override async start(sink: SourceSink, bounds: HistoryBounds): Promise<SourceHistory> {
    try {
      const history = await super.start(sink, bounds);
      // After the start, so a stale table's warning reaches the log.
      this.refreshTables();
      return history;
    } catch (error) {
      if ((error as SseError).code !== ErrorCodes.TABLE_MISSING) throw error;
      const path = this.changeOptions.path;
      throw new SseError(
        ErrorCodes.TABLE_MISSING,
        `${path} has no change log (${CHANGE_LOG_TABLE}): run npx sqlite-sse track --db ${path} --table NAME first, then start with --changes`,
      );
    }
  }

  /** The served table named `name` (any case), reading the list again once when it is not known yet. */
  findTable(name: string): string | undefined {
    const find = () => this.served.find((table) => table.toLowerCase() === name.toLowerCase());
    return find() ?? (this.refreshTables(), find());
  }

  /** A table's columns and key, read when first asked for (and again after `forget`). */
  schema(table: string): TableSchema {
    let schema = this.schemas.get(table);
    if (!schema) {
      schema = this.withDatabase((db) => readSchema(db, table));
      this.schemas.set(table, schema);
    }
    return schema;
  }

  /** Forget what was read of a table's columns (a filter named a column that may have been added since). */
  forgetSchema(table: string): void {
    this.schemas.delete(table);
  }

  /**
   * A page of a table's current rows, read in one transaction with the log's highest sequence number, so the page is
   * the table as of that change. Pages follow the rowid; a snapshot spans several transactions, so a change made
   * while it is sent may show in a later page and is also sent after it (applied by key, it changes nothing more).
   */
  snapshot(table: string, after: SnapshotPosition | undefined, maxRows: number, maxBytes: number): SnapshotResult {
    const { keyColumns } = this.schema(table);
    const encode = (row: Row, seq: number): EncodedEvent => {
      const pk: Record<string, unknown> = {};
      if (keyColumns.length === 0) pk.rowid = row._sse_rowid;
      delete row._sse_rowid;
      for (const column of keyColumns) pk[column] = row[column];
      const value = { op: 'snapshot' as const, table, pk, row };
      return new EncodedEvent(seq, 'snapshot', value, changeToJson(value), this.changeOptions.event);
    };
    let page: { events: EncodedEvent[]; seq: number; cut: boolean; next: SnapshotPosition | undefined };
    try {
      page = this.withDatabase((db) => readSnapshotPage(db, this.schema(table), after, maxRows, maxBytes, encode));
    } catch (error) {
      if (isBusyError(error)) return { retryMs: 5 };
      // Vanished or broken right now: the client waits (its slow-client timeout still runs) and the next try may work.
      this.warn(`reading a snapshot of ${table} failed: ${(error as Error).message}`);
      return { retryMs: 1000 };
    }
    const done = !page.cut && page.events.length < maxRows;
    return { events: page.events, next: done ? undefined : page.next, seq: page.seq };
  }

  private encodeChange(row: Row, id: number): EncodedEvent | undefined {
    let change;
    try {
      change = decodeChange(row as unknown as ChangeLogRow);
    } catch (error) {
      // One row no trigger of ours wrote must not stop the stream for good.
      this.warn(`skipped a change log row: ${(error as Error).message}`);
      return undefined;
    }
    if (this.narrowTo && !this.narrowTo.has(change.table.toLowerCase())) return undefined;
    return new EncodedEvent(id, 'change', change as unknown as Record<string, unknown>, changeToJson(change), this.changeOptions.event);
  }

  private refreshTables(): void {
    let tracked: string[];
    let stale: [string, string[]][];
    try {
      ({ tracked, stale } = this.withDatabase((db) => {
        const tables = trackedTables(db);
        return { tracked: tables, stale: tables.map((table): [string, string[]] => [table, untrackedColumns(db, table)]) };
      }));
    } catch {
      return;
    }
    this.served = this.narrowTo ? tracked.filter((table) => this.narrowTo!.has(table.toLowerCase())) : tracked;
    for (const [table, columns] of stale) {
      if (columns.length === 0 || !this.served.includes(table)) continue;
      // Not an error: the stream goes on, but these columns are missing from every change until track runs again.
      this.warn(
        `table ${table} has columns its change triggers do not log (${columns.join(', ')}): run npx sqlite-sse track --db ${this.changeOptions.path} --table ${table} again`,
      );
    }
  }

  /** A short-lived read-only connection: snapshots and schema reads never hold the stream's reader open. */
  private withDatabase<T>(read: (db: Database.Database) => T): T {
    let db: Database.Database;
    try {
      db = new Database(this.changeOptions.path, { readonly: true, fileMustExist: true, timeout: 0 });
    } catch (error) {
      throw openError(this.changeOptions.path, error);
    }
    try {
      return read(db);
    } finally {
      db.close();
    }
  }
}

function readSchema(db: Database.Database, table: string): TableSchema {
  const columns = db.pragma(`table_info(${quote(table)})`) as { name: string; type: string; pk: number }[];
  const keyColumns = columns
    .filter((column) => column.pk > 0)
    .sort((a, b) => a.pk - b.pk)
    .map((column) => column.name);
  const sql = (db.prepare(`SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?`).pluck().get(table) as string | undefined) ?? '';
  return { table, columns: columns.map(({ name, type }) => ({ name, type })), keyColumns, withoutRowid: /\bWITHOUT\s+ROWID\b/i.test(sql) };
}

/**
 * The query of a snapshot page and the position after a row. A table is paged by rowid; a WITHOUT ROWID table has
 * none (`SELECT rowid` fails there, and a client whose history was gone waited for it forever, as a test found), so it
 * is paged by its primary key, which is its storage order: a row value `(k1, k2) > (?, ?)` ordered by the key, the
 * comparison using each column's collation as the key's index does.
 */
function snapshotQuery(db: Database.Database, schema: TableSchema, first: boolean) {
  const table = quote(schema.table);
  if (!schema.withoutRowid) {
    const sql = `SELECT rowid AS _sse_rowid, * FROM ${table}${first ? '' : ' WHERE rowid > ?'} ORDER BY rowid LIMIT ?`;
    return { statement: db.prepare(sql).safeIntegers(true), positionOf: (row: Row): SnapshotPosition => Number(row._sse_rowid) };
  }
  const key = schema.keyColumns.map(quote).join(', ');
  const sql = `SELECT * FROM ${table}${first ? '' : ` WHERE (${key}) > (${schema.keyColumns.map(() => '?').join(', ')})`} ORDER BY ${key} LIMIT ?`;
  return { statement: db.prepare(sql).safeIntegers(true), positionOf: (row: Row): SnapshotPosition => schema.keyColumns.map((column) => row[column]) };
}

/**
 * Past the first row, a page ends once reading and encoding it took this long: the event loop serves live rows and
 * other clients between pages. Found by bench/snapshot-probe.ts: a page of 1000 rows held the loop 25 ms (11 ms at
 * 200 rows), where the issue asks for a few.
 */
const SNAPSHOT_PAGE_MS = 4;

/**
 * At most `maxRows` rows after `after` (see snapshotQuery), encoded; past the first, at most `maxBytes` and
 * SNAPSHOT_PAGE_MS; the log's sequence number in the same transaction.
 */
function readSnapshotPage(db: Database.Database, schema: TableSchema, after: SnapshotPosition | undefined, maxRows: number, maxBytes: number, encode: (row: Row, seq: number) => EncodedEvent) {
  const sequence = db.prepare(`SELECT seq FROM sqlite_sequence WHERE name = ?`).pluck().safeIntegers(true);
  const exists = db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?`).pluck();
  if (!exists.get(schema.table)) {
    // A tracked table dropped while the server runs has no rows: its snapshot is empty. Found by
    // test/changes.test.ts: the query failed with "no such table" and was retried every second for good, so a client
    // that asked for a snapshot of every table (or whose history was gone) never got past it.
    return { events: [] as EncodedEvent[], seq: Number((sequence.get(CHANGE_LOG_TABLE) as bigint | undefined) ?? 0n), cut: false, next: undefined };
  }
  const { statement, positionOf } = snapshotQuery(db, schema, after === undefined);
  const params = after === undefined ? [maxRows] : [...(typeof after === 'number' ? [after] : after), maxRows];
  const started = performance.now();
  return db.transaction(() => {
    const seq = Number((sequence.get(CHANGE_LOG_TABLE) as bigint | undefined) ?? 0n);
    const events: EncodedEvent[] = [];
    let bytes = 0;
    let cut = false;
    let next: SnapshotPosition | undefined;
    for (const row of statement.iterate(...params) as IterableIterator<Row>) {
      // The position before safeNumbers: key values bound back exactly as read (a bigint stays a bigint).
      next = positionOf(row);
      for (const key in row) {
        const value = row[key];
        bytes += typeof value === 'string' || value instanceof Uint8Array ? value.length : 8;
      }
      events.push(encode(safeNumbers(row), seq));
      if (bytes >= maxBytes || performance.now() - started >= SNAPSHOT_PAGE_MS) {
        cut = true;
        break;
      }
    }
    return { events, seq, cut, next };
  })();
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** Integers within 2^53 as numbers, as decoded changes have them, so a snapshot row and a change compare alike. */
function safeNumbers(row: Row): Row {
  for (const key in row) {
    const value = row[key];
    if (typeof value === 'bigint' && value >= -MAX_SAFE && value <= MAX_SAFE) row[key] = Number(value);
  }
  return row;
}
