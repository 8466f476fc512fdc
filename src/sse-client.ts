import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Client, CloseReason, TransportCounters } from './client.js';
import type { RowBatch } from './encoded-row.js';
import { encodeComment, encodeEvent } from './sse-frame.js';

const HEARTBEAT = encodeComment('heartbeat');
const CATCH_UP_LIMIT = encodeComment('catch-up limit reached: reconnect with Last-Event-ID to continue');

/** The SSE event that tells a client its cursor is ahead of the table; its `id:` moves the cursor back. */
export const RESET_EVENT = 'reset';

/** Response headers of the stream (DESIGN.md §2); `Connection` is only valid on HTTP/1.x. */
export function streamHeaders(request: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache, no-transform',
    'X-Accel-Buffering': 'no',
  };
  if (request.httpVersionMajor === 1) headers.Connection = 'keep-alive';
  return headers;
}

/** What backpressure is read from: the HTTP/1 response itself, or the HTTP/2 stream under a compat response. */
interface Outgoing {
  readonly writableLength: number;
  readonly writableNeedDrain: boolean;
  once(event: 'drain', listener: () => void): unknown;
}

/** One SSE connection: writes the broadcaster's shared Buffers to an HTTP response, never awaiting it. */
export class SseClient implements Client {
  readonly lagPolicy = 'park';
  private readonly response: ServerResponse;
  private readonly outgoing: Outgoing;
  private readonly counters: TransportCounters;
  private ended = false;
  closeReason: CloseReason | undefined;

  constructor(response: ServerResponse, counters: TransportCounters) {
    this.response = response;
    this.counters = counters;
    this.outgoing = (response as unknown as { stream?: Outgoing }).stream ?? response;
  }

  /** Sends the headers and the `retry:` line at once, so the client sees the stream is open before any row. */
  open(request: IncomingMessage, retryFrame: Buffer): void {
    if (request.httpVersionMajor === 1) request.socket.setNoDelay(true);
    this.response.writeHead(200, streamHeaders(request));
    this.response.write(retryFrame);
  }

  send(batch: RowBatch): void {
    if (this.ended) return;
    const frames = batch.sse;
    this.response.write(frames);
    this.counters.frames += batch.rows.length;
    this.counters.bytes += frames.length;
  }

  sendReset(lastId: number, requested: number): void {
    if (this.ended) return;
    const data = JSON.stringify({ reason: 'cursor-ahead', lastEventId: requested, lastId });
    this.response.write(encodeEvent(String(lastId), RESET_EVENT, data));
  }

  sendHeartbeat(): void {
    if (!this.ended) this.response.write(HEARTBEAT);
  }

  get bufferedBytes(): number {
    return this.outgoing.writableLength;
  }

  whenDrained(callback: () => void): void {
    if (this.outgoing.writableNeedDrain) this.outgoing.once('drain', callback);
    else setImmediate(callback);
  }

  close(reason: CloseReason): void {
    if (this.ended) return;
    this.ended = true;
    this.closeReason = reason;
    // A client that stopped reading cannot take the stream's last chunk: cut it off instead of queueing more.
    if (reason === 'too-slow') this.response.destroy();
    else this.response.end(reason === 'catch-up-limit' ? CATCH_UP_LIMIT : undefined);
  }

  /** The peer went away first. */
  markGone(): void {
    if (this.ended) return;
    this.ended = true;
    this.closeReason = 'client-left';
  }
}
