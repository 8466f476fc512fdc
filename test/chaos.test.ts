import { renameSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  CrashWatch,
  HealthProbe,
  healthz,
  mb,
  openFds,
  pythonAsync,
  report,
  RssSampler,
  rssBytes,
  scaled,
  settle,
  sqliteAsync,
  sumTallies,
  tableIdsAsync,
  tally,
  Writers,
  type Delivery,
} from './helpers/chaos.js';
import { EventSourceClient, RawSseSocket, ReconnectingSseClient } from './helpers/chaos-clients.js';
import { removeDirectory } from './helpers/cleanup.js';
import { createMessagesDatabase, sqlite, tempDirectory } from './helpers/database.js';
import { startServer, type ServerProcess } from './helpers/server-process.js';
import { freePort } from './helpers/sse-stream.js';
import { sleep, waitFor } from './helpers/wait.js';

/** A uniform pseudo-random integer in [from, to], from a fixed seed so a failing run can be told apart. */
function random(seed: number): (from: number, to: number) => number {
  let state = seed >>> 0;
  return (from, to) => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const unit = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    return from + Math.floor(unit * (to - from + 1));
  };
}

interface Recorded {
  name: string;
  delivery: Delivery;
}

/** Check every client against the expected epochs, print the report line, and assert nothing lost or duplicated. */
function finish(
  scenario: string,
  clients: Recorded[],
  expected: number[][],
  extra: { repetitions: number; maxRss: number; crashes: number; started: number; notes?: string; settled: boolean },
): void {
  const tallies = clients.map((client) => tally(client.delivery, expected));
  const sum = sumTallies(tallies);
  report({
    scenario,
    repetitions: extra.repetitions,
    rowsWritten: expected.reduce((total, epoch) => total + epoch.length, 0),
    delivered: tallies.map((t) => t.delivered),
    lost: sum.lost,
    duplicated: sum.duplicated,
    maxRssBytes: extra.maxRss,
    crashes: extra.crashes,
    notes: extra.notes,
    seconds: (Date.now() - extra.started) / 1000,
  });
  assert.is(extra.crashes, 0, 'no server crashed');
  assert.is(sum.lost, 0, 'no row lost');
  assert.is(sum.duplicated, 0, 'no row duplicated');
  assert.is(sum.outOfOrder, 0, 'every row in id order');
  assert.is(sum.unexpected, 0, 'no row that is not in the table');
  for (const client of clients) assert.equal(client.delivery.epochs, expected, `${client.name}: every row exactly once, in order`);
  assert.ok(extra.settled, 'every client caught up in time');
}

