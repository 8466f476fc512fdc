// `npm run bench:snapshot -- [--rows 100000] [--page-rows N]`: one client takes a snapshot of a tracked table of
// `rows` rows (change stream, `snapshot=1`) while /healthz is asked every 10 ms; the slowest answer bounds how long
// the server's event loop was held by a snapshot step. Prints one markdown table row.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';

const { values } = parseArgs({ options: { rows: { type: 'string', default: '100000' }, 'page-rows': { type: 'string' } } });
const rows = Number(values.rows);
const cli = fileURLToPath(new URL('../src/cli.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'sqlite-sse-snapshot-'));
const db = join(dir, 'app.db');
const setup = new Database(db);
setup.pragma('journal_mode = WAL');
setup.exec(`CREATE TABLE todos(id INTEGER PRIMARY KEY, title TEXT, done INTEGER, user_id INTEGER);
  WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${rows})
  INSERT INTO todos(title, done, user_id) SELECT 'todo number ' || i || ' ' || hex(randomblob(20)), i % 2, i % 1000 FROM n;`);
setup.close();
const run = (args: string[]) => new Promise<void>((resolve, reject) => spawn(process.execPath, [cli, ...args], { stdio: 'ignore' }).once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`exit ${code}`)))));
await run(['track', '--db', db, '--table', 'todos']);
const pageRows = values['page-rows'] ? ['--page-rows', values['page-rows']] : [];
const server = spawn(process.execPath, [cli, '--db', db, '--changes', '--port', '0', ...pageRows], { stdio: ['ignore', 'pipe', 'inherit'] });
try {
  const base = await new Promise<string>((resolve) => server.stdout!.on('data', (data) => { const match = /listening on (\S+)/.exec(String(data)); if (match) resolve(match[1]); }));
  for (let i = 0; i < 20; i++) await (await fetch(`${base}/healthz`)).text(); // warm: the connection, the JIT
  let slowest = 0;
  let probes = 0;
  let done = false;
  const probing = (async () => {
    while (!done) {
      const started = performance.now();
      await (await fetch(`${base}/healthz`)).text();
      slowest = Math.max(slowest, performance.now() - started);
      probes++;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  })();
  const started = performance.now();
  const reader = (await fetch(`${base}/events?table=todos&snapshot=1`)).body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  let received = 0;
  while (!done) {
    const { value, done: ended } = await reader.read();
    if (ended) break;
    text += decoder.decode(value, { stream: true });
    const frames = text.split('\n\n');
    text = frames.pop()!;
    for (const frame of frames) {
      if (frame.startsWith('data: {"op":"snapshot"')) received++;
      if (frame.includes('event: snapshot-end')) done = true;
    }
  }
  const seconds = (performance.now() - started) / 1000;
  done = true;
  await probing;
  await reader.cancel();
  console.log('| rows | --page-rows | snapshot time | rows/s | /healthz probes | slowest /healthz |');
  console.log('|---:|---:|---:|---:|---:|---:|');
  console.log(`| ${received} | ${values['page-rows'] ?? '1000 (default)'} | ${seconds.toFixed(2)} s | ${Math.round(received / seconds)} | ${probes} | ${slowest.toFixed(1)} ms |`);
} finally {
  server.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}
