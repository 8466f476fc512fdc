import { existsSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import { createSecureServer, type Http2SecureServer, type Http2Session } from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { AccessControl } from './access.js';
import { Connections } from './connections.js';
import { createDemoTable } from './demo-database.js';
import { ErrorCodes, SseError } from './errors.js';
import { HttpApp } from './http-app.js';
import { Hub } from './hub.js';
import type { Logger } from './logger.js';
import { Metrics } from './metrics.js';
import type { ServerOptions } from './options.js';
import { StaticFiles } from './static-files.js';
import { TableSource } from './table-source.js';
import { WsEndpoint } from './ws-endpoint.js';

/** The public folder shipped with the package (dist/src/ -> public/). */
export const DEFAULT_PUBLIC_DIR = fileURLToPath(new URL('../../public/', import.meta.url));

/** A running server: one http.Server, one hub over the table's source. */
export class SseServer {
  readonly options: Readonly<ServerOptions>;
  readonly hub: Hub;
  readonly source: TableSource;
  private readonly http: Server | Http2SecureServer;
  private readonly sockets = new Set<Socket>();
  private readonly sessions = new Set<Http2Session>();
  private closing: Promise<void> | undefined;

  private constructor(options: Readonly<ServerOptions>, hub: Hub, source: TableSource, http: Server | Http2SecureServer) {
    this.options = options;
    this.hub = hub;
    this.source = source;
    this.http = http;
    http.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    http.on('session', (session: Http2Session) => {
      this.sessions.add(session);
      session.once('close', () => this.sessions.delete(session));
    });
  }

  /**
   * Open the database, start the hub over its source, listen. Rejects with an SseError whose one-line message says what
   * is wrong and what to do. `createDemo`: create `./sse.db` as the demo when it is missing (plain `npm start`).
   */
  static async start(options: Readonly<ServerOptions>, logger: Logger, createDemo = false): Promise<SseServer> {
    if (options.create || (createDemo && !existsSync(options.db))) {
      const created = createDemoTable(options.db, options.table);
      if (created !== 'nothing') logger.info(`created ${created === 'database' ? 'database ' + options.db + ' with ' : ''}table ${options.table}(id, message)`);
    }
    let staticFiles: StaticFiles;
    try {
      staticFiles = new StaticFiles(options.publicDir ?? DEFAULT_PUBLIC_DIR);
    } catch (error) {
      throw new SseError(ErrorCodes.BAD_OPTION, `cannot read the page folder ${options.publicDir ?? DEFAULT_PUBLIC_DIR}: ${(error as Error).message} (see --public)`);
    }
    const source = new TableSource({ ...options, path: options.db });
    const hub = new Hub(source, options);
    hub.on('warning', (message) => logger.warn(message));
    await hub.start();
    try {
      const metrics = new Metrics(hub, options.metrics);
      const connections = new Connections(options, metrics, logger);
      const access = new AccessControl(options);
      const app = new HttpApp({
        access,
        hub,
        connections,
        metrics,
        metricsEnabled: options.metrics,
        staticFiles,
        retryMs: options.retryMs,
        onError: (error) => logger.warn(`request failed: ${error.message}`),
      });
      const http = createHttpServer(options, app.handle as RequestListener);
      // A malformed request gets a plain 400 (a slow one 408) and its socket closed; nothing is logged with a stack.
      http.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
        const status = error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
        if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
        else socket.destroy();
      });
      http.on('upgrade', new WsEndpoint({ access, hub, connections, metrics }).handleUpgrade);
      const server = new SseServer(options, hub, source, http);
      await listen(http, options.port, options.host);
      return server;
    } catch (error) {
      await hub.close();
      throw error;
    }
  }

  get port(): number {
    return (this.http.address() as AddressInfo).port;
  }

  get url(): string {
    const host = this.options.host.includes(':') ? `[${this.options.host}]` : this.options.host;
    return `${this.options.tlsCert ? 'https' : 'http'}://${host}:${this.port}`;
  }

  /** Stop accepting, end every stream cleanly, close the database. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
    await this.hub.close();
    if ('closeIdleConnections' in this.http) this.http.closeIdleConnections();
    for (const session of this.sessions) session.close();
    // Streams were ended; a peer that does not take its last bytes is not allowed to hold the exit.
    const force = setTimeout(() => {
      for (const socket of this.sockets) socket.destroy();
    }, 500);
    await closed;
    // Fix (found by test/logs.test.ts): http.close() does not wait for upgraded (WebSocket) sockets, so the CLI exited
    // before their close handshake ended and their 'close' handlers never ran (no "closed ws stream" line, no metric).
    // Wait for every socket (the force timer above still ends this within 500 ms), then one turn: ws emits its
    // 'close' a tick after the socket's.
    await Promise.all([...this.sockets].map((socket) => new Promise((resolve) => socket.once('close', resolve))));
    clearTimeout(force);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/**
 * Plain HTTP/1.1, or with a certificate HTTP/2 over TLS with HTTP/1.1 on the same port (ALPN picks), so every tab of
 * a browser shares one connection. The request handler is the same: http2's compatibility API mirrors http's.
 */
function createHttpServer(options: Readonly<ServerOptions>, handle: RequestListener<typeof IncomingMessage, typeof ServerResponse>): Server | Http2SecureServer {
  // Slow-loris defence: a client gets 10 s to send its headers; checked every second.
  if (!options.tlsCert || !options.tlsKey) {
    return createServer({ noDelay: true, headersTimeout: 10000, requestTimeout: 30000, connectionsCheckingInterval: 1000 }, handle);
  }
  const read = (flag: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw new SseError(ErrorCodes.BAD_OPTION, `cannot read --${flag} ${path}: ${(error as Error).message}`);
    }
  };
  const cert = read('tls-cert', options.tlsCert);
  const key = read('tls-key', options.tlsKey);
  try {
    return createSecureServer({ cert, key, allowHTTP1: true }, handle as never);
  } catch (error) {
    throw new SseError(ErrorCodes.BAD_OPTION, `--tls-cert/--tls-key are not a usable PEM certificate and key: ${(error as Error).message}`);
  }
}

function listen(http: Server | Http2SecureServer, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      http.off('listening', onListening);
      if (error.code === 'EADDRINUSE') {
        reject(new SseError(ErrorCodes.PORT_IN_USE, `port ${port} on ${host} is in use: stop the other server or pass --port N (0 picks a free port)`));
      } else {
        reject(new SseError(ErrorCodes.LISTEN_FAILED, `cannot listen on ${host}:${port}: ${error.message}`));
      }
    };
    const onListening = () => {
      http.off('error', onError);
      resolve();
    };
    http.once('error', onError);
    http.once('listening', onListening);
    http.listen(port, host);
  });
}
