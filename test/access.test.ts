import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { httpGet } from './helpers/chaos.js';
import { removeDirectory } from './helpers/cleanup.js';
import { upgradeStatus } from './helpers/upgrade-status.js';
import { createMessagesDatabase, tempDirectory } from './helpers/database.js';
import { startServer, type ServerProcess } from './helpers/server-process.js';

const TOKEN = 'chaos-secret-1234';

/** Names of the Access-Control-* headers of an answer. */
const corsHeaders = (headers: Record<string, unknown>) => Object.keys(headers).filter((name) => name.startsWith('access-control-'));


async function withServer(args: string[], body: (server: ServerProcess) => Promise<void>): Promise<void> {
  const dir = tempDirectory();
  let server: ServerProcess | undefined;
  try {
    const path = createMessagesDatabase(dir, 'wal');
    server = await startServer(['--db', path, ...args]);
    await body(server);
  } finally {
    await server?.stop('SIGKILL');
    removeDirectory(dir);
  }
}

test('CORS is off by default: no Access-Control-* header for any origin, on any path', async () => {
  await withServer([], async (server) => {
    for (const path of ['/events', '/healthz', '/']) {
      const answer = await httpGet(server.port, path, { Origin: 'https://a.example' });
      assert.is(answer.status, 200, path);
      assert.equal(corsHeaders(answer.headers), [], `${path}: no CORS headers`);
    }
    const preflight = await httpGet(server.port, '/events', { Origin: 'https://a.example', 'Access-Control-Request-Method': 'GET' }, 5000, 'OPTIONS');
    assert.equal(corsHeaders(preflight.headers), [], 'no preflight answer either');
    assert.ok(preflight.status !== 204, `OPTIONS is not a preflight (got ${preflight.status})`);
  });
});

test('--cors-origin https://a.example: that origin is allowed (stream, preflight 204), other origins get no CORS header', async () => {
  await withServer(['--cors-origin', 'https://a.example'], async (server) => {
    const allowed = await httpGet(server.port, '/events', { Origin: 'https://a.example' });
    assert.is(allowed.status, 200);
    assert.is(allowed.headers['access-control-allow-origin'], 'https://a.example');
    const other = await httpGet(server.port, '/events', { Origin: 'https://b.example' });
    assert.is(other.status, 200, 'the server answers; the browser hides it from the other origin');
    assert.equal(corsHeaders(other.headers), [], 'no CORS header for another origin');
    const lookalike = await httpGet(server.port, '/events', { Origin: 'https://a.example.evil.example' });
    assert.equal(corsHeaders(lookalike.headers), [], 'no CORS header for a look-alike origin');

    const preflight = await httpGet(server.port, '/events', { Origin: 'https://a.example', 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'last-event-id' }, 5000, 'OPTIONS');
    assert.is(preflight.status, 204);
    assert.is(preflight.headers['access-control-allow-origin'], 'https://a.example');
    assert.match(String(preflight.headers['access-control-allow-headers']), /Last-Event-ID/i);
    const otherPreflight = await httpGet(server.port, '/events', { Origin: 'https://b.example', 'Access-Control-Request-Method': 'GET' }, 5000, 'OPTIONS');
    assert.ok(otherPreflight.status !== 204, `no preflight for another origin (got ${otherPreflight.status})`);
    assert.equal(corsHeaders(otherPreflight.headers), []);
  });
});

test('--token: /events is 401 without it or with a wrong one, 200 with Bearer, the sse_token cookie or ?token=; /healthz stays open', async () => {
  await withServer(['--token', TOKEN], async (server) => {
    const without = await httpGet(server.port, '/events');
    assert.is(without.status, 401);
    assert.ok(!without.body.includes(TOKEN), 'the answer does not echo the token');
    assert.is((await httpGet(server.port, '/events', { Authorization: 'Bearer wrong-token-0000' })).status, 401);
    assert.is((await httpGet(server.port, '/events?token=wrong-token-0000')).status, 401);
    assert.is((await httpGet(server.port, '/events', { Authorization: `Bearer ${TOKEN}` })).status, 200, 'Bearer');
    assert.is((await httpGet(server.port, '/events', { Cookie: `other=1; sse_token=${TOKEN}` })).status, 200, 'cookie');
    assert.is((await httpGet(server.port, `/events?token=${TOKEN}`)).status, 200, '?token=');
    assert.is((await httpGet(server.port, '/healthz')).status, 200, '/healthz is open by default');
    assert.match(await upgradeStatus(server.port, {}), / 401 /, 'the WebSocket needs it too');
    assert.match(await upgradeStatus(server.port, { Authorization: `Bearer ${TOKEN}` }), / 101 /);
  });
});

test('--protect events,ws,metrics,healthz: /healthz needs the token too', async () => {
  await withServer(['--token', TOKEN, '--protect', 'events,ws,metrics,healthz', '--metrics'], async (server) => {
    assert.is((await httpGet(server.port, '/healthz')).status, 401);
    assert.is((await httpGet(server.port, '/healthz', { Authorization: `Bearer ${TOKEN}` })).status, 200);
    assert.is((await httpGet(server.port, '/metrics')).status, 401);
    assert.is((await httpGet(server.port, '/metrics', { Authorization: `Bearer ${TOKEN}` })).status, 200);
    assert.is((await httpGet(server.port, '/events')).status, 401);
  });
});

test("a WebSocket upgrade from a foreign Origin is refused with 403; the server's own origin and allowed origins get in", async () => {
  await withServer(['--cors-origin', 'https://a.example'], async (server) => {
    assert.match(await upgradeStatus(server.port, { Origin: 'https://evil.example' }), /^HTTP\/1\.1 403 /);
    assert.match(await upgradeStatus(server.port, { Origin: 'null' }), /^HTTP\/1\.1 403 /);
    assert.match(await upgradeStatus(server.port, { Origin: `http://127.0.0.1:${server.port}` }), /^HTTP\/1\.1 101 /);
    assert.match(await upgradeStatus(server.port, { Origin: 'https://a.example' }), /^HTTP\/1\.1 101 /);
    assert.match(await upgradeStatus(server.port, {}), /^HTTP\/1\.1 101 /, 'no Origin: not a browser');
  });
  await withServer([], async (server) => {
    assert.match(await upgradeStatus(server.port, { Origin: 'https://a.example' }), /^HTTP\/1\.1 403 /, 'without --cors-origin, any foreign origin');
  });
});

test.run();
