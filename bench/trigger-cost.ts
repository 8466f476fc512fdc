/**
 * What `track` costs a writer: `npm run bench:triggers -- [--seconds S] [--rounds R]`. Commits per second of one
 * better-sqlite3 writer (WAL; synchronous NORMAL and FULL; 1 and 100 rows per commit) on a table without triggers,
 * with the triggers and the default --keep (nothing is trimmed until the log holds 100,000 changes), and with
 * --keep 1000 (every logged row also deletes the oldest one: the steady state of a full log). Each cell writes to a
 * fresh database for S seconds; the rounds are interleaved so background load hits every cell alike; the median of
 * the rounds is printed as a markdown table.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { track } from '../src/source/change-triggers.js';
import { markdownTable } from './table.js';

type Synchronous = 'normal' | 'full';
type Triggers = 'none' | 'default keep' | 'keep 1000';

interface Cell {
  synchronous: Synchronous;
  rowsPerCommit: number;
  triggers: Triggers;
}

const SCHEMA = 'CREATE TABLE todos(id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT, done INTEGER, score REAL, owner TEXT)';

/** Commits per second of one cell, on a fresh database in `directory`. */
function measure(cell: Cell, directory: string, seconds: number): number {
  const path = join(directory, `${cell.synchronous}-${cell.rowsPerCommit}-${cell.triggers.replace(/\s/g, '-')}.db`);
  const db = new Database(path);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${cell.synchronous}`);
    db.exec(SCHEMA);
    if (cell.triggers !== 'none') track(db, 'todos', cell.triggers === 'keep 1000' ? 1000 : undefined);
    const insert = db.prepare('INSERT INTO todos(title, done, score, owner) VALUES (?, ?, ?, ?)');
    let row = 0;
    const commit = db.transaction((count: number) => {
      for (let i = 0; i < count; i++, row++) insert.run(`buy milk and eggs, then call the plumber about it #${row}`, row % 2, row * 0.37, 'ann@example.com');
    });
    let commits = 0;
    const start = performance.now();
    const end = start + seconds * 1000;
    while (performance.now() < end) {
      commit(cell.rowsPerCommit);
      commits++;
    }
    return commits / ((performance.now() - start) / 1000);
  } finally {
    db.close();
    for (const suffix of ['', '-wal', '-shm']) rmSync(path + suffix, { force: true });
  }
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

function main(): void {
  const { values } = parseArgs({ options: { seconds: { type: 'string', default: '2' }, rounds: { type: 'string', default: '3' } } });
  const seconds = Number(values.seconds);
  const rounds = Number(values.rounds);
  if (!(seconds > 0) || !Number.isInteger(rounds) || rounds < 1) throw new Error('--seconds must be > 0 and --rounds a whole number >= 1');
  const cells: Cell[] = [];
  for (const synchronous of ['normal', 'full'] as const) {
    for (const rowsPerCommit of [1, 100]) {
      for (const triggers of ['none', 'default keep', 'keep 1000'] as const) cells.push({ synchronous, rowsPerCommit, triggers });
    }
  }
  const directory = mkdtempSync(join(tmpdir(), 'sqlite-sse-trigger-cost-'));
  const samples = new Map<Cell, number[]>(cells.map((cell) => [cell, []]));
  try {
    for (let round = 0; round < rounds; round++) for (const cell of cells) samples.get(cell)!.push(measure(cell, directory, seconds));
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
  const version = new Database(':memory:').prepare('SELECT sqlite_version()').pluck().get() as string;
  console.log(
    `trigger cost: ${new Date().toISOString().slice(0, 16)}Z, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, SQLite ${version}, ` +
      `${tmpdir()}, median of ${rounds} rounds of ${seconds} s per cell\n`,
  );
  const rows = cells.map((cell) => {
    const commitsPerSecond = median(samples.get(cell)!);
    const baseline = median(samples.get(cells.find((c) => c.synchronous === cell.synchronous && c.rowsPerCommit === cell.rowsPerCommit && c.triggers === 'none')!)!);
    return [
      cell.synchronous.toUpperCase(),
      cell.rowsPerCommit,
      cell.triggers,
      Math.round(commitsPerSecond).toLocaleString('en-US'),
      Math.round(commitsPerSecond * cell.rowsPerCommit).toLocaleString('en-US'),
      cell.triggers === 'none' ? '–' : `${Math.round((commitsPerSecond / baseline) * 100)}%`,
    ];
  });
  console.log(markdownTable(['synchronous', 'rows/commit', 'triggers', 'commits/s', 'rows/s', 'vs none'], rows));
}

main();
