import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { trackChild } from './cleanup.js';
import type { ServerProcess } from './server-process.js';
import { sqliteShellCommand } from './sqlite-shell.js';
import { sleep, waitFor, withTimeout } from './wait.js';

/**
 * The scale knob of the reliability suite (issue 7): `quick` (the default) runs inside `npm test`;
 * `CHAOS_SCALE=full` (`npm run test:chaos`) repeats more and connects more, bounded to about ten minutes.
 */
export const SCALE: 'quick' | 'full' = process.env.CHAOS_SCALE === 'full' ? 'full' : 'quick';

/** The quick or the full figure. */
export const scaled = <T>(quick: T, full: T): T => (SCALE === 'full' ? full : quick);

// ---------------------------------------------------------------------------------------------------------------
// The server process, seen from outside (Linux /proc).

/** Resident memory of a process in bytes, or undefined when it is gone. */
export function rssBytes(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Open file descriptors of a process, or undefined when it is gone. */
export function openFds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return undefined;
  }
}

export const MB = 1024 * 1024;
export const mb = (bytes: number): string => (bytes / MB).toFixed(1);

/** Samples VmRSS of whatever process `pid()` names now (it changes across restarts), keeping the maximum. */
export class RssSampler {
  max = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly pid: () => number | undefined, everyMs = 50) {
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
  }

  sample(): void {
    const rss = rssBytes(this.pid());
    if (rss !== undefined && rss > this.max) this.max = rss;
  }

  stop(): number {
    clearInterval(this.timer);
    this.sample();
    return this.max;
  }
}

/**
 * Counts server processes that exited without being told to: a crash. Every kill or stop the test makes goes
 * through `kill`/`stop` here, so it is not counted.
 */
export class CrashWatch {
  crashes = 0;
  readonly exits: string[] = [];
  private readonly expected = new WeakSet<ChildProcess>();

  watch(server: ServerProcess): ServerProcess {
    server.child.once('exit', (code, signal) => {
      if (this.expected.has(server.child)) return;
      this.crashes++;
      const line = `pid ${server.child.pid} exited ${code ?? signal}: ${server.output().slice(-3000)}`;
      this.exits.push(line);
      console.log(`[chaos] server crashed: ${line}`);
    });
    return server;
  }

