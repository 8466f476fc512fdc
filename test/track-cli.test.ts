import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { removeDirectory } from './helpers/cleanup.js';
import { readChanges, runTrack } from './helpers/change-log.js';
import { python, sqlite, tempDirectory } from './helpers/database.js';
import { runCli } from './helpers/server-process.js';

let directory: string;
let db: string;

test.before.each(() => {
  directory = tempDirectory();
  db = join(directory, 'app.db');
  sqlite(db, 'PRAGMA journal_mode=wal; CREATE TABLE todos(id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT); CREATE TABLE notes(body TEXT);');
});

test.after.each(() => {
  removeDirectory(directory);
});

/** One line on stderr, no stack trace, exit 1, nothing on stdout. */
async function assertOneLineError(args: string[], pattern: RegExp): Promise<void> {
  const result = await runCli(args);
  assert.is(result.code, 1, `${args.join(' ')}: ${result.stdout}`);
  assert.is(result.stdout, '');
  const lines = result.stderr.trim().split('\n');
  assert.is(lines.length, 1, result.stderr);
  assert.match(lines[0], pattern);
  assert.not.match(result.stderr, /\n\s+at /);
}

/** Trigger names on a table, from the schema. */
const triggers = (table: string) =>
  sqlite(db, `SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = '${table.replace(/'/g, "''")}' ORDER BY name;`)
    .trim()
    .split('\n')
    .filter(Boolean);

test('--help of each command lists its flags and exits 0', async () => {
  const track = await runCli(['track', '--help']);
  assert.is(track.code, 0);
  for (const flag of ['--db PATH', '--table NAME', '--keep N', '100000']) assert.ok(track.stdout.includes(flag), flag);
  const untrack = await runCli(['untrack', '--help']);
  assert.is(untrack.code, 0);
  assert.ok(untrack.stdout.includes('--table NAME'));
  assert.not.ok(untrack.stdout.includes('--keep'));
});

test('track prints one line per table and installs three triggers each; running it again is harmless', async () => {
  const lines = await runTrack('track', ['--db', db, '--table', 'todos', '--table', 'notes']);
  assert.equal(lines, [
    'tracked todos: triggers installed (key id; 2 columns), created _sse_changes keeps the newest 100000 changes',
    'tracked notes: triggers installed (key rowid; 1 column), _sse_changes keeps the newest 100000 changes',
  ]);
  assert.equal(triggers('todos'), ['_sse_todos_delete', '_sse_todos_insert', '_sse_todos_update']);
  assert.equal(triggers('notes'), ['_sse_notes_delete', '_sse_notes_insert', '_sse_notes_update']);
  sqlite(db, "INSERT INTO todos(title) VALUES ('before');");
  assert.equal(await runTrack('track', ['--db', db, '--table', 'todos']), [
    'tracked todos: triggers refreshed (key id; 2 columns), _sse_changes keeps the newest 100000 changes',
  ]);
  assert.equal(triggers('todos'), ['_sse_todos_delete', '_sse_todos_insert', '_sse_todos_update']);
  sqlite(db, "INSERT INTO todos(title) VALUES ('after');");
  // One change per row: the refresh replaced the triggers, it did not add a second set; the log was kept.
  assert.equal(
    readChanges(db).map((change) => change.row!.title),
    ['before', 'after'],
  );
});

test('after ALTER TABLE ADD COLUMN, track again logs the new column', async () => {
  await runTrack('track', ['--db', db, '--table', 'todos']);
  sqlite(db, "ALTER TABLE todos ADD COLUMN due TEXT; INSERT INTO todos(title, due) VALUES ('a', 'today');");
  assert.equal(await runTrack('track', ['--db', db, '--table', 'todos']), [
    'tracked todos: triggers refreshed (key id; 3 columns), _sse_changes keeps the newest 100000 changes',
  ]);
  sqlite(db, "INSERT INTO todos(title, due) VALUES ('b', 'tomorrow'); UPDATE todos SET due = 'now' WHERE id = 1;");
  const logged = readChanges(db);
  assert.equal(logged[0].row, { id: 1, title: 'a' }, 'before the refresh, the triggers knew only the old columns');
  assert.equal(logged[1].row, { id: 2, title: 'b', due: 'tomorrow' });
  assert.equal(logged[2].old, { id: 1, title: 'a', due: 'today' });
  assert.equal(logged[2].row, { id: 1, title: 'a', due: 'now' });
});

