import type { RowBatch } from './encoded-row.js';

/** Why a client's stream ended: logged, counted, and for WebSocket sent as the close reason. */
export type CloseReason = 'client-left' | 'too-slow' | 'catch-up-limit' | 'bad-cursor' | 'shutdown';

/** What one transport wrote, summed over its clients; read by /metrics. */
export interface TransportCounters {
  frames: number;
  bytes: number;
}

/**
 * The seam between the broadcaster and a transport (SSE, WebSocket).
 * The broadcaster never knows the protocol: it hands every client the same batch and each writes its own frame.
 */
export interface Client {
  /**
   * What happens when the client lags more than its budget: `park` (leave the live set, be caught up from the ring
   * or the database once it drains) or `close` (it reconnects with its cursor and loses nothing).
   */
  readonly lagPolicy: 'park' | 'close';
  /** Write rows. Must not block or await; the broadcaster reads `bufferedBytes` afterwards. */
  send(batch: RowBatch): void;
  /** The client's cursor is ahead of the table (the database was replaced): it moves back to `lastId`. */
  sendReset(lastId: number, requested: number): void;
  /** Keep idle connections and proxies alive. */
  sendHeartbeat(): void;
  /** Bytes written but not yet taken by the peer. */
  readonly bufferedBytes: number;
  /** Call `callback` once, as soon as the client can take more (at once if it already can). */
  whenDrained(callback: () => void): void;
  /** End the stream; the transport then calls `Broadcaster.detach`. Idempotent. */
  close(reason: CloseReason): void;
}