  async kill(server: ServerProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<number | string> {
    this.expected.add(server.child);
    return server.stop(signal, 5000);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP probes.

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  ms: number;
}

/** A plain GET to 127.0.0.1 on a fresh connection, with a timeout instead of a hang. */
export function httpGet(port: number, path: string, headers: Record<string, string> = {}, timeoutMs = 5000, method = 'GET'): Promise<HttpAnswer> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`${method} ${path} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    const done = (answer: HttpAnswer) => {
      clearTimeout(timer);
      resolve(answer);
    };
    const failed = (error: Error) => {
      clearTimeout(timer);
      reject(error);
    };
    const req = request({ host: '127.0.0.1', port, path, method, headers, agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        body += chunk;
        // A stream never ends by itself: the first bytes are enough.
        if (String(response.headers['content-type']).startsWith('text/event-stream')) {
          done({ status: response.statusCode!, headers: response.headers, body, ms: performance.now() - started });
          req.destroy();
        }
      });
      response.on('end', () => done({ status: response.statusCode!, headers: response.headers, body, ms: performance.now() - started }));
      response.on('error', failed);
      response.on('close', () => failed(new Error(`${method} ${path}: connection closed before the end of the answer`)));
    });
    req.on('error', failed);
    req.end();
  });
}

export interface Health {
  ok: boolean;
  clients: number;
  lastId: number;
  database: string;
  journalMode?: string;
  /** Clients still being brought up to date (catch-up or snapshot) before they join the live stream. */
  catchingUp?: number;
}

export async function healthz(port: number, timeoutMs = 5000): Promise<Health> {
  const answer = await httpGet(port, '/healthz', {}, timeoutMs);
  if (answer.status !== 200) throw new Error(`/healthz answered ${answer.status}`);
  return JSON.parse(answer.body) as Health;
}

/** Asks /healthz every `everyMs` on a fresh connection and keeps the slowest answer time and the failures. */
export class HealthProbe {
  maxMs = 0;
  answers = 0;
  failures: string[] = [];
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  private readonly loop: Promise<void>;

  constructor(private readonly port: () => number, private readonly everyMs = 100) {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        const answer = await httpGet(this.port(), '/healthz', {}, 5000);
        if (answer.status !== 200) this.failures.push(`status ${answer.status}`);
        this.answers++;
        this.maxMs = Math.max(this.maxMs, answer.ms);
      } catch (error) {
        this.failures.push((error as Error).message);
      }
      if (this.stopped) break;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        this.timer = setTimeout(resolve, this.everyMs);
      });
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.wake?.();
    await withTimeout(this.loop, 6000, 'the /healthz probe to stop');
  }
}

// ---------------------------------------------------------------------------------------------------------------
// What a client received, checked against the table.

/**
 * The rows one client received, split into epochs at each `reset` event (a database replaced by one with a lower
 * highest id: ids start over from the reset's id, so ids repeat across epochs but never within one).
 */
export class Delivery {
  readonly epochs: number[][] = [[]];
  readonly resets: number[] = [];
  /** The id of the last event dispatched, as EventSource keeps it: what a reconnect sends as Last-Event-ID. */
  cursor: number | undefined;

  constructor(cursor?: number) {
    this.cursor = cursor;
  }

  row(id: number): void {
    this.epochs[this.epochs.length - 1].push(id);
    this.cursor = id;
  }

  reset(id: number): void {
    this.resets.push(id);
    this.epochs.push([]);
    this.cursor = id;
  }

  get count(): number {
    return this.epochs.reduce((sum, epoch) => sum + epoch.length, 0);
  }
}

export interface Tally {
  delivered: number;
  lost: number;
  duplicated: number;
  /** Rows after a greater or equal id in the same epoch. */
  outOfOrder: number;
  /** Rows that are not in the table (or in the wrong epoch). */
  unexpected: number;
}

/** Compare what a client received with the ids it should have received, epoch by epoch. */
export function tally(delivery: Delivery, expected: readonly (readonly number[])[]): Tally {
  const out: Tally = { delivered: delivery.count, lost: 0, duplicated: 0, outOfOrder: 0, unexpected: 0 };
  const epochs = Math.max(expected.length, delivery.epochs.length);
  for (let i = 0; i < epochs; i++) {
    const got = delivery.epochs[i] ?? [];
    const want = new Set(expected[i] ?? []);
    const seen = new Set<number>();
    let previous = -Infinity;
    for (const id of got) {
      if (seen.has(id)) out.duplicated++;
      seen.add(id);
      if (id <= previous) out.outOfOrder++;
      previous = id;
      if (!want.has(id)) out.unexpected++;
    }
    for (const id of want) if (!seen.has(id)) out.lost++;
  }
  return out;
}

/** Wait (bounded) until every delivery holds as many rows as expected; then the tally says what is wrong, if anything. */
export async function settle(deliveries: readonly Delivery[], expected: readonly (readonly number[])[], timeoutMs: number): Promise<boolean> {
  const total = expected.reduce((sum, epoch) => sum + epoch.length, 0);
  try {
    await waitFor('every client to receive every row', () => deliveries.every((delivery) => delivery.count >= total), timeoutMs, 20);
    // A duplicate would arrive right behind the last row: give it a moment to show.
    await sleep(200);
    return true;
  } catch {
    return false;
  }
}

export interface ScenarioReport {
  scenario: string;
  repetitions: number;
  rowsWritten: number;
  /** Rows each client received. */
  delivered: number[];
  lost: number;
  duplicated: number;
  maxRssBytes: number;
  crashes: number;
  /** Anything else worth one line. */
  notes?: string;
  seconds: number;
}

/** The one-line report each chaos scenario prints. */
export function report(r: ScenarioReport): string {
  const line =
    `[chaos ${SCALE}] ${r.scenario}: repetitions=${r.repetitions} rows written=${r.rowsWritten} ` +
    `delivered per client=[${r.delivered.join(',')}] lost=${r.lost} duplicated=${r.duplicated} ` +
    `max server RSS=${mb(r.maxRssBytes)} MB crashes=${r.crashes} time=${r.seconds.toFixed(1)}s` +
    (r.notes ? ` | ${r.notes}` : '');
  console.log(line);
  return line;
}

/** Sum the tallies of several clients. */
export function sumTallies(tallies: readonly Tally[]): { lost: number; duplicated: number; outOfOrder: number; unexpected: number } {
  return tallies.reduce(
    (sum, t) => ({ lost: sum.lost + t.lost, duplicated: sum.duplicated + t.duplicated, outOfOrder: sum.outOfOrder + t.outOfOrder, unexpected: sum.unexpected + t.unexpected }),
    { lost: 0, duplicated: 0, outOfOrder: 0, unexpected: 0 },
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Writers and database operations, each a separate process as a user's would be, never blocking this event loop.

/**
 * Run SQL through the `sqlite3` shell (or python3 standing in for it) with a busy timeout, asynchronously; resolves
 * with stdout, rejects on failure.
 */
export async function sqliteAsync(path: string, sql: string, timeoutMs = 30000): Promise<string> {
  const { command, args } = sqliteShellCommand(path, 5000);
  // SQLite answers "database is locked" at once, busy timeout or not, when two writers would deadlock (a VACUUM or
  // journal switch against the python writers in DELETE mode): retry like any writer would.
  for (let attempt = 1; ; attempt++) {
    try {
      return await runProcess(command, args, sql, timeoutMs);
    } catch (error) {
      if (attempt >= 10 || !/database is locked/.test((error as Error).message)) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
    }
  }
}

/** Run a Python program (python3 -c) asynchronously; resolves with stdout. */
export function pythonAsync(program: string, args: string[] = [], timeoutMs = 30000): Promise<string> {
  return runProcess('python3', ['-c', program, ...args], undefined, timeoutMs);
}

function runProcess(command: string, args: string[], input: string | undefined, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = trackChild(spawn(command, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] }));
    let out = '';
    let err = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${command} exited ${code ?? signal}: ${err.trim() || out.trim()}`));
    });
    if (input !== undefined) child.stdin!.end(input);
  });
}

