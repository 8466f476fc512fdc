import Database from 'better-sqlite3';
import * as assert from 'uvu/assert';
import { CHANGE_LOG_TABLE, decodeChange, type Change, type ChangeLogRow } from '../../src/source/change-log.js';
import { runCli } from './server-process.js';

/** Every change in the log, decoded, oldest first, with its seq. Opens the database read-only and closes it. */
export function readChanges(path: string): (Change & { seq: number })[] {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare(`SELECT * FROM ${CHANGE_LOG_TABLE} ORDER BY seq`).all() as ChangeLogRow[];
    return rows.map((row) => ({ seq: Number(row.seq), ...decodeChange(row) }));
  } finally {
    db.close();
  }
}

/**
 * The rows of a table as a user's program would read them: with safe integers, then a bigint within ±(2^53 - 1)
 * as a number (the promise decodeChange makes).
 */
export function readRows(path: string, sql: string): Record<string, unknown>[] {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare(sql).safeIntegers(true).all() as Record<string, unknown>[];
    for (const row of rows) {
      for (const key in row) {
        const value = row[key];
        if (typeof value === 'bigint' && value >= -MAX_SAFE && value <= MAX_SAFE) row[key] = Number(value);
      }
    }
    return rows;
  } finally {
    db.close();
  }
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** `sqlite-sse track ARGS` (or untrack) as a user runs it; asserts exit 0 and returns its stdout lines. */
export async function runTrack(command: 'track' | 'untrack', args: string[]): Promise<string[]> {
  const result = await runCli([command, ...args]);
  assert.is(result.code, 0, result.stderr);
  assert.is(result.stderr, '');
  return result.stdout.trim().split('\n');
}
