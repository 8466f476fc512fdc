import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { AccessControl } from './access/access.js';
import { Connections } from './http/connections.js';
import { ErrorCodes, SseError } from './errors.js';
import { FetchApp } from './http/fetch-app.js';
import { HttpApp, sendText, splitTarget } from './http/http-app.js';
import { Hub } from './hub/hub.js';
import { resolveLibraryOptions, type SqliteSseOptions } from './library-options.js';
import { createLogger, type Logger } from './logger.js';
import { Metrics } from './http/metrics.js';
import type { ServerOptions } from './options.js';
import { StaticFiles } from './http/static-files.js';
import { Streams } from './streams.js';
import { Subscriptions } from './http/subscriptions.js';
import { createTokenVerifier } from './access/token-verifier.js';
import { checkRowFilterTargets, parseRowFilters } from './access/row-filter.js';
import { refuse, WsEndpoint } from './transport/ws-endpoint.js';

/** The public folder shipped with the package (dist/src/ -> public/). */
export const DEFAULT_PUBLIC_DIR = fileURLToPath(new URL('../../public/', import.meta.url));

/** How the CLI's server and the library's factory differ when they build an instance. */
export interface CreateContext {
  logger: Logger;
  /** Serve the page and its scripts at `/`. */
  page: boolean;
  /** Plain `npm start`: create `./sse.db` as the demo when it is missing. */
  createDemo?: boolean;
}

/** The figures of `/healthz`: the hub's and the source's. */
export type SqliteSseStats = ReturnType<Hub['stats']>;

/**
 * One stream over one table: the hub over its source, with the HTTP, WebSocket and Fetch front doors that the CLI's
 * server and every framework adapter share. Nothing is global: instances over different databases coexist.
 */
export class SqliteSse {
  /** The resolved options, frozen. */
  readonly options: Readonly<ServerOptions>;
  /** Every hub this instance serves (one per table, or the change stream's), built once from the options. */
  readonly streams: Streams;
  private readonly subscriptions: Subscriptions;
  private readonly http: HttpApp;
  private readonly ws: WsEndpoint;
  private readonly fetchApp: FetchApp;
  private closing: Promise<void> | undefined;

  private constructor(options: Readonly<ServerOptions>, streams: Streams, subscriptions: Subscriptions, http: HttpApp, ws: WsEndpoint, fetchApp: FetchApp) {
    this.options = options;
    this.streams = streams;
    this.subscriptions = subscriptions;
    this.http = http;
    this.ws = ws;
    this.fetchApp = fetchApp;
  }

  /** The hub `/events` serves without `?table=`. */
  get hub(): Hub {
    return this.streams.first.hub;
  }

  /**
   * Open the database (or, on an edge, the Redis stream), start the hubs over their sources. The one place that
   * builds hubs from options, for the CLI and the library alike. Rejects with an SseError whose one-line message says
   * what is wrong and what to do.
   */
  static async create(options: Readonly<ServerOptions>, context: CreateContext): Promise<SqliteSse> {
    const { logger } = context;
    let staticFiles: StaticFiles | undefined;
    if (context.page) {
      try {
        staticFiles = new StaticFiles(options.publicDir ?? DEFAULT_PUBLIC_DIR);
      } catch (error) {
        throw new SseError(ErrorCodes.BAD_OPTION, `cannot read the page folder ${options.publicDir ?? DEFAULT_PUBLIC_DIR}: ${(error as Error).message} (see --public)`);
      }
    }
    const tokens = createTokenVerifier(options);
    const rowFilters = parseRowFilters(options.rowFilters);
    const streams = await Streams.open(options, logger, context.createDemo ?? false);
    try {
      if (!streams.edge) checkRowFilterTargets(rowFilters, Object.fromEntries(streams.tableNames().map((table) => [table, (streams.schema(table)?.columns ?? []).map((column) => column.name)])));
      if (tokens) {
        logger.info(`signed tokens: ${tokens.description}`);
        const warning = await tokens.warmUp();
        if (warning) logger.warn(warning);
      }
      const metrics = new Metrics(streams.hubs, options.metrics);
      const connections = new Connections(options, metrics, logger);
      // With signed tokens, the streams are guarded by them; a shared --token still guards the other areas.
      const access = new AccessControl(tokens ? { ...options, protect: new Set([...options.protect].filter((area) => area !== 'events' && area !== 'ws')) } : options);
      const subscriptions = new Subscriptions(streams, tokens, rowFilters, options.event);
      const onError = (error: Error) => logger.warn(`request failed: ${error.message}`);
      const shared = { access, streams, subscriptions, connections, metrics, metricsEnabled: options.metrics, retryMs: options.retryMs, onError };
      const http = new HttpApp({ ...shared, staticFiles, historyEnabled: options.redis !== undefined });
      const fetchApp = new FetchApp({ ...shared, clientBufferBytes: options.clientBufferBytes });
      return new SqliteSse(options, streams, subscriptions, http, new WsEndpoint({ access, subscriptions, connections, metrics }), fetchApp);
    } catch (error) {
      await streams.close();
      throw error;
    }
  }

