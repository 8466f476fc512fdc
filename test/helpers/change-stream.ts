import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { python, sqlite } from './database.js';
import type { SseEvent } from './sse-stream.js';

/** What a change-stream event's `data:` holds: a change, or a snapshot row (`op: 'snapshot'`). */
export interface ChangeData {
  op: 'insert' | 'update' | 'delete' | 'snapshot';
  move?: 'in' | 'out';
  table: string;
  pk: Record<string, unknown>;
  row?: Record<string, unknown>;
  old?: Record<string, unknown>;
}

/**
 * A database with two tables as an app would have them: `todos` keyed by `id`, and `notes` without a declared key
 * (so its changes are keyed by rowid). Returns its path. Nothing is tracked yet.
 */
export function createTodosDatabase(directory: string, journalMode = 'wal', name = 'app.db'): string {
  const path = join(directory, name);
  sqlite(
    path,
    `PRAGMA journal_mode=${journalMode};
     CREATE TABLE todos(id INTEGER PRIMARY KEY, title TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0);
     CREATE TABLE notes(body TEXT);`,
  );
  return path;
}

/** The highest sequence number in the change log (of one table's changes, if given), read by a `sqlite3` process. */
export function lastSeq(path: string, table?: string): number {
  const where = table === undefined ? '' : ` WHERE tbl = '${table.replace(/'/g, "''")}'`;
  return Number(sqlite(path, `SELECT coalesce(max(seq), 0) FROM _sse_changes${where};`).trim());
}

/**
 * The rows of a table keyed as the change stream keys them (`pk` as JSON: the declared key's columns, or
 * `{"rowid":N}`), read by a separate `sqlite3` process. `keyColumns` empty: keyed by rowid.
 */
export function tableByKey(path: string, table: string, keyColumns: readonly string[]): Map<string, Record<string, unknown>> {
  const rowid = keyColumns.length === 0;
  const out = sqlite(path, `.mode json\nSELECT ${rowid ? 'rowid AS "_sse_test_rowid", ' : ''}* FROM "${table}" ORDER BY ${rowid ? 'rowid' : keyColumns.map((column) => `"${column}"`).join(', ')};`).trim();
  const rows = out === '' ? [] : (JSON.parse(out) as Record<string, unknown>[]);
  const byKey = new Map<string, Record<string, unknown>>();
  for (const row of rows) {
    const pk: Record<string, unknown> = {};
    if (rowid) {
      pk.rowid = row._sse_test_rowid;
      delete row._sse_test_rowid;
    }
    for (const column of keyColumns) pk[column] = row[column];
    byKey.set(JSON.stringify(pk), row);
  }
  return byKey;
}

/**
 * A client's copy of the tables, built as the README tells a client to: each snapshot row and each change applied by
 * `pk` (insert and snapshot as upserts, update sets the new row, delete removes it; a `move: out` removes it).
 * A `history-gone` reset empties the copy: the fresh snapshot after it is the whole state again.
 */
/** Asserts that a client's copy holds `table` exactly as the database does (read by another process), keyed by `key`. */
export function assertHolds(copy: TableCopy, path: string, table: string, key: string[], message?: string): void {
  assert.equal(byKey(copy.table(table)), byKey(tableByKey(path, table, key)), message);
}

export class TableCopy {
  readonly tables = new Map<string, Map<string, Record<string, unknown>>>();
  /** The id of the last change applied (what a client would send as Last-Event-ID). */
  lastId = 0;

  apply(change: ChangeData): void {
    let table = this.tables.get(change.table);
    if (!table) this.tables.set(change.table, (table = new Map()));
    const key = JSON.stringify(change.pk);
    if (change.op === 'delete' || change.move === 'out') table.delete(key);
    else table.set(key, change.row!);
  }

  /** Applies recorded SSE events in order: changes and snapshot rows (`message`), resets, snapshot ends. */
  applyEvents(events: readonly SseEvent[], eventName = 'message'): void {
    for (const event of events) {
      if (event.event === eventName) this.apply(JSON.parse(event.data) as ChangeData);
      else if (event.event === 'reset' && (JSON.parse(event.data) as { reason: string }).reason === 'history-gone') this.tables.clear();
      // Only an event with an id line moves the cursor; the parser repeats the last id on events without one.
      if (event.id !== undefined && event.id !== '') this.lastId = Number(event.id);
    }
  }

  table(name: string): Map<string, Record<string, unknown>> {
    return this.tables.get(name) ?? new Map();
  }
}

/** A raw SSE frame split into its fields, to see exactly which lines the server wrote (`id:` or not, `event:` or not). */
export interface RawFrame {
  id?: string;
  event?: string;
  data: string[];
  /** The field names in the order written. */
  fields: string[];
}

/** The frames of a raw SSE body (comments and the `retry:` hint left out). */
export function rawFrames(raw: string): RawFrame[] {
  const frames: RawFrame[] = [];
  for (const block of raw.split(/\r\n\r\n|\n\n|\r\r/)) {
    const frame: RawFrame = { data: [], fields: [] };
    for (const line of block.split(/\r\n|\r|\n/)) {
      if (line === '' || line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      frame.fields.push(field);
      if (field === 'data') frame.data.push(value);
      else if (field === 'id') frame.id = value;
      else if (field === 'event') frame.event = value;
    }
    if (frame.data.length > 0) frames.push(frame);
  }
  return frames;
}

/** A JSON object with keys in the order given: the server's `data:` is compared as exact text. */
export const json = (value: unknown): string => JSON.stringify(value);

/**
 * `count` changes from a Python process, one row changed per commit, `delayMs` apart, cycling through an insert into
 * todos, an update of the newest todo, an insert into notes and a delete of that note: every commit logs exactly one
 * change, of both tables and every kind.
 */
export function pythonChanges(path: string, count: number, delayMs = 1): Promise<string> {
  return python(
    path,
    `
con = sqlite3.connect(db, timeout=30, isolation_level=None)
for i in range(${count}):
    k = i % 4
    if k == 0: con.execute("INSERT INTO todos(title) VALUES (?)", ("live-%d" % i,))
    elif k == 1: con.execute("UPDATE todos SET title = title || '!', done = 1 - done WHERE id = (SELECT max(id) FROM todos)")
    elif k == 2: con.execute("INSERT INTO notes(body) VALUES (?)", ("note-%d" % i,))
    else: con.execute("DELETE FROM notes WHERE rowid = (SELECT max(rowid) FROM notes)")
    if ${delayMs}: time.sleep(${delayMs} / 1000.0)
con.close()
`,
  );
}

/** A copy or a table as `[pk, row]` pairs in key order: compared with assert.equal, a difference shows row by row. */
export function byKey(map: Map<string, Record<string, unknown>>): [string, Record<string, unknown>][] {
  return [...map].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}
