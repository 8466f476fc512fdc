import type { IncomingMessage } from 'node:http';
import { presentedToken, type AccessControl, type Area } from '../access/access.js';
import type { Connections } from './connections.js';
import { FetchClient } from '../transport/fetch-client.js';
import type { Metrics } from './metrics.js';
import type { Streams } from '../streams.js';
import type { Subscriptions } from './subscriptions.js';
import { encodeRetry } from '../transport/sse-frame.js';

export interface FetchAppOptions {
  access: AccessControl;
  streams: Streams;
  subscriptions: Subscriptions;
  connections: Connections;
  metrics: Metrics;
  metricsEnabled: boolean;
  retryMs: number;
  /** The stream's queue asks for this many bytes ahead of its reader. */
  clientBufferBytes: number;
  onError: (error: Error) => void;
}

type Route = 'events' | 'healthz' | 'metrics';

const ALLOW = 'GET, HEAD';
const STREAM_HEADERS = {
  'Content-Type': 'text/event-stream; charset=utf-8',
  'Cache-Control': 'no-cache, no-transform',
  'X-Accel-Buffering': 'no',
};

function text(status: number, body: string, headers: Record<string, string> = {}): Response {
  return new Response(body + '\n', { status, headers: { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff', ...headers } });
}

/**
 * AccessControl reads only a request's headers: a Fetch request's headers in the shape of node's, so the token and
 * CORS rules are the very same code for every transport.
 */
function headerView(request: Request): IncomingMessage {
  return { headers: Object.fromEntries(request.headers) } as unknown as IncomingMessage;
}

/**
 * The stream's routes for the Fetch API: `/events` as a web stream, `/healthz`, `/metrics` when enabled. The same
 * rules as HttpApp (cursor, token, CORS, limits), answered with `Response`s. The page is not served here.
 */
export class FetchApp {
  private readonly options: FetchAppOptions;
  private readonly retryFrame: Buffer;
  private readonly startedAt = Date.now();

  constructor(options: FetchAppOptions) {
    this.options = options;
    this.retryFrame = encodeRetry(options.retryMs);
  }

  owns(path: string): boolean {
    return this.find(path) !== undefined;
  }

  private find(path: string): Route | undefined {
    if (path === '/events') return 'events';
    if (path === '/healthz') return 'healthz';
    if (path === '/metrics' && this.options.metricsEnabled) return 'metrics';
    return undefined;
  }

  /** The answer to a request for `path`, or undefined when the path is not one of ours. */
  async handle(request: Request, path: string, ip: string): Promise<Response | undefined> {
    const route = this.find(path);
    if (!route) return undefined;
    try {
      return await this.route(request, route, ip);
    } catch (error) {
      this.options.onError(error as Error);
      return text(500, 'internal error');
    }
  }

  private async route(request: Request, route: Route, ip: string): Promise<Response> {
    const { access } = this.options;
    const view = headerView(request);
    if (request.method === 'OPTIONS' && access.corsEnabled) {
      const preflight = access.preflightHeaders(view);
      if (preflight) return new Response(null, { status: 204, headers: { ...preflight, Allow: ALLOW } });
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') return text(405, `method ${request.method} not allowed: use GET or HEAD`, { Allow: ALLOW });
    const cors = access.corsHeaders(view);
    const query = new URL(request.url).searchParams;
    if (!access.authorized(view, query, route as Area)) {
      if (route === 'events') this.options.connections.refused('sse', ip, 'unauthorized');
      return text(401, 'a valid token is required: send Authorization: Bearer TOKEN, the sse_token cookie, or ?token=TOKEN', {
        ...cors,
        'WWW-Authenticate': 'Bearer realm="sqlite-sse"',
      });
    }
    if (route === 'healthz') {
      const body = JSON.stringify({ ...this.options.streams.stats(), uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000) });
      return new Response(request.method === 'HEAD' ? null : body + '\n', { headers: { ...cors, 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' } });
    }
    if (route === 'metrics') {
      const { contentType, body } = await this.options.metrics.render();
      return new Response(request.method === 'HEAD' ? null : body, { headers: { ...cors, 'Content-Type': contentType, 'Cache-Control': 'no-store' } });
    }
    return this.events(request, view, query, ip, cors);
  }

  private async events(request: Request, view: IncomingMessage, query: URLSearchParams, ip: string, cors: Record<string, string>): Promise<Response> {
    const { subscriptions, connections, metrics } = this.options;
    const accepted = await subscriptions.resolve({ lastEventId: request.headers.get('last-event-id') ?? undefined, query, token: presentedToken(view, query) });
    if (!accepted.ok) {
      connections.refused('sse', ip, accepted.reason);
      return text(accepted.status, accepted.message, { ...cors, ...accepted.headers });
    }
    const cursor = accepted.cursor;
    const refusal = connections.admit('sse', ip);
    if (refusal) return text(refusal.status, refusal.message, { ...cors, 'Retry-After': String(refusal.retryAfterSeconds) });
    const headers = { ...cors, ...STREAM_HEADERS };
    if (request.method === 'HEAD') return new Response(null, { headers });
    const connection = connections.opened('sse', ip, cursor);
    const signal = request.signal;
    const onAbort = () => client.markGone();
    const client = new FetchClient(this.retryFrame, this.options.clientBufferBytes, metrics.transports.sse, (ended) => {
      signal.removeEventListener('abort', onAbort);
      subscriptions.detach(ended, accepted);
      connections.closed(connection, ended.closeReason ?? 'client-left');
    });
    signal.addEventListener('abort', onAbort, { once: true });
    subscriptions.attach(client, accepted);
    if (signal.aborted) client.markGone();
    return new Response(client.stream, { headers });
  }
}
