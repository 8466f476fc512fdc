import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import Database from 'better-sqlite3';
import { changeToJson, decodeChange, type ChangeLogRow } from '../src/source/change-log.js';
import { trackedTables } from '../src/source/change-triggers.js';
import { ErrorCodes, SseError } from '../src/errors.js';
import { removeDirectory } from './helpers/cleanup.js';
import { readChanges, readRows, runTrack } from './helpers/change-log.js';
import { python, sqlite, tempDirectory } from './helpers/database.js';
import { waitFor } from './helpers/wait.js';

let directory: string;
let db: string;

test.before.each(() => {
  directory = tempDirectory();
  db = join(directory, 'app.db');
  sqlite(db, 'PRAGMA journal_mode=wal;');
});

test.after.each(() => {
  removeDirectory(directory);
});

/** Without seq, to compare with what a test expects. */
const changes = () => readChanges(db).map(({ seq: _seq, ...change }) => change);

test('inserts, updates and deletes by the sqlite3 shell are logged with whole rows', async () => {
  sqlite(db, 'CREATE TABLE todos(id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT, done INTEGER);');
  await runTrack('track', ['--db', db, '--table', 'todos']);
  sqlite(db, "INSERT INTO todos(title, done) VALUES ('milk', 0), ('eggs', 0); UPDATE todos SET done = 1 WHERE id = 2; DELETE FROM todos WHERE id = 1;");
  assert.equal(changes(), [
    { op: 'insert', table: 'todos', pk: { id: 1 }, row: { id: 1, title: 'milk', done: 0 } },
    { op: 'insert', table: 'todos', pk: { id: 2 }, row: { id: 2, title: 'eggs', done: 0 } },
    { op: 'update', table: 'todos', pk: { id: 2 }, row: { id: 2, title: 'eggs', done: 1 }, old: { id: 2, title: 'eggs', done: 0 } },
    { op: 'delete', table: 'todos', pk: { id: 1 }, old: { id: 1, title: 'milk', done: 0 } },
  ]);
  assert.equal(
    readChanges(db).map((change) => change.seq),
    [1, 2, 3, 4],
  );
});

test('every value a Python writer binds comes back exactly as better-sqlite3 reads it from the table', async () => {
  sqlite(db, 'CREATE TABLE vals(id INTEGER PRIMARY KEY, v, note TEXT);');
  await runTrack('track', ['--db', db, '--table', 'vals']);
  await python(
    db,
    `
con = sqlite3.connect(db, isolation_level=None)
values = [
    'it\\'s "quoted"\\nline 2\\r\\n\\ttab \\\\ back é 漢字 🎉 \\u2028 nul:\\x00:end', '', '{"a": 1}', '9007199254740993',
    0.1 + 0.2, 1e300, -2.5e-300, 5e-324, 1.7976931348623157e308, 123456789.123456789, float('inf'), float('-inf'),
    None, b'', bytes(range(256)),
    0, 2**53 - 1, -(2**53 - 1), 2**53, -(2**53), 2**63 - 1, -(2**63),
]
for v in values:
    con.execute("INSERT INTO vals(v) VALUES (?)", (v,))
`,
  );
  // And values built in SQL: a json() value keeps its JSON subtype in the trigger's NEW row, yet is text.
  sqlite(db, "INSERT INTO vals(v) VALUES (json_object('a', 1)), ('x' || char(0) || 'y'), (x'00ff'), (-0.5e-320);");
  const before = readRows(db, 'SELECT * FROM vals ORDER BY id');
  sqlite(db, "UPDATE vals SET note = 'seen';");
  const after = readRows(db, 'SELECT * FROM vals ORDER BY id');
  const logged = changes();
  assert.is(logged.length, before.length * 2);
  for (let i = 0; i < before.length; i++) {
    const inserted = logged[i];
    const updated = logged[before.length + i];
    assert.equal(inserted, { op: 'insert', table: 'vals', pk: { id: before[i].id }, row: before[i] }, `value ${i}`);
    assert.equal(updated, { op: 'update', table: 'vals', pk: { id: before[i].id }, row: after[i], old: before[i] }, `value ${i}`);
  }
  // The types a client relies on, spelled out (not only "equal to what SQLite returned").
  const values = before.map((row) => row.v);
  assert.is(typeof values[0], 'string');
  assert.is(values[2], '{"a": 1}');
  assert.is(values[4], 0.1 + 0.2);
  assert.is(values[10], Infinity);
  assert.ok(Buffer.isBuffer(values[14]) && (values[14] as Buffer).length === 256);
  assert.is(values[16], Number.MAX_SAFE_INTEGER);
  assert.is(values[18], 2n ** 53n);
  assert.is(values[20], 2n ** 63n - 1n);
  assert.is(values[21], -(2n ** 63n));
  assert.is(values[22], '{"a":1}');
});