test('chaos: SIGKILL and restart of the server, again and again, while writers write: every client gets every row exactly once', async () => {
  const started = Date.now();
  const kills = scaled(3, 12);
  const dir = tempDirectory();
  const crashes = new CrashWatch();
  let server: ServerProcess | undefined;
  let writers: Writers | undefined;
  let rss: RssSampler | undefined;
  const esClients: EventSourceClient[] = [];
  const rawClients: ReconnectingSseClient[] = [];
  try {
    const path = createMessagesDatabase(dir, 'wal');
    sqlite(path, `INSERT INTO messages(message) VALUES ('before-1'), ('before-2'), ('before-3');`);
    const port = await freePort();
    const args = ['--db', path, '--port', String(port), '--retry', '100'];
    server = crashes.watch(await startServer(args));
    rss = new RssSampler(() => server?.child.pid);

    for (let i = 0; i < scaled(2, 3); i++) esClients.push(new EventSourceClient(`http://127.0.0.1:${port}/events?lastEventId=0`));
    for (let i = 0; i < scaled(2, 3); i++) rawClients.push(new ReconnectingSseClient(() => port, '/events?lastEventId=0', 100));
    const deliveries = [...esClients, ...rawClients].map((client) => client.delivery);
    await waitFor('the first rows on every client', () => deliveries.every((delivery) => delivery.count >= 3), 10000);

    writers = new Writers(path, join(dir, 'control'), { count: 3, perCommitMax: 5, delayMs: 3 });
    const pick = random(7);
    for (let round = 0; round < kills; round++) {
      // Run a while (rows flow, clients keep up or catch up), then kill without warning.
      await sleep(pick(400, 1500));
      assert.is(await crashes.kill(server, 'SIGKILL'), 'SIGKILL');
      rss.sample();
      // Down for a while: writers go on, clients retry and are refused.
      await sleep(pick(0, 600));
      server = crashes.watch(await startServer(args));
    }
    await sleep(800);
    const summaries = await writers.stop();
    const expected = [await tableIdsAsync(path)];
    const settled = await settle(deliveries, expected, 30000);
    const maxRss = rss.stop();
    const reconnects = esClients.map((client) => client.opens).concat(rawClients.map((client) => client.connects));
    finish(
      'SIGKILL+restart',
      [...esClients.map((c, i) => ({ name: `EventSource ${i}`, delivery: c.delivery })), ...rawClients.map((c, i) => ({ name: `raw ${i}`, delivery: c.delivery }))],
      expected,
      { repetitions: kills, maxRss, crashes: crashes.crashes, started, settled, notes: `connects per client=[${reconnects.join(',')}] writers=${summaries.join(' ')}` },
    );
    for (const client of esClients) assert.ok(client.opens >= kills + 1, `each EventSource reconnected after every kill (opens ${client.opens})`);
  } finally {
    rss?.stop();
    for (const client of esClients) client.stop();
    for (const client of rawClients) client.stop();
    writers?.kill();
    if (server) await crashes.kill(server).catch(() => undefined);
    removeDirectory(dir);
  }
});