  /**
   * Answer a `node:http` or `node:http2` request when its path is one of the stream's (`/events`, `/healthz`,
   * `/metrics` when enabled, the page when enabled) and return true; return false, writing nothing, otherwise.
   */
  handleRequest(request: IncomingMessage | Http2ServerRequest, response: ServerResponse | Http2ServerResponse): boolean {
    const req = request as IncomingMessage;
    const res = response as ServerResponse;
    if (this.closing) {
      if (!this.http.owns(splitTarget(req.url).path)) return false;
      sendText(req, res, 503, 'the stream is closed');
      return true;
    }
    return this.http.handle(req, res);
  }

  /**
   * Take an `upgrade` request for `/ws` (the stream over WebSocket) and return true; return false, touching nothing,
   * for any other path.
   */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    if (this.closing) {
      if (splitTarget(request.url).path !== '/ws') return false;
      refuse(socket as Socket, 503, 'the stream is closed');
      return true;
    }
    return this.ws.handleUpgrade(request, socket as Socket, head);
  }

  /**
   * Answer a Fetch API request (the URL's path relative to where the stream is mounted), streaming `/events` as a web
   * `ReadableStream`; undefined when the path is not one of the stream's. `ip` counts against `maxClientsPerIp`.
   */
  async handleFetch(request: Request, ip?: string): Promise<Response | undefined> {
    const path = new URL(request.url).pathname;
    if (this.closing) return this.fetchApp.owns(path) ? new Response('the stream is closed\n', { status: 503 }) : undefined;
    return this.fetchApp.handle(request, path, ip ?? 'unknown');
  }

  /** The figures `/healthz` shows: `ok`, `clients`, `lastId`, the ring's and the database's. */
  stats(): SqliteSseStats {
    return this.streams.stats();
  }

  /**
   * End every stream, stop the watcher and the heartbeat, close the database. Idempotent: every call returns the same
   * promise. Afterwards nothing of this instance keeps the process alive; its paths answer 503.
   */
  close(): Promise<void> {
    this.closing ??= (this.subscriptions.close(), this.streams.close());
    return this.closing;
  }
}

/**
 * Create a stream over a SQLite table for embedding in your own server. Takes the CLI's options in camelCase with the
 * CLI's defaults; an unknown option is an error. Resolves once the database is open and watched; rejects with the
 * CLI's one-line `SseError`s.
 */
export async function createSqliteSse(options: SqliteSseOptions = {}): Promise<SqliteSse> {
  return validateThenCreate(options)();
}

/**
 * Validate options now (a typo throws at once, where the adapter is called) and return the function that opens the
 * database. The adapters, whose factories are synchronous, use it.
 */
export function validateThenCreate(options: SqliteSseOptions): () => Promise<SqliteSse> {
  const { options: resolved, extras } = resolveLibraryOptions(options);
  return () => SqliteSse.create(resolved, { logger: extras.logger ?? createLogger(resolved.logLevel, resolved.logFormat), page: extras.page });
}
