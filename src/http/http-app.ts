import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AccessControl, Area } from '../access/access.js';
import { presentedToken } from '../access/access.js';
import type { Connections } from './connections.js';
import { serveHistory } from './history-endpoint.js';
import { serveSnapshot } from './snapshot-endpoint.js';
import type { Metrics } from './metrics.js';
import type { Streams } from '../streams.js';
import type { Subscriptions } from './subscriptions.js';
import { SseClient, streamHeaders } from '../transport/sse-client.js';
import { encodeRetry } from '../transport/sse-frame.js';
import type { StaticFile, StaticFiles } from './static-files.js';

export interface HttpAppOptions {
  access: AccessControl;
  streams: Streams;
  subscriptions: Subscriptions;
  /**
   * Serve `GET /history` (an origin publishing to Redis: edges read history older than their stream there), and on a
   * change stream `GET /snapshot` (edges read the tables' rows there).
   */
  historyEnabled: boolean;
  connections: Connections;
  metrics: Metrics;
  /** Serve `/metrics`. */
  metricsEnabled: boolean;
  /** The page and its scripts at `/`; undefined: not served (the library's default). */
  staticFiles: StaticFiles | undefined;
  retryMs: number;
  /** Called for an unexpected error, which the client only sees as a 500. */
  onError: (error: Error) => void;
}

const ALLOW = 'GET, HEAD';
/** The page and scripts are our own files: no inline script, nothing from elsewhere. */
const PAGE_HEADERS = {
  'Content-Security-Policy': "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
};

type Route = { kind: 'events' } | { kind: 'healthz' } | { kind: 'history' } | { kind: 'snapshot' } | { kind: 'metrics' } | { kind: 'file'; file: StaticFile };

/** `/history` and `/snapshot` hand out every row: guarded as `/metrics` is (`--token`), for the internal network. */
const AREA_OF: Record<Route['kind'], Area> = { events: 'events', healthz: 'healthz', history: 'metrics', snapshot: 'metrics', metrics: 'metrics', file: 'page' };

/** The address a stream is counted against for the per-address limit. */
export function clientAddress(request: IncomingMessage): string {
  return request.socket?.remoteAddress ?? 'unknown';
}

/** Splits a request target into its path and query, without normalising the path. */
export function splitTarget(url: string | undefined): { path: string; query: URLSearchParams } {
  const target = url ?? '/';
  const queryAt = target.indexOf('?');
  return {
    path: queryAt === -1 ? target : target.slice(0, queryAt),
    query: new URLSearchParams(queryAt === -1 ? '' : target.slice(queryAt + 1)),
  };
}

/**
 * Routes a request: `/events`, `/healthz`, `/metrics`, the public folder, with 405 for another method on those.
 * Any other path is not its own: `handle` returns false and leaves the response untouched, so a host app goes on.
 */
export class HttpApp {
  private readonly options: HttpAppOptions;
  private readonly retryFrame: Buffer;
  private readonly startedAt = Date.now();

  constructor(options: HttpAppOptions) {
    this.options = options;
    this.retryFrame = encodeRetry(options.retryMs);
  }

  /** Answers `request` when its path is one of ours and returns true; returns false (and writes nothing) otherwise. */
  readonly handle = (request: IncomingMessage, response: ServerResponse): boolean => {
    const { path, query } = splitTarget(request.url);
    const route = this.find(path);
    if (!route) return false;
    try {
      this.route(request, response, route, query);
    } catch (error) {
      this.options.onError(error as Error);
      if (!response.headersSent) sendText(request, response, 500, 'internal error');
      else response.destroy();
    }
    return true;
  };

  /** Whether a request path is one this app answers. */
  owns(path: string): boolean {
    return this.find(path) !== undefined;
  }

  private find(path: string): Route | undefined {
    if (path === '/events') return { kind: 'events' };
    if (path === '/healthz') return { kind: 'healthz' };
    if (path === '/history' && this.options.historyEnabled) return { kind: 'history' };
    if (path === '/snapshot' && this.options.historyEnabled && this.options.streams.changeSource) return { kind: 'snapshot' };
    if (path === '/metrics' && this.options.metricsEnabled) return { kind: 'metrics' };
    const file = this.options.staticFiles?.lookup(path);
    return file ? { kind: 'file', file } : undefined;
  }

