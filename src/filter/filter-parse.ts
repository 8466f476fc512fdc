import { ErrorCodes, SseError } from '../errors.js';
import { affinityOf, type Affinity } from './sqlite-compare.js';

/** A column as `PRAGMA table_info` reports it: its name and declared type ('' when none). */
export interface ColumnInfo {
  name: string;
  type: string;
}

/** PostgREST's operators that a filter accepts. `is` takes `null`, `true` or `false`. */
export type Operator = 'eq' | 'neq' | 'gt' | 'gte' | 'lt' | 'lte' | 'in' | 'is';

/** One condition, `column op values`: one value, except `in` (a list, possibly empty) and `is` (null|true|false). */
export interface Condition {
  readonly column: string;
  readonly op: Operator;
  readonly values: readonly string[];
  /** The column's affinity, which decides how the values compare (kept here so the index needs no columns). */
  readonly affinity: Affinity;
}

/** A parsed filter: conditions ANDed, in canonical order, and the columns to send (undefined: all). */
export interface Filter {
  readonly conditions: readonly Condition[];
  /** The selected columns in table order, key columns included; undefined when `select` is absent or `*`. */
  readonly select?: readonly string[];
}

/** Query parameters that are never filters, even when a column has that name. */
export const RESERVED_PARAMETERS: ReadonlySet<string> = new Set(['lastEventId', 'token', 'table', 'select', 'snapshot']);

const OPERATORS: readonly Operator[] = ['eq', 'neq', 'gt', 'gte', 'lt', 'lte', 'in', 'is'];
const IS_VALUES = ['null', 'true', 'false'];
/** Bound parameters of one filter: SQLite allows 32766 per statement, and each value costs every group check. */
export const MAX_FILTER_VALUES = 1000;

/**
 * Parses PostgREST-style filters (`user_id=eq.42&status=in.(open,blocked)&select=id,title`) against a table's
 * columns. Reserved parameters are skipped. Throws `SseError` `SSE_ERR_BAD_FILTER` with a one-line message naming
 * the parameter. `table` only names the table in messages.
 */
export function parseFilter(query: URLSearchParams, columns: readonly ColumnInfo[], keyColumns: readonly string[], table?: string): Filter {
  const byName = columnLookup(columns);
  const conditions = new Map<string, Condition>();
  let valueCount = 0;
  for (const [name, raw] of query) {
    if (RESERVED_PARAMETERS.has(name)) continue;
    const fail = (reason: string): never => {
      throw new SseError(ErrorCodes.BAD_FILTER, `filter ${shown(`${name}=${raw}`)}: ${reason}`);
    };
    const column = byName(name) ?? fail(noColumn(name, columns, table));
    const dot = raw.indexOf('.');
    const op = raw.slice(0, dot < 0 ? raw.length : dot);
    if (!OPERATORS.includes(op as Operator)) {
      fail(dot < 0 ? `expected operator.value, e.g. ${name}=eq.${raw}` : `unknown operator ${shown(op)} (use ${OPERATORS.join(', ')}; not. is not supported)`);
    }
    const rest = raw.slice(dot + 1);
    let values: string[];
    if (op === 'in') values = parseList(rest, fail);
    else if (op === 'is') values = IS_VALUES.includes(rest) ? [rest] : fail(`is takes null, true or false, not ${shown(rest)}`);
    else values = [rest];
    // A NUL would be compared by SQLite up to its full length, but read as a number only up to the NUL.
    if (values.some((value) => value.includes('\0'))) fail('a value contains a NUL character');
    valueCount += values.length;
    if (valueCount > MAX_FILTER_VALUES) fail(`more than ${MAX_FILTER_VALUES} values in one filter`);
    const condition: Condition = { column: column.name, op: op as Operator, values, affinity: affinityOf(column.type) };
    conditions.set(conditionKey(condition), condition);
  }
  const order = new Map(columns.map((column, index) => [column.name, index]));
  const sorted = [...conditions.entries()]
    .sort(([keyA, a], [keyB, b]) => order.get(a.column)! - order.get(b.column)! || (keyA < keyB ? -1 : keyA > keyB ? 1 : 0))
    .map(([, condition]) => condition);
  const select = parseSelect(query, columns, keyColumns, byName, table);
  return select === undefined ? { conditions: sorted } : { conditions: sorted, select };
}

