// Which Chromium the browser tests start: each case runs the tests' own launcher in a separate node process with
// CHROMIUM_PATH set, as CI does to prove the fallback to the browser inside @sparticuz/chromium.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { removeDirectory, trackChild } from './helpers/cleanup.js';
import { createMessagesDatabase, sqlite, tempDirectory } from './helpers/database.js';
import { startServer, type ServerProcess } from './helpers/server-process.js';
import { withTimeout } from './helpers/wait.js';

const BROWSER_HELPER = fileURLToPath(new URL('./helpers/browser.js', import.meta.url));

/** Open `url` in the tests' browser, wait for the demo page to show row 1, print what the tab shows. */
const OPEN_DEMO_PAGE = `
const { launchBrowser, readTab } = await import(process.argv[1]);
const browser = await launchBrowser();
try {
  const page = await browser.newPage();
  await page.goto(process.argv[2], { timeout: 15000 });
  await page.waitForFunction(() => document.getElementById('last-id').textContent === '1', null, { timeout: 15000 });
  console.log('tab: ' + JSON.stringify(await readTab(page)));
} finally {
  await browser.close();
}`;

function runNode(script: string, args: string[], env: Record<string, string>, timeoutMs: number): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const child = trackChild(spawn(process.execPath, ['--input-type=module', '-e', script, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] }));
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<{ code: number | string; stdout: string; stderr: string }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code: code ?? signal ?? -1, stdout, stderr })),
  );
  return withTimeout(exited, timeoutMs, 'the browser process').finally(() => child.kill('SIGKILL'));
}

test('with CHROMIUM_PATH naming no file, the tests start the Chromium inside @sparticuz/chromium, and it shows live rows', async () => {
  const dir = tempDirectory();
  let server: ServerProcess | undefined;
  try {
    const path = createMessagesDatabase(dir);
    server = await startServer(['--db', path]);
    sqlite(path, "INSERT INTO messages(message) VALUES ('from a writer');");
    // The first run unpacks the browser (about 200 MB) into node_modules/.cache: allow for a slow disk.
    const run = await runNode(OPEN_DEMO_PAGE, [BROWSER_HELPER, server.url + '/'], { CHROMIUM_PATH: '/nonexistent/chromium' }, 180000);
    assert.is(run.code, 0, run.stderr);
    assert.match(run.stdout, /browser: Chromium [\d.]+, @sparticuz\/chromium .*CHROMIUM_PATH=\/nonexistent\/chromium names no file/);
    const tab = JSON.parse(/^tab: (.*)$/m.exec(run.stdout)![1]) as { lastId: string; ids: number[]; count: number };
    assert.is(tab.lastId, '1');
    assert.equal(tab.ids, [1]);
  } finally {
    await server?.stop().catch(() => undefined);
    removeDirectory(dir);
  }
});

test('a CHROMIUM_PATH that is not a browser fails the launch with a message naming it', async () => {
  const run = await runNode(OPEN_DEMO_PAGE, [BROWSER_HELPER, 'http://127.0.0.1:9/'], { CHROMIUM_PATH: '/bin/false' }, 60000);
  assert.is.not(run.code, 0);
  assert.match(run.stderr, 'cannot start Chromium (CHROMIUM_PATH: /bin/false)');
});

test.run();
