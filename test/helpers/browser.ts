import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium as playwright, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { findChromium } from './chromium.js';
import { trackChild } from './cleanup.js';
import { CLI, type ServerProcess } from './server-process.js';
import { TEST_CERTIFICATE, TEST_PRIVATE_KEY } from './test-certificate.js';
import { waitFor, withTimeout } from './wait.js';

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

let said = false;

/**
 * Start headless Chromium (which one: see `findChromium`, said once on stdout); a browser that cannot start is a
 * failure that says why, never a skipped test.
 */
export async function launchBrowser(extraArgs: string[] = []): Promise<Browser> {
  const chromium = await findChromium();
  let browser: Browser;
  try {
    browser = await playwright.launch({
      executablePath: chromium.executablePath,
      env: chromium.env ? { ...process.env, ...chromium.env } : undefined,
      args: [...CHROMIUM_ARGS, ...extraArgs],
      timeout: 20000,
    });
  } catch (error) {
    const first = (error as Error).message.split('\n')[0];
    throw new Error(`cannot start Chromium (${chromium.origin}: ${chromium.executablePath}): ${first}`);
  }
  if (!said) console.log(`  browser: Chromium ${browser.version()}, ${chromium.origin} (${chromium.executablePath})`);
  said = true;
  return browser;
}

/** What one tab of the demo page shows. `ids` in arrival order (the page lists the newest first). */
export interface TabView {
  state: string;
  role: string;
  mode: string;
  leader: boolean;
  /** When `state` last changed (Date.now() in the page). */
  since: number;
  count: number;
  lastId: string;
  ids: number[];
}

export function readTab(page: Page): Promise<TabView> {
  return page.evaluate(() => {
    const status = document.getElementById('status')!;
    const role = document.getElementById('role')!;
    const ids = [...document.querySelectorAll<HTMLElement>('#rows tr')].map((tr) => Number(tr.dataset.id)).reverse();
    return {
      state: status.dataset.state ?? '',
      role: role.textContent ?? '',
      mode: role.dataset.mode ?? '',
      leader: role.dataset.leader === 'true',
      since: Number(status.dataset.since ?? 0),
      count: Number(document.getElementById('count')!.textContent),
      lastId: document.getElementById('last-id')!.textContent ?? '',
      ids,
    };
  });
}

/** Open `count` tabs of `url` one after another, each waiting for its page to load; page errors are collected. */
export async function openTabs(context: BrowserContext, url: string, count: number, errors: string[] = []): Promise<Page[]> {
  const pages: Page[] = [];
  for (let i = 0; i < count; i++) pages.push(await openTab(context, url, errors));
  return pages;
}

export async function openTab(context: BrowserContext, url: string, errors: string[] = []): Promise<Page> {
  const page = await context.newPage();
  page.on('pageerror', (error) => errors.push(`${url}: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(`${url}: console: ${message.text()}`);
  });
  await page.goto(url, { timeout: 10000 });
  return page;
}

/** Wait until every tab's `#last-id` shows `lastId`. */
export async function waitForTabs(pages: readonly Page[], lastId: number, timeoutMs = 15000): Promise<TabView[]> {
  let views: TabView[] = [];
  await waitFor(
    `every tab at id ${lastId}`,
    async () => {
      views = await Promise.all(pages.map(readTab));
      return views.every((view) => view.lastId === String(lastId));
    },
    timeoutMs,
    50,
  ).catch((error: Error) => {
    const where = views.map((view, i) => `tab ${i}: ${view.state} ${view.role} last ${view.lastId} count ${view.count}`).join('; ');
    throw new Error(`${error.message} (${where})`);
  });
  return views;
}

/**
 * The ids a tab must show: every id of the table from its first one on, in order, once. Returns a reason when the
 * tab's ids are not exactly that contiguous suffix of the table (a row lost, duplicated or out of order).
 */
export function suffixProblem(ids: readonly number[], table: readonly number[]): string | undefined {
  if (ids.length === 0) return 'no rows';
  const start = table.indexOf(ids[0]);
  if (start === -1) return `first id ${ids[0]} is not in the table`;
  const expected = table.slice(start);
  if (ids.length !== expected.length || ids.some((id, i) => id !== expected[i])) {
    const at = ids.findIndex((id, i) => id !== expected[i]);
    return `ids from ${ids[0]}: ${ids.length} shown, ${expected.length} expected; first difference at position ${at} (shown ${ids[at]}, expected ${expected[at]})`;
  }
  return undefined;
}

/** The server's established TCP connections on `port`, from /proc/net/tcp{,6} (Linux): the server's side of each. */
export function establishedConnections(port: number): number {
  let count = 0;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 4) continue;
      const localPort = parseInt(fields[1].split(':').pop()!, 16);
      if (localPort === port && fields[3] === '01') count++;
    }
  }
  return count;
}

/** `/healthz` as the page sees it (over the browser's own connection, so no extra one is opened). */
export function healthFromPage(page: Page): Promise<{ clients: number; lastId: number }> {
  return page.evaluate(async () => (await (await fetch('/healthz', { cache: 'no-store' })).json()) as { clients: number; lastId: number });
}

/** A self-signed certificate for 127.0.0.1 (and localhost), written into `directory` (no `openssl` needed). */
export function makeCertificate(directory: string): { cert: string; key: string } {
  const cert = join(directory, 'cert.pem');
  const key = join(directory, 'key.pem');
  writeFileSync(cert, TEST_CERTIFICATE);
  writeFileSync(key, TEST_PRIVATE_KEY, { mode: 0o600 });
  return { cert, key };
}

/**
 * Start the CLI on a known port and wait for its `listening on` line, http or https (the shared `startServer`
 * only recognises http URLs).
 */
export async function startServerOn(port: number, args: string[], timeoutMs = 15000): Promise<ServerProcess> {
  const child = trackChild(spawn(process.execPath, [CLI, '--port', String(port), ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  let url = '';
  await Promise.race([
    waitFor('the server to listen', () => (url = /listening on (https?:\/\/\S+) /.exec(output)?.[1] ?? ''), timeoutMs, 10),
    exited.then((code) => Promise.reject(new Error(`server exited ${code} before listening: ${output.trim()}`))),
  ]).catch((error) => {
    child.kill('SIGKILL');
    throw error;
  });
  return {
    child,
    port,
    url,
    output: () => output,
    stop: (signal = 'SIGTERM', stopTimeoutMs = 5000) => {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill(signal);
      return withTimeout(exited, stopTimeoutMs, `server exit after ${signal}`).catch((error) => {
        child.kill('SIGKILL');
        throw error;
      });
    },
  };
}
