import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Broadcaster } from './broadcaster.js';
import { requestCursor } from './cursor.js';
import { SseError } from './errors.js';
import { WsClient, WsCloseCodes } from './ws-client.js';

/** A close reason may hold at most 123 bytes. */
function closeText(message: string): string {
  let text = message;
  while (Buffer.byteLength(text) > 123) text = text.slice(0, -1);
  return text;
}

function ignore(): void {}

/**
 * `GET /ws`: the same stream over WebSocket, upgraded on the one HTTP server (ws in `noServer` mode).
 * The cursor comes from the `Last-Event-ID` header or `?lastEventId=`, exactly as for `/events`.
 */
export class WsEndpoint {
  private readonly server = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 4096, clientTracking: false });
  private readonly broadcaster: Broadcaster;

  constructor(broadcaster: Broadcaster) {
    this.broadcaster = broadcaster;
  }

  /** Takes an `upgrade` request for `/ws`; answers anything else with 404 and closes it. */
  readonly handleUpgrade = (request: IncomingMessage, socket: Socket, head: Buffer): void => {
    socket.on('error', ignore);
    const url = request.url ?? '/';
    const queryAt = url.indexOf('?');
    const path = queryAt === -1 ? url : url.slice(0, queryAt);
    if (path !== '/ws' || request.method !== 'GET') {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    let cursor: number | undefined;
    let badCursor: string | undefined;
    try {
      cursor = requestCursor(request.headers['last-event-id'], new URLSearchParams(queryAt === -1 ? '' : url.slice(queryAt + 1)));
    } catch (error) {
      if (!(error instanceof SseError)) throw error;
      badCursor = error.message;
    }
    this.server.handleUpgrade(request, socket, head, (ws: WebSocket) => {
      ws.on('error', ignore);
      if (badCursor !== undefined) {
        ws.close(WsCloseCodes.BAD_CURSOR, closeText(badCursor));
        return;
      }
      const client = new WsClient(ws, socket);
      const broadcaster = this.broadcaster;
      // Messages from clients are not part of the protocol; they are read and dropped.
      ws.on('message', ignore);
      ws.once('close', () => {
        client.markGone();
        broadcaster.detach(client);
      });
      broadcaster.attach(client, cursor);
    });
  };
}