test('chaos: checkpoint, VACUUM, WAL->DELETE->WAL, a 3 s exclusive lock, a deleted and recreated file, a restored backup: /healthz stays quick, every row arrives exactly once, resets follow the rule', async () => {
  const started = Date.now();
  const dir = tempDirectory();
  const crashes = new CrashWatch();
  let server: ServerProcess | undefined;
  let writers: Writers | undefined;
  let rss: RssSampler | undefined;
  let probe: HealthProbe | undefined;
  const esClients: EventSourceClient[] = [];
  const rawClients: ReconnectingSseClient[] = [];
  const notes: string[] = [];
  try {
    const path = createMessagesDatabase(dir, 'wal');
    const backup = join(dir, 'backup.db');
    sqlite(path, `INSERT INTO messages(message) VALUES ('before-1'), ('before-2'), ('before-3');`);
    server = crashes.watch(await startServer(['--db', path, '--retry', '100']));
    const port = server.port;
    rss = new RssSampler(() => server?.child.pid);
    probe = new HealthProbe(() => port, 50);
    for (let i = 0; i < 2; i++) esClients.push(new EventSourceClient(`http://127.0.0.1:${port}/events?lastEventId=0`));
    for (let i = 0; i < 2; i++) rawClients.push(new ReconnectingSseClient(() => port, '/events?lastEventId=0', 100));
    const all = [...esClients.map((c, i) => ({ name: `EventSource ${i}`, delivery: c.delivery })), ...rawClients.map((c, i) => ({ name: `raw ${i}`, delivery: c.delivery }))];
    const deliveries = all.map((client) => client.delivery);
    await waitFor('the first rows on every client', () => deliveries.every((delivery) => delivery.count >= 3), 10000);
    writers = new Writers(path, join(dir, 'control'), { count: 2, perCommitMax: 4, delayMs: 4 });
    const repetitions = scaled(1, 3);
    const step = (what: string) => process.env.CHAOS_DEBUG && console.log(`  ${((Date.now() - started) / 1000).toFixed(1)}s ${what} (max /healthz ${probe!.maxMs.toFixed(0)} ms)`);
    const lastIdIs = (id: number) => waitFor(`the server to read up to id ${id}`, async () => (await healthz(port)).lastId === id, 10000);

    for (let round = 0; round < repetitions; round++) {
      // WAL: checkpoint and vacuum under a busy timeout while rows flow. The server holds no read transaction
      // open between reads, so a TRUNCATE checkpoint is never blocked by it (first column 0: not busy).
      await sleep(500);
      step('checkpoint');
      const checkpoint = (await sqliteAsync(path, 'PRAGMA wal_checkpoint(TRUNCATE);')).trim();
      notes.push(`checkpoint(TRUNCATE)=${checkpoint}`);
      assert.ok(checkpoint.startsWith('0|'), `a TRUNCATE checkpoint is not held up by the server (got ${checkpoint})`);
      await sleep(300);
      step('vacuum (WAL)');
      await sqliteAsync(path, 'VACUUM;');
      await sleep(300);

      // WAL -> DELETE. SQLite refuses it with "database is locked" at once (the busy timeout does not apply) while any
      // other connection is open. The writers close theirs; the server closes its own about 1 s after the last commit.
      step('pause for WAL->DELETE');
      await writers.pause();
      const switched = JSON.parse(
        await pythonAsync(
          `
import sqlite3, sys, time, json
con = sqlite3.connect(sys.argv[1], timeout=5, isolation_level=None)
start, tries, mode, error = time.time(), 0, '', ''
while time.time() - start < 10:
    tries += 1
    try:
        mode = con.execute('PRAGMA journal_mode=DELETE').fetchone()[0]
        if mode == 'delete': break
    except sqlite3.Error as e:
        error = str(e)
    time.sleep(0.05)
print(json.dumps({'mode': mode, 'tries': tries, 'seconds': round(time.time() - start, 2), 'error': error}))
`,
          [path],
          20000,
        ),
      ) as { mode: string; tries: number; seconds: number; error: string };
      notes.push(`WAL->DELETE after ${switched.tries} tries/${switched.seconds}s (${switched.error || 'no error'})`);
      assert.is(switched.mode, 'delete', 'the switch out of WAL succeeds once the server has closed its idle connection');
      writers.resume();
      step('exclusive lock (DELETE mode)');
      await sleep(500);

      // DELETE mode: a writer holds an EXCLUSIVE lock for 3 s, so every read meets SQLITE_BUSY. The server must not
      // block on it: /healthz answers throughout (the probe measures), and a client arriving meanwhile is caught up after.
      const exclusive = pythonAsync(
        `
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
con.execute('BEGIN EXCLUSIVE')
con.executemany('INSERT INTO messages(message) VALUES (?)', [('exclusive-%d' % i,) for i in range(20)])
time.sleep(3)
con.execute('COMMIT')
`,
        [path],
        30000,
      );
      // Awaited below; if the test fails first, its rejection must not go unhandled.
      exclusive.catch(() => undefined);
      await sleep(500);
      const during = await healthz(port, 1000);
      notes.push(`during the DELETE-mode exclusive lock: /healthz database=${during.database}`);
      await exclusive;
      await sleep(300);
      step('vacuum (DELETE)');
      await sqliteAsync(path, 'VACUUM;');
      // DELETE -> WAL takes an exclusive lock only for a moment: the busy timeout covers it.
      step('DELETE->WAL');
      const toWal = (await sqliteAsync(path, 'PRAGMA journal_mode=WAL;')).trim();
      assert.is(toWal, 'wal');
      await sleep(300);
      // In WAL mode an exclusive writer does not stop readers.
      step('exclusive lock (WAL)');
      await pythonAsync(
        `
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
con.execute('BEGIN EXCLUSIVE')
con.executemany('INSERT INTO messages(message) VALUES (?)', [('exclusive-wal-%d' % i,) for i in range(20)])
time.sleep(3)
con.execute('COMMIT')
`,
        [path],
        30000,
      );
      await sleep(300);
    }

    // The file is deleted and created again with 5 rows: its highest id is below what clients have, and every row
    // in it was written after it came back, so each client gets `event: reset` with id 0 and then every row of the
    // new file (README, "A cursor ahead of the table").
    step('delete + recreate');
    await writers.pause();
    const epoch0 = await tableIdsAsync(path);
    assert.ok(await settle(deliveries, [epoch0], 20000), 'clients caught up before the file is deleted');
    for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(path + suffix, { force: true });
    await sleep(200);
    const deletedState = (await healthz(port)).database;
    notes.push(`after rm: database=${deletedState}`);
    await sqliteAsync(
      path,
      `PRAGMA journal_mode=WAL; BEGIN; CREATE TABLE messages(id integer primary key autoincrement, message text);
       INSERT INTO messages(message) VALUES ('new-1'), ('new-2'), ('new-3'), ('new-4'), ('new-5'); COMMIT;`,
    );
    await lastIdIs(5);
    writers.resume();
    await waitFor('rows in the recreated file', async () => (await healthz(port)).lastId > 200, 20000);

    // A backup is taken, more rows are written, then the backup is renamed over the file in one step: the highest id
    // drops back, every client gets a reset to the backup's highest id (its rows are old) and the rows written after.
    step('backup');
    await sqliteAsync(path, `.backup '${backup}'`);
    const backupMax = (await tableIdsAsync(backup)).at(-1)!;
    await waitFor('more rows after the backup', async () => (await healthz(port)).lastId > backupMax + 100, 20000);
    step('restore');
    await writers.pause();
    const epoch1 = await tableIdsAsync(path);
    assert.ok(await settle(deliveries, [epoch0, epoch1], 20000), 'clients caught up before the restore');
    // The live file's WAL is emptied first, so the restored file does not meet another file's WAL frames.
    await sqliteAsync(path, 'PRAGMA wal_checkpoint(TRUNCATE);');
    await sqliteAsync(backup, 'PRAGMA journal_mode=WAL;');
    renameSync(backup, path);
    await lastIdIs(backupMax);
    writers.resume();
    await sleep(800);

    step('stop writers');
    const summaries = await writers.stop();
    const epoch2 = (await tableIdsAsync(path)).filter((id) => id > backupMax);
    const expected = [epoch0, epoch1, epoch2];
    const settled = await settle(deliveries, expected, 30000);
    await probe.stop();
    const maxRss = rss.stop();
    for (const client of all) assert.equal(client.delivery.resets, [0, backupMax], `${client.name}: a reset to 0 for the recreated file, to the backup's highest id for the restore`);
    const integrity = (await sqliteAsync(path, 'PRAGMA integrity_check;')).trim();
    notes.push(`max /healthz ${probe.maxMs.toFixed(0)} ms over ${probe.answers} answers, integrity ${integrity}, writers ${summaries.join(' ')}`);
    finish('db operations (checkpoint, vacuum, journal switch, exclusive lock, delete+recreate, restore)', all, expected, {
      repetitions,
      maxRss,
      crashes: crashes.crashes,
      started,
      settled,
      notes: notes.join('; '),
    });
    assert.equal(probe.failures, [], '/healthz never failed');
    assert.ok(probe.maxMs < 1000, `/healthz always answered within 1 s (slowest ${probe.maxMs.toFixed(0)} ms)`);
    assert.is(integrity, 'ok');
  } finally {
    await probe?.stop().catch(() => undefined);
    rss?.stop();
    for (const client of esClients) client.stop();
    for (const client of rawClients) client.stop();
    writers?.kill();
    if (server) await crashes.kill(server).catch(() => undefined);
    removeDirectory(dir);
  }
});

