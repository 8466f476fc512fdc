import { httpChunk } from '../transport/http-chunk.js';
import { rowToJson } from './row-json.js';
import { encodeEvent } from '../transport/sse-frame.js';

/**
 * What an event carries: a new row of the insert stream, a change of the change stream, or a row of a snapshot
 * (sent without `id:`, so a client cut off in the middle of a snapshot starts it over).
 */
export type EventKind = 'row' | 'change' | 'snapshot';

/**
 * An event serialized once, when its source reads it: its JSON and its SSE frame.
 * The ring keeps it and every client is written the same Buffer. `value` is what the JSON was made from, kept for
 * the checks that look at an event's fields (filters) without parsing the JSON again.
 */
export class EncodedEvent {
  readonly id: number;
  readonly kind: EventKind;
  readonly value: Readonly<Record<string, unknown>>;
  readonly json: string;
  readonly sse: Buffer;
  /** Frames of other transports (WebSocket), built on first use: once per event, not once per client. */
  private otherFrames: Map<string, Buffer> | undefined;

  constructor(id: number, kind: EventKind, value: Readonly<Record<string, unknown>>, json: string, eventName: string | undefined) {
    this.id = id;
    this.kind = kind;
    this.value = value;
    this.json = json;
    this.sse = encodeEvent(kind === 'snapshot' ? undefined : String(id), eventName, json);
  }

  /** A new row of the insert stream: every column by name. */
  static row(id: number, row: Readonly<Record<string, unknown>>, eventName: string | undefined): EncodedEvent {
    return new EncodedEvent(id, 'row', row, rowToJson(row), eventName);
  }

  /** This event's frame for the transport `key`, built by `build` the first time any client needs it. */
  frame(key: string, build: (event: EncodedEvent) => Buffer): Buffer {
    const frames = (this.otherFrames ??= new Map());
    let frame = frames.get(key);
    if (frame === undefined) {
      frame = build(this);
      frames.set(key, frame);
    }
    return frame;
  }

  /** Approximate memory held: the frame, the JSON text, and about as much again for `value`. */
  get bytes(): number {
    return this.sse.length + 2 * this.json.length;
  }
}

/** Events written together: one wake-up's worth for every live client, or one catch-up step for one client. */
export class EventBatch {
  readonly events: readonly EncodedEvent[];
  private joinedSse: Buffer | undefined;
  private chunkedSse: Buffer | undefined;
  private joinedOther: Map<string, Buffer> | undefined;

  constructor(events: readonly EncodedEvent[]) {
    this.events = events;
  }

  get firstId(): number {
    return this.events[0].id;
  }

  get lastId(): number {
    return this.events[this.events.length - 1].id;
  }

  /** All SSE frames as one Buffer, joined once per batch, so each client costs one write. */
  get sse(): Buffer {
    this.joinedSse ??= this.events.length === 1 ? this.events[0].sse : Buffer.concat(this.events.map((event) => event.sse));
    return this.joinedSse;
  }

  /** The SSE frames as one HTTP/1.1 chunk, framed once per batch for every HTTP/1.1 client. */
  get sseChunk(): Buffer {
    this.chunkedSse ??= httpChunk(this.sse);
    return this.chunkedSse;
  }

  /** All frames of the transport `key` as one Buffer, joined once per batch. */
  joined(key: string, build: (event: EncodedEvent) => Buffer): Buffer {
    this.joinedOther ??= new Map();
    let joined = this.joinedOther.get(key);
    if (joined === undefined) {
      joined = this.events.length === 1 ? this.events[0].frame(key, build) : Buffer.concat(this.events.map((event) => event.frame(key, build)));
      this.joinedOther.set(key, joined);
    }
    return joined;
  }

  /** The events after `cursor`: for a client whose cursor lies inside this batch. */
  after(cursor: number): EventBatch {
    return new EventBatch(this.events.filter((event) => event.id > cursor));
  }
}
