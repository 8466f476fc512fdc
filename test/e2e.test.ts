// Real-browser tests: headless Chromium (Debian's package) driven by playwright-core, the demo page and its client
// library (public/sqlite-sse-client.js), a real server process and separate writer processes.
import type { Browser, Page } from 'playwright-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { removeDirectory } from './helpers/cleanup.js';
import { createMessagesDatabase, pythonInsert, sqlite, tempDirectory } from './helpers/database.js';
import {
  establishedConnections,
  healthFromPage,
  launchBrowser,
  makeCertificate,
  openTab,
  openTabs,
  readTab,
  startServerOn,
  suffixProblem,
  waitForTabs,
} from './helpers/browser.js';
import { tableIds } from './helpers/integration.js';
import type { ServerProcess } from './helpers/server-process.js';
import { freePort } from './helpers/sse-stream.js';
import { sleep, waitFor, withTimeout } from './helpers/wait.js';

/** Figures worth reporting, printed once at the end. */
const figures: string[] = [];
let started = Date.now();

function assertEveryTab(views: { ids: number[] }[], table: number[], label: string, fromStart: number): void {
  views.forEach((view, i) => {
    const problem = suffixProblem(view.ids, table);
    assert.is(problem, undefined, `${label} tab ${i}: ${problem}`);
    if (i < fromStart) assert.is(view.ids[0], table[0], `${label} tab ${i} opened before the writer: starts at the first row`);
  });
}

test('12 tabs share one connection through a SharedWorker; each gets every row once, in order, late tabs like fresh clients', async () => {
  const dir = tempDirectory();
  let browser: Browser | undefined;
  let server: ServerProcess | undefined;
  const errors: string[] = [];
  try {
    const path = createMessagesDatabase(dir, 'wal');
    sqlite(path, `INSERT INTO messages(message) VALUES ('first'), ('second'), ('third');`);
    const port = await freePort();
    server = await startServerOn(port, ['--db', path, '--retry', '200']);
    browser = await launchBrowser();
    const context = await browser.newContext({ reducedMotion: 'reduce' });
    const early = await openTabs(context, server.url + '/', 6, errors);
    await waitForTabs(early, 3, 10000);

    const writer = pythonInsert(path, 300, { delayMs: 5 });
    // Six more tabs open while rows stream: each starts like a fresh client (the recent rows), then live.
    const late: Page[] = [];
    for (let i = 0; i < 6; i++) {
      await sleep(150);
      late.push(await openTab(context, server.url + '/', errors));
    }
    await withTimeout(writer, 30000, 'writer');
    const table = tableIds(path);
    assert.is(table.length, 303);
    const pages = [...early, ...late];
    const views = await waitForTabs(pages, table[table.length - 1]);
    assertEveryTab(views, table, 'shared worker', early.length);
    for (const view of views) {
      assert.is(view.role, 'shared worker');
      assert.is(view.state, 'live');
      assert.ok(view.ids.length >= 100, `a late tab gets the recent rows first (has ${view.ids.length})`);
    }
    const health = await healthFromPage(pages[0]);
    assert.is(health.clients, 1, 'the server holds one SSE stream for the whole browser');
    const tcp = establishedConnections(port);
    figures.push(`HTTP/1.1, 12 tabs, SharedWorker: ${health.clients} SSE stream(s), ${tcp} TCP connection(s) open to the server`);
    assert.equal(errors, []);
  } finally {
    await browser?.close();
    await server?.stop('SIGKILL');
    removeDirectory(dir);
  }
});

