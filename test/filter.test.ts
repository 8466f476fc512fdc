import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ErrorCodes, SseError } from '../src/errors.js';
import {
  affinityOf,
  compilePredicate,
  compileSql,
  eqIndexKeys,
  filterKey,
  parseFilter,
  project,
  rowIndexKey,
  type ColumnInfo,
  type Filter,
} from '../src/filter/filter.js';
import { rowToJson } from '../src/hub/row-json.js';
import { removeDirectory } from './helpers/cleanup.js';
import { sqlite, tempDirectory } from './helpers/database.js';

const TODOS: ColumnInfo[] = [
  { name: 'id', type: 'INTEGER' },
  { name: 'user_id', type: 'INTEGER' },
  { name: 'title', type: 'TEXT' },
  { name: 'status', type: 'TEXT' },
];
const parse = (query: string, columns = TODOS, keys = ['id']): Filter => parseFilter(new URLSearchParams(query), columns, keys, 'todos');

function parseError(query: string): string {
  try {
    parse(query);
  } catch (error) {
    assert.instance(error, SseError);
    assert.is((error as SseError).code, ErrorCodes.BAD_FILTER);
    return (error as Error).message;
  }
  throw new Error(`no error for ${query}`);
}

test('affinityOf follows the five rules of datatype3 §3.1, in their order', () => {
  const cases: [string, string][] = [
    ['INTEGER', 'INTEGER'], ['int', 'INTEGER'], ['BIGINT', 'INTEGER'], ['UNSIGNED BIG INT', 'INTEGER'], ['CHARINT', 'INTEGER'],
    ['POINT', 'INTEGER'], ['TEXT', 'TEXT'], ['VARCHAR(255)', 'TEXT'], ['NCHAR(5)', 'TEXT'], ['CLOB', 'TEXT'], ['BLOBTEXT', 'TEXT'],
    ['TEXTBLOB', 'TEXT'], ['BLOB', 'BLOB'], ['', 'BLOB'], ['REALBLOB', 'BLOB'], ['REAL', 'REAL'], ['DOUBLE PRECISION', 'REAL'],
    ['FLOAT', 'REAL'], ['NUMERIC', 'NUMERIC'], ['DECIMAL(10,5)', 'NUMERIC'], ['BOOLEAN', 'NUMERIC'], ['DATETIME', 'NUMERIC'],
    ['STRING', 'NUMERIC'], ['ANY', 'NUMERIC'],
  ];
  for (const [type, affinity] of cases) assert.is(affinityOf(type), affinity, type);
  assert.is(affinityOf('ANY', true), 'BLOB');
  assert.is(affinityOf('\u0130NT'), 'NUMERIC', 'only ASCII letters fold');
});

test('parses every operator into conditions in canonical order', () => {
  const filter = parse('status=in.(open,blocked)&user_id=eq.42&title=is.null&user_id=gte.7&lastEventId=5&token=x&table=t&snapshot=1');
  assert.equal(filter.conditions, [
    { column: 'user_id', op: 'eq', values: ['42'], affinity: 'INTEGER' },
    { column: 'user_id', op: 'gte', values: ['7'], affinity: 'INTEGER' },
    { column: 'title', op: 'is', values: ['null'], affinity: 'TEXT' },
    { column: 'status', op: 'in', values: ['blocked', 'open'], affinity: 'TEXT' },
  ]);
  assert.is(filter.select, undefined);
  for (const op of ['eq', 'neq', 'gt', 'gte', 'lt', 'lte']) assert.equal(parse(`title=${op}.a.b`).conditions[0].values, ['a.b']);
  assert.equal(parse('title=eq.').conditions[0].values, ['']);
  assert.equal(parse('title=is.true&status=is.false').conditions.map((c) => c.values[0]), ['true', 'false']);
  assert.equal(parse('USER_ID=eq.1').conditions[0].column, 'user_id');
});

test('in lists follow PostgREST: quotes hold commas and parens, backslash escapes', () => {
  assert.equal(parse('title=in.(a,"b,c","d\\"e","(x)","back\\\\slash","")').conditions[0].values, ['', '(x)', 'a', 'b,c', 'back\\slash', 'd"e']);
  assert.equal(parse('title=in.()').conditions[0].values, []);
  assert.equal(parse('title=in.(b,a,b)').conditions[0].values, ['a', 'b']);
  assert.equal(parse('title=in.( a)').conditions[0].values, [' a']);
});