test('untrack removes the triggers: later writes are not logged, earlier changes stay', async () => {
  await runTrack('track', ['--db', db, '--table', 'todos', '--table', 'notes']);
  sqlite(db, "INSERT INTO todos(title) VALUES ('kept');");
  assert.equal(await runTrack('untrack', ['--db', db, '--table', 'todos']), [
    'untracked todos: 3 triggers removed (its changes stay in _sse_changes until trimmed)',
  ]);
  assert.equal(triggers('todos'), []);
  assert.is(triggers('notes').length, 3, 'other tables stay tracked');
  await python(db, `sqlite3.connect(db, isolation_level=None).execute("INSERT INTO todos(title) VALUES ('unseen')")`);
  assert.equal(
    readChanges(db).map((change) => change.row!.title),
    ['kept'],
  );
  assert.equal(await runTrack('untrack', ['--db', db, '--table', 'todos']), ['untracked todos: it was not tracked, nothing to remove']);
});

test('--keep bounds the log in each writer transaction, stays set when track runs again, and is shared by all tables', async () => {
  await runTrack('track', ['--db', db, '--table', 'todos', '--keep', '5']);
  await python(
    db,
    `
con = sqlite3.connect(db, isolation_level=None)
for i in range(20):
    con.execute("INSERT INTO todos(title) VALUES (?)", ("one-%d" % i,))
con.execute("BEGIN")
con.executemany("INSERT INTO todos(title) VALUES (?)", [("many-%d" % i,) for i in range(10)])
con.execute("COMMIT")
`,
  );
  let logged = readChanges(db);
  assert.equal(
    logged.map((change) => change.seq),
    [26, 27, 28, 29, 30],
  );
  assert.equal(
    logged.map((change) => change.row!.title),
    ['many-5', 'many-6', 'many-7', 'many-8', 'many-9'],
  );
  // Without --keep, a refresh keeps the setting instead of silently growing the log back to the default.
  assert.equal(await runTrack('track', ['--db', db, '--table', 'todos']), [
    'tracked todos: triggers refreshed (key id; 2 columns), _sse_changes keeps the newest 5 changes',
  ]);
  // A new table joins the shared log with its setting too.
  assert.match((await runTrack('track', ['--db', db, '--table', 'notes']))[0], /keeps the newest 5 changes$/);
  // A smaller --keep on one table trims the log now and applies to the other tracked table.
  assert.equal(await runTrack('track', ['--db', db, '--table', 'todos', '--keep', '2']), [
    'tracked todos: triggers refreshed (key id; 2 columns), _sse_changes keeps the newest 2 changes, 3 older changes deleted',
    'tracked notes: triggers now keep the newest 2 changes (the log is shared)',
  ]);
  sqlite(db, "INSERT INTO notes VALUES ('n1'); INSERT INTO notes VALUES ('n2'); INSERT INTO notes VALUES ('n3');");
  logged = readChanges(db);
  assert.equal(
    logged.map((change) => change.row!.body),
    ['n2', 'n3'],
  );
  assert.equal(
    logged.map((change) => change.seq),
    [32, 33],
  );
});

