// The writer the tests use: the sqlite3 shell where installed, python3 standing in for it otherwise. Each case runs
// through the shell in use and through the python3 stand-in, and must print what the sqlite3 shell prints.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { removeDirectory, trackChild } from './helpers/cleanup.js';
import { createMessagesDatabase, tempDirectory } from './helpers/database.js';
import { tableIds, tableRows } from './helpers/integration.js';
import { pythonSqliteShell, sqliteShell, sqliteShellCommand, type SqliteShell } from './helpers/sqlite-shell.js';
import { waitFor, withTimeout } from './helpers/wait.js';

const shells: [string, SqliteShell][] = [
  [`the shell in use (${sqliteShell().kind})`, sqliteShell()],
  ['the python3 stand-in', pythonSqliteShell()],
];

function run(shell: SqliteShell, path: string, sql: string): { status: number | null; stdout: string; stderr: string } {
  const { command, args } = sqliteShellCommand(path, 10000, shell);
  const result = spawnSync(command, args, { input: sql, encoding: 'utf8', timeout: 20000 });
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Run `sql` in a fresh demo database with `shell`; the database is removed afterwards. */
function inFreshDatabase<T>(shell: SqliteShell, body: (path: string, dir: string) => T): T {
  const dir = tempDirectory();
  try {
    return body(createMessagesDatabase(dir), dir);
  } finally {
    removeDirectory(dir);
  }
}

for (const [label, shell] of shells) {
  test(`${label}: prints rows as values joined by |, NULL as nothing, reals and big integers as the shell does`, () => {
    inFreshDatabase(shell, (path) => {
      const out = run(shell, path, `INSERT INTO messages(message) VALUES ('a'), ('b|c'), (NULL), ('ünï');
SELECT * FROM messages;
SELECT 1.0, 0.1, 1e20, 1.5e-7, 2.0 * 3, 9007199254740993, -5;`);
      assert.is(out.stderr, '');
      assert.is(out.status, 0);
      assert.is(out.stdout, '1|a\n2|b|c\n3|\n4|ünï\n1.0|0.1|1.0e+20|1.5e-07|6.0|9007199254740993|-5\n');
    });
  });

  test(`${label}: answers a journal-mode switch and checkpoint PRAGMAs with their result rows`, () => {
    inFreshDatabase(shell, (path) => {
      assert.is(run(shell, path, 'PRAGMA journal_mode;').stdout, 'wal\n');
      assert.is(run(shell, path, 'PRAGMA journal_mode=DELETE;\nPRAGMA journal_mode=WAL;').stdout, 'delete\nwal\n');
      assert.is(run(shell, path, 'PRAGMA wal_checkpoint(TRUNCATE);\nPRAGMA integrity_check;').stdout, '0|0|0\nok\n');
    });
  });

  test(`${label}: splits statements where SQLite does: not at a ; in a string, a comment or a trigger body`, () => {
    inFreshDatabase(shell, (path) => {
      const out = run(
        shell,
        path,
        `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3)
     INSERT INTO messages(message) SELECT 'x;' || i FROM n;
CREATE TRIGGER t AFTER INSERT ON messages BEGIN SELECT 1; END; SELECT 'a;b'; -- comment ; here
SELECT count(*) /* ; */ FROM messages;
SELECT 'no semicolon at the end'`,
      );
      assert.is(out.stderr, '');
      assert.is(out.stdout, 'a;b\n3\nno semicolon at the end\n');
    });
  });

  test(`${label}: .mode json prints the rows tableRows reads, text escaped, and nothing for no rows`, () => {
    inFreshDatabase(shell, (path) => {
      run(shell, path, `INSERT INTO messages(message) VALUES ('line' || char(10) || 'two "q" \\ tab' || char(9) || char(1)), (NULL);`);
      assert.is(
        run(shell, path, '.mode json\nSELECT id, message FROM messages ORDER BY id;').stdout,
        '[{"id":1,"message":"line\\ntwo \\"q\\" \\\\ tab\\t\\u0001"},\n{"id":2,"message":null}]\n',
      );
      assert.is(run(shell, path, '.mode json\nSELECT id FROM messages WHERE id > 5;').stdout, '');
    });
  });

  test(`${label}: an error is reported on stderr with exit status 1, and the lines after it still run`, () => {
    inFreshDatabase(shell, (path) => {
      const out = run(shell, path, "SELECT * FROM nosuch; SELECT 'skipped, same line';\nSELECT 'next line';");
      assert.is(out.status, 1);
      assert.match(out.stderr, /near line 1: no such table: nosuch/);
      assert.is(out.stdout, 'next line\n');
    });
  });

  test(`${label}: .backup writes a copy another process can read`, () => {
    inFreshDatabase(shell, (path, dir) => {
      run(shell, path, "INSERT INTO messages(message) VALUES ('kept');");
      const backup = join(dir, 'backup.db');
      const out = run(shell, path, `.backup '${backup}'`);
      assert.is(out.stderr, '');
      assert.ok(existsSync(backup));
      assert.is(execFileSync(process.execPath, ['-e', `const D = require('better-sqlite3'); console.log(new D(process.argv[1], { readonly: true }).prepare('SELECT message FROM messages').pluck().get())`, backup], { encoding: 'utf8' }), 'kept\n');
    });
  });
}

test('the shell in use waits for a writer that holds the lock (busy timeout) instead of failing', async () => {
  const dir = tempDirectory();
  try {
    const path = createMessagesDatabase(dir);
    // A python writer takes the write lock, says so, and keeps it for half a second.
    const holder = trackChild(
      spawn('python3', ['-c', `import sqlite3, sys, time\ncon = sqlite3.connect(sys.argv[1], isolation_level=None)\ncon.execute("BEGIN IMMEDIATE")\ncon.execute("INSERT INTO messages(message) VALUES ('held')")\nprint("locked", flush=True)\ntime.sleep(0.5)\ncon.execute("COMMIT")`, path], { stdio: ['ignore', 'pipe', 'inherit'] }),
    );
    const exited = new Promise<number | null>((resolve) => holder.once('exit', resolve));
    let said = '';
    holder.stdout!.setEncoding('utf8').on('data', (chunk: string) => (said += chunk));
    await waitFor('the python writer to hold the lock', () => said.includes('locked'), 10000);
    const out = run(sqliteShell(), path, "INSERT INTO messages(message) VALUES ('waited');");
    assert.is(await withTimeout(exited, 10000, 'lock holder'), 0);
    assert.is(out.stderr, '');
    assert.is(out.status, 0);
    assert.equal(tableRows(path).map((row) => row.message), ['held', 'waited']);
    assert.equal(tableIds(path), [1, 2]);
  } finally {
    removeDirectory(dir);
  }
});

test.run();
