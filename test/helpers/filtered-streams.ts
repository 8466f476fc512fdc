import type { ChangeData } from './change-stream.js';
import { sqlite } from './database.js';
import type { SseStream } from './sse-stream.js';

/** One change-stream event as sent on `/events` with `--changes` (the one shape the change-stream helpers read). */
export type ChangeMessage = ChangeData;

/** The ids `SELECT id FROM table WHERE condition` returns, run by a separate sqlite3 (or python3) process. */
export function selectIds(db: string, table: string, condition: string): number[] {
  return sqlite(db, `SELECT id FROM ${table} WHERE ${condition} ORDER BY id;`)
    .split('\n')
    .filter((line) => line !== '')
    .map(Number);
}

/** The row events of an SSE stream with their ids, in arrival order (control events such as snapshot-end left out). */
export function idsAndData(stream: SseStream): { id: string | undefined; data: string }[] {
  return stream.events.filter((event) => event.event === 'message').map(({ id, data }) => ({ id, data }));
}

/**
 * What a client that applies change events by primary key holds afterwards: insert, snapshot and `move: in` put the
 * row, update replaces it, delete and `move: out` remove it. Keyed by the JSON of `pk`.
 */
export function applyByPk(events: readonly ChangeMessage[]): Map<string, Record<string, unknown>> {
  const held = new Map<string, Record<string, unknown>>();
  for (const event of events) {
    const key = JSON.stringify(event.pk);
    if (event.op === 'delete' || event.move === 'out') held.delete(key);
    else if (event.row) held.set(key, event.row);
  }
  return held;
}

/** The held rows' `id`s, sorted. */
export const heldIds = (held: Map<string, Record<string, unknown>>): number[] =>
  [...held.values()].map((row) => Number(row.id)).sort((a, b) => a - b);
