import { statSync } from 'node:fs';
import Database from 'better-sqlite3';
import { ErrorCodes, SseError } from '../errors.js';
import type { StoreFilter } from '../hub/view.js';

export type Row = Record<string, unknown>;

export interface TableReaderOptions {
  /** Path of the SQLite database file. */
  path: string;
  /** Table (or view) whose rows are streamed. */
  table: string;
  /** Column that orders rows; default: the table's INTEGER PRIMARY KEY. */
  idColumn?: string;
}

/** What the reader learned about the table when it opened it. */
export interface TableInfo {
  table: string;
  idColumn: string;
  /** The id column is the table's INTEGER PRIMARY KEY (the rowid): indexed, always an integer. */
  idIsRowid: boolean;
  /** False when ids can be reused (no AUTOINCREMENT) or are not a rowid alias: worth a warning at start. */
  idsOnlyGrow: boolean;
  /** Every column with its declared type, in table order (what filters are checked against). */
  columns: { name: string; type: string }[];
}

/** Whether the file on disk is still the one that was opened. */
export type FileState = 'same' | 'replaced' | 'missing';

/** True for the errors that mean "another connection holds a lock: try again shortly". */
export function isBusyError(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
}

const quoteIdentifier = (name: string): string => '"' + name.replace(/"/g, '""') + '"';

/** Rows read in one go, and whether the read stopped at its byte bound (then more rows may follow). */
export interface RowPage {
  rows: Row[];
  cut: boolean;
}

/** About the memory a row's values take: text and blob lengths, 8 bytes for anything else. */
function rowSize(row: Row): number {
  let bytes = 0;
  for (const key in row) {
    const value = row[key];
    bytes += typeof value === 'string' || value instanceof Uint8Array ? value.length : 8;
  }
  return bytes;
}

/**
 * At most the statement's LIMIT of rows, stopping after the row that brings them to `maxBytes`. Rows are read one
 * at a time, so a page of huge rows never sits in memory whole (before this, 1000 rows of 100 KB were read to
 * publish the first 1 MB: 516 MB RSS growth streaming 100 MB, found by test/slow-client.test.ts).
 */
function readPage(statement: Database.Statement, maxBytes: number, ...params: unknown[]): RowPage {
  const rows: Row[] = [];
  let bytes = 0;
  // Leaving the loop early resets the statement, so no read transaction stays open.
  for (const row of statement.iterate(...params) as IterableIterator<Row>) {
    rows.push(row);
    bytes += rowSize(row);
    if (bytes >= maxBytes) return { rows, cut: true };
  }
  return { rows, cut: false };
}

/**
 * A read-only connection to one table. Every statement is prepared once and each call reads and resets it,
 * so no read transaction stays open between calls (an open one would stop WAL checkpoints).
 */
export class TableReader {
  readonly path: string;
  readonly info: TableInfo;
  private readonly db: Database.Database;
  private readonly identity: string;
  private readonly afterStatement: Database.Statement;
  private readonly rangeStatement: Database.Statement;
  private readonly newestStatement: Database.Statement;
  private readonly maxStatement: Database.Statement;
  private readonly nthAfterStatement: Database.Statement;
  private readonly minStatement: Database.Statement;
  private readonly filteredStatements = new Map<string, Database.Statement>();
  private readonly sql: { table: string; id: string; integersOnly: string };
  private closed = false;

  /** Opens the database read-only and checks the table; throws SseError with a one-line message. */
  constructor(options: TableReaderOptions) {
    this.path = options.path;
    this.identity = fileIdentity(options.path) ?? missing(options.path);
    // timeout 0: better-sqlite3 is synchronous, so a busy wait would block every client; callers retry on a timer.
    this.db = new Database(options.path, { readonly: true, fileMustExist: true, timeout: 0 });
    try {
      this.info = inspectTable(this.db, options);
      const table = quoteIdentifier(this.info.table);
      const id = quoteIdentifier(this.info.idColumn);
      // A column that is not a rowid alias may hold text, which sorts after every integer and would be read forever.
      const integersOnly = this.info.idIsRowid ? '' : ` AND typeof(${id}) = 'integer'`;
      this.sql = { table, id, integersOnly };
      this.nthAfterStatement = this.db.prepare(`SELECT ${id} FROM ${table} WHERE ${id} > ?${integersOnly} ORDER BY ${id} LIMIT 1 OFFSET ?`).pluck().safeIntegers(true);
      this.afterStatement = this.db.prepare(`SELECT * FROM ${table} WHERE ${id} > ?${integersOnly} ORDER BY ${id} LIMIT ?`).safeIntegers(true);
      this.rangeStatement = this.db
        .prepare(`SELECT * FROM ${table} WHERE ${id} > ? AND ${id} <= ?${integersOnly} ORDER BY ${id} LIMIT ?`)
        .safeIntegers(true);
      this.newestStatement = this.db.prepare(`SELECT * FROM ${table} WHERE 1${integersOnly} ORDER BY ${id} DESC LIMIT ?`).safeIntegers(true);
      this.maxStatement = this.db.prepare(`SELECT MAX(${id}) FROM ${table} WHERE 1${integersOnly}`).pluck().safeIntegers(true);
      this.minStatement = this.db.prepare(`SELECT MIN(${id}) FROM ${table} WHERE 1${integersOnly}`).pluck().safeIntegers(true);
    } catch (error) {
      this.db.close();
      throw error;
    }
  }

  /** Up to `limit` rows with an id greater than `after`, in id order, stopping past `maxBytes`. */
  rowsAfter(after: number, limit: number, maxBytes: number): RowPage {
    return readPage(this.afterStatement, maxBytes, after, limit);
  }

  /** Up to `limit` rows with `after < id <= upTo` (and matching `filter`), in id order, stopping past `maxBytes`. */
  rowsBetween(after: number, upTo: number, limit: number, maxBytes: number, filter?: StoreFilter): RowPage {
    if (!filter) return readPage(this.rangeStatement, maxBytes, after, upTo, limit);
    return readPage(this.filteredStatement(filter.where), maxBytes, after, upTo, ...filter.params, limit);
  }

  /** The id of the `count`-th row after `after` (an index-only scan of at most `count` ids), or undefined past the end. */
  idAfter(after: number, count: number): number | undefined {
    const value = this.nthAfterStatement.get(after, count - 1) as bigint | undefined;
    return value === undefined ? undefined : Number(value);
  }

  /** The range statement with a filter's condition, prepared once per distinct condition (bounded cache). */
  private filteredStatement(where: string): Database.Statement {
    let statement = this.filteredStatements.get(where);
    if (!statement) {
      const { table, id, integersOnly } = this.sql;
      statement = this.db
        .prepare(`SELECT * FROM ${table} WHERE ${id} > ? AND ${id} <= ?${integersOnly} AND (${where}) ORDER BY ${id} LIMIT ?`)
        .safeIntegers(true);
      if (this.filteredStatements.size >= 256) this.filteredStatements.delete(this.filteredStatements.keys().next().value!);
      this.filteredStatements.set(where, statement);
    }
    return statement;
  }

  /** The newest `limit` rows, read newest first and stopping past `maxBytes`, returned in id order. */
  newestRows(limit: number, maxBytes: number): RowPage {
    const page = readPage(this.newestStatement, maxBytes, limit);
    page.rows.reverse();
    return page;
  }

  /** The lowest id in the table, or undefined when it is empty. */
  minId(): number | undefined {
    const value = this.minStatement.get() as bigint | null;
    return value === null ? undefined : Number(value);
  }

  /** The highest id in the table, or 0 when it is empty. */
  maxId(): number {
    const value = this.maxStatement.get() as bigint | null;
    return value === null ? 0 : Number(value);
  }

  /** The database's journal mode (wal, delete, truncate, persist, memory, off). */
  journalMode(): string {
    return String(this.db.pragma('journal_mode', { simple: true }));
  }

  /** Compares the file now at `path` with the one that was opened (restored backups and renames replace it). */
  fileState(): FileState {
    const now = fileIdentity(this.path);
    if (now === undefined) return 'missing';
    return now === this.identity ? 'same' : 'replaced';
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }
}

function fileIdentity(path: string): string | undefined {
  try {
    const stats = statSync(path);
    return `${stats.dev}:${stats.ino}`;
  } catch {
    return undefined;
  }
}

function missing(path: string): never {
  throw new SseError(ErrorCodes.DB_MISSING, `database ${path} does not exist: check the path, or pass --create to create it`);
}

type ColumnInfo = { name: string; type: string; pk: number };

function inspectTable(db: Database.Database, options: TableReaderOptions): TableInfo {
  let columns: ColumnInfo[];
  try {
    columns = db.pragma(`table_info(${quoteIdentifier(options.table)})`) as ColumnInfo[];
  } catch (error) {
    throw openError(options.path, error);
  }
  if (columns.length === 0) {
    const tables = (db.prepare(`SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' ORDER BY name`).pluck().all() as string[]);
    const list = tables.length ? `tables: ${tables.join(', ')}` : 'the database has no tables';
    throw new SseError(ErrorCodes.TABLE_MISSING, `table ${options.table} not found in ${options.path} (${list}): pass --table NAME, or --create to create it`);
  }
  const table = (db.prepare(`SELECT name FROM sqlite_master WHERE name = ? COLLATE NOCASE AND type IN ('table', 'view')`).pluck().get(options.table) as string) ?? options.table;
  const idColumn = chooseIdColumn(columns, options);
  const sql = (db.prepare(`SELECT sql FROM sqlite_master WHERE name = ?`).pluck().get(table) as string | null) ?? '';
  const primaryKeys = columns.filter((column) => column.pk > 0);
  const isAlias = primaryKeys.length === 1 && primaryKeys[0].name === idColumn && primaryKeys[0].type.toUpperCase() === 'INTEGER';
  return {
    table,
    idColumn,
    idIsRowid: isAlias,
    idsOnlyGrow: isAlias && /\bAUTOINCREMENT\b/i.test(sql),
    columns: columns.map(({ name, type }) => ({ name, type })),
  };
}

function chooseIdColumn(columns: ColumnInfo[], options: TableReaderOptions): string {
  if (options.idColumn !== undefined) {
    const column = columns.find((c) => c.name.toLowerCase() === options.idColumn!.toLowerCase());
    if (!column) {
      throw new SseError(
        ErrorCodes.NO_ID_COLUMN,
        `--id-column ${options.idColumn} is not a column of ${options.table} (columns: ${columns.map((c) => c.name).join(', ')})`,
      );
    }
    if (!/INT/i.test(column.type)) {
      throw new SseError(ErrorCodes.NO_ID_COLUMN, `--id-column ${column.name} has type ${column.type || 'none'}: it must be an integer column whose values only grow`);
    }
    return column.name;
  }
  const primaryKeys = columns.filter((column) => column.pk > 0);
  if (primaryKeys.length === 1 && primaryKeys[0].type.toUpperCase() === 'INTEGER') return primaryKeys[0].name;
  throw new SseError(
    ErrorCodes.NO_ID_COLUMN,
    `table ${options.table} has no INTEGER PRIMARY KEY column: pass --id-column NAME naming an integer column whose values only grow`,
  );
}

/** Turns SQLite's open-time errors into one line a user can act on. */
export function openError(path: string, error: unknown): Error {
  const code = (error as { code?: string })?.code ?? '';
  if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') {
    return new SseError(ErrorCodes.DB_NOT_SQLITE, `${path} is not a SQLite database (${(error as Error).message})`);
  }
  if (error instanceof SseError || isBusyError(error)) return error as Error;
  return new SseError(ErrorCodes.DB_UNREADABLE, `cannot read ${path}: ${(error as Error).message}`);
}
