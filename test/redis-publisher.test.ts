import * as assert from 'uvu/assert';
import { createMessagesDatabase, pythonInsert, sqlite, tempDirectory } from './helpers/database.js';
import type { RedisProcess } from './helpers/redis.js';
import { range, redisSuite, startOrigin } from './helpers/redis-fixture.js';
import { waitFor } from './helpers/wait.js';

const KEY = 'sqlite-sse:messages';

type Entry = [string, string[]];

const test = redisSuite('redis publisher');

/** The stream as a user of Redis sees it. */
async function entries(redis: RedisProcess): Promise<Entry[]> {
  return (await redis.client().xrange(KEY, '-', '+')) as Entry[];
}

/** `redis` of /healthz, which the publisher adds to the source's fields. */
const redisHealth = (origin: { hub: { stats(): object } }): unknown => (origin.hub.stats() as Record<string, unknown>).redis;

const idsOf = (list: Entry[]): number[] => list.map(([id]) => Number(id.split('-')[0]));

/** A database with `count` rows `pre-0 ...` written by the sqlite3 shell. */
function databaseWithRows(count: number): string {
  const db = createMessagesDatabase(tempDirectory());
  if (count > 0) sqlite(db, `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ${count - 1}) INSERT INTO messages(message) SELECT 'pre-' || i FROM n;`);
  return db;
}

async function waitForIds(redis: RedisProcess, expected: number[], what: string): Promise<Entry[]> {
  let last: Entry[] = [];
  try {
    await waitFor(what, async () => {
      last = await entries(redis).catch(() => []);
      return idsOf(last).join() === expected.join();
    }, 15000);
  } catch (error) {
    throw new Error(`${(error as Error).message}; the stream holds ids ${JSON.stringify(idsOf(last).slice(0, 20))}... (${last.length})`);
  }
  return last;
}

test('started over a database with rows, it publishes them with their own ids and JSON, then every new commit', async (context) => {
  const db = databaseWithRows(30);
  const origin = await startOrigin(db, context.redis.url);
  context.close.push(() => origin.hub.close());
  await waitForIds(context.redis, range(1, 30), 'the 30 rows already in the database');
  await pythonInsert(db, 20, { perCommit: 3 });
  const stream = await waitForIds(context.redis, range(1, 50), 'the 20 new rows');
  assert.equal(stream[0], ['1-0', ['k', 'row', 'd', '{"id":1,"message":"pre-0"}']]);
  assert.equal(stream[49], ['50-0', ['k', 'row', 'd', '{"id":50,"message":"row-19"}']]);
  assert.is(redisHealth(origin), 'ok');
});

test('an empty stream gets only the newest maxLen rows, and records that its history starts above them', async (context) => {
  const db = databaseWithRows(100);
  const origin = await startOrigin(db, context.redis.url, { maxLen: 10 });
  context.close.push(() => origin.hub.close());
  await waitForIds(context.redis, range(91, 100), 'the newest 10 rows');
  const info = (await context.redis.client().xinfo('STREAM', KEY)) as unknown[];
  assert.is(info[info.indexOf('max-deleted-entry-id') + 1], '90-0', 'edges learn that ids up to 90 are not in the stream');
});

test('kill -9 with AOF: every entry Redis acknowledged is still there after the restart', async (context) => {
  const db = databaseWithRows(0);
  const origin = await startOrigin(db, context.redis.url);
  await pythonInsert(db, 300, { perCommit: 7, delayMs: 1 });
  await waitFor('300 rows acknowledged', () => origin.publisher.acknowledgedId === 300);
  // The origin is gone before the crash, so whatever the stream holds afterwards, only Redis kept.
  await origin.hub.close();
  await context.redis.kill();
  await context.redis.restart();
  assert.equal(idsOf(await entries(context.redis)), range(1, 300));
});

test('kill -9 while rows flow: after the restart the stream holds every row once, in order', async (context) => {
  const db = databaseWithRows(0);
  const origin = await startOrigin(db, context.redis.url);
  context.close.push(() => origin.hub.close());
  const writer = pythonInsert(db, 400, { perCommit: 2, delayMs: 2 });
  await waitFor('some rows in the stream', () => origin.publisher.acknowledgedId >= 50);
  await context.redis.kill();
  await waitFor('health to say redis is down', () => redisHealth(origin) === 'down');
  await writer;
  await context.redis.restart();
  await waitForIds(context.redis, range(1, 400), 'every row, after the restart');
  await waitFor('health to say redis is ok', () => redisHealth(origin) === 'ok');
});

test('Redis restarted empty: the publisher notices on reconnect and publishes the rows again, same ids, same bytes', async (context) => {
  const db = databaseWithRows(40);
  const origin = await startOrigin(db, context.redis.url);
  context.close.push(() => origin.hub.close());
  const before = await waitForIds(context.redis, range(1, 40), 'the first 40 rows');
  await context.redis.restart({ empty: true });
  await pythonInsert(db, 10);
  const after = await waitForIds(context.redis, range(1, 50), 'all 50 rows in the new stream');
  assert.equal(after.slice(0, 40), before);
});

test('Redis stopped: health says down, the log says so once; back: the rows committed meanwhile are published', async (context) => {
  const db = databaseWithRows(20);
  const origin = await startOrigin(db, context.redis.url);
  context.close.push(() => origin.hub.close());
  await waitForIds(context.redis, range(1, 20), 'the first 20 rows');
  await context.redis.stop();
  await waitFor('health to say redis is down', () => redisHealth(origin) === 'down');
  await pythonInsert(db, 30, { perCommit: 5, delayMs: 20 });
  await waitFor('the origin to read the 30 rows', () => origin.hub.lastId === 50);
  assert.is(redisHealth(origin), 'down');
  await context.redis.restart();
  await waitForIds(context.redis, range(1, 50), 'the rows committed while Redis was down');
  await waitFor('health to say redis is ok', () => redisHealth(origin) === 'ok');
  const warnings = origin.log.lines.filter((line) => line.startsWith('warning: redis'));
  assert.is(warnings.length, 1, origin.log.lines.join('\n'));
  assert.ok(origin.log.lines.some((line) => /is back/.test(line)), origin.log.lines.join('\n'));
});

test('a tail lost without a reconnect (a failover to a stale replica) is noticed at the stream top and published again', async (context) => {
  const db = databaseWithRows(30);
  const origin = await startOrigin(db, context.redis.url);
  context.close.push(() => origin.hub.close());
  const before = await waitForIds(context.redis, range(1, 30), 'the 30 rows');
  // What a replica that missed the last 20 entries holds: the same stream, cut after id 10.
  const client = context.redis.client();
  await client.del(KEY);
  for (const [id, fields] of before.slice(0, 10)) await client.xadd(KEY, id, ...fields);
  const after = await waitForIds(context.redis, range(1, 30), 'the lost tail, published again');
  assert.equal(after, before);
});

test.run();