type ChurnKind = 'sse' | 'sse-from-0' | 'sse-abort' | 'head' | 'half-close' | 'ws' | 'healthz';
const CHURN_KINDS: ChurnKind[] = ['sse', 'sse', 'sse', 'sse-from-0', 'sse-abort', 'head', 'half-close', 'ws', 'healthz'];

/**
 * One short connection: send a request, wait (bounded) for the first bytes of the answer, then go away in the
 * way `kind` says. Resolves with how many bytes came back; never rejects.
 */
function shortConnection(port: number, kind: ChurnKind): Promise<number> {
  return new Promise((resolve) => {
    const socket: Socket = connect({ port, host: '127.0.0.1' });
    let bytes = 0;
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(bytes);
    };
    const timer = setTimeout(finish, 3000);
    socket.on('error', finish);
    socket.on('close', finish);
    socket.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (kind === 'half-close') return;
      finish();
    });
    const host = `Host: 127.0.0.1:${port}\r\n`;
    socket.once('connect', () => {
      switch (kind) {
        case 'sse':
        case 'sse-abort':
          socket.write(`GET /events HTTP/1.1\r\n${host}Accept: text/event-stream\r\n\r\n`);
          if (kind === 'sse-abort') setImmediate(finish);
          break;
        case 'sse-from-0':
          socket.write(`GET /events?lastEventId=0 HTTP/1.1\r\n${host}\r\n`);
          break;
        case 'head':
          socket.write(`HEAD /events HTTP/1.1\r\n${host}\r\n`);
          break;
        case 'half-close':
          // The request, then the client's end of the connection: the server sees EOF on an open stream.
          socket.end(`GET /events HTTP/1.1\r\n${host}\r\n`);
          break;
        case 'ws':
          socket.write(
            `GET /ws HTTP/1.1\r\n${host}Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
          );
          break;
        case 'healthz':
          socket.write(`GET /healthz HTTP/1.1\r\n${host}\r\n`);
          break;
      }
    });
  });
}

/** `total` short connections, `concurrency` at a time, kinds in turn. Bounded: each connection ends within 3 s. */
async function churn(port: number, total: number, concurrency: number): Promise<number> {
  let next = 0;
  let answered = 0;
  const worker = async () => {
    while (next < total) {
      const kind = CHURN_KINDS[next++ % CHURN_KINDS.length];
      // An aborted request may or may not see its first bytes: it is not counted either way.
      if ((await shortConnection(port, kind)) > 0 && kind !== 'sse-abort') answered++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return answered;
}

test('churn: thousands of short SSE and WebSocket connections leak no descriptors, no clients and no memory', async () => {
  const started = Date.now();
  const total = scaled(4000, 30000);
  const dir = tempDirectory();
  const crashes = new CrashWatch();
  let server: ServerProcess | undefined;
  let writers: Writers | undefined;
  let rss: RssSampler | undefined;
  let steady: ReconnectingSseClient | undefined;
  try {
    const path = createMessagesDatabase(dir, 'wal');
    sqlite(path, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200) INSERT INTO messages(message) SELECT 'seed-' || i FROM n;`);
    server = crashes.watch(await startServer(['--db', path]));
    const port = server.port;
    const pid = server.child.pid!;
    rss = new RssSampler(() => pid);
    steady = new ReconnectingSseClient(() => port, '/events?lastEventId=0', 100);
    await waitFor('the steady client attached', () => steady!.delivery.count >= 200, 10000);
    writers = new Writers(path, join(dir, 'control'), { count: 1, perCommitMax: 3, delayMs: 10 });

    const quiet = async () => {
      await waitFor('no client but the steady one', async () => (await healthz(port)).clients === 1, 15000);
      await sleep(300);
      return { fds: openFds(pid)!, rss: rssBytes(pid)! };
    };
    // Warm up (JIT, buffers, the first WebSocket), then measure.
    await churn(port, 300, 20);
    const before = await quiet();
    const firstAnswered = await churn(port, total / 2, 50);
    const middle = await quiet();
    const secondAnswered = await churn(port, total / 2, 50);
    const after = await quiet();
    const fdsSettled = await waitFor('descriptors back to the baseline', () => openFds(pid)! <= before.fds + 3, 10000).then(
      () => true,
      () => false,
    );
    const fdsAfter = openFds(pid)!;

    await writers.stop();
    const expected = [await tableIdsAsync(path)];
    const settled = await settle([steady.delivery], expected, 20000);
    const health = await healthz(port);
    steady.stop();
    await waitFor('the steady client gone', async () => (await healthz(port)).clients === 0, 5000);
    const maxRss = rss.stop();
    const growthFirst = middle.rss - before.rss;
    const growthSecond = after.rss - middle.rss;
    finish('connect/disconnect churn', [{ name: 'steady', delivery: steady.delivery }], expected, {
      repetitions: total,
      maxRss,
      crashes: crashes.crashes,
      started,
      settled,
      notes:
        `answered ${firstAnswered + secondAnswered} (all but the aborted); fds ${before.fds} -> ${middle.fds} -> ${fdsAfter}; ` +
        `RSS ${mb(before.rss)} -> ${mb(middle.rss)} -> ${mb(after.rss)} MB; /healthz clients after: 0 (with the steady one: ${health.clients})`,
    });
    assert.ok(fdsSettled, `open descriptors back to the baseline ${before.fds} (now ${fdsAfter})`);
    const answerable = Array.from({ length: total / 2 }, (_, i) => CHURN_KINDS[i % CHURN_KINDS.length]).filter((kind) => kind !== 'sse-abort').length * 2;
    assert.is(firstAnswered + secondAnswered, answerable, 'every short connection that waited was answered');
    // A leak grows with every connection; a server without one levels off after the first half.
    assert.ok(growthSecond < 32 * 1024 * 1024, `RSS grew ${mb(growthSecond)} MB over the second ${total / 2} connections (first half: ${mb(growthFirst)} MB)`);
  } finally {
    rss?.stop();
    steady?.stop();
    writers?.kill();
    if (server) await crashes.kill(server).catch(() => undefined);
    removeDirectory(dir);
  }
});