test('select keeps the listed columns and the key columns, in table order', () => {
  assert.equal(parse('select=title,user_id').select, ['id', 'user_id', 'title']);
  assert.equal(parse('select=status, id').select, ['id', 'status']);
  assert.is(parse('select=*').select, undefined);
  const row = { id: 1n, user_id: 2n, title: 't', status: 's' };
  assert.equal(Object.keys(project(row, ['id', 'user_id', 'title'])), ['id', 'user_id', 'title']);
  assert.is(project(row, undefined), row);
});

test('every malformed filter is refused with a one-line message that names the parameter', () => {
  const cases: [string, string][] = [
    ['user_idd=eq.42', 'filter user_idd=eq.42: no column user_idd in todos (columns: id, user_id, title, status)'],
    ['user_id=foo.42', 'filter user_id=foo.42: unknown operator foo (use eq, neq, gt, gte, lt, lte, in, is; not. is not supported)'],
    ['user_id=not.eq.42', 'filter user_id=not.eq.42: unknown operator not (use eq, neq, gt, gte, lt, lte, in, is; not. is not supported)'],
    ['user_id=42', 'filter user_id=42: expected operator.value, e.g. user_id=eq.42'],
    ['title=is.maybe', 'filter title=is.maybe: is takes null, true or false, not maybe'],
    ['title=is.NULL', 'filter title=is.NULL: is takes null, true or false, not NULL'],
    ['title=in.a,b', 'filter title=in.a,b: an in list is written in.(a,b,...)'],
    ['title=in.(a,b', 'filter title=in.(a,b: an in list is written in.(a,b,...)'],
    ['title=in.(a,,b)', 'filter title=in.(a,,b): empty value in the in list (write "" for the empty string)'],
    ['title=in.("a)', 'filter title=in.("a): unterminated "quoted" value in the in list'],
    ['title=in.("a"b)', 'filter title=in.("a"b): unexpected b in the in list (quote values that hold ,()")'],
    ['title=in.(a(b))', 'filter title=in.(a(b)): unexpected ( in the in list (quote values that hold ,()")'],
    ['title=in.("a\\)', 'filter title=in.("a\\): a backslash ends the in list'],
    ['title=eq.a%00b', 'filter title=eq.a\\x00b: a value contains a NUL character'],
    ['select=title,nope', 'select=title,nope: no column nope in todos (columns: id, user_id, title, status)'],
    ['select=title,title', 'select=title,title: title is listed twice'],
    ['select=title,', 'select=title,: empty column name (select=col1,col2)'],
    ['select=id&select=title', 'select=id,title: give select once'],
    [`title=in.(${Array.from({ length: 1001 }, (_, i) => i).join(',')})`, 'more than 1000 values in one filter'],
  ];
  for (const [query, expected] of cases) {
    const message = parseError(query);
    assert.not.match(message, /[\r\n]/);
    if (expected.startsWith('filter') || expected.startsWith('select')) assert.is(message, expected);
    else assert.ok(message.endsWith(expected) && message.length < 200, message);
  }
  assert.equal(parse('title=eq.a%0Ab').conditions[0].values, ['a\nb'], 'a newline is a value like any other');
});

test('filterKey is equal for equal filters and differs otherwise', () => {
  const key = (query: string): string => filterKey(parse(query));
  assert.is(key('user_id=eq.1&status=in.(a,b)'), key('status=in.(b,a,a)&user_id=eq.1&lastEventId=9'));
  assert.is(key('user_id=eq.1&user_id=eq.1'), key('user_id=eq.1'));
  assert.is(key('select=title'), key('select=id,title'));
  assert.is.not(key('user_id=eq.1'), key('user_id=eq.2'));
  assert.is.not(key('user_id=eq.1'), key('user_id=neq.1'));
  assert.is.not(key('select=title'), key(''));
  assert.is.not(key('status=in.("a,b")'), key('status=in.(a,b)'));
});

test('compileSql binds every value as a parameter over quoted names', () => {
  const columns = [...TODOS, { name: 'we"ird', type: '' }];
  const filter = parseFilter(new URLSearchParams('we"ird=eq.x\'); DROP TABLE todos;--&status=in.(a,b)&title=is.true&user_id=is.false&id=is.null'), columns, ['id']);
  assert.equal(compileSql(filter), {
    where:
      '"id" IS NULL AND (CASE WHEN "user_id" THEN 0 WHEN "user_id" IS NULL THEN 0 ELSE 1 END) AND (CASE WHEN "title" THEN 1 ELSE 0 END)' +
      ' AND "status" IN (?, ?) AND "we""ird" = ?',
    params: ['a', 'b', "x'); DROP TABLE todos;--"],
  });
  assert.equal(compileSql(parse('')), { where: '1', params: [] });
  assert.equal(compileSql(parse('title=in.()')), { where: '"title" IN ()', params: [] });
});

