import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { resolveOptions } from '../src/options.js';
import { createRedis, parseRedisUrl, redactUrl, RedisUrlError } from '../src/redis/redis-connection.js';

test('redis:// and rediss:// URLs go to ioredis as they are', () => {
  for (const url of ['redis://127.0.0.1:6379', 'redis://:p%40ss@cache.internal:6380/2', 'rediss://user:pw@redis.example.com', 'redis://localhost/']) {
    assert.equal(parseRedisUrl(url), { kind: 'server', url });
  }
});

test('a Sentinel URL: the Sentinels (26379 unless given), the master group, the database, both passwords', () => {
  assert.equal(parseRedisUrl('redis+sentinel://10.0.0.1:26380,sentinel-b,[::1]:5000/mymaster'), {
    kind: 'sentinel',
    sentinels: [
      { host: '10.0.0.1', port: 26380 },
      { host: 'sentinel-b', port: 26379 },
      { host: '::1', port: 5000 },
    ],
    name: 'mymaster',
    db: 0,
    username: undefined,
    password: undefined,
    sentinelUsername: undefined,
    sentinelPassword: undefined,
  });
  assert.equal(parseRedisUrl('redis+sentinel://app:s%3Acret@h:1/my%20master/3/?sentinelPassword=x%26y&sentinelUsername=watch'), {
    kind: 'sentinel',
    sentinels: [{ host: 'h', port: 1 }],
    name: 'my master',
    db: 3,
    username: 'app',
    password: 's:cret',
    sentinelUsername: 'watch',
    sentinelPassword: 'x&y',
  });
  const onlyPassword = parseRedisUrl('redis+sentinel://:pw@h/m');
  assert.is(onlyPassword.kind === 'sentinel' && onlyPassword.password, 'pw');
  assert.is(onlyPassword.kind === 'sentinel' && onlyPassword.username, undefined);
});

test('malformed URLs are refused with the reason', () => {
  const cases: [string, RegExp][] = [
    ['http://127.0.0.1:6379', /unknown scheme http:\/\//],
    ['127.0.0.1:6379', /no scheme/],
    ['redis://h:6379/abc', /the path \/abc is not a database number/],
    ['redis://h:6379?x=1', /no query/],
    ['redis+sentinel://h1:26379', /master's name is missing/],
    ['redis+sentinel://h1:26379/', /master's name is missing/],
    ['redis+sentinel:///mymaster', /no Sentinel address/],
    ['redis+sentinel://h1,,h2/m', /"" is not a HOST or HOST:PORT/],
    ['redis+sentinel://h1:0/m', /the port of "h1:0" is not from 1 to 65535/],
    ['redis+sentinel://h1:70000/m', /the port of "h1:70000"/],
    ['redis+sentinel://h1:x/m', /"h1:x" is not a HOST or HOST:PORT/],
    ['redis+sentinel://h1/m/zero', /the database "zero" is not a number/],
    ['redis+sentinel://h1/m/0/extra', /is not \/MASTER or \/MASTER\/DB/],
    ['redis+sentinel://h1/m?password=x', /unknown parameter password/],
    ['redis+sentinel://:%zz@h1/m', /password is not valid percent-encoding/],
    ['rediss+sentinel://h1/m', /not supported yet/],
  ];
  for (const [url, reason] of cases) {
    assert.throws(() => parseRedisUrl(url), (error: Error) => error instanceof RedisUrlError && reason.test(error.message), url);
  }
});

test('passwords never reach a log line, whatever the URL', () => {
  assert.is(redactUrl('redis://:secret@127.0.0.1:6379'), 'redis://:***@127.0.0.1:6379');
  assert.is(redactUrl('redis://user:secret@127.0.0.1:6379/2'), 'redis://user:***@127.0.0.1:6379/2');
  assert.is(redactUrl('redis://127.0.0.1:6379'), 'redis://127.0.0.1:6379');
  assert.is(redactUrl('redis+sentinel://app:secret@h1:26379,h2:26379/mymaster?sentinelPassword=other'), 'redis+sentinel://app:***@h1:26379,h2:26379/mymaster?sentinelPassword=***');
  assert.is(redactUrl('redis+sentinel://h1/mymaster'), 'redis+sentinel://h1/mymaster');
  assert.is(redactUrl('redis://:secret@[not a url'), 'redis://:***@[not a url');
});

test('--redis and --edge take a Sentinel URL, and refuse a malformed one in one line with the password hidden', () => {
  assert.is(resolveOptions({ redis: 'redis+sentinel://127.0.0.1:26379/mymaster' }).redis, 'redis+sentinel://127.0.0.1:26379/mymaster');
  assert.is(resolveOptions({ edge: 'redis+sentinel://a,b/mymaster/1' }).edge, 'redis+sentinel://a,b/mymaster/1');
  assert.throws(
    () => resolveOptions({ redis: 'redis+sentinel://:hunter2@127.0.0.1:26379' }),
    (error: Error) =>
      error.message === `--redis expects a Redis URL like redis://127.0.0.1:6379 or redis+sentinel://127.0.0.1:26379/mymaster, got "redis+sentinel://:***@127.0.0.1:26379": the master's name is missing after the Sentinel addresses (…:26379/MASTER)`,
  );
  assert.throws(() => resolveOptions({ edge: 'redis+sentinel://h:1/m/x' }), /^--edge expects a Redis URL .*: the database "x" is not a number$/);
});

test('a connection through Sentinels that do not answer: connect() fails at once, then retries on the caller\'s schedule until closed', async () => {
  const redis = createRedis('redis+sentinel://127.0.0.1:1/mymaster', { lazyConnect: true, retryStrategy: () => 20, enableOfflineQueue: false, connectTimeout: 500 });
  const errors: string[] = [];
  redis.on('error', (error: Error) => errors.push(error.message));
  try {
    const first = await redis.connect().then(() => 'connected', (error: Error) => error.message);
    assert.match(first, /^All sentinels are unreachable\. Last error: /);
    await new Promise((resolve) => setTimeout(resolve, 200));
  } finally {
    redis.disconnect();
  }
  const attempts = errors.length;
  assert.ok(attempts >= 3, `retried: ${errors.join(' | ')}`);
  assert.not.ok(errors.some((message) => /retry is disabled/.test(message)), 'the log does not say retries are off');
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.is(errors.length, attempts, 'no attempt after disconnect()');
});

test.run();
