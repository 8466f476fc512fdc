import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { removeDirectory, trackChild } from './cleanup.js';
import { tempDirectory } from './database.js';
import { sleep, waitFor, withTimeout } from './wait.js';

/** A real redis-server on a free loopback port, with its own temp dir; killed at exit even when a test fails. */
export interface RedisProcess {
  port: number;
  url: string;
  directory: string;
  /** A plain connection for the test's own checks (closed by `stop`/`kill`/`dispose`, reopened on `restart`). */
  client(): Redis;
  /** SHUTDOWN-like stop: SIGTERM and wait for the exit (with AOF, the file is flushed). */
  stop(): Promise<void>;
  /** SIGKILL, as a crash: no chance to flush anything. */
  kill(): Promise<void>;
  /**
   * Start again on the same port and dir (an AOF brings the data back; without one, Redis starts empty).
   * `empty`: the dir is wiped first, as when a server comes back on a new disk.
   */
  restart(options?: { empty?: boolean }): Promise<void>;
  /** Stop for good and remove the dir. */
  dispose(): Promise<void>;
}

/** A free TCP port on 127.0.0.1 (the OS picks it; a tiny race with other processes is accepted). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Start `redis-server` with the settings docs/scaling.md recommends (AOF everysec, noeviction), no RDB snapshots.
 * `password`: `requirepass`, and `url` carries it (`redis://:PASSWORD@127.0.0.1:PORT`).
 */
export async function startRedis(options: { appendonly?: boolean; password?: string } = {}): Promise<RedisProcess> {
  const directory = tempDirectory();
  const port = await freePort();
  const url = `redis://${options.password === undefined ? '' : `:${encodeURIComponent(options.password)}@`}127.0.0.1:${port}`;
  const args = [
    ...(options.password === undefined ? [] : ['--requirepass', options.password]),
    '--port', String(port), '--bind', '127.0.0.1', '--dir', directory, '--save', '',
    '--appendonly', options.appendonly ? 'yes' : 'no', '--appendfsync', 'everysec',
    '--maxmemory-policy', 'noeviction', '--protected-mode', 'no',
  ];
  let child: ChildProcess | undefined;
  let connection: Redis | undefined;

  const launch = async (): Promise<void> => {
    let output = '';
    const started = trackChild(spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] }));
    started.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    started.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child = started;
    await waitFor(`redis-server on port ${port} to accept connections`, async () => {
      if (started.exitCode !== null) throw new Error(`redis-server exited ${started.exitCode}: ${output.trim()}`);
      return /Ready to accept connections/.test(output);
    }, 10000, 10);
  };

  const exit = async (signal: NodeJS.Signals): Promise<void> => {
    connection?.disconnect();
    connection = undefined;
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill(signal);
    await withTimeout(exited, 10000, `redis-server exit after ${signal}`);
  };

  await launch();
  return {
    port,
    url,
    directory,
    client: () => (connection ??= new Redis(url, { maxRetriesPerRequest: 1 })),
    stop: () => exit('SIGTERM'),
    kill: () => exit('SIGKILL'),
    restart: async ({ empty = false } = {}) => {
      await exit('SIGTERM');
      if (empty) for (const name of readdirSync(directory)) rmSync(join(directory, name), { recursive: true, force: true });
      // The port was just released; a listener in TIME_WAIT does not block a new bind on Linux, but be patient.
      await sleep(20);
      await launch();
    },
    dispose: async () => {
      await exit('SIGKILL');
      removeDirectory(directory);
    },
  };
}
