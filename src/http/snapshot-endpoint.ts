import type { IncomingMessage, ServerResponse } from 'node:http';
import { EncodedEvent } from '../hub/encoded-event.js';
import { fetchFromOrigin, refusedMethod, sendBadRequest, sendBusy } from './origin-endpoint.js';
import type { SnapshotPosition, SnapshotResult, Source } from '../source/source.js';

/**
 * The origin's `GET /snapshot?table=T&after=P&limit=N`, for edges: they have no database, so the snapshot phase of
 * their hub (`snapshot=1`, and the fresh snapshot after a `history-gone` reset) reads the origin's pages.
 *
 * Answer `200 application/json`: `{"events":[{"d":"{...}"}],"next":P,"seq":S}`: one page of the table's current rows,
 * each `d` the snapshot event's JSON text exactly as the origin frames it (so an edge writes the origin's bytes);
 * `next` the position to ask from next (`after=` its JSON), `null` after the last page; `seq` the change log's
 * sequence number read in the same transaction as the page. A position is a rowid (a JSON integer) or, for a WITHOUT
 * ROWID table, its primary-key values as a JSON array, where an integer is `{"int":"N"}` (exact beyond 2^53), a BLOB
 * `{"blob":"BASE64"}` and a non-finite real `{"real":"Infinity"}`; an edge passes it back as it got it.
 * `503` + `Retry-After` while the database is locked; `400` one line for a table not served or a bad parameter;
 * `405` for another method. Never cacheable (`no-store`): the rows change.
 */
export interface SnapshotEndpointOptions {
  /** The served table named `name` (any case), or undefined: only tracked tables are ever read. */
  findTable: (name: string) => string | undefined;
  /** Whether `table` is WITHOUT ROWID, and its key's width: the shape `after` must have. */
  keyShape: (table: string) => { withoutRowid: boolean; keyColumns: number };
  /** Most rows per page; a larger `limit` is lowered to it. Default 1000. */
  maxLimit?: number;
  /** A page stops after the row that brings it past this many bytes. Default 1 MiB. */
  maxBytes?: number;
}

/** One snapshot row on the wire between origin and edge: its JSON text. */
interface WireRow {
  d: string;
}

/** A page as the origin sends it. */
interface WirePage {
  events: WireRow[];
  next: unknown;
  seq: number;
}

/** Serves one request of the snapshot endpoint from `source` (the origin's source, the one its hub reads). */
export async function serveSnapshot(request: IncomingMessage, response: ServerResponse, source: Source, options: SnapshotEndpointOptions): Promise<void> {
  if (refusedMethod(request, response)) return;
  const maxLimit = options.maxLimit ?? 1000;
  const query = new URL(request.url ?? '/', 'http://origin').searchParams;
  let table: string;
  let after: SnapshotPosition | undefined;
  let limit: number;
  try {
    const named = query.get('table');
    if (named === null || named === '') throw new Error('table is required: the name of a tracked table');
    const found = options.findTable(named);
    if (found === undefined) throw new Error(`table ${JSON.stringify(named).slice(0, 80)} is not tracked here`);
    table = found;
    const asked = query.get('after');
    after = asked === null ? undefined : decodePosition(asked, shapeOf(table, options));
    const askedLimit = query.get('limit');
    if (askedLimit !== null && !/^[0-9]{1,15}$/.test(askedLimit)) throw new Error(`limit must be a decimal integer, got ${JSON.stringify(askedLimit).slice(0, 40)}`);
    limit = Math.min(Math.max(askedLimit === null ? maxLimit : Number(askedLimit), 1), maxLimit);
  } catch (error) {
    if (error instanceof Unreadable) sendBusy(response, 1000);
    else sendBadRequest(response, (error as Error).message);
    return;
  }
  const result = await source.snapshot!(table, after, limit, options.maxBytes ?? 1024 * 1024);
  if ('retryMs' in result) {
    sendBusy(response, result.retryMs);
    return;
  }
  const events = result.events.map((event) => JSON.stringify({ d: event.json } satisfies WireRow));
  const next = result.next === undefined ? 'null' : JSON.stringify(encodePosition(result.next));
  const bytes = Buffer.from(`{"events":[${events.join(',')}],"next":${next},"seq":${result.seq}}`);
  response.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': bytes.length, 'Cache-Control': 'no-store' });
  response.end(request.method === 'HEAD' ? undefined : bytes);
}