test('a table without a declared key is keyed by rowid; a composite key lists its columns in column order', async () => {
  sqlite(
    db,
    `CREATE TABLE notes(body TEXT, tags TEXT);
     CREATE TABLE scores(player TEXT, points INTEGER, game TEXT, doubled INTEGER GENERATED ALWAYS AS (points * 2), PRIMARY KEY (game, player)) WITHOUT ROWID;`,
  );
  await runTrack('track', ['--db', db, '--table', 'notes', '--table', 'scores']);
  sqlite(db, "INSERT INTO notes VALUES ('hello', NULL); INSERT INTO scores(player, points, game) VALUES ('ann', 3, 'chess'); DELETE FROM notes;");
  assert.equal(changes(), [
    { op: 'insert', table: 'notes', pk: { rowid: 1 }, row: { body: 'hello', tags: null } },
    { op: 'insert', table: 'scores', pk: { player: 'ann', game: 'chess' }, row: { player: 'ann', points: 3, game: 'chess', doubled: 6 } },
    { op: 'delete', table: 'notes', pk: { rowid: 1 }, old: { body: 'hello', tags: null } },
  ]);
  // Column order, not key order: a client can build the key from the row the same way every time.
  assert.equal(Object.keys(changes()[1].pk), ['player', 'game']);
});

test('an update that changes the key is logged as a delete of the old key, then an insert of the new one', async () => {
  sqlite(
    db,
    `CREATE TABLE todos(id INTEGER PRIMARY KEY, title TEXT);
     CREATE TABLE tags(name TEXT COLLATE NOCASE PRIMARY KEY, n INTEGER);
     CREATE TABLE notes(body TEXT);
     INSERT INTO todos VALUES (1, 'a'); INSERT INTO tags VALUES ('red', 1); INSERT INTO notes VALUES ('x');`,
  );
  await runTrack('track', ['--db', db, '--table', 'todos', '--table', 'tags', '--table', 'notes']);
  // 'red' -> 'RED' is the same key to SQLite (NOCASE) but a different one to a client comparing values.
  sqlite(db, "UPDATE todos SET id = 7 WHERE id = 1; UPDATE tags SET name = 'RED'; UPDATE notes SET rowid = 5; UPDATE todos SET title = 'b';");
  assert.equal(changes(), [
    { op: 'delete', table: 'todos', pk: { id: 1 }, old: { id: 1, title: 'a' } },
    { op: 'insert', table: 'todos', pk: { id: 7 }, row: { id: 7, title: 'a' } },
    { op: 'delete', table: 'tags', pk: { name: 'red' }, old: { name: 'red', n: 1 } },
    { op: 'insert', table: 'tags', pk: { name: 'RED' }, row: { name: 'RED', n: 1 } },
    { op: 'delete', table: 'notes', pk: { rowid: 1 }, old: { body: 'x' } },
    { op: 'insert', table: 'notes', pk: { rowid: 5 }, row: { body: 'x' } },
    { op: 'update', table: 'todos', pk: { id: 7 }, row: { id: 7, title: 'b' }, old: { id: 7, title: 'a' } },
  ]);
});

test('a writer that rolls back logs nothing; one that commits many rows logs them in order', async () => {
  sqlite(db, 'CREATE TABLE todos(id INTEGER PRIMARY KEY, title TEXT);');
  await runTrack('track', ['--db', db, '--table', 'todos']);
  await python(
    db,
    `
con = sqlite3.connect(db, isolation_level=None)
con.execute("BEGIN")
con.execute("INSERT INTO todos(title) VALUES ('lost')")
con.execute("ROLLBACK")
con.execute("BEGIN")
con.executemany("INSERT INTO todos(title) VALUES (?)", [("t%d" % i,) for i in range(100)])
con.execute("COMMIT")
`,
  );
  const logged = readChanges(db);
  assert.is(logged.length, 100);
  assert.equal(
    logged.map((change) => change.row!.title),
    Array.from({ length: 100 }, (_, i) => `t${i}`),
  );
  assert.equal(
    logged.map((change) => change.seq),
    Array.from({ length: 100 }, (_, i) => i + 1),
  );
});

