// `npm run bench:snapshot -- [--rows 100000] [--page-rows N]`: one client takes a snapshot of a tracked table of
// `rows` rows (change stream, `snapshot=1`) while /healthz is asked every 10 ms. The server's own event-loop delay
// (`--metrics`, scraped just before and after the snapshot) says how long a snapshot step held its loop; the slowest
// /healthz answer is what a client saw, an upper bound, since the probe shares its process with the reading client.
// Prints one markdown table row.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { scrapeServerMetrics } from './server-metrics.js';

/** The resolution of the server's event-loop delay monitor (prom-client's default `eventLoopMonitoringPrecision`). */
const MONITOR_RESOLUTION_MS = 10;

const HELP = `sqlite-sse bench:snapshot: how long a snapshot of a big table holds the server's event loop.

Usage: npm run bench:snapshot -- [options]     (or: node dist/bench/snapshot-probe.js [options])

Options:
  --rows N        rows in the tracked table (default: 100000)
  --page-rows N   the server's --page-rows (default: the server's, 1000)
  --help          show this help`;

let values: { rows: string; 'page-rows'?: string; help?: boolean };
try {
  values = parseArgs({ options: { rows: { type: 'string', default: '100000' }, 'page-rows': { type: 'string' }, help: { type: 'boolean' } } }).values as typeof values;
} catch (error) {
  console.error(`error: ${(error as Error).message} (see --help)`);
  process.exit(2);
}
if (values.help) {
  console.log(HELP);
  process.exit(0);
}
const rows = Number(values.rows);
if (!Number.isInteger(rows) || rows < 1) {
  console.error(`error: --rows expects a whole number of at least 1, got ${JSON.stringify(values.rows)}`);
  process.exit(2);
}
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
const server = spawn(process.execPath, [cli, '--db', db, '--changes', '--port', '0', '--metrics', ...pageRows], { stdio: ['ignore', 'pipe', 'inherit'] });
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
  const { hostname, port } = new URL(base);
  await scrapeServerMetrics(hostname, Number(port)); // restarts the server's event-loop histogram
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
  const metrics = await scrapeServerMetrics(hostname, Number(port));
  done = true;
  await probing;
  await reader.cancel();
  // Node's event-loop delay histogram times each tick of a 10 ms timer (prom-client's default precision), so an
  // idle server reads about 10 ms: what the loop was held is the reading less that.
  const held = (value: number | undefined) => (value === undefined || !Number.isFinite(value) ? '–' : `${Math.max(0, value - MONITOR_RESOLUTION_MS).toFixed(1)} ms`);
  console.log('| rows | --page-rows | snapshot time | rows/s | longest event-loop hold | p99 hold | /healthz probes | slowest /healthz |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|');
  console.log(`| ${received} | ${values['page-rows'] ?? '1000 (default)'} | ${seconds.toFixed(2)} s | ${Math.round(received / seconds)} | ${held(metrics?.eventLoopLagMaxMs)} | ${held(metrics?.eventLoopLagP99Ms)} | ${probes} | ${slowest.toFixed(1)} ms |`);
} finally {
  server.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}