test('an INTEGER column holding the text 42: eq.42 matches it, and so does its index key', () => {
  const filter = parse('user_id=eq.42.0');
  const predicate = compilePredicate(filter, TODOS);
  assert.ok(predicate({ id: 1n, user_id: '42' }));
  assert.ok(predicate({ id: 1n, user_id: 42n }));
  assert.ok(predicate({ id: 1n, user_id: 42 }));
  assert.not.ok(predicate({ id: 1n, user_id: '42abc' }));
  const [entry] = eqIndexKeys(filter);
  for (const value of ['42', 42n, 42, ' 42 ', '4.2e1']) assert.ok(entry.keys.includes(rowIndexKey('user_id', value, 'INTEGER')!), String(value));
  assert.not.ok(entry.keys.includes(rowIndexKey('user_id', '42abc', 'INTEGER')!));
});

/** The values of `stored` that `query` selects in a column of `type`, by SQLite and by the predicate (which must agree). */
function selects(type: string, stored: unknown[], query: string): unknown[] {
  const db = new Database(':memory:');
  try {
    db.defaultSafeIntegers(true);
    db.exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, v ${type})`);
    const insert = db.prepare('INSERT INTO t(v) VALUES (?)');
    for (const value of stored) insert.run(value);
    const columns = [{ name: 'id', type: 'INTEGER' }, { name: 'v', type }];
    const filter = parseFilter(new URLSearchParams(query), columns, ['id']);
    const { where, params } = compileSql(filter);
    const bySqlite = (db.prepare(`SELECT v FROM t WHERE ${where} ORDER BY id`).all(...params) as { v: unknown }[]).map((r) => r.v);
    const predicate = compilePredicate(filter, columns);
    const byPredicate = (db.prepare('SELECT * FROM t ORDER BY id').all() as Record<string, unknown>[]).filter(predicate).map((r) => r.v);
    assert.equal(byPredicate, bySqlite, `${type} ${query}`);
    return bySqlite;
  } finally {
    db.close();
  }
}

test('the examples of docs/filters.md select what the page says', () => {
  const mixed = [7n, 'abc', Buffer.from([0])];
  assert.equal(selects('INTEGER', mixed, 'v=gt.10'), ['abc', Buffer.from([0])]);
  assert.equal(selects('INTEGER', mixed, 'v=lt.abc'), [7n]);
  assert.equal(selects('INTEGER', mixed, 'v=gt.abc'), [Buffer.from([0])]);
  for (const value of ['42', '42.0', '4.2e1', '%2B42', '%2042']) assert.equal(selects('INTEGER', [42n, 43n, '42abc'], `v=eq.${value}`), [42n], value);
  assert.equal(selects('INTEGER', [42n, '42abc', 16n, '0x10'], 'v=eq.42abc'), ['42abc']);
  assert.equal(selects('INTEGER', [42n, '42abc', 16n, '0x10'], 'v=eq.0x10'), ['0x10']);
  assert.equal(selects('REAL', [9007199254740993n], 'v=eq.9007199254740993'), []);
  assert.equal(selects('INTEGER', [2n ** 63n - 1n], 'v=lt.9223372036854775807'), []);
  assert.equal(selects('TEXT', ['9', '10', '11'], 'v=gt.10'), ['9', '11']);
  assert.equal(selects('TEXT', ['42', '42.0', ' 42'], 'v=eq.42'), ['42']);
  assert.equal(selects('TEXT', ['é', 'a', '😀', 'B'], 'v=gt.B'), ['é', 'a', '😀']);
  assert.equal(selects('TEXT', ['é', 'a', '😀', 'B', '\uffff'], 'v=gt.%EF%BF%BF'), ['😀']);
  assert.equal(selects('', [42n, '42'], 'v=eq.42'), ['42']);
  assert.equal(selects('BLOB', [42n, 1.5, '0', 'a'], 'v=lt.0'), [42n, 1.5]);
  assert.equal(selects('TEXT', ['done', null, 'open'], 'v=neq.done'), ['open']);
  const truths = ['1', '2abc', '0.5', '0', 'abc', '', 'true', null, 3n, 0n];
  assert.equal(selects('TEXT', truths, 'v=is.true'), ['1', '2abc', '0.5', '3']);
  assert.equal(selects('TEXT', truths, 'v=is.false'), ['0', 'abc', '', 'true', '0']);
  assert.equal(selects('INTEGER', truths, 'v=is.null'), [null]);
});

/** The neighbours of a double, to see that a conversion is not off by one unit in the last place. */
function nextDoubles(value: number): number[] {
  if (!Number.isFinite(value) || value === 0) return [];
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, value);
  const bits = view.getBigUint64(0);
  return [bits - 1n, bits + 1n].map((neighbour) => {
    view.setBigUint64(0, neighbour);
    return view.getFloat64(0);
  }).filter(Number.isFinite);
}

test('numeric text converts exactly as SQLite converts it: 19 digits, exponents, spaces, overflow', () => {
  const db = new Database(':memory:');
  db.defaultSafeIntegers(true);
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, x NUMERIC)');
  const insert = db.prepare('INSERT INTO t(id, x) VALUES (?, ?)');
  const matches = db.prepare('SELECT id FROM t WHERE x = ? ORDER BY id').pluck();
  const columns = [{ name: 'id', type: 'INTEGER' }, { name: 'x', type: 'NUMERIC' }];
  const next = random(11);
  const texts = ['1e', '1e+', '.', '-', '+.5', '5.', '-0', '\t42\n', '42 x', '1_000', '0x1F', '00042', '1e-400', '4e-324', '1e309',
    // Past 19 significant digits SQLite truncates before rounding: these sit just above a midpoint between doubles.
    '9007199254740993.00000000001', '18014398509481986.0000001', '0.1000000000000000055511151231257827021181583404541015625001'];
  for (let k = 0; k < 3000; k++) {
    const alphabet = k % 3 === 0 ? '0123456789.e-+ \tx' : '0123456789';
    let text = k % 5 === 0 ? '-' : '';
    const length = 1 + Math.floor(next() * 26);
    for (let i = 0; i < length; i++) text += alphabet[Math.floor(next() * alphabet.length)];
    if (k % 7 === 0) text += `e${Math.floor(next() * 700) - 350}`;
    texts.push(text);
  }
  for (const text of texts) {
    db.exec('DELETE FROM t');
    const filter = parseFilter(new URLSearchParams([['x', `eq.${text}`]]), columns, ['id']);
    const predicate = compilePredicate(filter, columns);
    // Row 1 holds the text's own value; rows 2-3 its nearest neighbours, which must not match.
    insert.run(1n, text);
    const stored = (db.prepare('SELECT x FROM t WHERE id = 1').get() as { x: unknown }).x;
    if (typeof stored === 'bigint') {
      if (stored > -(2n ** 63n)) insert.run(2n, stored - 1n);
      if (stored < 2n ** 63n - 1n) insert.run(3n, stored + 1n);
    } else if (typeof stored === 'number') nextDoubles(stored).forEach((neighbour, i) => insert.run(BigInt(2 + i), neighbour));
    const rows = db.prepare('SELECT * FROM t ORDER BY id').all() as Record<string, unknown>[];
    const bySqlite = (matches.all(text) as bigint[]).map(String);
    const byPredicate = rows.filter(predicate).map((row) => String(row.id));
    assert.equal(byPredicate, bySqlite, `eq.${JSON.stringify(text)} over ${rows.map((row) => describe(row.x)).join(', ')}`);
  }
  db.close();
});

// ---------------------------------------------------------------------------------------------------------------
// The differential test: the predicate against SQLite itself, on mixed data in every affinity.

const TYPES: [string, string][] = [['i', 'INTEGER'], ['r', 'REAL'], ['n', 'NUMERIC'], ['t', 'TEXT'], ['b', 'BLOB'], ['u', '']];
const COLUMNS: ColumnInfo[] = [{ name: 'id', type: 'INTEGER' }, ...TYPES.map(([name, type]) => ({ name, type }))];
const TYPED_SQL = `(id INTEGER PRIMARY KEY, ${TYPES.map(([name, type]) => `${name} ${type}`.trim()).join(', ')})`;

const STORED: unknown[] = [
  null, 42n, -1n, 0n, 1n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 53n + 1n, 2n ** 53n, 1000n, 42.0, 42.5, 0.1, -1.5, 1e300, -1e300, 1e-7,
  Infinity, -Infinity, 2 ** 63, '42', '42.0', ' 42', '42 ', '42abc', '0x10', '1e3', 'abc', 'ABC', '', 'é', 'e', '😀', '\uffff', 'ｚ',
  'true', '1', '0', '0.0', '-0', '9223372036854775807', '9223372036854775808', '9007199254740993', '\t7\n', '1e999', 'a,b', 'Inf',
  Buffer.from('42'), Buffer.alloc(0), Buffer.from([0xff, 0]), Buffer.from('abc'), Buffer.from('1'),
];

const VALUES = [
  '42', '42.0', '4.2e1', ' 42', '42 ', '+42', '42abc', '0x10', '1e3', '1000', 'abc', 'ABC', '', 'é', 'e', '😀', 'ｚ', '\uffff', '-1', '0',
  '-0', '0.0', '1', 'true', '1e300', '1e999', '-1e999', '9223372036854775807', '9223372036854775808', '-9223372036854775808',
  '-9223372036854775809', '9007199254740993', '9007199254740992', '0.1', '42.5', '.5', '5.', 'Inf', 'a,b', '"q"', '(x)', '1e-7',
];

/** A tiny deterministic generator, so a failure reproduces. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state / 2147483648;
  };
}

const quoteItem = (value: string): string => `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;

function filterQueries(): string[] {
  const queries: string[] = [];
  const next = random(7);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)];
  const single = (column: string): string[] => {
    const out = ['null', 'true', 'false'].map((v) => `${column}=is.${v}`);
    for (const op of ['eq', 'neq', 'gt', 'gte', 'lt', 'lte']) for (const value of VALUES) out.push(`${column}=${op}.${encodeURIComponent(value)}`);
    for (let k = 0; k < 40; k++) {
      const items = Array.from({ length: Math.floor(next() * 4) }, () => pick(VALUES));
      out.push(`${column}=in.(${encodeURIComponent(items.map(quoteItem).join(','))})`);
    }
    return out;
  };
  const singles = COLUMNS.map((column) => single(column.name));
  for (const list of singles) queries.push(...list);
  for (let k = 0; k < 400; k++) queries.push(`${pick(pick(singles))}&${pick(pick(singles))}&${pick(pick(singles))}`);
  return queries;
}

