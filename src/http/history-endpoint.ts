import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseCursor } from './cursor.js';
import { EncodedEvent, type EventKind } from '../hub/encoded-event.js';
import { fetchFromOrigin, refusedMethod, sendBadRequest, sendBusy } from './origin-endpoint.js';
import type { OlderHistory } from '../redis/redis-stream-source.js';
import type { PageResult, Source } from '../source/source.js';

/**
 * The origin's `GET /history?after=N&upTo=U&limit=M`, for edges whose Redis stream was trimmed past a client's cursor.
 *
 * Answer `200 application/json`: `{"events":[{"id":7,"k":"row","d":"{...}"}],"end":E}` with `after < id <= upTo` in
 * id order; `d` is the event's JSON text exactly as the origin frames it, so an edge writes the origin's bytes; `end`
 * is the cursor to ask from next (`upTo` once the range is exhausted). A page of a range that ends at or below the
 * origin's last id never changes, so with an explicit `upTo` it is cacheable (`public, max-age`); without one it
 * is not (`no-store`). `503` + `Retry-After` while the store is locked; `410` `{"historyGone":oldest}` when it no
 * longer holds the range; `400` for a bad parameter; `405` for a method other than GET or HEAD.
 */
export interface HistoryEndpointOptions {
  /** The origin's highest id (the hub's `lastId`). */
  lastId: () => number;
  /** Most events per page; a larger `limit` is lowered to it. Default 1000. */
  maxLimit?: number;
  /** A page stops after the event that brings it past this many bytes. Default 1 MiB. */
  maxBytes?: number;
  /**
   * How long a page with an explicit `upTo` may be cached. Not forever: a database restored from a backup reuses
   * ids with other rows, and a cached page must not outlive that by much. Default 3600 s.
   */
  maxAgeSeconds?: number;
}

/** One event on the wire between origin and edge. */
interface WireEvent {
  id: number;
  k: EventKind;
  d: string;
}

/** Serves one request of the history endpoint from `source` (the origin's source, the one its hub reads). */
export async function serveHistory(request: IncomingMessage, response: ServerResponse, source: Source, options: HistoryEndpointOptions): Promise<void> {
  if (refusedMethod(request, response)) return;
  const maxLimit = options.maxLimit ?? 1000;
  const query = new URL(request.url ?? '/', 'http://origin').searchParams;
  let after: number;
  let upTo: number;
  let limit: number;
  let explicitEnd: boolean;
  const lastId = options.lastId();
  try {
    after = required(parseCursor(query.get('after'), 'after'), 'after');
    const askedUpTo = parseCursor(query.get('upTo'), 'upTo');
    explicitEnd = askedUpTo !== undefined && askedUpTo <= lastId;
    upTo = Math.min(askedUpTo ?? lastId, lastId);
    limit = Math.min(Math.max(parseCursor(query.get('limit'), 'limit') ?? maxLimit, 1), maxLimit);
  } catch (error) {
    sendBadRequest(response, (error as Error).message);
    return;
  }
  const result: PageResult = after >= upTo ? { events: [], end: Math.max(after, upTo) } : await source.readPage(after, upTo, limit, options.maxBytes ?? 1024 * 1024);
  if ('retryMs' in result) {
    sendBusy(response, result.retryMs);
    return;
  }
  if ('historyGone' in result) {
    sendJson(request, response, 410, 'no-store', JSON.stringify({ historyGone: result.historyGone }));
    return;
  }
  const events = result.events.map((event) => JSON.stringify({ id: event.id, k: event.kind, d: event.json } satisfies WireEvent));
  const body = `{"events":[${events.join(',')}],"end":${result.end}}`;
  sendJson(request, response, 200, explicitEnd ? `public, max-age=${options.maxAgeSeconds ?? 3600}` : 'no-store', body);
}

function required(value: number | undefined, name: string): number {
  if (value === undefined) throw new Error(`${name} is required: a decimal integer from 0 to ${Number.MAX_SAFE_INTEGER}`);
  return value;
}

function sendJson(request: IncomingMessage, response: ServerResponse, status: number, cacheControl: string, body: string): void {
  const bytes = Buffer.from(body);
  response.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': bytes.length, 'Cache-Control': cacheControl });
  response.end(request.method === 'HEAD' ? undefined : bytes);
}

/**
 * The edge's client of the endpoint: one page of events `after < id <= upTo`, rebuilt byte for byte as the origin
 * framed them. A busy origin gives `{retryMs}`; a failed request rejects (the hub asks again).
 */
export async function fetchHistoryPage(originUrl: string, after: number, upTo: number, limit: number, eventName?: string, timeoutMs = 10000, token?: string): Promise<PageResult> {
  const params: Record<string, string> = { after: String(after), ...(Number.isFinite(upTo) ? { upTo: String(upTo) } : {}), limit: String(limit) };
  const answer = await fetchFromOrigin(originUrl, 'history', params, timeoutMs, token);
  if ('retryMs' in answer) return answer;
  const { url, response } = answer;
  if (response.status === 410) return { historyGone: Number(((await response.json()) as { historyGone: number }).historyGone) };
  if (!response.ok) {
    await response.body?.cancel();
    throw new Error(`origin ${url.origin} answered ${response.status} to ${url.pathname}${url.search}`);
  }
  const body = (await response.json()) as { events: WireEvent[]; end: number };
  const events = body.events.map((event) => new EncodedEvent(event.id, event.k, JSON.parse(event.d), event.d, eventName));
  return { events, end: body.end };
}

/**
 * The `olderHistory` hook of RedisStreamSource, served by the origin at `originUrl`. `token`: the shared `--token`,
 * sent as a Bearer token, since the origin guards `/history` with it (with /metrics).
 */
export function originHistory(originUrl: string, eventName?: string, token?: string): OlderHistory {
  return (after, upTo, maxEvents) => fetchHistoryPage(originUrl, after, upTo, maxEvents, eventName, undefined, token);
}
