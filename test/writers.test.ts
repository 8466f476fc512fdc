import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cleanUpEverything, removeDirectory } from './helpers/cleanup.js';
import { createMessagesDatabase, python, pythonInsert, tempDirectory } from './helpers/database.js';
import { tableIds, tableRows } from './helpers/integration.js';
import { startServer, type ServerProcess } from './helpers/server-process.js';
import { SseStream } from './helpers/sse-stream.js';
import { waitFor, withTimeout } from './helpers/wait.js';

const CLIENTS = 30;

/** Open `count` streams from the beginning and wait until each one is open (its `retry:` line came). */
async function openClients(server: ServerProcess, count: number): Promise<SseStream[]> {
  const clients = Array.from({ length: count }, () => new SseStream(`${server.url}/events?lastEventId=0`));
  for (const client of clients) await client.waitForResponse();
  await waitFor('every stream open', () => clients.every((client) => client.retry !== undefined), 5000);
  return clients;
}

/** Wait until every client has `count` rows (or more, which the caller's equality check then reports). */
async function waitForAll(clients: SseStream[], count: number, timeoutMs = 20000): Promise<void> {
  await waitFor(
    `${count} rows on every client (fewest: ${Math.min(...clients.map((client) => client.ids().length))})`,
    () => clients.every((client) => client.ids().length >= count),
    timeoutMs,
  );
}

/** Three writer processes at once: two commit one row at a time, one in 50-row transactions. */
async function threeWriters(path: string, journalMode: string): Promise<void> {
  await withTimeout(
    Promise.all([
      pythonInsert(path, 1000, { perCommit: 1, journalMode, prefix: 'a' }),
      pythonInsert(path, 1000, { perCommit: 50, journalMode, prefix: 'b' }),
      pythonInsert(path, 1000, { perCommit: 1, journalMode, prefix: 'c' }),
    ]),
    30000,
    'three writers',
  );
}

// Every journal mode a writer may use: the -journal file is deleted, truncated or kept, and still rings the doorbell.
for (const journalMode of ['wal', 'delete', 'truncate', 'persist']) {
  test(`delivers rows from 3 concurrent writers (${journalMode} journal) to ${CLIENTS} clients exactly once, in id order`, async () => {
    const dir = tempDirectory();
    let server: ServerProcess | undefined;
    let clients: SseStream[] = [];
    try {
      const path = createMessagesDatabase(dir, journalMode);
      server = await startServer(['--db', path]);
      clients = await openClients(server, CLIENTS);
      await threeWriters(path, journalMode);

      const ids = tableIds(path);
      assert.is(ids.length, 3000, 'every writer committed');
      await waitForAll(clients, ids.length);
      for (const [index, client] of clients.entries()) {
        assert.equal(client.ids(), ids, `client ${index}: every row once, in id order`);
      }
      // What the clients see is the rows themselves, not only their ids.
      assert.equal(
        clients[0].rows<{ id: number; message: string }>().map(({ id, message }) => ({ id, message })),
        tableRows(path),
      );
      assert.ok(clients.every((client) => !client.ended), 'the streams stay open');
    } finally {
      for (const client of clients) client.close();
      await server?.stop('SIGKILL');
      removeDirectory(dir);
      // Whatever this test started and did not stop itself (a writer still running after a failure).
      cleanUpEverything();
    }
  });
}

test('delivers every row while another process runs PRAGMA wal_checkpoint(TRUNCATE) mid-stream', async () => {
  const dir = tempDirectory();
  let server: ServerProcess | undefined;
  let clients: SseStream[] = [];
  try {
    const path = createMessagesDatabase(dir, 'wal');
    server = await startServer(['--db', path]);
    clients = await openClients(server, 5);
    // The checkpointer waits until the writer is under way, then truncates the WAL again and again while it writes.
    const checkpoints = python(
      path,
      `
con = sqlite3.connect(db, timeout=10, isolation_level=None)
while con.execute("SELECT count(*) FROM messages").fetchone()[0] < 200:
    time.sleep(0.005)
results = []  # [busy, wal frames, frames checkpointed, rows at that moment]
for _ in range(20):
    results.append(con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone() + (con.execute("SELECT count(*) FROM messages").fetchone()[0],))
    time.sleep(0.03)
con.close()
print(json.dumps(results))
`,
    );
    await withTimeout(Promise.all([pythonInsert(path, 2000, { perCommit: 1, delayMs: 0.5 }), checkpoints]), 30000, 'writer and checkpointer');
    const results = JSON.parse(await checkpoints) as [busy: number, log: number, checkpointed: number, rowsThen: number][];
    assert.ok(
      results.some(([busy, , , rowsThen]) => busy === 0 && rowsThen < 2000),
      `at least one TRUNCATE checkpoint completed while the writer was still writing: ${JSON.stringify(results)}`,
    );

    const ids = tableIds(path);
    assert.is(ids.length, 2000);
    await waitForAll(clients, ids.length);
    for (const [index, client] of clients.entries()) assert.equal(client.ids(), ids, `client ${index}`);
  } finally {
    for (const client of clients) client.close();
    await server?.stop('SIGKILL');
    removeDirectory(dir);
    // Whatever this test started and did not stop itself (a writer still running after a failure).
    cleanUpEverything();
  }
});

test.run();
