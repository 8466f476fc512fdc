import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { removeDirectory, trackChild } from './cleanup.js';
import { tempDirectory } from './database.js';
import { freePort } from './redis.js';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';
import { waitFor, withTimeout } from './wait.js';

export const MASTER_NAME = 'mymaster';

/**
 * A primary, one replica and `sentinels` Sentinels, each a redis-server of its own on a free loopback port in a
 * temp dir, with quick failure detection. The replica replicates through a TCP proxy, so a test can hold back what
 * it receives (replication is asynchronous: this is the lag a failover loses).
 */
export interface SentinelGroup {
  primaryPort: number;
  replicaPort: number;
  sentinelPorts: number[];
  /** `redis+sentinel://127.0.0.1:S1,127.0.0.1:S2,.../mymaster`. */
  url: string;
  /** A connection to a node's port (closed by `dispose`). */
  client(port: number): Redis;
  /** From now on the replica receives nothing more from the primary (the bytes are dropped, nothing is closed). */
  holdReplication(): void;
  /** SIGKILL the primary, and cut the replica's held link to it so the replica sees it gone. */
  killPrimary(): Promise<void>;
  /** The primary's address as a Sentinel reports it. */
  masterPort(sentinelPort?: number): Promise<number>;
  /** Kill every process, close every connection, remove every dir. Safe more than once. */
  dispose(): Promise<void>;
}

interface Node {
  child: ChildProcess;
  directory: string;
}

async function launch(args: string[], port: number, what: string, directory = tempDirectory()): Promise<Node> {
  let output = '';
  const child = trackChild(spawn('redis-server', args.map((arg) => arg.replace('{dir}', directory)), { stdio: ['ignore', 'pipe', 'pipe'] }));
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  await waitFor(`${what} on port ${port}`, () => {
    if (child.exitCode !== null) throw new Error(`${what} exited ${child.exitCode}: ${output.trim()}`);
    return /Ready to accept connections|Sentinel ID is/.test(output);
  }, 10000, 10);
  return { child, directory };
}

function serverArgs(port: number): string[] {
  return ['--port', String(port), '--bind', '127.0.0.1', '--dir', '{dir}', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'];
}

export async function startSentinelGroup(options: { sentinels?: number; downAfterMs?: number } = {}): Promise<SentinelGroup> {
  const nodes: Node[] = [];
  const clients: Redis[] = [];
  let proxy: TcpProxy | undefined;
  const client = (port: number) => {
    const connection = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1, retryStrategy: () => null, lazyConnect: false });
    connection.on('error', () => {});
    clients.push(connection);
    return connection;
  };
  const dispose = async () => {
    for (const connection of clients.splice(0)) connection.disconnect();
    for (const node of nodes.splice(0)) {
      if (node.child.exitCode === null && node.child.signalCode === null) {
        const exited = new Promise((resolve) => node.child.once('exit', resolve));
        node.child.kill('SIGKILL');
        await withTimeout(exited, 5000, 'a redis-server to exit').catch(() => undefined);
      }
      removeDirectory(node.directory);
    }
    await proxy?.close();
    proxy = undefined;
  };
  try {
    const primaryPort = await freePort();
    nodes.push(await launch(serverArgs(primaryPort), primaryPort, 'the primary'));
    proxy = await startTcpProxy(primaryPort);
    const replicaPort = await freePort();
    nodes.push(await launch([...serverArgs(replicaPort), '--replicaof', '127.0.0.1', String(proxy.port)], replicaPort, 'the replica'));
    const primary = client(primaryPort);
    // Sentinels learn the replica from the primary's INFO: start them once it is listed there.
    await waitFor('the replica linked to the primary', async () => /slave0:.*state=online/.test(await primary.info('replication')), 10000, 50);
    const sentinelPorts: number[] = [];
    const count = options.sentinels ?? 3;
    for (let i = 0; i < count; i++) {
      const port = await freePort();
      const directory = tempDirectory();
      const config = join(directory, 'sentinel.conf');
      writeFileSync(config, [
        `port ${port}`,
        'bind 127.0.0.1',
        `dir ${directory}`,
        `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${primaryPort} ${Math.floor(count / 2) + 1}`,
        `sentinel down-after-milliseconds ${MASTER_NAME} ${options.downAfterMs ?? 500}`,
        // Long: a replica pointed at another address than the primary's (ours goes through the proxy) is "fixed" by
        // Sentinel only after this long, and the failover itself does not wait for it.
        `sentinel failover-timeout ${MASTER_NAME} 60000`,
        '',
      ].join('\n'));
      nodes.push(await launch([config, '--sentinel'], port, `sentinel ${i + 1}`, directory));
      sentinelPorts.push(port);
    }
    // A failover needs a majority that knows each other (hello messages every 2 s) and knows the replica.
    for (const port of sentinelPorts) {
      const sentinel = client(port);
      await waitFor(`sentinel ${port} to know the others and the replica`, async () => {
        const others = (await sentinel.call('SENTINEL', 'SENTINELS', MASTER_NAME)) as unknown[];
        const replicas = (await sentinel.call('SENTINEL', 'REPLICAS', MASTER_NAME)) as unknown[];
        return others.length === count - 1 && replicas.length === 1;
      }, 20000, 100);
    }
    const group: SentinelGroup = {
      primaryPort,
      replicaPort,
      sentinelPorts,
      url: `redis+sentinel://${sentinelPorts.map((port) => `127.0.0.1:${port}`).join(',')}/${MASTER_NAME}`,
      client,
      holdReplication: () => proxy!.freezeOpenConnections(),
      killPrimary: async () => {
        const { child } = nodes[0];
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await withTimeout(exited, 5000, 'the primary to die');
        await proxy!.close();
      },
      masterPort: async (port = sentinelPorts[0]) => {
        const [, masterPort] = (await client(port).call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', MASTER_NAME)) as string[];
        return Number(masterPort);
      },
      dispose,
    };
    return group;
  } catch (error) {
    await dispose();
    throw error;
  }
}
