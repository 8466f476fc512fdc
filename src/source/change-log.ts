/**
 * The change log: the table `track`'s triggers append to, and the decoder that turns its rows back into values.
 *
 * A log row holds `pk`, `row` and `old` as JSON objects (column → value, in column order). JSON alone cannot carry
 * every SQLite value exactly, so three values are wrapped in a one-key object that text can never produce (text is
 * always a JSON string): `{"$int":"<decimal>"}` for an integer outside ±(2^53 - 1), `{"$blob":"<hex>"}` for a BLOB,
 * `{"$real":"Infinity"}` (or `-Infinity`) for an infinite REAL. The triggers are in src/source/change-triggers.ts.
 */
import { ErrorCodes, SseError } from '../errors.js';
import { jsonValue } from '../hub/row-json.js';

/** Name of the change log table. */
export const CHANGE_LOG_TABLE = '_sse_changes';

/** The log's schema; `seq` is AUTOINCREMENT so a sequence number is never reused, even after the oldest rows are trimmed. */
export const CHANGE_LOG_SCHEMA = `CREATE TABLE IF NOT EXISTS ${CHANGE_LOG_TABLE}(seq INTEGER PRIMARY KEY AUTOINCREMENT, tbl TEXT NOT NULL, op TEXT NOT NULL, pk TEXT NOT NULL, row TEXT, old TEXT)`;

/** The log's columns, in order: a table of that name with other columns is not ours. */
export const CHANGE_LOG_COLUMNS: readonly string[] = ['seq', 'tbl', 'op', 'pk', 'row', 'old'];

/** The wrappers of values JSON cannot hold (see the module comment). */
export const INT_MARKER = '$int';
export const BLOB_MARKER = '$blob';
export const REAL_MARKER = '$real';

export type ChangeOp = 'insert' | 'update' | 'delete';

/** A row of `_sse_changes` as read (with or without safe integers). */
export interface ChangeLogRow {
  seq: number | bigint;
  tbl: string;
  op: string;
  pk: string;
  row: string | null;
  old: string | null;
}

/**
 * One changed row. Values are what better-sqlite3 returns for the row with safe integers, except that an integer
 * within ±(2^53 - 1) is a `number`: `bigint` beyond, `Buffer` for a BLOB, `number` for a REAL, `string`, `null`.
 */
export interface Change {
  op: ChangeOp;
  table: string;
  /** The primary-key columns, or `{ rowid }` for a table without a declared key. */
  pk: Record<string, unknown>;
  /** The whole row after the change; absent for a delete. */
  row?: Record<string, unknown>;
  /** The whole row before the change; absent for an insert. */
  old?: Record<string, unknown>;
}

/**
 * A change as a client of the change stream receives it: a logged change, a row of a snapshot (`op: 'snapshot'`),
 * or an update seen through a filter that the row entered (`move: 'in'`, no `old`) or left (`move: 'out'`, only `pk`).
 */
export interface ChangeEvent {
  op: ChangeOp | 'snapshot';
  move?: 'in' | 'out';
  table: string;
  pk: Record<string, unknown>;
  row?: Record<string, unknown>;
  old?: Record<string, unknown>;
}

const OPS: ReadonlySet<string> = new Set(['insert', 'update', 'delete']);

/** Decodes one log row; throws SseError (SSE_ERR_DB_UNREADABLE) for a row no trigger of ours wrote. */
export function decodeChange(logRow: ChangeLogRow): Change {
  const where = `${CHANGE_LOG_TABLE} row ${logRow.seq}`;
  if (!OPS.has(logRow.op)) throw new SseError(ErrorCodes.DB_UNREADABLE, `${where}: op ${JSON.stringify(logRow.op)} is not insert, update or delete`);
  const op = logRow.op as ChangeOp;
  const change: Change = { op, table: logRow.tbl, pk: decodeObject(logRow.pk, where, 'pk') };
  if (op !== 'delete') change.row = decodeObject(logRow.row, where, 'row');
  if (op !== 'insert') change.old = decodeObject(logRow.old, where, 'old');
  return change;
}

/**
 * A change as one line of JSON, `{"op","table","pk","row","old"}` with absent keys omitted, values as the insert
 * stream writes them (src/hub/row-json.ts): integers beyond 2^53 as decimal strings, BLOBs as base64.
 */
export function changeToJson(change: ChangeEvent): string {
  const out: Record<string, unknown> = { op: change.op };
  if (change.move !== undefined) out.move = change.move;
  out.table = change.table;
  out.pk = jsonObject(change.pk);
  if (change.row !== undefined) out.row = jsonObject(change.row);
  if (change.old !== undefined) out.old = jsonObject(change.old);
  return JSON.stringify(out);
}

function jsonObject(values: Record<string, unknown>): Record<string, unknown> {
  // Null prototype: a column named __proto__ is a key like any other, not the object's prototype.
  const out: Record<string, unknown> = Object.create(null);
  for (const key in values) out[key] = jsonValue(values[key]);
  return out;
}

function decodeObject(text: string | null, where: string, field: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = text === null ? null : JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new SseError(ErrorCodes.DB_UNREADABLE, `${where}: ${field} is not a JSON object`);
  }
  // JSON.parse makes a `__proto__` key an own property, so writing back into the same object is safe.
  const values = parsed as Record<string, unknown>;
  for (const key in values) values[key] = decodeValue(values[key], where);
  return values;
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

function safeInteger(value: bigint): number | bigint {
  return value >= -MAX_SAFE && value <= MAX_SAFE ? Number(value) : value;
}

const HEX = /^(?:[0-9a-fA-F]{2})*$/;
const INTEGER = /^-?\d+$/;

function decodeValue(value: unknown, where: string): unknown {
  if (value === null || typeof value !== 'object') return value;
  const wrapper = value as Record<string, unknown>;
  const keys = Object.keys(wrapper);
  const inner = wrapper[keys[0]];
  if (keys.length === 1 && typeof inner === 'string') {
    if (keys[0] === INT_MARKER && INTEGER.test(inner)) return safeInteger(BigInt(inner));
    if (keys[0] === BLOB_MARKER && HEX.test(inner)) return Buffer.from(inner, 'hex');
    if (keys[0] === REAL_MARKER && (inner === 'Infinity' || inner === '-Infinity')) return Number(inner);
  }
  throw new SseError(ErrorCodes.DB_UNREADABLE, `${where}: value ${JSON.stringify(value)} is not an encoded integer, blob or real`);
}