test('leader election (Web Locks + BroadcastChannel): closing or crashing the leader tab mid-stream loses and duplicates nothing', async () => {
  const dir = tempDirectory();
  let browser: Browser | undefined;
  let server: ServerProcess | undefined;
  const errors: string[] = [];
  try {
    const path = createMessagesDatabase(dir, 'wal');
    const port = await freePort();
    server = await startServerOn(port, ['--db', path, '--retry', '200']);
    browser = await launchBrowser();
    const context = await browser.newContext({ reducedMotion: 'reduce' });
    let pages = await openTabs(context, server.url + '/?mode=leader', 12, errors);
    await waitFor('one leader and 11 followers', async () => {
      const views = await Promise.all(pages.map(readTab));
      return views.filter((view) => view.leader).length === 1 && views.every((view) => view.state === 'live' && view.mode === 'leader');
    }, 10000, 50);
    assert.is((await healthFromPage(pages[0])).clients, 1, 'one SSE stream for 12 leader-mode tabs');

    const writer = pythonInsert(path, 600, { delayMs: 4 });
    const takeovers: number[] = [];
    // The first leader is closed (it hands over on pagehide); the second one's renderer crashes (the browser frees its lock).
    for (const [afterRows, how] of [[150, 'close'], [350, 'crash']] as const) {
      await waitFor(`${afterRows} rows`, async () => (await readTab(pages[pages.length - 1])).count >= afterRows, 15000, 20);
      const views = await Promise.all(pages.map(readTab));
      const leader = pages[views.findIndex((view) => view.leader)];
      const closedAt = Date.now();
      if (how === 'close') await leader.close();
      // Page.crash never answers (the target is gone): fire it and watch the other tabs instead.
      else void (await context.newCDPSession(leader)).send('Page.crash').catch(() => {});
      pages = pages.filter((page) => page !== leader);
      const next = await waitFor('a new leader, live', async () => {
        const after = await Promise.all(pages.map(readTab));
        return after.find((view) => view.leader && view.state === 'live' && view.since >= closedAt);
      }, 5000, 10);
      takeovers.push(next!.since - closedAt);
      if (how === 'crash') await withTimeout(leader.close(), 5000, 'closing the crashed tab');
    }
    await withTimeout(writer, 30000, 'writer');
    const table = tableIds(path);
    assert.is(table.length, 600);
    const views = await waitForTabs(pages, table[table.length - 1]);
    assertEveryTab(views, table, 'leader mode', pages.length);
    assert.is(views.filter((view) => view.leader).length, 1, 'exactly one leader after two takeovers');
    await waitFor('the closed leaders\' streams to end', async () => (await healthFromPage(pages[0])).clients === 1, 5000, 50);
    figures.push(`leader takeover, until another tab is live: tab closed ${takeovers[0]} ms, renderer crashed ${takeovers[1]} ms`);
    assert.equal(errors, []);
  } finally {
    await browser?.close();
    await server?.stop('SIGKILL');
    removeDirectory(dir);
  }
});

test('SIGKILL and restart of the server on the same port: every tab, SharedWorker or leader mode, resumes with nothing lost', async () => {
  const dir = tempDirectory();
  let browser: Browser | undefined;
  const servers: ServerProcess[] = [];
  const errors: string[] = [];
  try {
    const path = createMessagesDatabase(dir, 'wal');
    sqlite(path, `INSERT INTO messages(message) VALUES ('before');`);
    const port = await freePort();
    const args = ['--db', path, '--retry', '200'];
    servers.push(await startServerOn(port, args));
    browser = await launchBrowser();
    // Two contexts are two browser profiles: one shares through its SharedWorker, the other through a leader tab.
    const shared = await openTabs(await browser.newContext({ reducedMotion: 'reduce' }), servers[0].url + '/', 6, errors);
    const led = await openTabs(await browser.newContext({ reducedMotion: 'reduce' }), servers[0].url + '/?mode=leader', 6, errors);
    const pages = [...shared, ...led];
    await waitForTabs(pages, 1, 10000);

    const writer = pythonInsert(path, 500, { delayMs: 4 });
    await waitFor('150 rows in every tab', async () => (await Promise.all(pages.map(readTab))).every((view) => view.count >= 150), 15000, 20);
    assert.is(await servers[0].stop('SIGKILL'), 'SIGKILL');
    await waitFor('every tab to show it is reconnecting', async () => (await Promise.all(pages.map(readTab))).every((view) => view.state === 'reconnecting'), 5000, 20);
    await sleep(300);
    servers.push(await startServerOn(port, args));
    await withTimeout(writer, 30000, 'writer');
    const table = tableIds(path);
    assert.is(table.length, 501);
    const views = await waitForTabs(pages, table[table.length - 1]);
    assertEveryTab(views, table, 'after restart', pages.length);
    for (const view of views) assert.is(view.state, 'live');
    assert.is((await healthFromPage(pages[0])).clients, 2, 'one stream per browser profile after the restart');
    assert.equal(errors.filter((error) => !/ERR_CONNECTION_REFUSED|net::ERR_/.test(error)), []);
  } finally {
    await browser?.close();
    for (const server of servers) await server.stop('SIGKILL');
    removeDirectory(dir);
  }
});

