import type { IncomingMessage } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { presentedToken, type AccessControl } from '../access/access.js';
import type { Connections } from '../http/connections.js';
import { clientAddress, splitTarget } from '../http/http-app.js';
import type { Subscriptions } from '../http/subscriptions.js';
import type { Metrics } from '../http/metrics.js';
import { WsClient, WsCloseCodes } from './ws-client.js';

/** A close reason may hold at most 123 bytes. */
function closeText(message: string): string {
  let text = message;
  while (Buffer.byteLength(text) > 123) text = text.slice(0, -1);
  return text;
}

/** Answer an upgrade request with a plain HTTP status and close the socket. */
export function refuse(socket: Socket, status: number, message: string, headers: Record<string, string> = {}): void {
  const body = message + '\n';
  const lines = [`HTTP/1.1 ${status} ${STATUS_CODES[status]}`, 'Connection: close', 'Content-Type: text/plain; charset=utf-8', `Content-Length: ${Buffer.byteLength(body)}`];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  socket.end(lines.join('\r\n') + '\r\n\r\n' + body);
}

function ignore(): void {}

export interface WsEndpointOptions {
  access: AccessControl;
  subscriptions: Subscriptions;
  connections: Connections;
  metrics: Metrics;
}

/**
 * `GET /ws`: the same stream over WebSocket, upgraded on the one HTTP server (ws in `noServer` mode).
 * The cursor comes from the `Last-Event-ID` header or `?lastEventId=`, exactly as for `/events`.
 */
export class WsEndpoint {
  private readonly server = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 4096, clientTracking: false });
  private readonly options: WsEndpointOptions;

  constructor(options: WsEndpointOptions) {
    this.options = options;
  }

  /**
   * Takes an `upgrade` request for `/ws` and returns true; returns false, touching nothing, for any other path, so
   * the host's own upgrade handlers can take it.
   */
  readonly handleUpgrade = (request: IncomingMessage, socket: Socket, head: Buffer): boolean => {
    const { path, query } = splitTarget(request.url);
    if (path !== '/ws') return false;
    socket.on('error', ignore);
    if (request.method !== 'GET') {
      refuse(socket, 405, `method ${request.method} not allowed: use GET`, { Allow: 'GET' });
      return true;
    }
    const { access, subscriptions, connections, metrics } = this.options;
    const ip = clientAddress(request);
    if (!access.websocketOriginAllowed(request)) {
      connections.refused('ws', ip, 'origin');
      refuse(socket, 403, 'this origin may not open the stream: see --cors-origin');
      return true;
    }
    if (!access.authorized(request, query, 'ws')) {
      connections.refused('ws', ip, 'unauthorized');
      refuse(socket, 401, 'a valid token is required: send Authorization: Bearer TOKEN, the sse_token cookie, or ?token=TOKEN');
      return true;
    }
    void this.upgrade(request, socket, head, query, ip).catch(() => socket.destroy());
    return true;
  };

  /**
   * Resolves the subscription before the upgrade: every refusal is a plain HTTP answer, except a bad cursor, which
   * is answered after the upgrade with close code 4400 (as it always was, so clients can tell it apart).
   */
  private async upgrade(request: IncomingMessage, socket: Socket, head: Buffer, query: URLSearchParams, ip: string): Promise<void> {
    const { subscriptions, connections, metrics } = this.options;
    const lastEventId = request.headers['last-event-id'];
    const accepted = await subscriptions.resolve({ lastEventId: Array.isArray(lastEventId) ? lastEventId[0] : lastEventId, query, token: presentedToken(request, query) });
    if (socket.destroyed) return;
    const badCursor = !accepted.ok && accepted.reason === 'bad-cursor' ? accepted.message : undefined;
    if (!accepted.ok) {
      connections.refused('ws', ip, accepted.reason);
      if (badCursor === undefined) {
        refuse(socket, accepted.status, accepted.message, accepted.headers);
        return;
      }
    }
    const refusal = accepted.ok ? connections.admit('ws', ip) : undefined;
    if (refusal) {
      refuse(socket, refusal.status, refusal.message, { 'Retry-After': String(refusal.retryAfterSeconds) });
      return;
    }
    this.server.handleUpgrade(request, socket, head, (ws: WebSocket) => {
      ws.on('error', ignore);
      if (!accepted.ok) {
        ws.close(WsCloseCodes.BAD_CURSOR, closeText(badCursor!));
        return;
      }
      const cursor = accepted.cursor;
      const client = new WsClient(ws, socket, metrics.transports.ws);
      const connection = connections.opened('ws', ip, cursor);
      // Messages from clients are not part of the protocol; they are read and dropped.
      ws.on('message', ignore);
      ws.once('close', () => {
        client.markGone();
        subscriptions.detach(client, accepted);
        connections.closed(connection, client.closeReason ?? 'client-left');
      });
      subscriptions.attach(client, accepted);
    });
  }
}
