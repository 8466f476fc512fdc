import type { Client, CloseReason, ControlFields, ControlName, TransportCounters } from '../hub/client.js';
import type { EventBatch } from '../hub/encoded-event.js';
import { encodeComment, encodeControl } from './sse-frame.js';

const HEARTBEAT = encodeComment('heartbeat');
const CATCH_UP_LIMIT = encodeComment('catch-up limit reached: reconnect with Last-Event-ID to continue');

/**
 * Erroring the body is the Fetch API's only way to cut a connection; hosts log the error (@hono/node-server with
 * console.error), so it is one line, not a stack trace, for what is a routine policy.
 */
function tooSlowError(): Error {
  const error = new Error('sqlite-sse: a client that took nothing for too long was cut off; it resumes with Last-Event-ID');
  error.stack = `${error.name}: ${error.message}`;
  return error;
}

/**
 * One SSE connection over the Fetch API: the body of a `Response` is a web `ReadableStream` whose queue is the
 * client's buffer. Bytes count as buffered until the host (a Fetch router, `@hono/node-server`, Deno, Bun) pulls them,
 * and a host pulls only as fast as its peer takes them, so the hub's budget and parking work as over `node:http`.
 */
export class FetchClient implements Client {
  readonly lagPolicy = 'park';
  /** The response body. */
  readonly stream: ReadableStream<Uint8Array>;
  closeReason: CloseReason | undefined;
  private controller!: ReadableStreamDefaultController<Uint8Array>;
  private readonly highWaterMark: number;
  private readonly counters: TransportCounters;
  private readonly onEnd: (client: FetchClient) => void;
  private drainCallbacks: (() => void)[] = [];

  /**
   * `highWaterMark`: bytes the stream asks for ahead of its reader. `onEnd` runs once, when the stream ends for any
   * reason (closed by the hub, cancelled by the host, the request aborted).
   */
  constructor(retryFrame: Buffer, highWaterMark: number, counters: TransportCounters, onEnd: (client: FetchClient) => void) {
    this.highWaterMark = highWaterMark;
    this.counters = counters;
    this.onEnd = onEnd;
    this.stream = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.controller = controller;
          // The `retry:` line at once, so the client sees the stream is open before any row.
          controller.enqueue(retryFrame);
        },
        pull: () => this.drained(),
        cancel: () => this.markGone(),
      },
      new ByteLengthQueuingStrategy({ highWaterMark }),
    );
  }

  private enqueue(frame: Buffer): void {
    if (this.closeReason === undefined) this.controller.enqueue(frame);
  }

  send(batch: EventBatch): void {
    if (this.closeReason !== undefined) return;
    const frames = batch.sse;
    this.controller.enqueue(frames);
    this.counters.frames += batch.events.length;
    this.counters.bytes += frames.length;
  }

  sendControl(name: ControlName, fields: ControlFields): void {
    this.enqueue(encodeControl(name, fields));
  }

  sendHeartbeat(): void {
    this.enqueue(HEARTBEAT);
  }

  /** Bytes queued in the stream and not yet pulled by the host. */
  get bufferedBytes(): number {
    if (this.closeReason !== undefined) return 0;
    return Math.max(0, this.highWaterMark - (this.controller.desiredSize ?? this.highWaterMark));
  }

  whenDrained(callback: () => void): void {
    if (this.closeReason !== undefined || (this.controller.desiredSize ?? 1) > 0) setImmediate(callback);
    else this.drainCallbacks.push(callback);
  }

  /** The host pulled: the queue has room again. */
  private drained(): void {
    const callbacks = this.drainCallbacks;
    if (callbacks.length === 0) return;
    this.drainCallbacks = [];
    for (const callback of callbacks) callback();
  }

  close(reason: CloseReason): void {
    if (this.closeReason !== undefined) return;
    if (reason === 'too-slow') {
      // A client that stopped reading cannot take the stream's end: cut it off instead of queueing more.
      this.end(reason);
      this.controller.error(tooSlowError());
      return;
    }
    if (reason === 'catch-up-limit') this.controller.enqueue(CATCH_UP_LIMIT);
    this.end(reason);
    this.controller.close();
  }

  /** The peer went away first (the host cancelled the body, or the request was aborted). */
  markGone(): void {
    if (this.closeReason !== undefined) return;
    this.end('client-left');
    try {
      this.controller.close();
    } catch {
      // Already cancelled: nothing to close.
    }
  }

  private end(reason: CloseReason): void {
    this.closeReason = reason;
    this.drainCallbacks = [];
    this.onEnd(this);
  }
}
