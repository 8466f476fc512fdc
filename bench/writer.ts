/**
 * A writer process: commits rows to `messages(id, user_id, message, sent_at)` at a fixed rate with better-sqlite3, as any
 * application would, each row stamped with the wall-clock time just before its transaction and given its user
round robin (`userOfRow` in filter-plan.ts). Started with `fork()`;
 * it gets one `WriterCommand` and answers one `WriterReport`. With `feed`, it also sends every committed row's SSE
 * frame to the raw ceiling server (which has no SQLite of its own).
 */
import { connect, type Socket } from 'node:net';
import Database from 'better-sqlite3';
import { wallMs } from './clock.js';
import { userOfRow } from './filter-plan.js';
import { Histogram, type HistogramData } from './stats.js';

export interface WriterCommand {
  cmd: 'write';
  db: string;
  /** Commits per second; 0: as fast as possible. */
  rate: number;
  rowsPerCommit: number;
  /** Approximate size of a row's JSON. */
  rowBytes: number;
  /** Seconds of writing. */
  duration: number;
  /** Rows in one single transaction instead of the timed loop (a burst). */
  burst?: number;
  synchronous: 'full' | 'normal' | 'off';
  /** Users the rows go to, round robin by id (default 1: every row is user 0's). */
  users?: number;
  feed?: { host: string; port: number };
}

export interface WriterReport {
  type: 'written';
  commits: number;
  rows: number;
  firstId: number;
  lastId: number;
  startedAt: number;
  endedAt: number;
  /** How long each commit took, stamp to COMMIT returned (ms): part of the latency the clients see. */
  commitMs: HistogramData;
  /** Commits that were more than one interval late (the writer could not keep the rate). */
  late: number;
}

/** The demo schema plus the commit stamp the bench needs and the user the filtered runs filter on. */
export const BENCH_SCHEMA = 'CREATE TABLE IF NOT EXISTS messages(id integer primary key autoincrement, user_id integer, message text, sent_at real)';

/** A message text that makes a row's JSON about `rowBytes` long. */
export function messageFor(rowBytes: number): string {
  const overhead = JSON.stringify({ id: 1000000, user_id: 1000, message: '', sent_at: 1764050778123.456 }).length;
  return 'x'.repeat(Math.max(1, rowBytes - overhead));
}

async function run(command: WriterCommand): Promise<WriterReport> {
  const db = new Database(command.db, { timeout: 10000 });
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${command.synchronous}`);
  const insert = db.prepare('INSERT INTO messages(user_id, message, sent_at) VALUES (?, ?, ?)');
  const message = messageFor(command.rowBytes);
  const users = command.users ?? 1;
  // Each row's user follows from its id, so the id is known before the insert: the table's next one.
  let nextId = Number(db.prepare("SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), 0)").pluck().get()) + 1;
  const commitMs = new Histogram();
  let feed: Socket | undefined;
  if (command.feed) feed = await openFeed(command.feed.host, command.feed.port);
  let commits = 0;
  let rows = 0;
  let firstId = 0;
  let lastId = 0;
  let late = 0;
  const commit = db.transaction((count: number, stamp: number) => {
    let id = 0;
    for (let i = 0; i < count; i++) {
      id = Number(insert.run(userOfRow(nextId, users), message, stamp).lastInsertRowid);
      if (id !== nextId) throw new Error(`row got id ${id}, expected ${nextId}: the bench's writer must be the only writer`);
      nextId++;
    }
    return id;
  });
  const commitOnce = (count: number) => {
    const stamp = wallMs();
    const id = commit(count, stamp);
    commitMs.record(wallMs() - stamp);
    if (firstId === 0) firstId = id - count + 1;
    if (feed) {
      // The same frame the server would build: `id:`, then the row's JSON on one `data:` line.
      // Ids are consecutive: this writer is the only one.
      let frames = '';
      for (let rowId = id - count + 1; rowId <= id; rowId++) {
        frames += `id: ${rowId}\ndata: ${JSON.stringify({ id: rowId, user_id: userOfRow(rowId, users), message, sent_at: stamp })}\n\n`;
      }
      feed.write(frames);
    }
    lastId = id;
    commits++;
    rows += count;
  };
  const startedAt = wallMs();
  if (command.burst) {
    commitOnce(command.burst);
  } else {
    const interval = command.rate > 0 ? 1000 / command.rate : 0;
    const endAt = startedAt + command.duration * 1000;
    await new Promise<void>((resolve) => {
      let due = startedAt;
      const tick = () => {
        const now = wallMs();
        if (now >= endAt) return resolve();
        if (interval === 0) {
          // As fast as possible, but let the event loop (and the feed socket) breathe between commits.
          for (let i = 0; i < 10 && wallMs() < endAt; i++) commitOnce(command.rowsPerCommit);
          setImmediate(tick);
          return;
        }
        if (now >= due) {
          if (now - due > interval) late++;
          commitOnce(command.rowsPerCommit);
          due += interval;
        }
        setTimeout(tick, Math.max(0, due - wallMs()));
      };
      tick();
    });
  }
  const endedAt = wallMs();
  db.close();
  if (feed) await new Promise<void>((resolve) => feed!.end(resolve));
  return { type: 'written', commits, rows, firstId, lastId, startedAt, endedAt, commitMs: commitMs.toJSON(), late };
}

function openFeed(host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, noDelay: true }, () => resolve(socket));
    socket.once('error', reject);
  });
}

process.once('message', (command: WriterCommand) => {
  run(command).then(
    (report) => {
      process.send?.(report, () => process.exit(0));
    },
    (error: Error) => {
      console.error(`writer failed: ${error.message}`);
      process.exit(1);
    },
  );
});
process.on('disconnect', () => process.exit(0));
setTimeout(() => process.exit(3), Number(process.env.BENCH_MAX_SECONDS ?? 600) * 1000).unref();
