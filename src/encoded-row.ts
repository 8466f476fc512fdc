import { httpChunk } from './http-chunk.js';
import { rowToJson } from './row-json.js';
import { encodeEvent } from './sse-frame.js';
import type { Row } from './table-reader.js';

/**
 * A row serialized once, when it is read: its JSON and its SSE frame.
 * The ring keeps it and every client is written the same Buffer.
 */
export class EncodedRow {
  readonly id: number;
  readonly json: string;
  readonly sse: Buffer;
  /** Frames of other transports (WebSocket), built on first use: once per row, not once per client. */
  private otherFrames: Map<string, Buffer> | undefined;

  constructor(id: number, row: Row, eventName: string | undefined) {
    this.id = id;
    this.json = rowToJson(row);
    this.sse = encodeEvent(String(id), eventName, this.json);
  }

  /** This row's frame for the transport `key`, built by `build` the first time any client needs it. */
  frame(key: string, build: (row: EncodedRow) => Buffer): Buffer {
    const frames = (this.otherFrames ??= new Map());
    let frame = frames.get(key);
    if (frame === undefined) {
      frame = build(this);
      frames.set(key, frame);
    }
    return frame;
  }

  /** Approximate memory held: the frame plus the JSON text. */
  get bytes(): number {
    return this.sse.length + this.json.length;
  }
}

/** Rows written together: one wake-up's worth for every live client, or one catch-up step for one client. */
export class RowBatch {
  readonly rows: readonly EncodedRow[];
  private joinedSse: Buffer | undefined;
  private chunkedSse: Buffer | undefined;
  private joinedOther: Map<string, Buffer> | undefined;

  constructor(rows: readonly EncodedRow[]) {
    this.rows = rows;
  }

  get firstId(): number {
    return this.rows[0].id;
  }

  get lastId(): number {
    return this.rows[this.rows.length - 1].id;
  }

  /** All SSE frames as one Buffer, joined once per batch, so each client costs one write. */
  get sse(): Buffer {
    this.joinedSse ??= this.rows.length === 1 ? this.rows[0].sse : Buffer.concat(this.rows.map((row) => row.sse));
    return this.joinedSse;
  }

  /** The SSE frames as one HTTP/1.1 chunk, framed once per batch for every HTTP/1.1 client. */
  get sseChunk(): Buffer {
    this.chunkedSse ??= httpChunk(this.sse);
    return this.chunkedSse;
  }

  /** All frames of the transport `key` as one Buffer, joined once per batch. */
  joined(key: string, build: (row: EncodedRow) => Buffer): Buffer {
    this.joinedOther ??= new Map();
    let joined = this.joinedOther.get(key);
    if (joined === undefined) {
      joined = this.rows.length === 1 ? this.rows[0].frame(key, build) : Buffer.concat(this.rows.map((row) => row.frame(key, build)));
      this.joinedOther.set(key, joined);
    }
    return joined;
  }

  /** The rows after `cursor`: for a client whose cursor lies inside this batch. */
  after(cursor: number): RowBatch {
    return new RowBatch(this.rows.filter((row) => row.id > cursor));
  }
}
