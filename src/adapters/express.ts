import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SqliteSseOptions } from '../library-options.js';
import type { SqliteSse } from '../sqlite-sse.js';
import { adapterInstance } from './instance.js';

/** Connect/Express middleware over one stream (no import of Express: it only needs node's request and response). */
export interface SqliteSseMiddleware {
  (request: IncomingMessage, response: ServerResponse, next: (error?: unknown) => void): void;
  /** Resolves with the instance once the database is open and watched; rejects with its one-line SseError. */
  readonly ready: Promise<SqliteSse>;
  /** Ends the streams and closes the database when the middleware created the instance; idempotent. */
  close(): Promise<void>;
}

/**
 * Middleware for `app.use('/live', sqliteSse({ db }))`: answers `/events`, `/healthz` (and `/metrics`, the page when
 * enabled) under the mount path and calls `next()` for anything else. Takes options (validated at once: a typo throws
 * here) or an existing instance.
 */
export function sqliteSse(optionsOrInstance: SqliteSseOptions | SqliteSse): SqliteSseMiddleware {
  const instance = adapterInstance(optionsOrInstance);
  const middleware = (request: IncomingMessage, response: ServerResponse, next: (error?: unknown) => void): void => {
    // Express has already made `request.url` relative to the mount path.
    const live = instance.current();
    if (live) {
      if (!live.handleRequest(request, response)) next();
      return;
    }
    instance.ready.then((opened) => {
      if (!opened.handleRequest(request, response)) next();
    }, next);
  };
  return Object.assign(middleware, { ready: instance.ready, close: instance.close });
}

export default sqliteSse;