/** A canonical string for a filter: equal filters (same conditions, in any order, same columns) give equal keys. */
export function filterKey(filter: Filter): string {
  return JSON.stringify([filter.conditions.map((c) => [c.column, c.op, c.values]), filter.select ?? '*']);
}

const conditionKey = (condition: Condition): string => JSON.stringify([condition.column, condition.op, condition.values]);

/** Exact name first, then SQLite's case-insensitive match, so `USER_ID` finds `user_id` and keys stay canonical. */
function columnLookup(columns: readonly ColumnInfo[]): (name: string) => ColumnInfo | undefined {
  const exact = new Map(columns.map((column) => [column.name, column]));
  const folded = new Map(columns.map((column) => [column.name.toLowerCase(), column]));
  return (name) => exact.get(name) ?? folded.get(name.toLowerCase());
}

const noColumn = (name: string, columns: readonly ColumnInfo[], table?: string): string =>
  `no column ${shown(name)}${table === undefined ? '' : ` in ${table}`} (columns: ${columns.map((c) => c.name).join(', ')})`;

/** A parameter as it appears in a message: one line, at most 100 characters. */
function shown(text: string): string {
  const line = text.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return line.length > 100 ? `${line.slice(0, 97)}...` : line;
}

/**
 * PostgREST's list: `(a,"b,c","d\"e")`. A double-quoted item may hold commas, parens and quotes, with a backslash
 * escaping the next character; a bare item may not hold `,()"` and may not be empty (write `""`). `()` is the empty
 * list, which matches no row. Values are sorted and deduplicated: the order of an `in` list does not matter.
 */
function parseList(text: string, fail: (reason: string) => never): string[] {
  if (!text.startsWith('(') || !text.endsWith(')') || text.length < 2) fail('an in list is written in.(a,b,...)');
  const body = text.slice(1, -1);
  const values = new Set<string>();
  if (body === '') return [];
  let i = 0;
  for (;;) {
    let value = '';
    if (body[i] === '"') {
      i++;
      for (;;) {
        if (i >= body.length) fail('unterminated "quoted" value in the in list');
        const c = body[i++];
        if (c === '"') break;
        if (c === '\\') {
          if (i >= body.length) fail('a backslash ends the in list');
          value += body[i++];
        } else value += c;
      }
    } else {
      const start = i;
      while (i < body.length && !',()"'.includes(body[i])) i++;
      value = body.slice(start, i);
      if (value === '') fail('empty value in the in list (write "" for the empty string)');
    }
    values.add(value);
    if (i === body.length) break;
    if (body[i] !== ',') fail(`unexpected ${shown(body[i])} in the in list (quote values that hold ,()")`);
    i++;
  }
  return [...values].sort();
}

function parseSelect(
  query: URLSearchParams,
  columns: readonly ColumnInfo[],
  keyColumns: readonly string[],
  byName: (name: string) => ColumnInfo | undefined,
  table?: string,
): string[] | undefined {
  const all = query.getAll('select');
  if (all.length === 0) return undefined;
  const fail = (reason: string): never => {
    throw new SseError(ErrorCodes.BAD_FILTER, `select=${shown(all.join(','))}: ${reason}`);
  };
  if (all.length > 1) fail('give select once');
  if (all[0].trim() === '*') return undefined;
  const chosen = new Set<string>();
  for (const item of all[0].split(',')) {
    const name = item.trim();
    if (name === '') fail('empty column name (select=col1,col2)');
    const column = byName(name) ?? fail(noColumn(name, columns, table));
    if (chosen.has(column.name)) fail(`${shown(column.name)} is listed twice`);
    chosen.add(column.name);
  }
  for (const key of keyColumns) chosen.add(key);
  return columns.map((column) => column.name).filter((name) => chosen.has(name));
}
