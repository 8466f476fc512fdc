/**
 * `track` and `untrack`: the triggers that make every writer (the sqlite3 shell, Python, any program) append its
 * changes to the change log, in the writer's own transaction. They use only SQL built into SQLite (3.38+, or any
 * build with JSON1), so no writer needs to load anything. The log's format and decoder are in src/source/change-log.ts.
 */
import type Database from 'better-sqlite3';
import { BLOB_MARKER, CHANGE_LOG_COLUMNS, CHANGE_LOG_SCHEMA, CHANGE_LOG_TABLE, INT_MARKER, REAL_MARKER } from './change-log.js';
import { ErrorCodes, SseError } from '../errors.js';

/** Log rows kept when neither `keep` nor an earlier `track` says otherwise. */
export const DEFAULT_KEEP = 100_000;

const OPS = ['insert', 'update', 'delete'] as const;

/** What `track` did to one table. */
export interface TrackResult {
  /** The table's name as the schema spells it. */
  table: string;
  /** `installed` the first time, `refreshed` when the triggers existed (they now follow the current columns). */
  action: 'installed' | 'refreshed';
  /** The three trigger names. */
  triggers: string[];
  /** Columns in each logged row, in table order. */
  columns: string[];
  /** Columns of `pk`: the declared primary key, or `['rowid']`. */
  key: string[];
  /** Log rows the triggers keep (shared by every tracked table: there is one log). */
  keep: number;
  /** True when this call created `_sse_changes`. */
  logCreated: boolean;
  /** Log rows deleted now because `keep` is below the log's length. */
  trimmed: number;
  /** Other tracked tables whose triggers were changed to the new `keep`. */
  retuned: string[];
}

/** What `untrack` did to one table. */
export interface UntrackResult {
  table: string;
  /** Trigger names dropped; empty when the table was not tracked. */
  dropped: string[];
}

/**
 * Installs (or refreshes) the three triggers of `table` that log its changes to `_sse_changes`, creating the log
 * when missing, in one immediate transaction. `keep` bounds the log: each trigger deletes the rows older than the
 * newest `keep`. The log is shared, so `keep` is one setting for all tracked tables; when given, it is applied to
 * every tracked table's triggers; when omitted, the setting already in the triggers stays (else {@link DEFAULT_KEEP}).
 * Throws SseError: SSE_ERR_TABLE_MISSING (lists the tables), SSE_ERR_BAD_OPTION (a view, a virtual or internal
 * table, a bad `keep`), SSE_ERR_DB_UNREADABLE (a `_sse_changes` table of another shape).
 */
export function track(db: Database.Database, table: string, keep?: number): TrackResult {
  if (keep !== undefined && !(Number.isSafeInteger(keep) && keep >= 1)) {
    throw new SseError(ErrorCodes.BAD_OPTION, `keep must be a whole number from 1 to ${Number.MAX_SAFE_INTEGER}, got ${keep}`);
  }
  return db.transaction((): TrackResult => {
    const name = trackableTable(db, table);
    const logCreated = ensureLog(db);
    const columns = tableColumns(db, name);
    const key = keyColumns(name, columns);
    const current = currentKeep(db, name);
    const effectiveKeep = keep ?? current ?? DEFAULT_KEEP;
    const dropped = dropTriggers(db, name);
    const triggers = OPS.map((op) => triggerName(name, op));
    for (const sql of triggerSql(name, columns, key, effectiveKeep)) db.exec(sql);
    const retuned = keep === undefined ? [] : retune(db, name, keep);
    const trimmed = db.prepare(`DELETE FROM ${CHANGE_LOG_TABLE} WHERE seq <= (SELECT max(seq) FROM ${CHANGE_LOG_TABLE}) - ?`).run(effectiveKeep).changes;
    return {
      table: name,
      action: dropped.length > 0 ? 'refreshed' : 'installed',
      triggers,
      columns: columns.map((column) => column.name),
      key: key.json,
      keep: effectiveKeep,
      logCreated,
      trimmed,
      retuned,
    };
  }).immediate();
}