  private route(request: IncomingMessage, response: ServerResponse, route: Route, query: URLSearchParams): void {
    const { access } = this.options;
    if (request.method === 'OPTIONS' && access.corsEnabled) {
      const preflight = access.preflightHeaders(request);
      if (preflight) {
        response.writeHead(204, { ...preflight, Allow: ALLOW });
        response.end();
        return;
      }
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.setHeader('Allow', ALLOW);
      sendText(request, response, 405, `method ${request.method} not allowed: use GET or HEAD`);
      return;
    }
    for (const [name, value] of Object.entries(access.corsHeaders(request))) response.setHeader(name, value);
    if (!access.authorized(request, query, AREA_OF[route.kind])) {
      if (route.kind === 'events') this.options.connections.refused('sse', clientAddress(request), 'unauthorized');
      response.setHeader('WWW-Authenticate', 'Bearer realm="sqlite-sse"');
      sendText(request, response, 401, 'a valid token is required: send Authorization: Bearer TOKEN, the sse_token cookie, or ?token=TOKEN');
      return;
    }
    switch (route.kind) {
      case 'events':
        return void this.events(request, response, query).catch((error: Error) => {
          this.options.onError(error);
          if (!response.headersSent) sendText(request, response, 500, 'internal error');
          else response.destroy();
        });
      case 'healthz':
        return this.health(request, response);
      case 'history': {
        const hub = this.options.streams.first.hub;
        return void serveHistory(request, response, hub.source, { lastId: () => hub.lastId });
      }
      case 'snapshot': {
        const { streams } = this.options;
        const changes = streams.changeSource!;
        return void serveSnapshot(request, response, streams.first.hub.source, {
          findTable: (name) => changes.findTable(name),
          keyShape: (table) => {
            const schema = changes.schema(table);
            return { withoutRowid: schema.withoutRowid, keyColumns: schema.keyColumns.length };
          },
        }).catch((error: Error) => {
          this.options.onError(error);
          if (!response.headersSent) sendText(request, response, 500, 'internal error');
          else response.destroy();
        });
      }
      case 'metrics':
        return void this.metrics(request, response);
      case 'file':
        return void this.file(request, response, route.file);
    }
  }

  private async events(request: IncomingMessage, response: ServerResponse, query: URLSearchParams): Promise<void> {
    const { subscriptions, connections, metrics } = this.options;
    const ip = clientAddress(request);
    const lastEventId = request.headers['last-event-id'];
    const accepted = await subscriptions.resolve({
      lastEventId: Array.isArray(lastEventId) ? lastEventId[0] : lastEventId,
      query,
      token: presentedToken(request, query),
    });
    if (response.destroyed) return;
    if (!accepted.ok) {
      connections.refused('sse', ip, accepted.reason);
      // Any non-200 status makes EventSource give up, which is right for a request that can never work.
      for (const [name, value] of Object.entries(accepted.headers ?? {})) response.setHeader(name, value);
      sendText(request, response, accepted.status, accepted.message);
      return;
    }
    const cursor = accepted.cursor;
    const refusal = connections.admit('sse', ip);
    if (refusal) {
      response.setHeader('Retry-After', String(refusal.retryAfterSeconds));
      sendText(request, response, refusal.status, refusal.message);
      return;
    }
    if (request.method === 'HEAD') {
      response.writeHead(200, streamHeaders(request));
      response.end();
      return;
    }
    const client = new SseClient(response, metrics.transports.sse);
    client.open(request, this.retryFrame);
    const connection = connections.opened('sse', ip, cursor);
    response.on('error', ignore);
    response.on('close', () => {
      client.markGone();
      subscriptions.detach(client, accepted);
      connections.closed(connection, client.closeReason ?? 'client-left');
    });
    subscriptions.attach(client, accepted);
  }

  private health(request: IncomingMessage, response: ServerResponse): void {
    const stats = this.options.streams.stats();
    const body = JSON.stringify({ ...stats, uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000) });
    response.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' });
    response.end(request.method === 'HEAD' ? undefined : body + '\n');
  }

  private async metrics(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const { contentType, body } = await this.options.metrics.render();
    response.writeHead(200, { 'Content-Type': contentType, 'Cache-Control': 'no-store' });
    response.end(request.method === 'HEAD' ? undefined : body);
  }

  private async file(request: IncomingMessage, response: ServerResponse, file: StaticFile): Promise<void> {
    let body: Buffer;
    try {
      body = await this.options.staticFiles!.read(file);
    } catch {
      sendText(request, response, 404, 'not found');
      return;
    }
    response.writeHead(200, { 'Content-Type': file.contentType, 'Content-Length': body.length, 'Cache-Control': 'no-cache', ...PAGE_HEADERS });
    response.end(request.method === 'HEAD' ? undefined : body);
  }
}

function ignore(): void {}

/** A one-line plain-text answer. */
export function sendText(request: IncomingMessage, response: ServerResponse, status: number, text: string): void {
  const body = text + '\n';
  response.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body), 'X-Content-Type-Options': 'nosniff' });
  response.end(request.method === 'HEAD' ? undefined : body);
}
