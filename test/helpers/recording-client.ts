import type { Client, CloseReason, ControlFields, ControlName } from '../../src/hub/client.js';
import type { EventBatch } from '../../src/hub/encoded-event.js';
import { encodeControl } from '../../src/transport/sse-frame.js';

/** A hub client that keeps every SSE byte it is sent, as an SseClient would write them, and never lags. */
export class RecordingClient implements Client {
  readonly lagPolicy = 'park';
  readonly bufferedBytes = 0;
  private readonly chunks: Buffer[] = [];
  readonly ids: number[] = [];
  readonly batches: EventBatch[] = [];
  readonly resets: ControlFields[] = [];
  readonly controls: [ControlName, ControlFields][] = [];
  closedWith: CloseReason | undefined;

  send(batch: EventBatch): void {
    this.batches.push(batch);
    this.chunks.push(batch.sse);
    for (const event of batch.events) this.ids.push(event.id);
  }

  sendControl(name: ControlName, fields: ControlFields): void {
    this.controls.push([name, fields]);
    if (name === 'reset') this.resets.push(fields);
    this.chunks.push(encodeControl(name, fields));
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
