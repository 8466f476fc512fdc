/**
 * Starting, watching and stopping the bench's child processes. Every child is registered, so a failed or
 * interrupted run still kills them all; each is started with a raised open-files limit and optionally pinned to CPUs.
 */
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { withTimeout } from './wait.js';

/** Open files each process may hold; the hard limit here is 20,000. */
export const OPEN_FILES = 20000;

const children = new Set<ChildProcess>();
const directories = new Set<string>();

/** A temp directory removed by `killAll` (at exit or interrupt) unless `forgetDirectory` was called first. */
export function trackDirectory(path: string): string {
  directories.add(path);
  return path;
}

export function forgetDirectory(path: string): void {
  directories.delete(path);
}

/** Registers a child started elsewhere (e.g. redis-server), so `killAll` stops it too. */
export function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** SIGKILL every child still running. Safe to call more than once. */
export function killAll(): void {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
  for (const path of directories) rmSync(path, { recursive: true, force: true });
  directories.clear();
}

let exitHooked = false;
/** Kill the children when the orchestrator exits or is interrupted. */
export function killChildrenOnExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.once('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      killAll();
      process.exit(130);
    });
  }
}

export interface ListeningProcess {
  child: ChildProcess;
  pid: number;
  /** The listening line's fields. */
  host: string;
  port: number;
  /** The raw ceiling's feed port, when the line names one. */
  feedPort?: number;
  line: string;
  output(): string;
  /** SIGTERM, then SIGKILL after `timeoutMs`; resolves with the exit code or signal. */
  stop(timeoutMs?: number): Promise<number | string>;
}

/**
 * Runs `node ARGS` the way a user would (through bash, after `ulimit -n`), optionally pinned with taskset,
 * and waits for its `listening on http://HOST:PORT` line.
 */
export async function startListening(nodeArgs: string[], options: { cpus?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<ListeningProcess> {
  const quoted = nodeArgs.map(shellQuote).join(' ');
  const pin = options.cpus ? `taskset -c ${options.cpus} ` : '';
  // `exec` keeps the PID: /proc/PID is the node process itself. A refused ulimit falls back to the hard limit.
  const script = `ulimit -n ${OPEN_FILES} 2>/dev/null || ulimit -n $(ulimit -Hn); exec ${pin}${shellQuote(process.execPath)} ${quoted}`;
  const child = track(spawn('bash', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'], env: options.env ?? process.env }));
  let output = '';
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (text: string) => (output += text));
  const line = await withTimeout(
    new Promise<string>((resolve, reject) => {
      let buffered = '';
      child.stdout!.on('data', (text: string) => {
        output += text;
        buffered += text;
        const match = /^listening on .*$/m.exec(buffered);
        if (match) resolve(match[0]);
      });
      child.once('exit', (code, signal) => reject(new Error(`${nodeArgs[0]} exited ${code ?? signal} before listening: ${output.trim().slice(0, 500)}`)));
    }),
    options.timeoutMs ?? 15000,
    `${nodeArgs[0]} did not print its listening line`,
  );
  const url = /http:\/\/([^\s:/]+):(\d+)/.exec(line);
  if (!url) throw new Error(`cannot parse listening line: ${line}`);
  const feed = /feed [^\s:]+:(\d+)/.exec(line);
  return {
    child,
    pid: child.pid!,
    host: url[1],
    port: Number(url[2]),
    feedPort: feed ? Number(feed[1]) : undefined,
    line,
    output: () => output,
    stop: (timeoutMs = 3000) => stopChild(child, timeoutMs),
  };
}

/** Forks a bench script (IPC channel) and pins it to `cpus` when given. */
export function forkScript(path: string, options: { cpus?: string; env?: NodeJS.ProcessEnv } = {}): ChildProcess {
  const child = track(fork(path, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: options.env ?? process.env }));
  if (options.cpus && child.pid) pinProcess(child.pid, options.cpus);
  return child;
}

/** Pins a running process to CPUs (`taskset -p`); silently does nothing where taskset is missing. */
export function pinProcess(pid: number, cpus: string): boolean {
  try {
    execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export function stopChild(child: ChildProcess, timeoutMs = 3000): Promise<number | string> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode ?? child.signalCode!);
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(code ?? signal ?? 'exited');
    });
    child.kill('SIGTERM');
  });
}

/** Waits for the next IPC message of `type` from `child`, bounded. */
export function nextMessage<T extends { type: string }>(child: ChildProcess, type: T['type'], timeoutMs: number): Promise<T> {
  return withTimeout(
    new Promise<T>((resolve, reject) => {
      const onMessage = (message: { type?: string }) => {
        if (message?.type !== type) return;
        cleanup();
        resolve(message as T);
      };
      const onExit = (code: number | null, signal: string | null) => {
        cleanup();
        reject(new Error(`child exited ${code ?? signal} before sending ${type}`));
      };
      const cleanup = () => {
        child.off('message', onMessage);
        child.off('exit', onExit);
      };
      child.on('message', onMessage);
      child.once('exit', onExit);
    }),
    timeoutMs,
    `no ${type} message within ${timeoutMs} ms`,
  );
}

const CLOCK_TICKS = 100;

/** CPU time (user + system) a process has used, in ms, from /proc/PID/stat. */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name may hold spaces: the fields after it start past the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}

/** Resident memory in KiB, from /proc/PID/status. */
export function rssKiB(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) : NaN;
}

/** The process and all its descendants (e.g. the workers of `--workers N`), read from each thread's /proc/PID/task/TID/children. */
export function processTree(pid: number): number[] {
  const found = [pid];
  for (let i = 0; i < found.length; i++) {
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${found[i]}/task`);
    } catch {
      continue; // exited
    }
    for (const task of tasks) {
      try {
        for (const child of readFileSync(`/proc/${found[i]}/task/${task}/children`, 'utf8').split(' ')) {
          if (child.trim()) found.push(Number(child));
        }
      } catch {
        /* the thread or process exited */
      }
    }
  }
  return found;
}

/** Summed CPU ms of a process and its descendants (processes that exit in between count 0). */
export function treeCpuMs(pid: number): number {
  return sumOver(processTree(pid), cpuMs);
}

/** Summed resident memory in KiB of a process and its descendants. */
export function treeRssKiB(pid: number): number {
  return sumOver(processTree(pid), rssKiB);
}

function sumOver(pids: number[], measure: (pid: number) => number): number {
  let total = 0;
  for (const pid of pids) {
    try {
      total += measure(pid);
    } catch {
      /* exited */
    }
  }
  return total;
}

/** The soft open-files limit of a running process. */
export function openFilesLimit(pid: number): number {
  const match = /Max open files\s+(\d+|unlimited)/.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
  return !match ? NaN : match[1] === 'unlimited' ? Infinity : Number(match[1]);
}

function shellQuote(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}
