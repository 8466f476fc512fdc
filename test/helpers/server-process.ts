import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { trackChild } from './cleanup.js';
import { withTimeout } from './wait.js';

export const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

export interface ServerProcess {
  child: ChildProcess;
  url: string;
  port: number;
  /** Everything printed so far on stdout and stderr. */
  output(): string;
  /** Send a signal and wait for the exit; resolves with the exit code (or signal name). */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | string>;
}

/** Start `node dist/src/cli.js ARGS` as a user does and wait for its `listening on` line. */
export async function startServer(args: string[], options: { cwd?: string; timeoutMs?: number } = {}): Promise<ServerProcess> {
  const child = trackChild(spawn(process.execPath, [CLI, '--port', '0', ...args], { cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] }));
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const port = await withTimeout(
    new Promise<number>((resolve, reject) => {
      const onData = () => {
        const match = /listening on https?:\/\/[^\s]*:(\d+) /.exec(output);
        if (match) {
          child.stdout!.off('data', onData);
          resolve(Number(match[1]));
        }
      };
      child.stdout!.on('data', onData);
      void exited.then((code) => reject(new Error(`server exited ${code} before listening: ${output.trim()}`)));
    }),
    options.timeoutMs ?? 15000,
    'server start',
  ).catch((error) => {
    child.kill('SIGKILL');
    throw error;
  });
  return {
    child,
    port,
    url: `http://127.0.0.1:${port}`,
    output: () => output,
    stop: (signal = 'SIGTERM', timeoutMs = 5000) => {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill(signal);
      return withTimeout(exited, timeoutMs, `server exit after ${signal}`).catch((error) => {
        child.kill('SIGKILL');
        throw error;
      });
    },
  };
}

/** Run the CLI to completion (for errors and --help): exit code and output. */
export function runCli(args: string[], options: { cwd?: string; timeoutMs?: number } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = trackChild(spawn(process.execPath, [CLI, ...args], { cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] }));
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return withTimeout(
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr }))),
    options.timeoutMs ?? 15000,
    `sqlite-sse ${args.join(' ')}`,
  ).catch((error) => {
    child.kill('SIGKILL');
    throw error;
  });
}
