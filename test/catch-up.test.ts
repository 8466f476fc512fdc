import { renameSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cleanUpEverything, removeDirectory } from './helpers/cleanup.js';
import { createMessagesDatabase, pythonInsert, sqlite, tempDirectory } from './helpers/database.js';
import { tableIds, tableRows } from './helpers/integration.js';
import { startServer, type ServerProcess } from './helpers/server-process.js';
import { range, SseStream } from './helpers/sse-stream.js';
import { waitFor, withTimeout } from './helpers/wait.js';

/** Insert `count` rows `message-N` in one transaction through the sqlite3 shell. */
function insertRows(path: string, count: number, prefix: string): void {
  sqlite(
    path,
    `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${count})
     INSERT INTO messages(message) SELECT '${prefix}-' || i FROM n;`,
  );
}

test('a cursor older than the in-memory history is served from the database and joins live with no gap or duplicate; lastEventId=0 replays everything', async () => {
  const dir = tempDirectory();
  let server: ServerProcess | undefined;
  const streams: SseStream[] = [];
  try {
    const path = createMessagesDatabase(dir, 'wal');
    insertRows(path, 600, 'old');
    // 50 rows in memory, read from the database 64 rows at a time: a cursor of 10 needs several pages.
    server = await startServer(['--db', path, '--history-rows', '50', '--page-rows', '64']);
    const writer = pythonInsert(path, 1000, { perCommit: 1, delayMs: 1, prefix: 'live' });
    let writerDone = false;
    void writer.then(() => (writerDone = true), () => undefined);
    // Connect while the writer keeps writing, so the database pages and the live rows meet mid-stream.
    await waitFor('the writer under way', () => tableIds(path).length > 700, 10000);
    const header = new SseStream(`${server.url}/events`, { 'Last-Event-ID': '10' });
    const query = new SseStream(`${server.url}/events?lastEventId=0`);
    streams.push(header, query);
    await header.waitForResponse();
    await query.waitForResponse();
    await header.waitForRows(1);
    await query.waitForRows(1);
    const health = (await (await fetch(`${server.url}/healthz`)).json()) as { ringRows: number; ringOldestId: number };
    assert.ok(health.ringRows <= 50 && health.ringOldestId > 11, `the history no longer holds row 11: ${JSON.stringify(health)}`);
    assert.not.ok(writerDone, 'the clients connected while the writer was writing');
    await withTimeout(writer, 30000, 'writer');

    const all = tableRows(path);
    assert.is(all.length, 1600);
    await header.waitForRows(all.length - 10);
    await query.waitForRows(all.length);
    assert.equal(header.ids(), range(11, 1600), 'Last-Event-ID 10: every later row once, in order');
    assert.equal(query.ids(), range(1, 1600), 'lastEventId=0: every row once, in order');
    assert.equal(
      query.rows<{ id: number; message: string }>().map(({ id, message }) => ({ id, message })),
      all,
      'the rows as the table holds them',
    );
  } finally {
    for (const stream of streams) stream.close();
    await server?.stop('SIGKILL');
    removeDirectory(dir);
    // Whatever this test started and did not stop itself (a writer still running after a failure).
    cleanUpEverything();
  }
});

test('a cursor ahead of the table gets a reset event, then every row written afterwards', async () => {
  const dir = tempDirectory();
  let server: ServerProcess | undefined;
  let stream: SseStream | undefined;
  try {
    const path = createMessagesDatabase(dir, 'wal');
    insertRows(path, 10, 'kept');
    server = await startServer(['--db', path]);
    stream = new SseStream(`${server.url}/events`, { 'Last-Event-ID': '999999' });
    await waitFor('the reset event', () => stream!.events.length >= 1, 5000);
    assert.equal(stream.events[0], {
      id: '10',
      event: 'reset',
      data: JSON.stringify({ reason: 'cursor-ahead', lastEventId: 999999, lastId: 10 }),
    });
    assert.equal(JSON.parse(stream.events[0].data), { reason: 'cursor-ahead', lastEventId: 999999, lastId: 10 });

    await pythonInsert(path, 5, { prefix: 'next' });
    await stream.waitForRows(5);
    assert.equal(stream.ids(), range(11, 15), 'no row after the reset is dropped');
    assert.equal(
      stream.rows<{ message: string }>().map((row) => row.message),
      range(0, 4).map((i) => `next-${i}`),
    );
    assert.is(stream.events.length, 6, 'one reset, then the rows, nothing else');
  } finally {
    stream?.close();
    await server?.stop('SIGKILL');
    removeDirectory(dir);
    // Whatever this test started and did not stop itself (a writer still running after a failure).
    cleanUpEverything();
  }
});

test('the database file replaced by a smaller backup: a connected client gets a reset event, then the rows written next', async () => {
  const dir = tempDirectory();
  let server: ServerProcess | undefined;
  let stream: SseStream | undefined;
  try {
    // DELETE journal: a backup copied over a WAL database would meet the old database's -wal file.
    const path = createMessagesDatabase(dir, 'delete');
    insertRows(path, 10, 'first');
    const backup = join(dir, 'backup.db');
    sqlite(path, `.backup '${backup}'`);
    insertRows(path, 20, 'later');

    server = await startServer(['--db', path]);
    stream = new SseStream(`${server.url}/events?lastEventId=0`);
    await stream.waitForRows(30);
    assert.equal(stream.ids(), range(1, 30));

    // Restore the backup as an operator would: copy it next to the database, then rename it over the database.
    const copy = join(dir, 'restore.tmp');
    sqlite(backup, `.backup '${copy}'`);
    renameSync(copy, path);
    await waitFor('the reset event', () => stream!.events.some((event) => event.event === 'reset'), 5000);
    const resetAt = stream.events.findIndex((event) => event.event === 'reset');
    assert.is(resetAt, 30, 'the reset comes after the 30 rows already sent');
    assert.is(stream.events[resetAt].id, '10', 'the cursor moves back to the restored table\'s highest id');
    assert.equal(JSON.parse(stream.events[resetAt].data), { reason: 'cursor-ahead', lastEventId: 30, lastId: 10 });

    await pythonInsert(path, 5, { prefix: 'after-restore' });
    await waitFor('the rows written after the restore', () => stream!.events.length >= 36, 5000);
    const after = stream.events.slice(resetAt + 1);
    assert.equal(
      after.map((event) => event.id),
      ['11', '12', '13', '14', '15'],
      'ids the restored table reuses are sent again, none skipped',
    );
    assert.equal(
      after.map((event) => (JSON.parse(event.data) as { message: string }).message),
      range(0, 4).map((i) => `after-restore-${i}`),
    );
    assert.equal(tableIds(path), range(1, 15));
    assert.ok(!stream.ended, 'the stream stays open across the restore');
  } finally {
    stream?.close();
    await server?.stop('SIGKILL');
    removeDirectory(dir);
    // Whatever this test started and did not stop itself (a writer still running after a failure).
    cleanUpEverything();
  }
});

test.run();
