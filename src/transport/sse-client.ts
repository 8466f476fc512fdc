import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Client, CloseReason, ControlFields, ControlName, TransportCounters } from '../hub/client.js';
import type { EventBatch } from '../hub/encoded-event.js';
import { httpChunk } from './http-chunk.js';
import { encodeComment, encodeControl } from './sse-frame.js';

const HEARTBEAT = encodeComment('heartbeat');
const HEARTBEAT_CHUNK = httpChunk(HEARTBEAT);
const CATCH_UP_LIMIT = encodeComment('catch-up limit reached: reconnect with Last-Event-ID to continue');

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

/** What bytes are written to and backpressure read from: an HTTP/1 socket, or the HTTP/2 stream of a response. */
interface Outgoing {
  readonly writableLength: number;
  readonly writableNeedDrain: boolean;
  write(data: Buffer): boolean;
  once(event: 'drain', listener: () => void): unknown;
}

/**
 * One SSE connection, never awaited. Over HTTP/1.x, once the headers are out, frames go straight to the socket:
 * a batch is chunk-framed once and that same Buffer is every client's single write. Over HTTP/2 they go through
 * the response (HTTP/2 frames each stream itself).
 */
export class SseClient implements Client {
  readonly lagPolicy = 'park';
  private readonly response: ServerResponse;
  private readonly counters: TransportCounters;
  private outgoing: Outgoing | undefined;
  /** HTTP/1.x: the socket frames are written to directly, once the headers are out. */
  private socket: Socket | undefined;
  /** The HTTP/1.1 body is chunked (HTTP/1.0 bodies simply end when the connection closes). */
  private chunked = false;
  private ended = false;
  closeReason: CloseReason | undefined;

  constructor(response: ServerResponse, counters: TransportCounters) {
    this.response = response;
    this.counters = counters;
  }

  /** Sends the headers and the `retry:` line at once, so the client sees the stream is open before any row. */
  open(request: IncomingMessage, retryFrame: Buffer): void {
    this.response.writeHead(200, streamHeaders(request));
    const http2Stream = (this.response as unknown as { stream?: Outgoing }).stream;
    if (http2Stream) {
      this.outgoing = http2Stream;
      this.response.write(retryFrame);
      return;
    }
    const socket = request.socket as Socket;
    socket.setNoDelay(true);
    this.chunked = this.response.chunkedEncoding;
    this.response.flushHeaders();
    this.outgoing = socket;
    this.socket = socket;
    this.writeFrame(retryFrame);
  }

  /** Writes a frame; `chunk`, when given, is the same frame already framed as an HTTP/1.1 chunk. */
  private writeFrame(frame: Buffer, chunk?: Buffer): void {
    if (!this.socket) this.response.write(frame);
    else if (!this.chunked) this.socket.write(frame);
    else this.socket.write(chunk ?? httpChunk(frame));
  }

  send(batch: EventBatch): void {
    if (this.ended) return;
    const frames = batch.sse;
    // The batch's chunk is framed once for all clients; only HTTP/1.1 clients ask for it.
    this.writeFrame(frames, this.socket && this.chunked ? batch.sseChunk : undefined);
    this.counters.frames += batch.events.length;
    this.counters.bytes += frames.length;
  }

  sendControl(name: ControlName, fields: ControlFields): void {
    if (this.ended) return;
    this.writeFrame(encodeControl(name, fields));
  }

  sendHeartbeat(): void {
    if (!this.ended) this.writeFrame(HEARTBEAT, HEARTBEAT_CHUNK);
  }

  get bufferedBytes(): number {
    return this.outgoing?.writableLength ?? 0;
  }

  whenDrained(callback: () => void): void {
    if (this.outgoing?.writableNeedDrain) this.outgoing.once('drain', callback);
    else setImmediate(callback);
  }

  close(reason: CloseReason): void {
    if (this.ended) return;
    this.ended = true;
    this.closeReason = reason;
    // A client that stopped reading cannot take the stream's last chunk: cut it off instead of queueing more.
    if (reason === 'too-slow') {
      this.response.destroy();
      return;
    }
    if (reason === 'catch-up-limit') this.writeFrame(CATCH_UP_LIMIT);
    // Writes the terminating chunk of a chunked body; the connection may then serve another request.
    this.response.end();
  }

  /** The peer went away first. */
  markGone(): void {
    if (this.ended) return;
    this.ended = true;
    this.closeReason = 'client-left';
  }
}
