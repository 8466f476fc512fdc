import { EncodedEvent, type EventKind } from '../hub/encoded-event.js';

/**
 * How an event lives in a Redis stream (docs/scaling.md): entry id `<id>-0`, so the stream's order is the rows' order
 * and `Last-Event-ID` means the same on every edge; field `k` is the kind, field `d` the event's JSON exactly as the
 * origin serialized it, so an edge writes the very same SSE bytes.
 */

/** The entry id of event `id`. */
export function entryId(id: number): string {
  return `${id}-0`;
}

/** The event id of an entry id `<ms>-<seq>` (the sequence is always 0 for entries this project writes). */
export function idOfEntry(entry: string): number {
  const dash = entry.indexOf('-');
  return Number(dash === -1 ? entry : entry.slice(0, dash));
}

/** What the publisher appends: an event, or a gap marker (`kind` 'gap'). */
export interface StreamItem {
  readonly id: number;
  readonly kind: string;
  readonly json: string;
}

/** The XADD arguments after the key: trimmed to about `maxLen` entries, with the item's id, kind and JSON. */
export function xaddArguments(item: StreamItem, maxLen: number): (string | number)[] {
  return ['MAXLEN', '~', maxLen, entryId(item.id), 'k', item.kind, 'd', item.json];
}

/**
 * The marker of a gap: the store (the change log) trimmed events before the origin read them, so the events up to
 * `oldest - 1` that were not published are gone for everybody. Its entry id is `oldest - 1`, an id of the gap that no
 * event will ever have (the stream's top is below it, the next event is `oldest`), so it sits in order with the
 * events: an edge that reads it live resets its clients as the origin does (`gap`), and a catch-up read that meets
 * it answers `historyGone`. Field `k` is `gap`, `d` is `{"oldest":N}`.
 */
export function gapMarker(oldest: number): StreamItem {
  return { id: oldest - 1, kind: GAP_KIND, json: `{"oldest":${oldest}}` };
}

const GAP_KIND = 'gap';

/** An entry as ioredis returns it: `[id, [field, value, ...]]`. */
export type StreamEntry = [id: string, fields: string[]];

/** The `oldest` of a gap marker entry (the first id after the gap), or undefined for an event. */
export function gapOfEntry(entry: StreamEntry): number | undefined {
  const fields = entry[1];
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] === 'k') return fields[i + 1] === GAP_KIND ? idOfEntry(entry[0]) + 1 : undefined;
  }
  return undefined;
}

/** Rebuilds the origin's event from an entry; the JSON is kept as sent, so the frame is byte for byte the origin's. */
export function eventOfEntry(entry: StreamEntry, eventName: string | undefined): EncodedEvent {
  const [id, fields] = entry;
  let kind: EventKind = 'row';
  let json = 'null';
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] === 'k') kind = fields[i + 1] === 'change' ? 'change' : 'row';
    else if (fields[i] === 'd') json = fields[i + 1];
  }
  return new EncodedEvent(idOfEntry(id), kind, JSON.parse(json), json, eventName);
}

/** What `XINFO STREAM` says about where a stream starts and ends. */
export interface StreamBounds {
  /** Entries in the stream now. */
  length: number;
  /** The highest id ever added (the stream's top even when trimmed empty); 0 for a missing stream. */
  lastId: number;
  /** The oldest entry's id, undefined when empty. */
  firstId: number | undefined;
  /**
   * Every event with `floor < id <= lastId` is in the stream; older cursors need another store (the origin).
   * 0 when nothing was ever trimmed or skipped. A trim or a publisher that started late (XSETID MAXDELETEDID) raises it.
   */
  floor: number;
}

/** Reads `XINFO STREAM` (as ioredis returns it: a flat array of names and values); a missing key is an empty stream. */
export function boundsOfInfo(info: unknown[] | null): StreamBounds {
  if (!info) return { length: 0, lastId: 0, firstId: undefined, floor: 0 };
  const field = new Map<string, unknown>();
  for (let i = 0; i + 1 < info.length; i += 2) field.set(String(info[i]), info[i + 1]);
  const length = Number(field.get('length') ?? 0);
  const lastId = idOfEntry(String(field.get('last-generated-id') ?? '0-0'));
  const first = field.get('first-entry') as StreamEntry | null | undefined;
  const firstId = first ? idOfEntry(first[0]) : undefined;
  const maxDeleted = idOfEntry(String(field.get('max-deleted-entry-id') ?? '0-0'));
  const added = Number(field.get('entries-added') ?? length);
  // Redis 7 records MAXLEN trims only as entries-added > length: then nothing below the first entry is held.
  const trimmed = added > length;
  const floor = trimmed || maxDeleted > 0 ? Math.max(maxDeleted, firstId === undefined ? lastId : firstId - 1) : 0;
  return { length, lastId, firstId, floor };
}

/** True for Redis' "no such key" answer to XINFO STREAM on a missing stream. */
export function isNoSuchKey(error: unknown): boolean {
  return /no such key/i.test((error as Error)?.message ?? '');
}

/** True for XADD's refusal of an id at or below the stream's top: the entry is already there (re-publishing is idempotent). */
export function isAlreadyThere(error: unknown): boolean {
  return /equal or smaller than the target stream top/i.test((error as Error)?.message ?? '');
}

/** A Redis URL without its passwords, for logs (moved to redis-connection.ts, which parses every Redis URL). */
export { redactUrl } from './redis-connection.js';
