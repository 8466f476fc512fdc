import type { EventBatch } from './encoded-event.js';

/** Why a client's stream ended: logged, counted, and for WebSocket sent as the close reason. */
export type CloseReason = 'client-left' | 'too-slow' | 'catch-up-limit' | 'bad-cursor' | 'shutdown';

/** What one transport wrote, summed over its clients; read by /metrics. */
export interface TransportCounters {
  frames: number;
  bytes: number;
}

/**
 * A `reset` control event: `reason` says why, `id` (when present) is the cursor the client continues from, the other
 * fields are sent as they are. SSE: `id: ID`, `event: reset`, the fields without `id` as data; WebSocket:
 * `{"type":"reset","id":ID,...}`.
 */
export interface ResetInfo {
  reason: string;
  id?: number;
  [field: string]: unknown;
}

/**
 * The seam between the hub and a transport (SSE, WebSocket).
 * The hub never knows the protocol: it hands every client the same batch and each writes its own frame.
 */
export interface Client {
  /**
   * What happens when the client lags more than its budget: `park` (leave the live set, be caught up from the ring
   * or the database once it drains) or `close` (it reconnects with its cursor and loses nothing).
   */
  readonly lagPolicy: 'park' | 'close';
  /** Write events. Must not block or await; the hub reads `bufferedBytes` afterwards. */
  send(batch: EventBatch): void;
  /** The client's place in the stream changed (its cursor is ahead of the store, or its history is gone). */
  sendReset(reset: ResetInfo): void;
  /** Keep idle connections and proxies alive. */
  sendHeartbeat(): void;
  /** Bytes written but not yet taken by the peer. */
  readonly bufferedBytes: number;
  /** Call `callback` once, as soon as the client can take more (at once if it already can). */
  whenDrained(callback: () => void): void;
  /** End the stream; the transport then calls `Hub.detach`. Idempotent. */
  close(reason: CloseReason): void;
}
