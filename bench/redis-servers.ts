/**
 * redis-server processes for bench/redis-settings.ts: a server with given settings, a primary with a replica and
 * Sentinels, each on a free loopback port in a temp dir; every process and dir is removed at exit, even on failure.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { forgetDirectory, pinProcess, track, trackDirectory } from './processes.js';
import { sleep, withTimeout } from './wait.js';

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The settings docs/scaling.md recommends: AOF everysec, noeviction (and no RDB snapshots, as every node here). */
export const RECOMMENDED_SETTINGS: Record<string, string> = { appendonly: 'yes', appendfsync: 'everysec', 'maxmemory-policy': 'noeviction' };

export interface RedisNode {
  port: number;
  url: string;
  directory: string;
  child: ChildProcess;
  /** A connection for the bench's own questions (closed by `kill`). */
  client: Redis;
  kill(): Promise<void>;
}

async function waitUntil(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

/**
 * `redis-server` with `settings` (flag name without `--` to value), or with a config file and `--sentinel`; pinned to
 * `cpus` when given. Registered with processes.ts, so a bench that calls killChildrenOnExit stops it even on failure.
 */
export async function startNode(settings: Record<string, string>, options: { sentinelConfig?: string[]; cpus?: string } = {}): Promise<RedisNode> {
  const directory = trackDirectory(mkdtempSync(join(tmpdir(), 'sqlite-sse-bench-redis-')));
  const port = await freePort();
  let args: string[];
  if (options.sentinelConfig) {
    const config = join(directory, 'sentinel.conf');
    writeFileSync(config, [`port ${port}`, 'bind 127.0.0.1', `dir ${directory}`, ...options.sentinelConfig, ''].join('\n'));
    args = [config, '--sentinel'];
  } else {
    const all = { port: String(port), bind: '127.0.0.1', dir: directory, save: '', 'protected-mode': 'no', ...settings };
    args = Object.entries(all).flatMap(([name, value]) => [`--${name}`, ...value.split(' ')]);
  }
  const child = track(spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] }));
  if (options.cpus && child.pid) pinProcess(child.pid, options.cpus);
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  await waitUntil(`redis-server on port ${port}`, () => {
    if (child.exitCode !== null) throw new Error(`redis-server exited ${child.exitCode}: ${output.trim()}`);
    return /Ready to accept connections|Sentinel ID is/.test(output);
  }, 10000);
  // Reconnects: Sentinel kills the clients of a replica it promotes.
  const client = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1, retryStrategy: () => 50 });
  client.on('error', () => {});
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    directory,
    child,
    client,
    kill: async () => {
      client.disconnect();
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await withTimeout(exited, 5000, 'redis-server to exit');
      }
      rmSync(directory, { recursive: true, force: true });
      forgetDirectory(directory);
    },
  };
}

/** A TCP proxy whose open connections can be frozen: bytes dropped, nothing closed (a replica that lags). */
export async function startFreezableProxy(targetPort: number): Promise<{ port: number; freeze(): void; close(): Promise<void> }> {
  const open = new Set<Socket>();
  let frozen = false;
  const server = createServer((downstream) => {
    const upstream = connect(targetPort, '127.0.0.1');
    for (const [from, to] of [[downstream, upstream], [upstream, downstream]] as const) {
      open.add(from);
      from.on('data', (chunk) => void (frozen || to.write(chunk)));
      from.on('close', () => (open.delete(from), to.destroy()));
      from.on('error', () => {});
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    freeze: () => void (frozen = true),
    close: async () => {
      for (const socket of open) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

export const MASTER = 'mymaster';

export interface SentinelGroup {
  primary: RedisNode;
  replica: RedisNode;
  sentinels: RedisNode[];
  /** The replica's link to the primary (through the proxy). */
  proxy: Awaited<ReturnType<typeof startFreezableProxy>>;
  url: string;
  masterPort(): Promise<number>;
  dispose(): Promise<void>;
}

/** A primary, a replica (through a freezable proxy) and `count` Sentinels that know each other and the replica. */
export async function startSentinelGroup(count: number, downAfterMs: number, settings: Record<string, string>): Promise<SentinelGroup> {
  const primary = await startNode(settings);
  const proxy = await startFreezableProxy(primary.port);
  const replica = await startNode({ ...settings, replicaof: `127.0.0.1 ${proxy.port}` });
  await waitUntil('the replica to link', async () => /slave0:.*state=online/.test(await primary.client.info('replication')), 10000);
  const sentinels: RedisNode[] = [];
  for (let i = 0; i < count; i++) {
    sentinels.push(await startNode({}, {
      sentinelConfig: [
        `sentinel monitor ${MASTER} 127.0.0.1 ${primary.port} ${Math.floor(count / 2) + 1}`,
        `sentinel down-after-milliseconds ${MASTER} ${downAfterMs}`,
        // Long: Sentinel would otherwise re-point the replica from the proxy to the primary after this long.
        `sentinel failover-timeout ${MASTER} 60000`,
      ],
    }));
  }
  for (const sentinel of sentinels) {
    await waitUntil('the Sentinels to know each other and the replica', async () => {
      const others = (await sentinel.client.call('SENTINEL', 'SENTINELS', MASTER)) as unknown[];
      const replicas = (await sentinel.client.call('SENTINEL', 'REPLICAS', MASTER)) as unknown[];
      return others.length === count - 1 && replicas.length === 1;
    }, 30000);
  }
  return {
    primary,
    replica,
    sentinels,
    proxy,
    url: `redis+sentinel://${sentinels.map((sentinel) => `127.0.0.1:${sentinel.port}`).join(',')}/${MASTER}`,
    masterPort: async () => Number(((await sentinels[0].client.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', MASTER)) as string[])[1]),
    dispose: async () => {
      for (const node of [...sentinels, replica, primary]) await node.kill();
      await proxy.close();
    },
  };
}
