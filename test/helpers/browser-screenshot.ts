// Takes docs/screenshot.png: the demo page with rows in it, in headless Chromium.
// Run after a build: node dist/test/helpers/browser-screenshot.js [OUT.png]
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { removeDirectory } from './cleanup.js';
import { createMessagesDatabase, sqlite, tempDirectory } from './database.js';
import { launchBrowser, openTabs, startServerOn, waitForTabs } from './browser.js';
import { freePort } from './sse-stream.js';
import { sleep } from './wait.js';

const out = resolve(process.argv[2] ?? fileURLToPath(new URL('../../../docs/screenshot.png', import.meta.url)));
const messages = [
  'deploy #412 finished in 38 s',
  'new signup: ada@example.org',
  'order 1071 paid (3 items, 54.90 EUR)',
  'a message on\ntwo lines',
  '<img src=x onerror=alert(1)> is shown as text',
  'backup of app.db written (12.4 MB)',
  'job reindex-search: 100 % done',
  'hello from the sqlite3 shell',
];

const dir = tempDirectory();
const browser = await launchBrowser();
const server = await startServerOn(await freePort(), ['--db', createMessagesDatabase(dir, 'wal')]);
try {
  const path = `${dir}/test.db`;
  const context = await browser.newContext({ viewport: { width: 960, height: 560 }, deviceScaleFactor: 1, reducedMotion: 'reduce' });
  const pages = await openTabs(context, server.url + '/', 2);
  for (const message of messages) {
    sqlite(path, `INSERT INTO messages(message) VALUES ('${message.replaceAll("'", "''")}');`);
    await sleep(120);
  }
  await waitForTabs(pages, messages.length, 10000);
  await pages[0].bringToFront();
  await pages[0].screenshot({ path: out });
  console.log(`wrote ${out}`);
} finally {
  await browser.close();
  await server.stop('SIGKILL');
  removeDirectory(dir);
}
