import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trackChild, trackDirectory } from './cleanup.js';
import { sqliteShellCommand } from './sqlite-shell.js';

/** A fresh temp dir; removed by `removeDirectory` or at exit. */
export function tempDirectory(): string {
  return trackDirectory(mkdtempSync(join(tmpdir(), 'sqlite-sse-test-')));
}

/**
 * Run SQL through the `sqlite3` shell (python3 standing in for it where the shell is not installed): a separate
 * writer process, as a user's would be. Returns what it printed.
 */
export function sqlite(path: string, sql: string): string {
  const { command, args } = sqliteShellCommand(path, 10000);
  return execFileSync(command, args, { input: sql, encoding: 'utf8' });
}

/** Create a database with the demo table in the given journal mode. Returns its path. */
export function createMessagesDatabase(directory: string, journalMode = 'wal', name = 'test.db'): string {
  const path = join(directory, name);
  sqlite(path, `PRAGMA journal_mode=${journalMode}; CREATE TABLE messages(id integer primary key autoincrement, message text);`);
  return path;
}

/**
 * Run a Python writer (python3's sqlite3 module) in its own process; resolves with its stdout.
 * `script` sees `db` (the path) and `sys.argv[2:]` as `args`.
 */
export function python(path: string, script: string, args: string[] = [], timeoutMs = 60000): Promise<string> {
  const program = `import sqlite3, sys, time, json\ndb = sys.argv[1]\nargs = sys.argv[2:]\n${script}`;
  return new Promise((resolve, reject) => {
    const child = trackChild(spawn('python3', ['-c', program, path, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
    let out = '';
    let err = '';
    child.stdout!.on('data', (chunk) => (out += chunk));
    child.stderr!.on('data', (chunk) => (err += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`python writer exited ${code ?? signal}: ${err.trim()}`));
    });
  });
}

/** Insert `count` rows in transactions of `perCommit`, `delayMs` apart, from a Python process. */
export function pythonInsert(path: string, count: number, options: { perCommit?: number; delayMs?: number; journalMode?: string; prefix?: string } = {}): Promise<string> {
  const { perCommit = 1, delayMs = 0, journalMode = '', prefix = 'row' } = options;
  return python(
    path,
    `
con = sqlite3.connect(db, timeout=30, isolation_level=None)
if ${JSON.stringify(journalMode)}: con.execute("PRAGMA journal_mode=" + ${JSON.stringify(journalMode)})
count, per, delay = ${count}, ${perCommit}, ${delayMs} / 1000.0
done = 0
while done < count:
    n = min(per, count - done)
    con.execute("BEGIN IMMEDIATE")
    con.executemany("INSERT INTO messages(message) VALUES (?)", [("${prefix}-%d" % (done + i),) for i in range(n)])
    con.execute("COMMIT")
    done += n
    if delay: time.sleep(delay)
con.close()
`,
  );
}

/** Insert `count` rows of `size` characters each, 50 per transaction, 2 ms apart, from a Python process. */
export function pythonInsertBig(path: string, count: number, size: number): Promise<string> {
  return python(
    path,
    `
con = sqlite3.connect(db, timeout=30, isolation_level=None)
count, per, size = ${count}, 50, ${size}
done = 0
while done < count:
    con.execute("BEGIN IMMEDIATE")
    con.executemany("INSERT INTO messages(message) VALUES (?)", [(("big-%d-" % (done + i)).ljust(size, "x"),) for i in range(min(per, count - done))])
    con.execute("COMMIT")
    done += per
    time.sleep(0.002)
con.close()
`,
  );
}
