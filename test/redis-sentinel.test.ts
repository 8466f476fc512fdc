import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cleanUpEverything, removeDirectory } from './helpers/cleanup.js';
import { createMessagesDatabase, pythonInsert, tempDirectory } from './helpers/database.js';
import { health } from './helpers/edge-cluster.js';
import { startSentinelGroup, type SentinelGroup } from './helpers/redis-sentinel.js';
import { freePort } from './helpers/redis.js';
import { startServer, type ServerProcess } from './helpers/server-process.js';
import { range, ResumingSseReader } from './helpers/sse-stream.js';
import { waitFor, withTimeout } from './helpers/wait.js';

/**
 * Issue 12, Sentinel: an origin `--redis redis+sentinel://...` and an edge `--edge redis+sentinel://...` over a
 * primary, a replica and three Sentinels, a writer in its own process. The replica is held back (asynchronous
 * replication lags), the primary is SIGKILLed mid-stream, a Sentinel promotes the replica, and the origin finds the
 * new primary, sees the stream's top below what the old one acknowledged, and publishes the lost tail again with the
 * same ids: the edge's clients see every row once, in order, with no reset.
 */

const KEY = 'sqlite-sse:messages';
const ROWS = 1200;

async function streamTop(group: SentinelGroup, port: number): Promise<number> {
  const [last] = await group.client(port).xrevrange(KEY, '+', '-', 'COUNT', 1);
  return last ? Number(last[0].split('-')[0]) : 0;
}

test.after(() => cleanUpEverything());

test('the primary SIGKILLed mid-stream with a tail its replica lacks: after the failover every edge client has every row once, in order, and the origin re-published the tail', async () => {
  const group = await startSentinelGroup({ sentinels: 3, downAfterMs: 500 });
  const directory = tempDirectory();
  const servers: ServerProcess[] = [];
  const readers: ResumingSseReader[] = [];
  try {
    const db = createMessagesDatabase(directory);
    const origin = await startServer(['--db', db, '--redis', group.url, '--heartbeat', '0.2']);
    servers.push(origin);
    const edge = await startServer(['--edge', group.url, '--table', 'messages', '--heartbeat', '0.2']);
    servers.push(edge);
    assert.match(origin.output(), /listening on /);
    readers.push(new ResumingSseReader(edge.url, 0), new ResumingSseReader(edge.url, 0), new ResumingSseReader(origin.url, 0));
    const writer = pythonInsert(db, ROWS, { perCommit: 1, delayMs: 4, prefix: 'failover' });

    await readers[0].waitForRows(200, 30000);
    const replicaTop = await streamTop(group, group.replicaPort);
    group.holdReplication();
    // The primary acknowledges rows the replica will never get.
    await waitFor('the primary 50 rows ahead of the held replica', async () => (await streamTop(group, group.primaryPort)) >= replicaTop + 50, 15000, 10);
    const topAtKill = await streamTop(group, group.primaryPort);
    await group.killPrimary();
    const killedAt = Date.now();

    await waitFor('a Sentinel to promote the replica', async () => (await group.masterPort()) === group.replicaPort, 20000, 50);
    const promotedAfterMs = Date.now() - killedAt;
    await withTimeout(writer, 60000, 'the writer');
    // A client that joins after the failover is caught up from the new primary (XRANGE).
    readers.push(new ResumingSseReader(edge.url, 0));
    for (const reader of readers) await reader.waitForRows(ROWS, 40000);

    readers.forEach((reader, i) => {
      assert.equal(reader.ids(), range(1, ROWS), `reader ${i}: every row once, in order`);
      assert.equal(reader.events().filter((event) => event.event !== 'message'), [], `reader ${i}: no reset`);
    });
    // The origin found the stream's top below what it had been told and published from there, with the same ids.
    const republished = [...origin.output().matchAll(/redis: published (\d+) events missing from stream sqlite-sse:messages \(ids (\d+) to (\d+)\)/g)];
    assert.ok(republished.some((match) => Number(match[2]) <= topAtKill && Number(match[2]) > replicaTop - 50),
      `re-published from at most id ${topAtKill} (the replica held ${replicaTop}):\n${origin.output()}`);
    const entries = await group.client(group.replicaPort).xrange(KEY, '-', '+');
    assert.equal(entries.map(([id]) => id), range(1, ROWS).map((id) => `${id}-0`), 'the new primary holds every row once');
    assert.is((await health(edge.url)).redis, 'ok');
    assert.is((await health(origin.url)).redis, 'ok');
    assert.not.match(origin.output() + edge.output(), /retry is disabled/);
    console.log(`  (failover: promoted ${promotedAfterMs} ms after the kill; the replica lacked ids ${replicaTop + 1}..${topAtKill} or more)`);
  } finally {
    for (const reader of readers) reader.close();
    for (const server of servers) await server.stop('SIGKILL').catch(() => undefined);
    await group.dispose();
    removeDirectory(directory);
  }
});

test('no Sentinel answers at start: the origin listens and serves anyway, says redis down once, password hidden', async () => {
  const directory = tempDirectory();
  let origin: ServerProcess | undefined;
  try {
    const db = createMessagesDatabase(directory);
    const port = await freePort();
    origin = await startServer(['--db', db, '--redis', `redis+sentinel://:sentinel-test-secret@127.0.0.1:${port}/mymaster`]);
    const reader = new ResumingSseReader(origin.url, 0);
    try {
      await pythonInsert(db, 3, { prefix: 'alone' });
      await reader.waitForRows(3, 15000);
    } finally {
      reader.close();
    }
    await waitFor('the origin to say redis is down', async () => (await health(origin!.url)).redis === 'down', 10000, 50);
    await waitFor('the warning', () => /is unreachable/.test(origin!.output()), 10000, 50);
    const output = origin.output();
    assert.match(output, new RegExp(`redis redis\\+sentinel://:\\*\\*\\*@127\\.0\\.0\\.1:${port}/mymaster is unreachable or refusing writes \\(All sentinels are unreachable\\.`));
    assert.is(output.match(/is unreachable/g)!.length, 1, output);
    assert.not.ok(output.includes('sentinel-test-secret'), output);
  } finally {
    await origin?.stop('SIGKILL').catch(() => undefined);
    removeDirectory(directory);
  }
});

test.run();
