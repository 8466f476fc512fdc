import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import { createSecureServer, type Http2SecureServer, type Http2Session } from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import { ErrorCodes, SseError } from '../errors.js';
import { sendText } from '../http/http-app.js';
import type { Hub } from '../hub/hub.js';
import type { Logger } from '../logger.js';
import type { ServerOptions } from '../options.js';
import { SqliteSse } from '../sqlite-sse.js';
import type { Streams } from '../streams.js';
import { refuse } from '../transport/ws-endpoint.js';

export { DEFAULT_PUBLIC_DIR } from '../sqlite-sse.js';

function ignore(): void {}

/** The CLI's server: one http.Server (or HTTP/2 over TLS) in front of one SqliteSse instance, which it owns. */
export class SseServer {
  readonly options: Readonly<ServerOptions>;
  readonly live: SqliteSse;
  private readonly http: Server | Http2SecureServer;
  private readonly sockets = new Set<Socket>();
  private readonly sessions = new Set<Http2Session>();
  private closing: Promise<void> | undefined;

  private constructor(live: SqliteSse, http: Server | Http2SecureServer) {
    this.options = live.options;
    this.live = live;
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

  get hub(): Hub {
    return this.live.hub;
  }

  /** Every hub served, for the start-up line and the shutdown count. */
  get streams(): Streams {
    return this.live.streams;
  }

  /**
   * Open the database, start the stream, listen. Rejects with an SseError whose one-line message says what is wrong
   * and what to do. `createDemo`: create `./sse.db` as the demo when it is missing (plain `npm start`).
   */
  static async start(options: Readonly<ServerOptions>, logger: Logger, createDemo = false): Promise<SseServer> {
    const live = await SqliteSse.create(options, { logger, page: true, createDemo });
    try {
      // Everything that is not the stream's is 404: the CLI serves nothing else.
      const handle = (request: IncomingMessage, response: ServerResponse) => {
        if (!live.handleRequest(request, response)) sendText(request, response, 404, 'not found');
      };
      const http = createHttpServer(options, handle);
      // A malformed request gets a plain 400 (a slow one 408) and its socket closed; nothing is logged with a stack.
      http.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
        const status = error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
        if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
        else socket.destroy();
      });
      http.on('upgrade', (request: IncomingMessage, socket: Socket, head: Buffer) => {
        if (live.handleUpgrade(request, socket, head)) return;
        socket.on('error', ignore);
        refuse(socket, 404, 'not found');
      });
      const server = new SseServer(live, http);
      await listen(http, options.port, options.host);
      return server;
    } catch (error) {
      await live.close();
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
    await this.live.close();
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