type Rows = Record<string, unknown>[];

/** The row as a client of the JSON stream decodes it: safe integers as numbers, bigints beyond 2^53, Buffers. */
function jsonDecoded(row: Record<string, unknown>): Record<string, unknown> {
  const parsed = JSON.parse(rowToJson(row)) as Record<string, unknown>;
  for (const key in row) {
    const original = row[key];
    if (typeof original === 'bigint' && typeof parsed[key] === 'string') parsed[key] = BigInt(parsed[key] as string);
    if (Buffer.isBuffer(original)) parsed[key] = Buffer.from(parsed[key] as string, 'base64');
  }
  return parsed;
}

/** JSON cannot carry ±Infinity (it writes null) nor tell a TEXT column's INTEGER 42 from its REAL 42.0. */
function jsonCanCarry(row: Record<string, unknown>, filter: Filter): boolean {
  return filter.conditions.every((c) => {
    const value = row[c.column];
    if (typeof value === 'number' && !Number.isFinite(value)) return false;
    return !(c.affinity === 'TEXT' && typeof value === 'bigint');
  });
}

const describe = (value: unknown): string =>
  value === null ? 'NULL' : Buffer.isBuffer(value) ? `blob x'${value.toString('hex')}'` : `${typeof value} ${JSON.stringify(typeof value === 'bigint' ? `${value}` : value)}`;

