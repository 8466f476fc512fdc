import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { healthz, scaled } from './helpers/chaos.js';
import { removeDirectory } from './helpers/cleanup.js';
import { createMessagesDatabase, pythonInsert, tempDirectory } from './helpers/database.js';
import { databaseFingerprint } from './helpers/fingerprint.js';
import { tableIds } from './helpers/integration.js';
import { startServer, type ServerProcess } from './helpers/server-process.js';
import { SseStream } from './helpers/sse-stream.js';
import { sleep, waitFor, withTimeout } from './helpers/wait.js';

/** Many clients of every kind for a while: catch-ups from the database, recent rows, cursors ahead of the table. */
async function crowd(server: ServerProcess, lastId: number, seconds: number): Promise<number> {
  const streams: SseStream[] = [];
  try {
    const cursors = ['0', '', String(Math.floor(lastId / 2)), String(lastId), String(lastId + 1000)];
    for (let i = 0; i < scaled(40, 200); i++) {
      const cursor = cursors[i % cursors.length];
      streams.push(new SseStream(`${server.url}/events`, cursor === '' ? {} : { 'Last-Event-ID': cursor }));
    }
    const until = Date.now() + seconds * 1000;
    while (Date.now() < until) {
      await healthz(server.port);
      await sleep(100);
    }
    await waitFor('every stream answered', () => streams.every((stream) => stream.response?.statusCode === 200), 5000);
    return streams.reduce((sum, stream) => sum + stream.ids().length, 0);
  } finally {
    for (const stream of streams) stream.close();
  }
}

for (const journalMode of ['wal', 'delete']) {
  test(`read-only (${journalMode}): a server with many clients never changes the bytes or mtime of the database or its journal`, async () => {
    const dir = tempDirectory();
    let server: ServerProcess | undefined;
    const streams: SseStream[] = [];
    try {
      const path = createMessagesDatabase(dir, journalMode);
      // --history-rows 100: most catch-ups are served from the database, so the server reads it a lot.
      const args = ['--db', path, '--history-rows', '100'];
      server = await startServer(args);
      for (let i = 0; i < 5; i++) streams.push(new SseStream(`${server.url}/events?lastEventId=0`));
      await withTimeout(pythonInsert(path, 2000, { perCommit: 10, delayMs: 1 }), 60000, 'writer');
      const ids = tableIds(path);
      for (const stream of streams) await stream.waitForRows(ids.length, 20000);
      for (const stream of streams) assert.equal(stream.ids(), ids);
      // The writer is gone; the server closes its idle connection about a second after the last commit.
      await sleep(1500);
      const before = databaseFingerprint(path);

      const delivered = await crowd(server, ids.at(-1)!, 3);
      assert.ok(delivered > 0);
      assert.is(await server.stop('SIGTERM'), 0, 'a clean exit');
      const afterFirst = databaseFingerprint(path);
      assert.is(afterFirst, before, 'unchanged by a running server and its clients, and by its shutdown');

      // A fresh start reads the table, fills its memory, serves a crowd and stops: still nothing written.
      server = await startServer(args);
      await crowd(server, ids.at(-1)!, 3);
      assert.is(await server.stop('SIGTERM'), 0, 'a clean exit');
      const afterSecond = databaseFingerprint(path);
      assert.is(afterSecond, before, 'unchanged by a start, a crowd and a stop');
      console.log(`[chaos] read-only (${journalMode}): ${before}`);
    } finally {
      for (const stream of streams) stream.close();
      await server?.stop('SIGKILL');
      removeDirectory(dir);
    }
  });
}

test.run();