test('slow clients: one stops reading, one reads a byte a second, slowloris peers send headers a byte a second: others are unaffected, slowloris is cut off after the headers timeout, nothing is lost', async () => {
  const started = Date.now();
  const lorises = scaled(3, 20);
  const dir = tempDirectory();
  const crashes = new CrashWatch();
  let server: ServerProcess | undefined;
  let writers: Writers | undefined;
  let rss: RssSampler | undefined;
  let probe: HealthProbe | undefined;
  let dripTimer: NodeJS.Timeout | undefined;
  const sockets: Socket[] = [];
  const clients: ReconnectingSseClient[] = [];
  let stopped: RawSseSocket | undefined;
  let dripping: RawSseSocket | undefined;
  try {
    const path = createMessagesDatabase(dir, 'wal');
    server = crashes.watch(
      await startServer(['--db', path, '--client-buffer', '64k', '--history-bytes', '2m', '--slow-client-timeout', '4', '--heartbeat', '0.5']),
    );
    const port = server.port;
    const pid = server.child.pid!;
    rss = new RssSampler(() => pid);
    probe = new HealthProbe(() => port, 100);
    const fast = new ReconnectingSseClient(() => port, '/events?lastEventId=0', 100);
    clients.push(fast);
    stopped = new RawSseSocket(port, '/events?lastEventId=0', { paused: true });
    dripping = new RawSseSocket(port, '/events?lastEventId=0', { paused: true });
    await stopped.connected();
    await dripping.connected();
    dripTimer = setInterval(() => dripping!.readOneByte(), 1000);
    await waitFor('three streams attached', async () => (await healthz(port)).clients === 3, 5000);

    // Slowloris: a request line and headers, one byte a second, never finished.
    const lorisClosedAt: number[] = [];
    const lorisAnswers: string[] = [];
    const lorisStarted = Date.now();
    const request = Buffer.from(`GET /events HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\nX-Slow: ${'y'.repeat(100)}\r\n`);
    for (let i = 0; i < lorises; i++) {
      const socket = connect({ port, host: '127.0.0.1' });
      sockets.push(socket);
      let sent = 0;
      let answer = '';
      const drip = setInterval(() => {
        if (socket.destroyed || sent >= request.length) return clearInterval(drip);
        socket.write(request.subarray(sent, ++sent));
      }, 1000);
      socket.on('data', (chunk) => (answer += chunk.toString('latin1')));
      socket.on('error', () => undefined);
      socket.on('close', () => {
        clearInterval(drip);
        lorisClosedAt.push(Date.now() - lorisStarted);
        lorisAnswers.push(answer.split('\r\n')[0] || '(closed without an answer)');
      });
    }

    // Rows of 2 KB flow all along, so the stalled clients fill their buffers and the fast one has work.
    writers = new Writers(path, join(dir, 'control'), { count: 2, perCommitMax: 5, delayMs: 3, rowBytes: 2048 });
    const lorisDone = await waitFor('every slowloris peer cut off', () => lorisClosedAt.length === lorises, 25000).then(
      () => true,
      () => false,
    );
    // The fast client keeps up meanwhile: it is never more than a moment behind what the server has read.
    const lag = (await healthz(port)).lastId - (fast.delivery.epochs[0].at(-1) ?? 0);
    const summaries = await writers.stop();
    const expected = [await tableIdsAsync(path)];
    const fastSettled = await settle([fast.delivery], expected, 20000);
    await probe.stop();
    clearInterval(dripTimer);

    // The stalled clients: parked (then closed as too slow after 4 s of taking nothing). Each now reads what it
    // holds, and reconnects from its last id as EventSource would: it must end with every row exactly once.
    // Only the fast client is still attached when the stalled ones were parked and then closed as too slow
    // (their sockets still hold the server's last bytes and its FIN, unread).
    const clientsBeforeResume = (await healthz(port)).clients;
    const finishSlow = async (socket: RawSseSocket): Promise<Delivery> => {
      socket.resume();
      await waitFor('the stalled stream to catch up or end', () => socket.ended || socket.delivery.count >= expected[0].length, 20000);
      if (socket.delivery.count >= expected[0].length) return socket.delivery;
      const resumed = new ReconnectingSseClient(() => port, '/events', 100, socket.delivery.cursor);
      clients.push(resumed);
      await waitFor('the resumed stream to catch up', () => socket.delivery.count + resumed.delivery.count >= expected[0].length, 20000).catch(() => undefined);
      await sleep(200);
      const joined = socket.delivery;
      for (const id of resumed.delivery.epochs[0]) joined.row(id);
      return joined;
    };
    const stoppedDelivery = await finishSlow(stopped);
    const drippingDelivery = await finishSlow(dripping);
    const maxRss = rss.stop();
    finish(
      'slow clients (stopped, 1 B/s, slowloris)',
      [
        { name: 'fast', delivery: fast.delivery },
        { name: 'stopped reader (after resuming)', delivery: stoppedDelivery },
        { name: 'one byte a second (after resuming)', delivery: drippingDelivery },
      ],
      expected,
      {
        repetitions: lorises,
        maxRss,
        crashes: crashes.crashes,
        started,
        settled: fastSettled,
        notes:
          `slowloris cut off after ${lorisClosedAt.map((ms) => (ms / 1000).toFixed(1)).join(',')} s with "${[...new Set(lorisAnswers)].join('", "')}"; ` +
          `streams still attached before the stalled ones resume: ${clientsBeforeResume}; fast client lag at the end ${lag} ids; ` +
          `max /healthz ${probe.maxMs.toFixed(0)} ms; writers ${summaries.join(' ')}`,
      },
    );
    assert.ok(lorisDone, `every slowloris peer was cut off by the server within 25 s (${lorisClosedAt.length}/${lorises})`);
    assert.equal(probe.failures, [], '/healthz never failed');
    assert.ok(probe.maxMs < 1000, `/healthz always answered within 1 s (slowest ${probe.maxMs.toFixed(0)} ms)`);
  } finally {
    clearInterval(dripTimer);
    await probe?.stop().catch(() => undefined);
    rss?.stop();
    for (const socket of sockets) socket.destroy();
    stopped?.close();
    dripping?.close();
    for (const client of clients) client.stop();
    writers?.kill();
    if (server) await crashes.kill(server).catch(() => undefined);
    removeDirectory(dir);
  }
});

test.run();