interface Tally {
  filters: number;
  checks: number;
  jsonSkipped: number;
  indexed: number;
  unkeyed: number;
}

function differential(db: Database.Database, table: string, queries: string[], tally: Tally): void {
  const rows = db.prepare(`SELECT * FROM ${table} ORDER BY id`).safeIntegers(true).all() as Rows;
  const decoded = rows.map(jsonDecoded);
  for (const query of queries) {
    const filter = parseFilter(new URLSearchParams(query), COLUMNS, ['id']);
    const { where, params } = compileSql(filter);
    const expected = (db.prepare(`SELECT id FROM ${table} WHERE ${where} ORDER BY id`).safeIntegers(true).all(...params) as { id: bigint }[]).map((r) => r.id);
    const predicate = compilePredicate(filter, COLUMNS);
    const index = eqIndexKeys(filter);
    tally.filters++;
    for (const [form, list] of [['safeIntegers', rows], ['JSON', decoded]] as const) {
      for (let k = 0; k < list.length; k++) {
        if (form === 'JSON' && !jsonCanCarry(rows[k], filter)) {
          tally.jsonSkipped++;
          continue;
        }
        const row = list[k];
        const sqliteSays = expected.includes(rows[k].id as bigint);
        const weSay = predicate(row);
        tally.checks++;
        if (sqliteSays !== weSay) {
          const cells = filter.conditions.map((c) => `${c.column} (${c.affinity}) = ${describe(row[c.column])}`).join('; ');
          assert.unreachable(`${table}, ${form} row id ${rows[k].id}: SQLite says ${sqliteSays}, predicate says ${weSay}\n  filter ${decodeURIComponent(query)}\n  SQL WHERE ${where} ${JSON.stringify(params)}\n  ${cells}`);
        }
        if (!weSay) continue;
        for (const entry of index) {
          const affinity = filter.conditions.find((c) => c.column === entry.column)!.affinity;
          const key = rowIndexKey(entry.column, row[entry.column], affinity);
          tally.indexed++;
          if (key === undefined) {
            tally.unkeyed++;
            continue;
          }
          if (!entry.keys.includes(key)) {
            assert.unreachable(`${table}, ${form} row id ${rows[k].id}: the eq index would lose it\n  filter ${decodeURIComponent(query)}\n  ${entry.column} = ${describe(row[entry.column])} key ${JSON.stringify(key)} not in ${JSON.stringify(entry.keys)}`);
          }
        }
      }
    }
  }
}

