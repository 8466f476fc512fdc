import { suite } from 'uvu';
import { Hub, type HubOptions } from '../../src/hub/hub.js';
import type { Logger } from '../../src/logger.js';
import { PublishedSource } from '../../src/redis/published-source.js';
import { RedisStreamSource, type RedisStreamSourceOptions } from '../../src/redis/redis-stream-source.js';
import { TableSource } from '../../src/source/table-source.js';
import { cleanUpEverything } from './cleanup.js';
import { startRedis, type RedisProcess } from './redis.js';

export const HUB_OPTIONS: HubOptions = {
  historyRows: 100,
  historyBytes: 1024 * 1024,
  recentRows: 10,
  heartbeatMs: 60000,
  clientBufferBytes: 1024 * 1024,
  slowClientTimeoutMs: 30000,
  pageRows: 50,
  maxCatchUpRows: 0,
};

/** A logger that keeps its lines, so a test can assert what an operator would read. */
export function memoryLog(): Pick<Logger, 'info' | 'warn'> & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    info: (message) => void lines.push(`info: ${message}`),
    warn: (message) => void lines.push(`warning: ${message}`),
  };
}

/** An origin as the server builds it with --redis: a hub over the table source, its events also published to Redis. */
export async function startOrigin(db: string, redisUrl: string, options: { key?: string; maxLen?: number; checkMs?: number; event?: string; hub?: Partial<HubOptions> } = {}) {
  const log = memoryLog();
  const source = new PublishedSource(new TableSource({ path: db, table: 'messages', event: options.event, pageRows: 100, watcher: 'native' }), {
    url: redisUrl,
    key: options.key ?? 'sqlite-sse:messages',
    maxLen: options.maxLen ?? 1000000,
    checkMs: options.checkMs ?? 200,
    log,
  });
  const hub = new Hub(source, { ...HUB_OPTIONS, ...options.hub });
  await hub.start();
  return { hub, source, publisher: source.publisher, log };
}

/** An edge: a hub over the Redis stream, no database. */
export async function startEdge(redisUrl: string, options: Partial<RedisStreamSourceOptions> & { hub?: Partial<HubOptions> } = {}) {
  const log = memoryLog();
  const source = new RedisStreamSource({ url: redisUrl, key: 'sqlite-sse:messages', blockMs: 500, watchdogMs: 500, lostGraceMs: 2000, log, ...options });
  const hub = new Hub(source, { ...HUB_OPTIONS, ...options.hub });
  await hub.start();
  return { hub, source, log };
}

/** `[1, 2, ..., n]`. */
export const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** What a Redis test has: its own redis-server (AOF on), and what each test must close, closed after it even when it fails. */
export interface RedisContext {
  redis: RedisProcess;
  close: (() => Promise<void>)[];
}

/** A uvu suite with one redis-server for all its tests, emptied before each, stopped at the end. */
export function redisSuite(name: string) {
  const test = suite<RedisContext>(name, { redis: undefined as never, close: [] });
  test.before(async (context) => {
    context.redis = await startRedis({ appendonly: true });
  });
  test.before.each(async (context) => {
    context.close = [];
    await context.redis.client().flushall();
  });
  test.after.each(async (context) => {
    for (const close of context.close.reverse()) await close();
  });
  test.after(async (context) => {
    await context.redis.dispose();
    cleanUpEverything();
  });
  return test;
}
