import { request } from 'node:http';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { healthz, httpGet, type HttpAnswer } from './helpers/chaos.js';
import { EventSourceClient } from './helpers/chaos-clients.js';
import { removeDirectory } from './helpers/cleanup.js';
import { upgradeStatus } from './helpers/upgrade-status.js';
import { createMessagesDatabase, sqlite, tempDirectory } from './helpers/database.js';
import { tableIds } from './helpers/integration.js';
import { startServer, type ServerProcess } from './helpers/server-process.js';
import { SseStream } from './helpers/sse-stream.js';
import { waitFor, withTimeout } from './helpers/wait.js';

/** GET /events from a chosen loopback address (any 127.x.y.z reaches a server on 127.0.0.1 under Linux). */
function eventsFrom(port: number, localAddress: string): Promise<HttpAnswer & { close: () => void }> {
  const started = performance.now();
  return withTimeout(
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/events', localAddress, agent: false }, (response) => {
        let body = '';
        response.setEncoding('utf8');
        const answer = () => resolve({ status: response.statusCode!, headers: response.headers, body, ms: performance.now() - started, close: () => req.destroy() });
        if (response.statusCode === 200) response.once('data', answer);
        else {
          response.on('data', (chunk: string) => (body += chunk));
          response.on('end', answer);
        }
      });
      req.on('error', reject);
      req.end();
    }),
    5000,
    `GET /events from ${localAddress}`,
  );
}


test('--max-clients 3: the 4th stream (SSE or WebSocket) gets 503 with Retry-After; a freed place lets the next one in', async () => {
  const dir = tempDirectory();
  let server: ServerProcess | undefined;
  const streams: SseStream[] = [];
  try {
    const path = createMessagesDatabase(dir, 'wal');
    server = await startServer(['--db', path, '--max-clients', '3']);
    for (let i = 0; i < 3; i++) streams.push(new SseStream(`${server.url}/events`));
    for (const stream of streams) assert.is((await stream.waitForResponse()).statusCode, 200);
    await waitFor('three clients', async () => (await healthz(server!.port)).clients === 3, 5000);

    const fourth = await httpGet(server.port, '/events');
    assert.is(fourth.status, 503);
    assert.ok(/^\d+$/.test(String(fourth.headers['retry-after'])), `Retry-After: ${fourth.headers['retry-after']}`);
    assert.match(fourth.body, /limit of 3 clients/);
    assert.match(await upgradeStatus(server.port), /^HTTP\/1\.1 503 /, 'a WebSocket counts against the same limit');
    assert.is((await httpGet(server.port, '/healthz')).status, 200, '/healthz is not a stream: it still answers');

    streams.shift()!.close();
    await waitFor('a place freed', async () => (await healthz(server!.port)).clients === 2, 5000);
    const next = new SseStream(`${server.url}/events`);
    streams.push(next);
    assert.is((await next.waitForResponse()).statusCode, 200);
  } finally {
    for (const stream of streams) stream.close();
    await server?.stop('SIGKILL');
    removeDirectory(dir);
  }
});

test('--max-clients-per-ip 2: the 3rd stream from one address gets 429 with Retry-After; another address still gets in', async () => {
  const dir = tempDirectory();
  let server: ServerProcess | undefined;
  const open: { close: () => void }[] = [];
  try {
    const path = createMessagesDatabase(dir, 'wal');
    server = await startServer(['--db', path, '--max-clients-per-ip', '2']);
    for (let i = 0; i < 2; i++) {
      const answer = await eventsFrom(server.port, '127.0.0.1');
      open.push(answer);
      assert.is(answer.status, 200);
    }
    const third = await eventsFrom(server.port, '127.0.0.1');
    open.push(third);
    assert.is(third.status, 429);
    assert.ok(/^\d+$/.test(String(third.headers['retry-after'])), `Retry-After: ${third.headers['retry-after']}`);
    const elsewhere = await eventsFrom(server.port, '127.0.0.2');
    open.push(elsewhere);
    assert.is(elsewhere.status, 200, 'the limit is per address');
  } finally {
    for (const answer of open) answer.close();
    await server?.stop('SIGKILL');
    removeDirectory(dir);
  }
});

test('--max-catchup-rows 100: a catch-up of 1000 rows from the database ends after about 100; an EventSource that reconnects ends with all 1000 exactly once', async () => {
  const dir = tempDirectory();
  let server: ServerProcess | undefined;
  let stream: SseStream | undefined;
  let client: EventSourceClient | undefined;
  try {
    const path = createMessagesDatabase(dir, 'wal');
    sqlite(path, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) INSERT INTO messages(message) SELECT 'row-' || i FROM n;`);
    // The limit bounds rows read from the database for one connection; rows served from memory cost no query and
    // are not counted, so memory holds only the newest 50 here.
    server = await startServer(['--db', path, '--max-catchup-rows', '100', '--history-rows', '50', '--retry', '50']);
    const ids = tableIds(path);

    stream = new SseStream(`${server.url}/events?lastEventId=0`);
    await waitFor("the stream to end", () => stream!.ended, 10000);
    const first = stream.ids();
    assert.ok(first.length >= 100 && first.length <= 150, `the stream ended after about 100 rows (got ${first.length})`);
    assert.equal(first, ids.slice(0, first.length), 'the rows before the end are the first ones, in order');

    client = new EventSourceClient(`${server.url}/events?lastEventId=0`);
    await waitFor(`all 1000 rows (have ${client.delivery.count})`, () => client!.delivery.count >= 1000, 30000);
    assert.equal(client.delivery.epochs, [ids], 'every row exactly once, in order, across the reconnects');
    assert.ok(client.opens >= 7, `the client reconnected at each end (opens ${client.opens})`);
  } finally {
    stream?.close();
    client?.stop();
    await server?.stop('SIGKILL');
    removeDirectory(dir);
  }
});

test.run();
