import type { SqliteSseOptions } from '../library-options.js';
import type { SqliteSse } from '../sqlite-sse.js';
import { adapterInstance } from './instance.js';

/** A Fetch API handler over one stream. */
export interface FetchHandler {
  (request: Request, env?: unknown): Promise<Response>;
  /** Resolves with the instance once the database is open and watched; rejects with its one-line SseError. */
  readonly ready: Promise<SqliteSse>;
  /** Ends the streams and closes the database when the handler created the instance; idempotent. */
  close(): Promise<void>;
}

export interface FetchHandlerOptions {
  /**
   * A path prefix to strip when the router passes the request unchanged (Hono's `mount()` strips it itself).
   * Default: none.
   */
  prefix?: string;
}

/** `@hono/node-server` passes `{ incoming }` as the env: the client's address, for `maxClientsPerIp`. */
function remoteAddress(env: unknown): string | undefined {
  const incoming = (env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined)?.incoming;
  return incoming?.socket?.remoteAddress;
}

const notFound = () => new Response('not found\n', { status: 404, headers: { 'Content-Type': 'text/plain; charset=utf-8' } });

/**
 * A `(request: Request) => Promise<Response>` handler for Hono and other Fetch API routers: `/events` streams as a web
 * `ReadableStream` (backpressure from its queue, ended when `request.signal` aborts), `/healthz`, `/metrics` when
 * enabled; 404 for any other path. Takes options (validated at once) or an existing instance.
 */
export function createFetchHandler(optionsOrInstance: SqliteSseOptions | SqliteSse, handlerOptions: FetchHandlerOptions = {}): FetchHandler {
  const instance = adapterInstance(optionsOrInstance);
  const prefix = (handlerOptions.prefix ?? '').replace(/\/+$/, '');
  const handler = async (request: Request, env?: unknown): Promise<Response> => {
    const live = instance.current() ?? (await instance.ready);
    let routed = request;
    if (prefix) {
      const url = new URL(request.url);
      if (!url.pathname.startsWith(prefix + '/')) return notFound();
      url.pathname = url.pathname.slice(prefix.length);
      routed = new Request(url, request);
    }
    return (await live.handleFetch(routed, remoteAddress(env))) ?? notFound();
  };
  return Object.assign(handler, { ready: instance.ready, close: instance.close });
}

export default createFetchHandler;