/**
 * Drops the triggers `track` installed on `table` (also ones left under an old name by `ALTER TABLE ... RENAME`),
 * in one immediate transaction. The table's earlier changes stay in the log until trimmed. Not tracked: nothing to do.
 */
export function untrack(db: Database.Database, table: string): UntrackResult {
  return db.transaction((): UntrackResult => {
    const name = existingTable(db, table).name;
    return { table: name, dropped: dropTriggers(db, name) };
  }).immediate();
}

/** Tables whose change triggers exist (any of the three, named as `track` names them), sorted by name. */
export function trackedTables(db: Database.Database): string[] {
  const tables = new Set<string>();
  for (const trigger of ourTriggers(db)) {
    if (OPS.some((op) => trigger.name === triggerName(trigger.tbl_name, op))) tables.add(trigger.tbl_name);
  }
  return [...tables].sort();
}

/** `_sse_<table>_<op>`: unique per table and operation, since the three suffixes differ. */
export function triggerName(table: string, op: (typeof OPS)[number]): string {
  return `_sse_${table}_${op}`;
}

type Column = { name: string; pk: number; hidden: number };

/** How a row's key is read in a trigger (`NEW.` + ref) and named in `pk`. */
interface Key {
  refs: string[];
  json: string[];
}

const quoteIdentifier = (name: string): string => '"' + name.replace(/"/g, '""') + '"';
const quoteString = (text: string): string => "'" + text.replace(/'/g, "''") + "'";

function existingTable(db: Database.Database, table: string): { name: string; type: string; sql: string | null } {
  const found = db
    .prepare(`SELECT name, type, sql FROM sqlite_master WHERE name = ? COLLATE NOCASE AND type IN ('table', 'view')`)
    .get(table) as { name: string; type: string; sql: string | null } | undefined;
  if (found) return found;
  const tables = db
    .prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> ? ORDER BY name`)
    .pluck()
    .all(CHANGE_LOG_TABLE) as string[];
  const list = tables.length > 0 ? `tables: ${tables.join(', ')}` : 'the database has no tables';
  throw new SseError(ErrorCodes.TABLE_MISSING, `table ${table} not found (${list})`);
}

function trackableTable(db: Database.Database, table: string): string {
  const found = existingTable(db, table);
  const refuse = (why: string) => new SseError(ErrorCodes.BAD_OPTION, `cannot track ${found.name}: ${why}`);
  if (found.type === 'view') throw refuse('it is a view; track the tables it reads');
  if (found.name.toLowerCase() === CHANGE_LOG_TABLE || /^sqlite_/i.test(found.name)) throw refuse('it is an internal table');
  if (/^\s*CREATE\s+VIRTUAL\b/i.test(found.sql ?? '')) throw refuse('SQLite allows no triggers on a virtual table');
  return found.name;
}

/** Creates the log when missing; refuses a table of that name with other columns. */
function ensureLog(db: Database.Database): boolean {
  const columns = (db.pragma(`table_info(${CHANGE_LOG_TABLE})`) as Column[]).map((column) => column.name.toLowerCase());
  if (columns.length === 0) {
    db.exec(CHANGE_LOG_SCHEMA);
    return true;
  }
  if (columns.join(',') !== CHANGE_LOG_COLUMNS.join(',')) {
    throw new SseError(ErrorCodes.DB_UNREADABLE, `${CHANGE_LOG_TABLE} exists with columns ${columns.join(', ')}, not the change log's ${CHANGE_LOG_COLUMNS.join(', ')}: rename it`);
  }
  return false;
}

function tableColumns(db: Database.Database, table: string): Column[] {
  // table_xinfo includes generated columns (hidden 2 and 3), which SELECT * returns too; hidden 1 is a virtual table's.
  return (db.pragma(`table_xinfo(${quoteIdentifier(table)})`) as Column[]).filter((column) => column.hidden !== 1);
}

function keyColumns(table: string, columns: Column[]): Key {
  const declared = columns.filter((column) => column.pk > 0);
  if (declared.length > 0) return { refs: declared.map((column) => quoteIdentifier(column.name)), json: declared.map((column) => column.name) };
  // A column may shadow a rowid alias; any of the three that is free reads the real rowid.
  const names = new Set(columns.map((column) => column.name.toLowerCase()));
  const alias = ['rowid', '_rowid_', 'oid'].find((candidate) => !names.has(candidate));
  if (alias === undefined) {
    throw new SseError(ErrorCodes.BAD_OPTION, `cannot track ${table}: it has no primary key and its columns rowid, _rowid_ and oid hide its rowid`);
  }
  return { refs: [alias], json: ['rowid'] };
}

/** Our triggers: named `_sse_...` and writing to the log (so a user's own `_sse_` trigger is never dropped). */
/**
 * The columns of a tracked table that its insert trigger does not log: added (ALTER TABLE ... ADD COLUMN) since
 * `track` last ran. Their values are missing from every change until `track` runs again.
 */
export function untrackedColumns(db: Database.Database, table: string): string[] {
  const trigger = ourTriggers(db, table).find((row) => row.name === triggerName(row.tbl_name, 'insert'));
  if (!trigger) return [];
  return tableColumns(db, trigger.tbl_name)
    .map((column) => column.name)
    .filter((name) => !trigger.sql.includes(`NEW.${quoteIdentifier(name)}`));
}

function ourTriggers(db: Database.Database, table?: string): { name: string; tbl_name: string; sql: string }[] {
  const rows = db
    .prepare(`SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger' AND name LIKE '\\_sse\\_%' ESCAPE '\\' AND sql LIKE ? ORDER BY name`)
    .all(`%INSERT INTO ${CHANGE_LOG_TABLE}(%`) as { name: string; tbl_name: string; sql: string }[];
  return table === undefined ? rows : rows.filter((row) => row.tbl_name.toLowerCase() === table.toLowerCase());
}

function dropTriggers(db: Database.Database, table: string): string[] {
  const triggers = ourTriggers(db, table).map((trigger) => trigger.name);
  for (const name of triggers) db.exec(`DROP TRIGGER ${quoteIdentifier(name)}`);
  return triggers;
}

/** The trim clause of each trigger, which is where `keep` lives. */
const TRIM = /last_insert_rowid\(\) - (\d+)/;

/** The keep in this table's triggers, else in any tracked table's. */
function currentKeep(db: Database.Database, table: string): number | undefined {
  const triggers = ourTriggers(db);
  const own = triggers.filter((trigger) => trigger.tbl_name.toLowerCase() === table.toLowerCase());
  for (const trigger of [...own, ...triggers]) {
    const match = TRIM.exec(trigger.sql);
    if (match) return Number(match[1]);
  }
  return undefined;
}

/** Rewrites the trim clause of other tables' triggers to `keep`, leaving the rest of their SQL as it was. */
function retune(db: Database.Database, table: string, keep: number): string[] {
  const retuned = new Set<string>();
  for (const trigger of ourTriggers(db)) {
    if (trigger.tbl_name.toLowerCase() === table.toLowerCase()) continue;
    const match = TRIM.exec(trigger.sql);
    if (!match || Number(match[1]) === keep) continue;
    db.exec(`DROP TRIGGER ${quoteIdentifier(trigger.name)}`);
    db.exec(trigger.sql.replace(TRIM, `last_insert_rowid() - ${keep}`));
    retuned.add(trigger.tbl_name);
  }
  return [...retuned].sort();
}

/**
 * One value as JSON text (never NULL, so the concatenation of a row never collapses to NULL). Built by hand
 * rather than with json_object() because json_object() prints a REAL with 15 digits before SQLite 3.43
 * (0.1 + 0.2 came out as 0.3), and because a value inserted as json(...) keeps its JSON subtype in the trigger's
 * NEW row: json_quote(NEW.c), and even CAST(NEW.c AS TEXT), would then emit it as JSON instead of as a string.
 * `|| ''` makes a plain text value without the subtype.
 */
function valueJson(ref: string): string {
  const max = Number.MAX_SAFE_INTEGER;
  return (
    `CASE typeof(${ref})` +
    ` WHEN 'integer' THEN CASE WHEN ${ref} BETWEEN -${max} AND ${max} THEN CAST(${ref} AS TEXT) ELSE '{"${INT_MARKER}":"' || ${ref} || '"}' END` +
    // 18 significant digits: exact for every double in SQLite 3.40 (17 were not, for 0.3% of random bit patterns).
    ` WHEN 'real' THEN CASE WHEN ${ref} = 9e999 THEN '{"${REAL_MARKER}":"Infinity"}' WHEN ${ref} = -9e999 THEN '{"${REAL_MARKER}":"-Infinity"}' ELSE printf('%!.18g', ${ref}) END` +
    ` WHEN 'text' THEN json_quote(${ref} || '')` +
    ` WHEN 'blob' THEN '{"${BLOB_MARKER}":"' || hex(${ref}) || '"}'` +
    ` ELSE 'null' END`
  );
}

/** A JSON object of the given keys, each value read as `<prefix><ref>`. */
function objectJson(prefix: string, refs: string[], keys: string[]): string {
  const parts = refs.map((ref, i) => `${quoteString((i === 0 ? '{' : ',') + JSON.stringify(keys[i]) + ':')} || ${valueJson(prefix + ref)}`);
  return parts.length === 0 ? `'{}'` : `${parts.join(' || ')} || '}'`;
}

function triggerSql(table: string, columns: Column[], key: Key, keep: number): string[] {
  const on = quoteIdentifier(table);
  const names = columns.map((column) => column.name);
  const refs = names.map(quoteIdentifier);
  const row = (prefix: string) => objectJson(prefix, refs, names);
  const pk = (prefix: string) => objectJson(prefix, key.refs, key.json);
  const log = `INSERT INTO ${CHANGE_LOG_TABLE}(tbl, op, pk, row, old)`;
  const tbl = quoteString(table);
  // COLLATE BINARY: a key changed only in case (under NOCASE) is still a new key to a client matching exact values.
  const keyChanged = key.refs.map((ref) => `OLD.${ref} IS NOT NEW.${ref} COLLATE BINARY`).join(' OR ');
  // last_insert_rowid() inside a trigger is the seq just logged; AUTOINCREMENT never reuses a seq after the trim.
  const trim = `DELETE FROM ${CHANGE_LOG_TABLE} WHERE seq <= last_insert_rowid() - ${keep};`;
  const create = (op: (typeof OPS)[number]) => `CREATE TRIGGER ${quoteIdentifier(triggerName(table, op))} AFTER ${op.toUpperCase()} ON ${on} BEGIN\n`;
  return [
    `${create('insert')}  ${log} VALUES (${tbl}, 'insert', ${pk('NEW.')}, ${row('NEW.')}, NULL);\n  ${trim}\nEND`,
    // A key change is logged as a delete of the old key and an insert of the new one, so clients keyed by pk stay right.
    `${create('update')}` +
      `  ${log} SELECT ${tbl}, 'delete', ${pk('OLD.')}, NULL, ${row('OLD.')} WHERE ${keyChanged};\n` +
      `  ${log} SELECT ${tbl}, 'insert', ${pk('NEW.')}, ${row('NEW.')}, NULL WHERE ${keyChanged};\n` +
      `  ${log} SELECT ${tbl}, 'update', ${pk('NEW.')}, ${row('NEW.')}, ${row('OLD.')} WHERE NOT (${keyChanged});\n` +
      `  ${trim}\nEND`,
    `${create('delete')}  ${log} VALUES (${tbl}, 'delete', ${pk('OLD.')}, NULL, ${row('OLD.')});\n  ${trim}\nEND`,
  ];
}
