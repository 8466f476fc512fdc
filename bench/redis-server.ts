/**
 * A redis-server for one bench run: a free loopback port, a directory of the run's own, the settings docs/scaling.md
 * recommends (AOF everysec, noeviction, no RDB snapshots), registered so an interrupted bench still kills it.
 */
import { spawn } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { stopChild, track } from './processes.js';
import { sleep } from './wait.js';

export interface BenchRedis {
  pid: number;
  url: string;
  stop(): Promise<unknown>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Starts redis-server in `directory`, pinned to `cpus` when given; resolves once it accepts connections. */
export async function startBenchRedis(directory: string, cpus?: string): Promise<BenchRedis> {
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', directory, '--save', '', '--appendonly', 'yes', '--appendfsync', 'everysec', '--maxmemory-policy', 'noeviction'];
  const [command, commandArgs] = cpus ? ['taskset', ['-c', cpus, 'redis-server', ...args]] : ['redis-server', args];
  const child = track(spawn(command, commandArgs, { stdio: ['ignore', 'pipe', 'pipe'] }));
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (text: string) => (output += text));
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (output += text));
  child.once('error', (error) => (output += `\n${error.message}`));
  const deadline = Date.now() + 10000;
  while (!/Ready to accept connections/.test(output)) {
    if (child.exitCode !== null || /ENOENT/.test(output)) {
      throw new Error(`redis-server did not start (install Debian's redis-server): ${output.trim().split('\n').slice(-3).join(' | ')}`);
    }
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} not ready after 10 s: ${output.trim().slice(-300)}`);
    await sleep(10);
  }
  return { pid: child.pid!, url: `redis://127.0.0.1:${port}`, stop: () => stopChild(child, 5000) };
}
