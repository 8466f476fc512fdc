import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Broadcaster } from './broadcaster.js';
import { requestCursor } from './cursor.js';
import { SseError } from './errors.js';
import { SseClient } from './sse-client.js';
import { encodeRetry } from './sse-frame.js';
import type { StaticFiles } from './static-files.js';

export interface HttpAppOptions {
  broadcaster: Broadcaster;
  staticFiles: StaticFiles;
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

/** Routes every request: `/events`, `/healthz`, the public folder; 404 and 405 otherwise. */
export class HttpApp {
  private readonly options: HttpAppOptions;
  private readonly retryFrame: Buffer;
  private readonly startedAt = Date.now();

  constructor(options: HttpAppOptions) {
    this.options = options;
    this.retryFrame = encodeRetry(options.retryMs);
  }

  readonly handle = (request: IncomingMessage, response: ServerResponse): void => {
    try {
      this.route(request, response);
    } catch (error) {
      this.options.onError(error as Error);
      if (!response.headersSent) sendText(request, response, 500, 'internal error');
      else response.destroy();
    }
  };

  private route(request: IncomingMessage, response: ServerResponse): void {
    const url = request.url ?? '/';
    const queryAt = url.indexOf('?');
    const path = queryAt === -1 ? url : url.slice(0, queryAt);
    const query = new URLSearchParams(queryAt === -1 ? '' : url.slice(queryAt + 1));
    const staticFile = path === '/events' || path === '/healthz' ? undefined : this.options.staticFiles.lookup(path);
    if (path !== '/events' && path !== '/healthz' && !staticFile) {
      sendText(request, response, 404, 'not found');
      return;
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.setHeader('Allow', ALLOW);
      sendText(request, response, 405, `method ${request.method} not allowed: use GET or HEAD`);
      return;
    }
    if (path === '/events') this.events(request, response, query);
    else if (path === '/healthz') this.health(request, response);
    else void this.file(request, response, staticFile!);
  }

  private events(request: IncomingMessage, response: ServerResponse, query: URLSearchParams): void {
    let cursor: number | undefined;
    try {
      cursor = requestCursor(request.headers['last-event-id'], query);
    } catch (error) {
      if (!(error instanceof SseError)) throw error;
      // Any non-200 status makes EventSource give up, which is right for a cursor that can never work.
      sendText(request, response, 400, error.message);
      return;
    }
    const client = new SseClient(response);
    client.open(request, this.retryFrame);
    if (request.method === 'HEAD') {
      response.end();
      return;
    }
    const broadcaster = this.options.broadcaster;
    response.on('error', ignore);
    response.on('close', () => {
      client.markGone();
      broadcaster.detach(client);
    });
    broadcaster.attach(client, cursor);
  }

  private health(request: IncomingMessage, response: ServerResponse): void {
    const stats = this.options.broadcaster.stats();
    const body = JSON.stringify({ ok: stats.database === 'ok', ...stats, uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000) });
    response.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' });
    response.end(request.method === 'HEAD' ? undefined : body + '\n');
  }

  private async file(request: IncomingMessage, response: ServerResponse, file: { path: string; contentType: string }): Promise<void> {
    let body: Buffer;
    try {
      body = await this.options.staticFiles.read(file);
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
