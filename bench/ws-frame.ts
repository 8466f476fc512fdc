/**
 * WebSocket framing (RFC 6455, section 5) for the bench's raw-socket clients: an incremental parser of the frames a
 * server sends (unmasked; bytes may be split anywhere, lengths of 7, 16 or 64 bits, fragmented messages, control
 * frames between fragments) and the builder of the masked frames a client must send (pong, close).
 */
import { createHash, randomBytes } from 'node:crypto';

export const Opcodes = { CONTINUATION: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa } as const;

export interface WsFrameHandlers {
  /** A whole text or binary message (fragments joined). */
  onMessage(payload: Buffer, binary: boolean): void;
  onPing?(payload: Buffer): void;
  onPong?(payload: Buffer): void;
  /** A close frame: its code (1005 when it has none) and reason. */
  onClose?(code: number, reason: string): void;
  /** A protocol violation; the parser stops. */
  onError(message: string): void;
}

/** The most one message may hold before the parser gives up (a server bug, not a real row). */
const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

export class WsFrameParser {
  private readonly handlers: WsFrameHandlers;
  /** Bytes not yet parsed: an unfinished header or payload. */
  private pending: Buffer | undefined;
  /** Fragments of an unfinished message. */
  private fragments: Buffer[] = [];
  private fragmentsBytes = 0;
  private fragmentedBinary = false;
  private failed = false;

  constructor(handlers: WsFrameHandlers) {
    this.handlers = handlers;
  }

  feed(chunk: Buffer): void {
    if (this.failed) return;
    let buffer = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = undefined;
    let position = 0;
    while (!this.failed) {
      const available = buffer.length - position;
      if (available < 2) break;
      const first = buffer[position];
      const second = buffer[position + 1];
      let length = second & 0x7f;
      let header = 2;
      if (length === 126) {
        if (available < 4) break;
        length = buffer.readUInt16BE(position + 2);
        header = 4;
      } else if (length === 127) {
        if (available < 10) break;
        const high = buffer.readUInt32BE(position + 2);
        if (high > 0x1fffff) return this.fail('64-bit length beyond 2^53');
        length = high * 2 ** 32 + buffer.readUInt32BE(position + 6);
        header = 10;
      }
      const masked = (second & 0x80) !== 0;
      if (masked) header += 4;
      if (length > MAX_MESSAGE_BYTES) return this.fail(`frame of ${length} bytes`);
      if (available < header + length) break;
      let payload = buffer.subarray(position + header, position + header + length);
      if (masked) payload = unmask(payload, buffer.subarray(position + header - 4, position + header));
      position += header + length;
      this.frame((first & 0x80) !== 0, first & 0x0f, (first & 0x70) !== 0, payload);
    }
    // Keep only the unfinished frame (a copy: the socket's chunk may be reused by the caller).
    if (position < buffer.length && !this.failed) this.pending = Buffer.from(buffer.subarray(position));
    buffer = Buffer.alloc(0);
  }

  private frame(fin: boolean, opcode: number, rsv: boolean, payload: Buffer): void {
    if (rsv) return this.fail('RSV bits set without an extension');
    switch (opcode) {
      case Opcodes.TEXT:
      case Opcodes.BINARY:
        if (this.fragments.length) return this.fail('a new message inside a fragmented one');
        if (fin) this.handlers.onMessage(payload, opcode === Opcodes.BINARY);
        else {
          this.fragments.push(Buffer.from(payload));
          this.fragmentsBytes = payload.length;
          this.fragmentedBinary = opcode === Opcodes.BINARY;
        }
        return;
      case Opcodes.CONTINUATION:
        if (!this.fragments.length) return this.fail('a continuation without a message');
        this.fragmentsBytes += payload.length;
        if (this.fragmentsBytes > MAX_MESSAGE_BYTES) return this.fail('message too large');
        this.fragments.push(Buffer.from(payload));
        if (fin) {
          const message = Buffer.concat(this.fragments);
          this.fragments = [];
          this.fragmentsBytes = 0;
          this.handlers.onMessage(message, this.fragmentedBinary);
        }
        return;
      case Opcodes.PING:
      case Opcodes.PONG:
      case Opcodes.CLOSE:
        if (!fin || payload.length > 125) return this.fail('a fragmented or oversized control frame');
        if (opcode === Opcodes.PING) this.handlers.onPing?.(Buffer.from(payload));
        else if (opcode === Opcodes.PONG) this.handlers.onPong?.(Buffer.from(payload));
        else this.handlers.onClose?.(payload.length >= 2 ? payload.readUInt16BE(0) : 1005, payload.subarray(2).toString('utf8'));
        return;
      default:
        return this.fail(`unknown opcode ${opcode}`);
    }
  }

  private fail(message: string): void {
    this.failed = true;
    this.pending = undefined;
    this.fragments = [];
    this.handlers.onError(message);
  }
}

function unmask(payload: Buffer, mask: Buffer): Buffer {
  const out = Buffer.allocUnsafe(payload.length);
  for (let i = 0; i < payload.length; i++) out[i] = payload[i] ^ mask[i & 3];
  return out;
}

/**
 * One frame as a client must send it: FIN set, masked with a random key (RFC 6455 5.3). `mask: false` builds the
 * unmasked frame a server sends (used by the tests to play the server).
 */
export function encodeFrame(opcode: number, payload: Buffer = Buffer.alloc(0), options: { mask?: boolean; fin?: boolean } = {}): Buffer {
  const mask = options.mask ?? true;
  const length = payload.length;
  const lengthBytes = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const header = Buffer.alloc(2 + lengthBytes + (mask ? 4 : 0));
  header[0] = ((options.fin ?? true) ? 0x80 : 0) | opcode;
  header[1] = (mask ? 0x80 : 0) | (lengthBytes === 0 ? length : lengthBytes === 2 ? 126 : 127);
  if (lengthBytes === 2) header.writeUInt16BE(length, 2);
  else if (lengthBytes === 8) {
    header.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
    header.writeUInt32BE(length >>> 0, 6);
  }
  if (!mask) return Buffer.concat([header, payload]);
  const key = randomBytes(4);
  key.copy(header, header.length - 4);
  return Buffer.concat([header, unmask(payload, key)]);
}

/** A close frame's payload: the code, then the reason. */
export function closePayload(code: number, reason = ''): Buffer {
  const payload = Buffer.alloc(2 + Buffer.byteLength(reason));
  payload.writeUInt16BE(code, 0);
  payload.write(reason, 2, 'utf8');
  return payload;
}

/** A fresh `Sec-WebSocket-Key` and the `Sec-WebSocket-Accept` the server must answer with. */
export function handshakeKey(): { key: string; accept: string } {
  const key = randomBytes(16).toString('base64');
  return { key, accept: acceptFor(key) };
}

export function acceptFor(key: string): string {
  return createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
}
