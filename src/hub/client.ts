import type { EventBatch } from './encoded-event.js';

/** Why a client's stream ended: logged, counted, and for WebSocket sent as the close reason. */
export type CloseReason = 'client-left' | 'too-slow' | 'catch-up-limit' | 'bad-cursor' | 'shutdown' | 'token-expired';

/** What one transport wrote, summed over its clients; read by /metrics. */
export interface TransportCounters {
  frames: number;
  bytes: number;
}

/** The control events of the stream, beside the data events. */
export type ControlName = 'reset' | 'snapshot-end' | 'token-expired';

/**
 * A control event's fields: `id` (when present) is the cursor the client continues from; the others are sent as
 * they are. SSE: `id: ID`, `event: NAME`, the fields without `id` as one line of JSON data; WebSocket:
 * `{"type":"NAME","id":ID,...fields}`.
 */
export interface ControlFields {
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
  /** A control event: a reset (the cursor is ahead of the store, or its history is gone), the end of a snapshot, ... */
  sendControl(name: ControlName, fields: ControlFields): void;
  /** Keep idle connections and proxies alive. */
  sendHeartbeat(): void;
  /** Bytes written but not yet taken by the peer. */
  readonly bufferedBytes: number;
  /** Call `callback` once, as soon as the client can take more (at once if it already can). */
  whenDrained(callback: () => void): void;
  /** End the stream; the transport then calls `Hub.detach`. Idempotent. */
  close(reason: CloseReason): void;
}