/** The table's schema could not be read right now (locked, or the file is being replaced): 503, not 400. */
class Unreadable extends Error {}

function shapeOf(table: string, options: SnapshotEndpointOptions): { withoutRowid: boolean; keyColumns: number } {
  try {
    return options.keyShape(table);
  } catch (error) {
    throw new Unreadable((error as Error).message);
  }
}

/** A position as JSON can carry it: integers exact (`{"int"}`), BLOBs as base64 (`{"blob"}`), non-finite reals (`{"real"}`). */
export function encodePosition(position: SnapshotPosition): unknown {
  if (typeof position === 'number') return position;
  return position.map((value) => {
    if (typeof value === 'bigint') return { int: value.toString() };
    if (value instanceof Uint8Array) return { blob: Buffer.from(value).toString('base64') };
    if (typeof value === 'number' && !Number.isFinite(value)) return { real: String(value) };
    return value;
  });
}

/** Parses `after` as encodePosition wrote it, for a table of `shape`; throws one line when it is not such a position. */
export function decodePosition(text: string, shape: { withoutRowid: boolean; keyColumns: number }): SnapshotPosition {
  const bad = (why: string) => new Error(`after must be the "next" of the previous page (${why}), got ${JSON.stringify(text).slice(0, 60)}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw bad('not JSON');
  }
  if (!shape.withoutRowid) {
    if (typeof parsed !== 'number' || !Number.isInteger(parsed)) throw bad('a rowid: an integer');
    return parsed;
  }
  if (!Array.isArray(parsed) || parsed.length !== shape.keyColumns) throw bad(`the table's ${shape.keyColumns} key values as a JSON array`);
  return parsed.map((value: unknown) => {
    if (value === null || typeof value === 'string' || typeof value === 'number') return value;
    const keys = typeof value === 'object' ? Object.keys(value) : [];
    const field = keys.length === 1 ? (value as Record<string, unknown>)[keys[0]] : undefined;
    if (typeof field === 'string') {
      if (keys[0] === 'int' && /^-?[0-9]{1,20}$/.test(field)) return BigInt(field);
      if (keys[0] === 'blob') return Buffer.from(field, 'base64');
      if (keys[0] === 'real' && (field === 'Infinity' || field === '-Infinity')) return Number(field);
    }
    throw bad('a key value: a string, a number, null, {"int"}, {"blob"} or {"real"}');
  });
}

/**
 * The edge's client of the endpoint: one page of `table`'s rows after the position `after` (as the origin gave it,
 * passed back untouched), rebuilt byte for byte as the origin framed them. A busy origin gives `{retryMs}`; a failed
 * request rejects.
 */
export async function fetchSnapshotPage(originUrl: string, table: string, after: SnapshotPosition | undefined, limit: number, eventName?: string, timeoutMs = 10000, token?: string): Promise<SnapshotResult> {
  const params: Record<string, string> = { table, ...(after === undefined ? {} : { after: JSON.stringify(after) }), limit: String(limit) };
  const answer = await fetchFromOrigin(originUrl, 'snapshot', params, timeoutMs, token);
  if ('retryMs' in answer) return answer;
  const { url, response } = answer;
  if (!response.ok) {
    const text = (await response.text()).split('\n')[0].slice(0, 200);
    throw new Error(`origin ${url.origin} answered ${response.status} to ${url.pathname}?table=${table}${text ? `: ${text}` : ''}`);
  }
  const body = (await response.json()) as WirePage;
  const events = body.events.map((row) => new EncodedEvent(body.seq, 'snapshot', JSON.parse(row.d), row.d, eventName));
  return { events, next: body.next === null ? undefined : (body.next as SnapshotPosition), seq: body.seq };
}

/** Reads snapshot pages of the origin: the `snapshotPages` hook of RedisStreamSource. */
export type OriginSnapshot = (table: string, after: SnapshotPosition | undefined, maxRows: number) => Promise<SnapshotResult>;

/** The `snapshotPages` hook served by the origin at `originUrl`; `token`: the shared `--token`, as for `/history`. */
export function originSnapshot(originUrl: string, eventName?: string, token?: string): OriginSnapshot {
  return (table, after, maxRows) => fetchSnapshotPage(originUrl, table, after, maxRows, eventName, undefined, token);
}