test('differential: the predicate accepts exactly the rows SQLite returns, and the eq index loses none', () => {
  const directory = tempDirectory();
  try {
    const path = join(directory, 'mixed.db');
    const db = new Database(path);
    db.defaultSafeIntegers(true);
    const insert = (table: string): void => {
      const statement = db.prepare(`INSERT INTO ${table}(${TYPES.map(([name]) => name).join(', ')}) VALUES (${TYPES.map(() => '?').join(', ')})`);
      for (const value of STORED) statement.run(...TYPES.map(() => value));
    };
    // "natural": values stored through each column's affinity, as any writer stores them.
    db.exec(`CREATE TABLE natural ${TYPED_SQL}`);
    insert('natural');
    // "indexed": the same, with the index docs/filters.md recommends on every column, so SQLite answers by seeks.
    db.exec(`CREATE TABLE indexed ${TYPED_SQL}`);
    insert('indexed');
    for (const [name] of TYPES) db.exec(`CREATE INDEX indexed_${name} ON indexed(${name}, id)`);
    // "anything": every storage class in every column (untyped when written, typed afterwards), so a TEXT
    // column holds INTEGER 42 and an INTEGER column holds TEXT '42', as after a change of declared type.
    db.exec(`CREATE TABLE anything (id INTEGER PRIMARY KEY, ${TYPES.map(([name]) => name).join(', ')})`);
    insert('anything');
    db.close();
    sqlite(path, `PRAGMA writable_schema=ON; UPDATE sqlite_schema SET sql='CREATE TABLE anything ${TYPED_SQL}' WHERE name='anything';`);
    const reopened = new Database(path, { readonly: true });
    const typed = reopened.prepare(`SELECT typeof(i) t FROM anything WHERE i = 'abc'`).get() as { t: string };
    assert.is(typed.t, 'text');
    const declared = reopened.prepare(`SELECT type FROM pragma_table_info('anything') WHERE name = 't'`).get() as { type: string };
    assert.is(declared.type, 'TEXT');

    const queries = filterQueries();
    const tally: Tally = { filters: 0, checks: 0, jsonSkipped: 0, indexed: 0, unkeyed: 0 };
    for (const table of ['natural', 'indexed']) differential(reopened, table, queries, tally);
    assert.is(tally.unkeyed, 0, 'with stored types, every accepted row has an index key');
    for (const table of ['anything']) differential(reopened, table, queries, tally);
    reopened.close();
    console.log(
      `  differential: ${tally.filters} filters, ${tally.checks} row checks (${tally.jsonSkipped} JSON rows skipped), ` +
        `${tally.indexed} index lookups, ${tally.unkeyed} unkeyed`,
    );
    assert.ok(tally.filters > 3000);
  } finally {
    removeDirectory(directory);
  }
});

test.run();
