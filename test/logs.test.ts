import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { sqlite } from './helpers/database.js';
import { LiveFixture } from './helpers/live-fixture.js';
import { httpGet } from './helpers/prom-text.js';
import { startServer, type ServerProcess } from './helpers/server-process.js';
import { sleep, waitFor } from './helpers/wait.js';
import { WsRecorder } from './helpers/ws-recorder.js';

/** Connections are held open at least this long, so their logged duration has a known lower bound. */
const HOLD_MS = 300;

function lines(output: string): string[] {
  return output.split('\n').filter((line) => line.trim() !== '');
}

/** A line about one stream: `opened`/`closed`/`refused` `sse`/`ws` `stream`. */
const CONNECTION_LINE = /\b(opened|closed|refused) (sse|ws) stream\b/;

/** Open one SSE stream (cursor 0) and one WebSocket (no cursor), hold both, close both, and try one bad cursor each. */
async function openAndClose(f: LiveFixture): Promise<void> {
  const sse = f.sse('/events?lastEventId=0');
  const ws = f.ws();
  await sse.waitForResponse();
  await ws.waitForOpen();
  await sleep(HOLD_MS);
  sse.close();
  ws.terminate();
  assert.is((await httpGet(f.server.url + '/events?lastEventId=abc')).status, 400);
  assert.is((await f.ws('/ws?lastEventId=-1').waitForClose()).code, 4400);
  await f.waitForClients(0);
}

test('--log-level debug: one line per connection opened and one per close, with reason and duration', async () => {
  await LiveFixture.run(async (f) => {
    const server = await f.start(['--log-level', 'debug']);
    await openAndClose(f);
    await waitFor('two "closed" lines', () => lines(server.output()).filter((line) => /closed (sse|ws) stream/.test(line)).length >= 2, 3000);
    // One more WebSocket, still open at SIGTERM: its close says shutdown.
    const late = f.ws('/ws?lastEventId=0');
    await late.waitForOpen();
    assert.is(await server.stop('SIGTERM'), 0);
    assert.is((await late.waitForClose(3000)).code, 1001);

    const all = lines(server.output());
    const about = (pattern: RegExp) => all.filter((line) => pattern.test(line));
    const openedSse = about(/opened sse stream/);
    const openedWs = about(/opened ws stream/);
    const closedSse = about(/closed sse stream/);
    const closedWs = about(/closed ws stream/);
    assert.is(openedSse.length, 1, all.join('\n'));
    assert.is(openedWs.length, 2, all.join('\n'));
    assert.is(closedSse.length, 1, all.join('\n'));
    assert.match(openedSse[0], /^debug: opened sse stream\b.*\bip=127\.0\.0\.1\b.*\bcursor=0\b/);
    assert.match(openedWs[0], /^debug: opened ws stream\b.*\bip=127\.0\.0\.1\b.*\bcursor=none\b/);
    assert.match(openedWs[1], /\bcursor=0\b/);

    const duration = (line: string) => Number(/\bseconds=([0-9.]+)/.exec(line)?.[1]);
    assert.match(closedSse[0], /^debug: closed sse stream\b.*\breason=client-left\b/);
    assert.ok(duration(closedSse[0]) >= (HOLD_MS - 50) / 1000, closedSse[0]);
    assert.match(closedWs[0], /^debug: closed ws stream\b.*\breason=client-left\b/);
    assert.ok(duration(closedWs[0]) >= (HOLD_MS - 50) / 1000, closedWs[0]);
    // The WebSocket still open at SIGTERM: its close is logged too, before the process exits.
    assert.is(closedWs.length, 2, all.join('\n'));
    assert.match(closedWs[1], /^debug: closed ws stream\b.*\breason=shutdown\b.*\bseconds=[0-9.]+/);

    assert.is(about(/refused sse stream.*\breason=bad-cursor\b/).length, 1, all.join('\n'));
    assert.is(about(/refused ws stream.*\breason=bad-cursor\b/).length, 1, all.join('\n'));
    assert.match(all[0], /^listening on http:\/\/127\.0\.0\.1:\d+ /);
  });
});

test('the default level logs no per-connection lines', async () => {
  await LiveFixture.run(async (f) => {
    const server = await f.start();
    await openAndClose(f);
    await sleep(100);
    assert.is(await server.stop('SIGTERM'), 0);
    const all = lines(server.output());
    assert.equal(all.filter((line) => CONNECTION_LINE.test(line) || line.startsWith('debug:')), [], all.join('\n'));
    assert.match(all[0], /^listening on http:\/\/127\.0\.0\.1:\d+ /);
  });
});

interface JsonLine {
  time: string;
  level: string;
  msg: string;
  [field: string]: unknown;
}

test('--log-format json: every line is a JSON object with time, level and msg, the listening line and warnings included', async () => {
  await LiveFixture.run(async (f) => {
    // A table without AUTOINCREMENT makes the server warn at start: a warning line in JSON too.
    const plainDb = join(f.directory, 'plain.db');
    sqlite(plainDb, 'PRAGMA journal_mode=wal; CREATE TABLE messages(id integer primary key, message text);');
    let server: ServerProcess | undefined;
    try {
      server = await startServer(['--db', plainDb, '--log-format', 'json', '--log-level', 'debug']);
      const ws = new WsRecorder(`ws://127.0.0.1:${server.port}/ws?lastEventId=0`);
      try {
        await ws.waitForOpen();
        await sleep(HOLD_MS);
      } finally {
        ws.terminate();
      }
      await waitFor('the "closed" line', () => server!.output().includes('closed ws stream'), 3000);
      assert.is(await server.stop('SIGTERM'), 0);

      const parsed = lines(server.output()).map((line) => {
        try {
          return JSON.parse(line) as JsonLine;
        } catch {
          throw new Error(`not a JSON line: ${line}`);
        }
      });
      for (const line of parsed) {
        assert.type(line.msg, 'string');
        assert.ok(['debug', 'info', 'warn', 'error'].includes(line.level), JSON.stringify(line));
        assert.ok(!Number.isNaN(Date.parse(line.time)), JSON.stringify(line));
      }
      const listening = parsed.find((line) => line.msg.startsWith('listening on '));
      assert.ok(listening, 'the listening line');
      assert.is(listening!.level, 'info');
      assert.match(listening!.msg, /^listening on http:\/\/127\.0\.0\.1:\d+ \(db .*plain\.db, table messages, last id 0\)$/);
      assert.ok(parsed.some((line) => line.level === 'warn' && /AUTOINCREMENT/.test(line.msg)), 'the warning is a JSON line too');

      const opened = parsed.filter((line) => line.msg === 'opened ws stream');
      const closed = parsed.filter((line) => line.msg === 'closed ws stream');
      assert.is(opened.length, 1);
      assert.is(closed.length, 1);
      assert.is(opened[0].level, 'debug');
      assert.is(opened[0].ip, '127.0.0.1');
      assert.is(opened[0].cursor, 0);
      assert.is(closed[0].level, 'debug');
      assert.is(closed[0].reason, 'client-left');
      assert.type(closed[0].seconds, 'number');
      assert.ok((closed[0].seconds as number) >= (HOLD_MS - 50) / 1000, JSON.stringify(closed[0]));
    } finally {
      await server?.stop('SIGKILL').catch(() => undefined);
    }
  });
});

test.run();
