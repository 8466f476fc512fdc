import { EventSource } from 'eventsource';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cleanUpEverything, removeDirectory } from './helpers/cleanup.js';
import { createMessagesDatabase, pythonInsert, sqlite, tempDirectory } from './helpers/database.js';
import { tableIds } from './helpers/integration.js';
import { startServer, type ServerProcess } from './helpers/server-process.js';
import { freePort, SseStream } from './helpers/sse-stream.js';
import { sleep, waitFor, withTimeout } from './helpers/wait.js';

test('an EventSource client gets every row exactly once, in order, across a SIGKILL and restart of the server', async () => {
  const dir = tempDirectory();
  const servers: ServerProcess[] = [];
  let source: EventSource | undefined;
  try {
    const path = createMessagesDatabase(dir, 'wal');
    sqlite(path, `INSERT INTO messages(message) VALUES ('before-1'), ('before-2'), ('before-3');`);
    const port = await freePort();
    const args = ['--db', path, '--port', String(port), '--retry', '200'];
    servers.push(await startServer(args));

    const ids: number[] = [];
    let errors = 0;
    let opens = 0;
    source = new EventSource(`http://127.0.0.1:${port}/events?lastEventId=0`);
    source.onmessage = (event) => ids.push(Number(event.lastEventId));
    source.onerror = () => errors++;
    source.onopen = () => opens++;
    await waitFor('the first 3 rows', () => ids.length >= 3, 5000);

    const writer = pythonInsert(path, 1500, { perCommit: 1, delayMs: 2 });
    // Awaited below; this only keeps a failure before then from also being an unhandled rejection.
    writer.catch(() => undefined);
    await waitFor('rows from the writer', () => ids.length >= 300, 10000);
    assert.is(await servers[0].stop('SIGKILL'), 'SIGKILL');
    // Rows committed while no server runs must reach the client after the restart.
    const idsAtKill = ids.length;
    await sleep(300);
    servers.push(await startServer(args));
    await withTimeout(writer, 30000, 'writer');

    const expected = tableIds(path);
    assert.is(expected.length, 1503);
    await waitFor(`all ${expected.length} rows (have ${ids.length})`, () => ids.length >= expected.length, 10000);
    assert.equal(ids, expected, 'every row exactly once, in id order');
    assert.ok(idsAtKill < expected.length, 'the kill happened mid-stream');
    assert.ok(errors >= 1 && opens >= 2, `the client noticed the kill and reconnected (errors ${errors}, opens ${opens})`);
    assert.is(source.readyState, EventSource.OPEN);
  } finally {
    source?.close();
    for (const server of servers) await server.stop('SIGKILL');
    removeDirectory(dir);
    // Whatever this test started and did not stop itself (a writer still running after a failure).
    cleanUpEverything();
  }
});

test('SIGTERM with open streams ends every stream and exits 0 within 2 s', async () => {
  const dir = tempDirectory();
  let server: ServerProcess | undefined;
  const streams: SseStream[] = [];
  try {
    const path = createMessagesDatabase(dir, 'wal');
    sqlite(path, `INSERT INTO messages(message) VALUES ('one'), ('two');`);
    server = await startServer(['--db', path]);
    for (let i = 0; i < 5; i++) streams.push(new SseStream(`${server.url}/events?lastEventId=0`));
    for (const stream of streams) await stream.waitForRows(2, 5000);
    // 'end' comes only with the chunked body's terminator: the stream was ended, not cut off.
    let cleanEnds = 0;
    for (const stream of streams) stream.response!.once('end', () => cleanEnds++);

    const started = Date.now();
    const code = await server.stop('SIGTERM', 5000);
    const elapsed = Date.now() - started;
    assert.is(code, 0, `exit code (output: ${server.output()})`);
    assert.ok(elapsed < 2000, `exited after ${elapsed} ms`);
    await waitFor('every stream ended', () => streams.every((stream) => stream.ended), 2000);
    assert.is(cleanEnds, streams.length, 'every stream ended cleanly');
    for (const stream of streams) assert.equal(stream.ids(), [1, 2]);
  } finally {
    for (const stream of streams) stream.close();
    await server?.stop('SIGKILL');
    removeDirectory(dir);
    // Whatever this test started and did not stop itself (a writer still running after a failure).
    cleanUpEverything();
  }
});

test.run();
