/** Opens a stream of either transport: `/ws...` paths speak WebSocket, everything else SSE. */
import { SseConnection, type ConnectionTarget, type StreamCallbacks, type StreamConnection, type Tally } from './sse-connection.js';
import { WsConnection } from './ws-connection.js';

export function isWebSocketPath(path: string): boolean {
  return path === '/ws' || path.startsWith('/ws?');
}

export function openStream(target: ConnectionTarget, cursor: number, tally: Tally, callbacks: StreamCallbacks<StreamConnection> = {}): StreamConnection {
  return isWebSocketPath(target.path) ? new WsConnection(target, cursor, tally, callbacks) : new SseConnection(target, cursor, tally, callbacks);
}