const WRITER_PROGRAM = `
import sqlite3, sys, time, os, random, json
db, ctl, name = sys.argv[1], sys.argv[2], sys.argv[3]
per_max, delay, size, seed = int(sys.argv[4]), float(sys.argv[5]) / 1000.0, int(sys.argv[6]), int(sys.argv[7])
random.seed(seed)
pause, stop, ack = os.path.join(ctl, 'pause'), os.path.join(ctl, 'stop'), os.path.join(ctl, 'paused-' + name)
con, written, errors, last_error = None, 0, 0, ''
while not os.path.exists(stop):
    if os.path.exists(pause):
        # Paused: hold no connection at all (a journal-mode switch, a deleted or replaced file).
        if con is not None:
            con.close()
            con = None
        if not os.path.exists(ack):
            open(ack, 'w').close()
        time.sleep(0.005)
        continue
    if os.path.exists(ack):
        os.remove(ack)
    try:
        if con is None:
            con = sqlite3.connect(db, timeout=30, isolation_level=None)
        n = random.randint(1, per_max)
        con.execute('BEGIN IMMEDIATE')
        con.executemany('INSERT INTO messages(message) VALUES (?)', [(('%s-%d-' % (name, written + i)).ljust(size, 'x'),) for i in range(n)])
        con.execute('COMMIT')
        written += n
    except sqlite3.Error as error:
        # Locked past the timeout, or the table is not there (yet): drop the connection, try again.
        errors += 1
        last_error = str(error)
        try:
            con.close()
        except Exception:
            pass
        con = None
        time.sleep(0.02)
    if delay:
        time.sleep(delay * random.random() * 2)
if con is not None:
    con.close()
print(json.dumps({'written': written, 'errors': errors, 'lastError': last_error}))
`;

export interface WriterOptions {
  /** Writer processes. */
  count: number;
  /** Rows per transaction: 1 .. this, at random. */
  perCommitMax?: number;
  /** Mean pause between commits. */
  delayMs?: number;
  /** Characters per message. */
  rowBytes?: number;
}

/**
 * Python writer processes that insert into `messages` until stopped, and that can be paused: a paused writer
 * closes its connection and says so with a file, so a test can switch journal modes or replace the file.
 */
export class Writers {
  readonly children: ChildProcess[] = [];
  private readonly exited: Promise<string>[] = [];
  private readonly control: string;

  constructor(readonly db: string, controlDirectory: string, readonly options: WriterOptions) {
    this.control = controlDirectory;
    mkdirSync(this.control, { recursive: true });
    rmSync(join(this.control, 'stop'), { force: true });
    for (let i = 0; i < options.count; i++) {
      const args = [String(options.perCommitMax ?? 5), String(options.delayMs ?? 5), String(options.rowBytes ?? 0), String(1000 + i)];
      const child = trackChild(spawn('python3', ['-c', WRITER_PROGRAM, db, this.control, `w${i}`, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
      let out = '';
      let err = '';
      child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
      child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
      this.children.push(child);
      const exited = new Promise<string>((resolve, reject) =>
        child.once('exit', (code, signal) => (code === 0 ? resolve(out.trim()) : reject(new Error(`writer w${i} exited ${code ?? signal}: ${err.trim()}`)))),
      );
      // Killed in a finally block: nobody awaits it then.
      exited.catch(() => undefined);
      this.exited.push(exited);
    }
  }

  /** Pause every writer and wait until each has closed its connection. */
  async pause(timeoutMs = 40000): Promise<void> {
    writeFileSync(join(this.control, 'pause'), '');
    await waitFor(
      'every writer paused',
      () => this.children.every((_, i) => existsSync(join(this.control, `paused-w${i}`)) || this.children[i].exitCode !== null),
      timeoutMs,
      5,
    );
  }

  resume(): void {
    rmSync(join(this.control, 'pause'), { force: true });
  }

  /** Stop every writer and wait for each to exit; resolves with their summaries (rows written, errors). */
  async stop(timeoutMs = 40000): Promise<string[]> {
    writeFileSync(join(this.control, 'stop'), '');
    this.resume();
    try {
      return await withTimeout(Promise.all(this.exited), timeoutMs, 'writers to stop');
    } finally {
      this.kill();
    }
  }

  /** For finally blocks: whatever state they are in. */
  kill(): void {
    for (const child of this.children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

/** The `messages` ids, read by a separate sqlite3 process without blocking this event loop. */
export async function tableIdsAsync(path: string): Promise<number[]> {
  const out = await sqliteAsync(path, 'SELECT id FROM messages ORDER BY id;');
  return out
    .split('\n')
    .filter((line) => line !== '')
    .map(Number);
}
