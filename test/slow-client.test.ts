import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cleanUpEverything, removeDirectory } from './helpers/cleanup.js';
import { createMessagesDatabase, pythonInsertBig, tempDirectory } from './helpers/database.js';
import { PausableSseSocket, residentBytes, tableIds } from './helpers/integration.js';
import { startServer, type ServerProcess } from './helpers/server-process.js';
import { SseStream } from './helpers/sse-stream.js';
import { sleep, waitFor, withTimeout } from './helpers/wait.js';

const MB = 1024 * 1024;
const ROW_BYTES = 10 * 1024;

/** Insert `rows` rows of ROW_BYTES characters each from a Python process. */
function insertBigRows(path: string, rows: number): Promise<string> {
  return withTimeout(pythonInsertBig(path, rows, ROW_BYTES), 60000, 'writer of big rows');
}

async function clientCount(server: ServerProcess): Promise<number> {
  return ((await (await fetch(`${server.url}/healthz`)).json()) as { clients: number }).clients;
}

test("a client that stops reading does not grow the server's memory; a reading client gets every row; the stalled client resumes and gets everything once", async () => {
  const rows = 20000;
  const written = rows * ROW_BYTES;
  const dir = tempDirectory();
  let server: ServerProcess | undefined;
  let stalled: PausableSseSocket | undefined;
  let reader: SseStream | undefined;
  let sampler: NodeJS.Timeout | undefined;
  try {
    const path = createMessagesDatabase(dir, 'wal');
    // The in-memory history is its own bounded cost (16 MB by default); 1 MB keeps it out of what is measured.
    server = await startServer(['--db', path, '--history-bytes', '1m']);
    const pid = server.child.pid!;

    // It sends its GET and then reads nothing: the kernel's buffers fill and the server sees a client that stopped.
    stalled = new PausableSseSocket(server.port, '/events?lastEventId=0', { paused: true });
    await stalled.connected();
    reader = new SseStream(`${server.url}/events?lastEventId=0`);
    await reader.waitForResponse();
    await waitFor('both clients attached', async () => (await clientCount(server!)) === 2, 5000);
    await sleep(100);
    const baseline = residentBytes(pid);
    let peak = baseline;
    sampler = setInterval(() => {
      try {
        peak = Math.max(peak, residentBytes(pid));
      } catch {
        // The server exited; the checks below say so.
      }
    }, 20);

    await insertBigRows(path, rows);
    await reader.waitForRows(rows, 30000);
    clearInterval(sampler);

    const ids = tableIds(path);
    assert.is(ids.length, rows);
    assert.equal(reader.ids(), ids, 'the reading client gets every row once, in order');
    // A server that queued everything for the stalled client would grow by more than what was written (195 MB; with
    // --client-buffer 1g it grew by 190-250 MB); what it needs anyway (pages read, the reading client's buffer,
    // garbage not yet collected) measured 40-50 MB here.
    const growth = peak - baseline;
    assert.ok(
      growth < written / 2,
      `the server grew by ${(growth / MB).toFixed(1)} MB (from ${(baseline / MB).toFixed(1)} MB) while ${(written / MB).toFixed(1)} MB were written`,
    );
    assert.is(await clientCount(server), 2, 'the stalled client is still connected (parked, not dropped)');

    stalled.resume();
    await waitFor(`every row on the resumed client (have ${stalled.ids().length})`, () => stalled!.ids().length >= rows, 30000);
    assert.equal(stalled.ids(), ids, 'the resumed client gets every row once, in order');
    assert.ok(!stalled.ended);
  } finally {
    clearInterval(sampler);
    stalled?.close();
    reader?.close();
    await server?.stop('SIGKILL');
    removeDirectory(dir);
    // Whatever this test started and did not stop itself (a writer still running after a failure).
    cleanUpEverything();
  }
});

test('a client that takes nothing for too long is disconnected and, reconnecting with Last-Event-ID, gets every row exactly once', async () => {
  const rows = 2000;
  const dir = tempDirectory();
  let server: ServerProcess | undefined;
  let stalled: PausableSseSocket | undefined;
  let reader: SseStream | undefined;
  let resumed: SseStream | undefined;
  try {
    const path = createMessagesDatabase(dir, 'wal');
    server = await startServer(['--db', path, '--history-bytes', '1m', '--heartbeat', '0.1', '--slow-client-timeout', '0.5']);
    stalled = new PausableSseSocket(server.port, '/events?lastEventId=0', { paused: true });
    await stalled.connected();
    reader = new SseStream(`${server.url}/events?lastEventId=0`);
    await reader.waitForResponse();
    await waitFor('both clients attached', async () => (await clientCount(server!)) === 2, 5000);

    await insertBigRows(path, rows);
    await reader.waitForRows(rows, 30000);
    await waitFor('the stalled client dropped', async () => (await clientCount(server!)) === 1, 10000);

    // It reads what reached it before the cut, then reconnects from the last event it got, as EventSource does.
    stalled.resume();
    await waitFor('the end of the cut stream', () => stalled!.ended, 10000);
    const before = stalled.ids();
    const lastId = before.length > 0 ? before[before.length - 1] : 0;
    resumed = new SseStream(`${server.url}/events`, { 'Last-Event-ID': String(lastId) });
    await resumed.waitForRows(rows - before.length, 30000);

    const ids = tableIds(path);
    assert.is(ids.length, rows);
    assert.equal(reader.ids(), ids);
    assert.ok(before.length < rows, `the stalled client was cut off before the end (it had ${before.length} rows)`);
    assert.equal([...before, ...resumed.ids()], ids, 'every row exactly once, in order, across the reconnect');
  } finally {
    stalled?.close();
    reader?.close();
    resumed?.close();
    await server?.stop('SIGKILL');
    removeDirectory(dir);
    // Whatever this test started and did not stop itself (a writer still running after a failure).
    cleanUpEverything();
  }
});

test.run();