test('a subscriber with a cursor older than the shared buffer catches up from the server, then joins the shared stream', async () => {
  const dir = tempDirectory();
  let browser: Browser | undefined;
  let server: ServerProcess | undefined;
  const errors: string[] = [];
  try {
    const path = createMessagesDatabase(dir, 'wal');
    sqlite(path, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300) INSERT INTO messages(message) SELECT 'old-' || i FROM n;`);
    server = await startServerOn(await freePort(), ['--db', path, '--retry', '200']);
    browser = await launchBrowser();
    // The demo tab opens the shared stream fresh: the shared buffer holds only the newest 100 rows.
    const shared = await openTab(await browser.newContext({ reducedMotion: 'reduce' }), server.url + '/', errors);
    const led = await openTab(await browser.newContext({ reducedMotion: 'reduce' }), server.url + '/?mode=leader', errors);
    const pages = [shared, led];
    await waitForTabs(pages, 300, 10000);
    const writer = pythonInsert(path, 200, { delayMs: 4 });
    for (const page of pages) {
      await page.evaluate(async () => {
        const library = '/sqlite-sse-client.js';
        const { subscribe } = await import(library);
        const mode = new URLSearchParams(location.search).get('mode') ?? 'auto';
        const ids: number[] = ((window as unknown as { caughtUp: number[] }).caughtUp = []);
        subscribe('/events', { mode, lastEventId: 0, onRow: (_row: unknown, id: number) => ids.push(id) });
      });
    }
    await withTimeout(writer, 30000, 'writer');
    const table = tableIds(path);
    assert.is(table.length, 500);
    for (const page of pages) {
      const ids = await waitFor('every row from id 1', async () => {
        const seen = await page.evaluate(() => (window as unknown as { caughtUp: number[] }).caughtUp);
        return seen.length >= table.length ? seen : undefined;
      }, 15000, 50);
      assert.equal(ids, table, 'every row from the cursor on, once, in order');
    }
    // The catch-up streams close once they meet the shared ones: one stream per browser profile again.
    await waitFor('the catch-up streams to close', async () => (await healthFromPage(shared)).clients === 2, 5000, 50);
    assert.equal(errors, []);
  } finally {
    await browser?.close();
    await server?.stop('SIGKILL');
    removeDirectory(dir);
  }
});

test('a message with markup is shown as text and runs nothing', async () => {
  const dir = tempDirectory();
  let browser: Browser | undefined;
  let server: ServerProcess | undefined;
  const errors: string[] = [];
  try {
    const path = createMessagesDatabase(dir, 'wal');
    server = await startServerOn(await freePort(), ['--db', path]);
    browser = await launchBrowser();
    const page = await openTab(await browser.newContext(), server.url + '/', errors);
    let dialogs = 0;
    page.on('dialog', (dialog) => {
      dialogs++;
      void dialog.dismiss();
    });
    const attacks = [`<img src=x onerror="document.title='pwned';alert(1)">`, `<script>document.title='pwned'</script>`, `<b>bold</b> & "quotes"`];
    sqlite(path, attacks.map((text) => `INSERT INTO messages(message) VALUES ('${text.replaceAll("'", "''")}');`).join('\n'));
    await waitForTabs([page], 3, 10000);
    const shown = await page.evaluate(() => ({
      texts: [...document.querySelectorAll('#rows tr td:nth-child(2)')].map((td) => td.textContent).reverse(),
      elements: document.querySelectorAll('#rows img, #rows script, #rows b').length,
      title: document.title,
    }));
    await sleep(200);
    assert.equal(shown.texts, attacks);
    assert.is(shown.elements, 0, 'no element was created from a message');
    assert.is(shown.title, 'sqlite-sse live table');
    assert.is(dialogs, 0);
    assert.equal(errors, []);
  } finally {
    await browser?.close();
    await server?.stop('SIGKILL');
    removeDirectory(dir);
  }
});

test('HTTP/2 over TLS: 12 tabs, each with its own EventSource, stream over one connection', async () => {
  const dir = tempDirectory();
  let browser: Browser | undefined;
  let server: ServerProcess | undefined;
  const errors: string[] = [];
  try {
    const path = createMessagesDatabase(dir, 'wal');
    const { cert, key } = makeCertificate(dir);
    const port = await freePort();
    server = await startServerOn(port, ['--db', path, '--tls-cert', cert, '--tls-key', key]);
    assert.ok(server.url.startsWith('https://'), server.url);
    browser = await launchBrowser(['--ignore-certificate-errors']);
    const context = await browser.newContext({ ignoreHTTPSErrors: true, reducedMotion: 'reduce' });
    const pages = await openTabs(context, server.url + '/?mode=direct', 12, errors);
    const protocol = await pages[0].evaluate(() => (performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming).nextHopProtocol);
    assert.is(protocol, 'h2');
    await waitFor('12 live tabs', async () => (await Promise.all(pages.map(readTab))).every((view) => view.state === 'live'), 10000, 50);

    await withTimeout(pythonInsert(path, 100, { delayMs: 2 }), 30000, 'writer');
    const table = tableIds(path);
    const views = await waitForTabs(pages, table[table.length - 1]);
    assertEveryTab(views, table, 'HTTP/2', pages.length);
    for (const view of views) assert.is(view.role, 'own connection');
    const health = await healthFromPage(pages[0]);
    assert.is(health.clients, 12, 'twelve SSE streams');
    const tcp = establishedConnections(port);
    figures.push(`HTTP/2, 12 tabs, one EventSource each: ${health.clients} SSE streams over ${tcp} TCP connection(s)`);
    assert.ok(tcp <= 2, `12 streams share a connection (${tcp} TCP connections)`);
    assert.equal(errors, []);
  } finally {
    await browser?.close();
    await server?.stop('SIGKILL');
    removeDirectory(dir);
  }
});

test.before(() => {
  started = Date.now();
});

test.after(() => {
  figures.push(`e2e run time: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  for (const line of figures) console.log(`  e2e: ${line}`);
});

test.run();
