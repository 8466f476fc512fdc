import type { Client, CloseReason, ResetInfo } from '../../src/client.js';
import type { EventBatch } from '../../src/encoded-event.js';
import { RESET_EVENT } from '../../src/sse-client.js';
import { encodeEvent } from '../../src/sse-frame.js';

/** A hub client that keeps every SSE byte it is sent, as an SseClient would write them, and never lags. */
export class RecordingClient implements Client {
  readonly lagPolicy = 'park';
  readonly bufferedBytes = 0;
  private readonly chunks: Buffer[] = [];
  readonly ids: number[] = [];
  readonly resets: ResetInfo[] = [];
  closedWith: CloseReason | undefined;

  send(batch: EventBatch): void {
    this.chunks.push(batch.sse);
    for (const event of batch.events) this.ids.push(event.id);
  }

  sendReset(reset: ResetInfo): void {
    const { id, ...data } = reset;
    this.resets.push(reset);
    this.chunks.push(encodeEvent(id === undefined ? undefined : String(id), RESET_EVENT, JSON.stringify(data)));
  }

  sendHeartbeat(): void {}

  whenDrained(callback: () => void): void {
    setImmediate(callback);
  }

  close(reason: CloseReason): void {
    this.closedWith ??= reason;
  }

  /** Everything written so far, as one string of SSE text. */
  get text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }

  /** The last id received, or undefined. */
  get lastId(): number | undefined {
    return this.ids[this.ids.length - 1];
  }
}
