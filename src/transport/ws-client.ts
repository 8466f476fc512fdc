import type { Socket } from 'node:net';
import * as wsModule from 'ws';
import type { WebSocket } from 'ws';
import type { Client, CloseReason, ControlFields, ControlName, TransportCounters } from '../hub/client.js';
import type { EncodedEvent, EventBatch } from '../hub/encoded-event.js';

/** WebSocket close codes sqlite-sse uses (listed in the README). */
export const WsCloseCodes = {
  /** The server is shutting down: reconnect later with your cursor. */
  SHUTDOWN: 1001,
  /** The cursor (`lastEventId`) is not a decimal integer from 0 to 2^53-1. */
  BAD_CURSOR: 4400,
  /** The client fell more than `--client-buffer` behind: reconnect with `lastEventId` and lose nothing. */
  TOO_SLOW: 4429,
  /** The client was served `--max-catchup-rows` from the database: reconnect with `lastEventId` to go on. */
  CATCH_UP_LIMIT: 4413,
  /** The signed token expired: reconnect with a fresh token and `lastEventId`, losing nothing. */
  TOKEN_EXPIRED: 4401,
} as const;

const CLOSE_CODES: Record<CloseReason, number> = {
  'client-left': 1000,
  shutdown: WsCloseCodes.SHUTDOWN,
  'bad-cursor': WsCloseCodes.BAD_CURSOR,
  'too-slow': WsCloseCodes.TOO_SLOW,
  'catch-up-limit': WsCloseCodes.CATCH_UP_LIMIT,
  'token-expired': WsCloseCodes.TOKEN_EXPIRED,
};

const CLOSE_TEXT: Record<CloseReason, string> = {
  'client-left': 'bye',
  shutdown: 'server shutting down',
  'bad-cursor': 'bad cursor',
  'too-slow': 'too slow: reconnect with lastEventId',
  'catch-up-limit': 'catch-up limit: reconnect with lastEventId',
  'token-expired': 'token expired: reconnect with a fresh token and lastEventId',
};

/** `ws` exports its frame builder, but its type definitions omit it. */
const { Sender } = wsModule as unknown as { Sender: { frame(data: Buffer, options: object): Buffer[] } };

const FRAME_KEY = 'ws';
const TEXT_FRAME = { fin: true, opcode: 0x01, mask: false, readOnly: true, rsv1: false };

/**
 * An event's WebSocket message, framed once and shared by every client: `{"type":"row","id":N,"row":{...}}` for a
 * row of the insert stream, `{"type":"change","id":N,"change":{...}}` for a change, and for a snapshot row
 * `{"type":"change","change":{"op":"snapshot",...}}` without an id (the `snapshot-end` message carries it).
 */
function eventFrame(event: EncodedEvent): Buffer {
  const text =
    event.kind === 'snapshot' ? `{"type":"change","change":${event.json}}` : `{"type":"${event.kind}","id":${event.id},"${event.kind}":${event.json}}`;
  const message = Buffer.from(text, 'utf8');
  return Buffer.concat(Sender.frame(message, TEXT_FRAME));
}

const kClient = Symbol('sqlite-sse client');
type TaggedSocket = WebSocket & { [kClient]?: WsClient };

/** A pong proves the peer is alive. Module-level, so no closure per connection. */
function onPong(this: TaggedSocket): void {
  const client = this[kClient];
  if (client) client.alive = true;
}

/**
 * One WebSocket connection. Row frames are built once per row and written straight to the socket, which is safe
 * because permessage-deflate is off: `ws` then writes its own frames (pings, close) synchronously and in order too.
 */
export class WsClient implements Client {
  readonly lagPolicy = 'close';
  alive = true;
  closeReason: CloseReason | undefined;
  private readonly ws: TaggedSocket;
  private readonly socket: Socket;
  private readonly counters: TransportCounters;

  constructor(ws: WebSocket, socket: Socket, counters: TransportCounters) {
    this.counters = counters;
    this.ws = ws as TaggedSocket;
    this.ws[kClient] = this;
    this.socket = socket;
    socket.setNoDelay(true);
    ws.on('pong', onPong);
  }

  private get open(): boolean {
    return this.closeReason === undefined && this.ws.readyState === 1;
  }

  send(batch: EventBatch): void {
    if (!this.open) return;
    const frames = batch.joined(FRAME_KEY, eventFrame);
    this.socket.write(frames);
    this.counters.frames += batch.events.length;
    this.counters.bytes += frames.length;
  }

  sendControl(name: ControlName, fields: ControlFields): void {
    if (this.open) this.ws.send(JSON.stringify({ type: name, id: fields.id, ...fields }));
  }

  /** Ping from the shared heartbeat timer; a peer that did not answer the previous ping is dead. */
  sendHeartbeat(): void {
    if (!this.open) return;
    if (!this.alive) {
      this.closeReason = 'client-left';
      this.ws.terminate();
      return;
    }
    this.alive = false;
    this.ws.ping();
  }

  get bufferedBytes(): number {
    return this.ws.bufferedAmount;
  }

  whenDrained(callback: () => void): void {
    if (this.socket.writableNeedDrain) this.socket.once('drain', callback);
    else setImmediate(callback);
  }

  close(reason: CloseReason): void {
    if (this.closeReason !== undefined) return;
    this.closeReason = reason;
    if (this.ws.readyState === 1 || this.ws.readyState === 0) this.ws.close(CLOSE_CODES[reason], CLOSE_TEXT[reason]);
  }

  /** The peer went away first. */
  markGone(): void {
    this.closeReason ??= 'client-left';
  }
}
