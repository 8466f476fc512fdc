import { execFile, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { removeDirectory, trackChild } from './helpers/cleanup.js';
import { tempDirectory } from './helpers/database.js';
import { waitFor, withTimeout } from './helpers/wait.js';

/** The repository (dist/test/ -> ./). */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

function run(command: string, args: string[], cwd: string, timeoutMs = 120000): Promise<{ stdout: string; stderr: string }> {
  return withTimeout(
    new Promise((resolve, reject) => {
      const child = trackChild(
        execFile(command, args, { cwd, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
          if (error) reject(new Error(`${command} ${args.join(' ')} failed: ${error.message}\n${stderr}`));
          else resolve({ stdout, stderr });
        }),
      );
      void child;
    }),
    timeoutMs,
    `${command} ${args.join(' ')}`,
  );
}

/** Whether any process of the group `pid` leads is still running. */
function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

let directory: string;
let app: string;
let tarball: string;

test.before(async () => {
  directory = tempDirectory();
  // The test runs from dist/, which is built: pack it as it is (prepack would only run tsc again).
  const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', directory], ROOT);
  tarball = join(directory, (JSON.parse(stdout) as { filename: string }[])[0].filename);
  app = join(directory, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'empty-app', private: true, type: 'module' }));
  // From the local cache (the network only for what it lacks). better-sqlite3's install script would compile SQLite
  // for minutes: it is skipped and the addon this repository built (the same version) is copied in instead. Our own
  // package has no install script, so skipping scripts hides nothing of it.
  await run('npm', ['install', '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund', tarball], app, 300000);
  const addon = 'node_modules/better-sqlite3/build/Release/better_sqlite3.node';
  const version = (folder: string) => (JSON.parse(readFileSync(join(folder, 'node_modules/better-sqlite3/package.json'), 'utf8')) as { version: string }).version;
  assert.is(version(app), version(ROOT), 'the same better-sqlite3 as the one whose addon is copied');
  mkdirSync(join(app, 'node_modules/better-sqlite3/build/Release'), { recursive: true });
  copyFileSync(join(ROOT, addon), join(app, addon));
});

test.after(() => {
  removeDirectory(directory);
});

test('the tarball holds the built JavaScript, its types, the page and the API docs, and no sources or tests', async () => {
  const { stdout } = await run('tar', ['-tzf', tarball], directory);
  const files = stdout.split('\n').filter(Boolean);
  for (const file of ['dist/src/cli.js', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/adapters/express.d.ts', 'dist/src/adapters/fastify.d.ts', 'dist/src/adapters/fetch.d.ts', 'public/index.html', 'docs/api.md', 'package.json']) {
    assert.ok(files.includes(`package/${file}`), `${file} is in the tarball`);
  }
  assert.not.ok(files.some((file) => file.startsWith('package/src/') || file.startsWith('package/dist/test/') || file.startsWith('package/test/')), 'no sources or tests');
});

test('installed into an empty folder: every export resolves with its types, adapters load without their framework, no TypeScript', async () => {
  const installed = join(app, 'node_modules/sqlite-sse');
  const manifest = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as { exports: Record<string, { types?: string; import?: string }> };
  for (const subpath of ['.', './express', './fastify', './fetch']) {
    const entry = manifest.exports[subpath];
    assert.ok(entry?.types && existsSync(join(installed, entry.types)), `${subpath} has its types`);
    assert.ok(entry?.import && existsSync(join(installed, entry.import)), `${subpath} has its module`);
  }
  assert.not.ok(existsSync(join(app, 'node_modules/typescript')), 'no TypeScript compiler installed');
  assert.not.ok(existsSync(join(app, 'node_modules/express')) || existsSync(join(app, 'node_modules/fastify')), 'optional peers are not installed');
  assert.ok(readdirSync(join(installed, 'public')).includes('index.html'));

  const script = `
const core = await import('sqlite-sse');
const express = await import('sqlite-sse/express');
const fastify = await import('sqlite-sse/fastify');
const fetchAdapter = await import('sqlite-sse/fetch');
console.log([typeof core.createSqliteSse, typeof core.SseError, typeof express.sqliteSse, typeof fastify.default, typeof fetchAdapter.createFetchHandler].join(' '));
const live = await core.createSqliteSse({ db: 'lib.db', create: true, logLevel: 'warn' });
const response = await fetchAdapter.createFetchHandler(live)(new Request('http://app/healthz'));
console.log(response.status + ' ' + (await response.json()).ok);
await live.close();
`;
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], app, 30000);
  assert.is(stdout, 'function function function function function\n200 true\n');
});

test('npx sqlite-sse --version prints the version, and npx sqlite-sse --db app.db --create serves', async () => {
  const { stdout } = await run('npx', ['sqlite-sse', '--version'], app, 60000);
  assert.is(stdout.trim(), VERSION);

  // npx runs the bin through a shell: the server gets a group of its own, signalled as a whole.
  const child = trackChild(spawn('npx', ['sqlite-sse', '--db', 'app.db', '--create', '--port', '0'], { cwd: app, detached: true, stdio: ['ignore', 'pipe', 'pipe'] }));
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    const match = (await waitFor('the listening line', () => /listening on (http:\/\/127\.0\.0\.1:\d+) \(db app\.db, table messages, last id 0\)/.exec(output), 30000))!;
    assert.match(output, /created database app\.db with table messages\(id, message\)/);
    const health = await fetch(`${match[1]}/healthz`);
    assert.is(health.status, 200);
    const page = await fetch(`${match[1]}/`);
    assert.is(page.status, 200, 'the demo page from the package\'s public/');
    await page.text();
    // npm itself dies of the signal; what matters is that the server closes and nothing of the group is left.
    process.kill(-child.pid!, 'SIGTERM');
    await withTimeout(exited, 10000, 'npx sqlite-sse to exit after SIGTERM');
    await waitFor('the server process to exit', () => !groupAlive(child.pid!), 10000);
    assert.match(output, /SIGTERM: closing 0 stream\(s\)/);
    assert.not.match(output, /error/i, output);
  } finally {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
});

test.run();