test('track while a writer is committing: from the first logged row on, every row is logged once', async () => {
  sqlite(db, 'CREATE TABLE todos(id INTEGER PRIMARY KEY, title TEXT);');
  // The writer stops on its own once the log holds 200 rows (or after 30 s), whatever the timing of track. It pauses
  // 1 ms between commits, as a busy application would: SQLite's lock has no queue, so a writer that never lets go
  // would starve track (and any other writer) until its busy timeout.
  const writer = python(
    db,
    `
con = sqlite3.connect(db, timeout=30, isolation_level=None)
deadline = time.time() + 30
while time.time() < deadline:
    con.execute("INSERT INTO todos(title) VALUES ('x')")
    time.sleep(0.001)
    if con.execute("SELECT count(*) FROM sqlite_master WHERE name = '_sse_changes'").fetchone()[0]:
        if con.execute("SELECT count(*) FROM _sse_changes").fetchone()[0] >= 200: break
`,
  );
  await waitFor('the writer to commit', () => Number(sqlite(db, 'SELECT count(*) FROM todos;').trim()) > 50);
  await runTrack('track', ['--db', db, '--table', 'todos']);
  await writer;
  const ids = readRows(db, 'SELECT id FROM todos ORDER BY id').map((row) => row.id as number);
  const logged = changes().map((change) => change.pk.id as number);
  assert.ok(logged.length >= 200);
  assert.ok(logged[0] > 50, 'rows before track are not logged');
  assert.equal(logged, ids.slice(ids.indexOf(logged[0])));
});

test('trackedTables lists the tables whose triggers exist, as track, untrack and a table rename leave them', async () => {
  sqlite(db, 'CREATE TABLE todos(id INTEGER PRIMARY KEY); CREATE TABLE "my notes"(body TEXT); CREATE TABLE other(x);');
  // A user's own trigger, even named like ours, is not ours: it does not write to the log.
  sqlite(db, 'CREATE TRIGGER _sse_other_insert AFTER INSERT ON other BEGIN SELECT 1; END;');
  const tracked = () => {
    const handle = new Database(db, { readonly: true });
    try {
      return trackedTables(handle);
    } finally {
      handle.close();
    }
  };
  assert.equal(tracked(), []);
  await runTrack('track', ['--db', db, '--table', 'todos', '--table', 'my notes']);
  assert.equal(tracked(), ['my notes', 'todos']);
  await runTrack('untrack', ['--db', db, '--table', 'my notes']);
  assert.equal(tracked(), ['todos']);
  // After a rename the triggers still log under the old name until track is run on the new one.
  sqlite(db, 'ALTER TABLE todos RENAME TO tasks;');
  assert.equal(tracked(), []);
  await runTrack('track', ['--db', db, '--table', 'tasks']);
  assert.equal(tracked(), ['tasks']);
  assert.is(sqlite(db, "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'tasks';").trim(), '3');
  sqlite(db, 'INSERT INTO tasks DEFAULT VALUES;');
  assert.equal(
    changes().map((change) => change.table),
    ['tasks'],
  );
  await runTrack('untrack', ['--db', db, '--table', 'other']);
  assert.is(sqlite(db, "SELECT count(*) FROM sqlite_master WHERE name = '_sse_other_insert';").trim(), '1', 'untrack left the user trigger alone');
});

test('decodeChange refuses a row no trigger wrote, with a one-line SseError', () => {
  const good: ChangeLogRow = { seq: 1, tbl: 't', op: 'insert', pk: '{"id":1}', row: '{"id":1}', old: null };
  const bad: Partial<ChangeLogRow>[] = [{ op: 'upsert' }, { pk: 'not json' }, { row: null }, { row: '[1]' }, { row: '{"a":{"$int":"1.5"}}' }, { row: '{"a":{"x":1}}' }];
  for (const change of bad) {
    try {
      decodeChange({ ...good, ...change });
      assert.unreachable(JSON.stringify(change));
    } catch (error) {
      assert.instance(error, SseError);
      assert.is((error as SseError).code, ErrorCodes.DB_UNREADABLE);
      assert.match((error as Error).message, /^_sse_changes row 1: /);
      assert.not.match((error as Error).message, /\n/);
    }
  }
});

test('changeToJson: one line, absent keys omitted, big integers as strings, BLOBs as base64', () => {
  const change = decodeChange({
    seq: 9n,
    tbl: 'todos',
    op: 'delete',
    pk: '{"id":{"$int":"9223372036854775807"}}',
    row: null,
    old: '{"id":{"$int":"9223372036854775807"},"__proto__":{"$blob":"00FF"},"t":"a\\nb","r":0.5}',
  });
  assert.is(change.old!.id, 9223372036854775807n);
  assert.is(
    changeToJson(change),
    '{"op":"delete","table":"todos","pk":{"id":"9223372036854775807"},"old":{"id":"9223372036854775807","__proto__":"AP8=","t":"a\\nb","r":0.5}}',
  );
});

test.run();