test('table names with spaces and quotes are tracked and untracked', async () => {
  sqlite(db, `CREATE TABLE "my ""odd"" table"(id INTEGER PRIMARY KEY, "it's" TEXT, "a""b" TEXT);`);
  const name = 'my "odd" table';
  assert.equal(await runTrack('track', ['--db', db, '--table', name]), [
    `tracked ${name}: triggers installed (key id; 3 columns), created _sse_changes keeps the newest 100000 changes`,
  ]);
  assert.equal(triggers(name), [`_sse_${name}_delete`, `_sse_${name}_insert`, `_sse_${name}_update`]);
  sqlite(db, `INSERT INTO "my ""odd"" table" VALUES (1, 'x', 'y'); UPDATE "my ""odd"" table" SET "a""b" = 'z';`);
  assert.equal(readChanges(db), [
    { seq: 1, op: 'insert', table: name, pk: { id: 1 }, row: { id: 1, "it's": 'x', 'a"b': 'y' } },
    { seq: 2, op: 'update', table: name, pk: { id: 1 }, row: { id: 1, "it's": 'x', 'a"b': 'z' }, old: { id: 1, "it's": 'x', 'a"b': 'y' } },
  ]);
  assert.equal(await runTrack('untrack', ['--db', db, '--table', name]), [
    `untracked ${name}: 3 triggers removed (its changes stay in _sse_changes until trimmed)`,
  ]);
  assert.equal(triggers(name), []);
});

test('errors are one line on stderr with exit 1, and leave nothing half done', async () => {
  const text = join(directory, 'notes.txt');
  writeFileSync(text, 'not a database, just text that is long enough to not be mistaken for an empty file\n'.repeat(20));
  sqlite(db, 'CREATE VIEW open_todos AS SELECT * FROM todos;');
  await assertOneLineError(['track', '--db', join(directory, 'missing.db'), '--table', 'todos'], /^error: database .*missing\.db does not exist/);
  await assertOneLineError(['track', '--db', text, '--table', 'todos'], /^error: .*notes\.txt is not a SQLite database$/);
  await assertOneLineError(['track', '--db', db, '--table', 'todo'], /^error: table todo not found \(tables: notes, todos\)$/);
  await assertOneLineError(['untrack', '--db', db, '--table', 'todo'], /^error: table todo not found \(tables: notes, todos\)$/);
  await assertOneLineError(['track', '--db', db, '--tabel', 'todos'], /^error: Unknown option '--tabel' \(see sqlite-sse track --help\)$/);
  await assertOneLineError(['track', '--db', db], /^error: track needs at least one --table NAME/);
  await assertOneLineError(['track', '--db', db, '--table', 'todos', '--keep', '0'], /^error: --keep must be a whole number/);
  await assertOneLineError(['track', '--db', db, '--table', 'todos', '--keep', '1e3'], /^error: --keep must be a whole number/);
  await assertOneLineError(['untrack', '--db', db, '--table', 'todos', '--keep', '5'], /^error: Unknown option '--keep'/);
  await assertOneLineError(['track', '--db', db, '--table', 'open_todos'], /^error: cannot track open_todos: it is a view/);
  await assertOneLineError(['track', '--db', db, '--table', '_sse_changes'], /^error: table _sse_changes not found|cannot track _sse_changes/);
  // The first table would have been fine: one transaction for all, so nothing was installed.
  await assertOneLineError(['track', '--db', db, '--table', 'todos', '--table', 'nope'], /^error: table nope not found/);
  assert.equal(triggers('todos'), []);
  assert.is(sqlite(db, "SELECT count(*) FROM sqlite_master WHERE name = '_sse_changes';").trim(), '0');
});

test('the commands change only the schema they own: the table and its rows are untouched', async () => {
  sqlite(db, "INSERT INTO todos(title) VALUES ('a'), ('b');");
  const before = sqlite(db, 'SELECT * FROM todos; SELECT sql FROM sqlite_master WHERE name = \'todos\';');
  await runTrack('track', ['--db', db, '--table', 'todos']);
  await runTrack('untrack', ['--db', db, '--table', 'todos']);
  assert.is(sqlite(db, 'SELECT * FROM todos; SELECT sql FROM sqlite_master WHERE name = \'todos\';'), before);
  assert.is(readChanges(db).length, 0, 'installing triggers logs no change');
});

test.run();
