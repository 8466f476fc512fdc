import type { ColumnInfo, Condition, Filter } from './filter-parse.js';
import {
  compareValues,
  isNumericAffinity,
  numberToText,
  numericValue,
  truthValue,
  type Affinity,
  type SqlValue,
} from './sqlite-compare.js';

/**
 * A row as the predicate reads it: better-sqlite3's values with `safeIntegers(true)` (bigint, number for REAL,
 * string, Buffer, null), or the same row decoded from JSON (safe integers as numbers, bigints beyond 2^53).
 */
export type Row = Record<string, unknown>;

/**
 * Compiles a filter to a predicate that decides a row exactly as SQLite decides `column OP ?` with the URL value
 * bound as TEXT (the column's affinity applied, BINARY collation, NULL never matching except `is.null`), so live rows
 * and the SQL catch-up of `compileSql` agree. `columns` is accepted for symmetry; conditions carry their affinity.
 */
export function compilePredicate(filter: Filter, _columns?: readonly ColumnInfo[]): (row: Row) => boolean {
  const tests = filter.conditions.map((condition) => ({ column: condition.column, test: compileCondition(condition) }));
  if (tests.length === 0) return () => true;
  if (tests.length === 1) {
    const [{ column, test }] = tests;
    return (row) => test(sqlValue(row[column]));
  }
  return (row) => {
    for (const { column, test } of tests) if (!test(sqlValue(row[column]))) return false;
    return true;
  };
}

/** A JavaScript value as a SQLite storage class; a number is a REAL (better-sqlite3 returns integers as bigint). */
function sqlValue(value: unknown): SqlValue {
  if (value === null || value === undefined) return null;
  switch (typeof value) {
    case 'bigint':
    case 'number':
    case 'string':
      return value;
    case 'boolean':
      return value ? 1n : 0n;
    default:
      return value instanceof Uint8Array ? value : null;
  }
}

/** The row's value as the comparison sees it once the column's affinity is applied (datatype3 §4.2). */
function withAffinity(value: Exclude<SqlValue, null>, affinity: Affinity): Exclude<SqlValue, null> {
  if (affinity === 'TEXT') return typeof value === 'bigint' || typeof value === 'number' ? numberToText(value) : value;
  if (typeof value === 'string' && isNumericAffinity(affinity)) return numericValue(value);
  return value;
}

function compileCondition(condition: Condition): (value: SqlValue) => boolean {
  const { op, affinity } = condition;
  if (op === 'is') {
    const wanted = condition.values[0];
    if (wanted === 'null') return (value) => value === null;
    const truth = wanted === 'true';
    return (value) => truthValue(value) === truth;
  }
  // The URL value is a TEXT parameter, which has no affinity: only numeric affinity changes it.
  const params = condition.values.map((text) => (isNumericAffinity(affinity) ? numericValue(text) : text));
  if (op === 'in') {
    // SQLite tests IN with 3 or more values against a temporary index, probing it with the row's value under
    // OP_Affinity, which under REAL affinity rounds an integer beyond ±2^47 to a double (only a TEXT value in a
    // REAL column can be one). With 1 or 2 values IN compares like `=`. Same SQLite, two answers: follow both.
    const probeRounds = affinity === 'REAL' && params.length >= 3;
    return (value) => {
      if (value === null) return false;
      let seen = withAffinity(value, affinity);
      if (probeRounds && typeof seen === 'bigint' && (seen > MAX_INT_REAL || seen < MIN_INT_REAL)) seen = Number(seen);
      for (const param of params) if (compareValues(seen, param) === 0) return true;
      return false;
    };
  }
  const param = params[0];
  const decide = DECISIONS[op];
  return (value) => value !== null && decide(compareValues(withAffinity(value, affinity), param));
}

/** The integers OP_Affinity keeps exact under REAL affinity (6 bytes); beyond them it stores a double. */
const MAX_INT_REAL = 140737488355327n;
const MIN_INT_REAL = -140737488355328n;

const DECISIONS: Record<'eq' | 'neq' | 'gt' | 'gte' | 'lt' | 'lte', (order: number) => boolean> = {
  eq: (order) => order === 0,
  neq: (order) => order !== 0,
  gt: (order) => order > 0,
  gte: (order) => order >= 0,
  lt: (order) => order < 0,
  lte: (order) => order <= 0,
};

/** The values one `eq` or `in` condition accepts, as index keys (see `rowIndexKey`). */
export interface EqIndexEntry {
  readonly column: string;
  readonly keys: readonly string[];
}

/**
 * The equality conditions of a filter as index keys: a row the filter accepts has, for every entry, a
 * `rowIndexKey` among `keys` (or undefined). So a hub may file a group under any one entry's keys and, for a row,
 * visit only the groups filed under the row's key plus those without an entry. An empty `keys` (`in.()`) matches
 * no row.
 */
export function eqIndexKeys(filter: Filter): EqIndexEntry[] {
  return filter.conditions
    .filter((condition) => condition.op === 'eq' || condition.op === 'in')
    .map((condition) => ({
      column: condition.column,
      keys: [...new Set(condition.values.map((text) => indexKey(condition.column, isNumericAffinity(condition.affinity) ? numericValue(text) : text)))],
    }));
}

/**
 * The index key of a row's value in `column`, consistent with `compilePredicate`: if `column = v` holds, the key
 * equals v's key from `eqIndexKeys` ('42', '42.0' and '4.2e1' share one key on a numeric column, and so does a
 * TEXT '42' that such a column holds). NULL and BLOB values get a key no filter value has (they equal no TEXT
 * parameter). Undefined when no key is safe, and then the row must be tested against every group indexed on this
 * column: a JavaScript number under TEXT affinity (a JSON-decoded integer and a REAL render differently, "42" and
 * "42.0"), and a TEXT integer beyond ±2^47 under REAL affinity (SQLite's IN rounds it, `=` does not). Neither
 * occurs in rows read with safeIntegers from a table whose declared types never changed.
 */
export function rowIndexKey(column: string, value: unknown, affinity: Affinity): string | undefined {
  const sql = sqlValue(value);
  if (sql === null || sql instanceof Uint8Array) return `${column}\0-`;
  if (affinity === 'TEXT') {
    if (typeof sql === 'number') return undefined;
    return indexKey(column, typeof sql === 'bigint' ? sql.toString() : sql);
  }
  if (affinity === 'BLOB') return typeof sql === 'string' ? indexKey(column, sql) : `${column}\0-`;
  if (typeof sql !== 'string') return indexKey(column, sql);
  const numeric = numericValue(sql);
  // IN with 3+ values rounds such a value to a double first (see compileCondition): no single key is safe.
  if (affinity === 'REAL' && typeof numeric === 'bigint' && (numeric > MAX_INT_REAL || numeric < MIN_INT_REAL)) return undefined;
  return indexKey(column, numeric);
}

/** One key per value class: `t` TEXT; `n` a number, integral ones as exact decimal integers so 42 and 42.0 meet. */
function indexKey(column: string, value: bigint | number | string): string {
  if (typeof value === 'string') return `${column}\0t${value}`;
  if (typeof value === 'bigint') return `${column}\0n${value}`;
  return `${column}\0n${Number.isInteger(value) ? BigInt(value) : value}`;
}

/** The row with only the selected columns, in table order; the row itself when nothing was selected. */
export function project(row: Row, select: readonly string[] | undefined): Row {
  if (select === undefined) return row;
  const out: Row = {};
  for (const name of select) if (name in row) out[name] = row[name];
  return out;
}
