/**
 * One WebSocket stream (`GET /ws?lastEventId=N`) over a raw socket, as cheap as `SseConnection`: the HTTP/1.1 upgrade
 * handshake (checking `Sec-WebSocket-Accept`), then the server's frames. Each `{"type":"row","id":N,"row":{...}}`
 * message is checked exactly once and in order and timed from its row's `sent_at`; pings are answered with masked
 * pongs; a close frame is answered and ends the stream.
 */
import { connect, type Socket } from 'node:net';
import { wallMs } from './clock.js';
import { matchingBetween, nextMatching, userIdOfBytes, type RowMatch } from './filter-plan.js';
import { HttpStreamReader } from './http-stream.js';
import { Tally, type ConnectionTarget, type StreamCallbacks, type StreamConnection } from './sse-connection.js';
import { closePayload, encodeFrame, handshakeKey, Opcodes, WsFrameParser } from './ws-frame.js';

const ROW_PREFIX = Buffer.from('{"type":"row","id":');
const SENT_AT = '"sent_at":';

/** The id and `sent_at` of a row message, read from its bytes without parsing the JSON; undefined: not a row. */
export function rowMessageFields(message: Buffer): { id: number; sentAt: number | undefined } | undefined {
  if (message.length <= ROW_PREFIX.length || message.compare(ROW_PREFIX, 0, ROW_PREFIX.length, 0, ROW_PREFIX.length) !== 0) return undefined;
  let id = 0;
  let i = ROW_PREFIX.length;
  for (; i < message.length; i++) {
    const digit = message[i] - 48;
    if (digit < 0 || digit > 9) break;
    id = id * 10 + digit;
  }
  if (i === ROW_PREFIX.length) return undefined;
  const at = message.lastIndexOf(SENT_AT);
  const sentAt = at === -1 ? NaN : parseFloat(message.toString('latin1', at + SENT_AT.length, at + SENT_AT.length + 32));
  return { id, sentAt: Number.isFinite(sentAt) ? sentAt : undefined };
}

export class WsConnection implements StreamConnection {
  readonly socket: Socket;
  private expected: number;
  private readonly tally: Tally;
  private readonly match: RowMatch | undefined;
  private readonly reader: HttpStreamReader;
  private readonly parser: WsFrameParser;
  private receivedAt = 0;
  readonly startedAt = wallMs();
  /** When the `101 Switching Protocols` answer arrived: the stream is open. */
  openedAt = 0;
  firstEventAt = 0;
  status = 0;
  error: string | undefined;
  ended = false;
  /** The server's close code, once it sent one. */
  closeCode: number | undefined;
  private closeSent = false;
  private onOpen: ((connection: WsConnection) => void) | undefined;
  private onFirstEvent: ((connection: WsConnection) => void) | undefined;

  constructor(target: ConnectionTarget, cursor: number, tally: Tally, callbacks: StreamCallbacks<WsConnection> = {}) {
    this.match = target.match;
    this.expected = nextMatching(cursor + 1, this.match);
    this.tally = tally;
    this.onOpen = callbacks.onOpen;
    this.onFirstEvent = callbacks.onFirstEvent;
    const { key, accept } = handshakeKey();
    this.parser = new WsFrameParser({
      onMessage: (payload) => this.message(payload),
      onPing: (payload) => {
        if (!this.ended) this.socket.write(encodeFrame(Opcodes.PONG, payload));
      },
      onClose: (code, reason) => {
        this.closeCode = code;
        this.sendClose(code === 1005 ? 1000 : code);
        this.fail(`closed ${code}${reason ? ` ${reason}` : ''}`);
      },
      onError: (message) => this.fail(`bad frame: ${message}`),
    });
    this.reader = new HttpStreamReader({
      onHead: (status, headers) => {
        this.status = status;
        if (status !== 101) return this.fail(`status ${status}`);
        if (headers['sec-websocket-accept'] !== accept) return this.fail('wrong Sec-WebSocket-Accept');
        this.openedAt = this.receivedAt;
        const onOpen = this.onOpen;
        this.onOpen = undefined;
        onOpen?.(this);
      },
      onBody: (chunk) => this.parser.feed(chunk),
      onError: (message) => this.fail(message),
    });
    this.socket = connect({ host: target.host, port: target.port, noDelay: true });
    this.socket.on('connect', () => {
      this.socket.write(
        `GET ${target.path} HTTP/1.1\r\nHost: ${target.host}:${target.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    this.socket.on('data', (chunk: Buffer) => {
      this.receivedAt = wallMs();
      tally.bytes += chunk.length;
      this.reader.feed(chunk);
    });
    this.socket.on('error', (error) => this.fail(error.message));
    this.socket.on('close', () => {
      if (!this.ended) this.fail('connection closed');
      callbacks.onEnd?.(this);
    });
  }

  caughtUp(finalId: number): boolean {
    return this.expected > finalId;
  }

  private message(payload: Buffer): void {
    const fields = rowMessageFields(payload);
    if (!fields) {
      this.tally.otherEvents++;
      return;
    }
    const at = this.receivedAt;
    const next = this.tally.row(this.expected, fields.id, at, fields.sentAt, this.match, this.match && userIdOfBytes(payload));
    if (next === -1) return;
    this.expected = next;
    if (this.firstEventAt === 0) {
      this.firstEventAt = at;
      const onFirstEvent = this.onFirstEvent;
      this.onFirstEvent = undefined;
      onFirstEvent?.(this);
    }
  }

  settle(finalId: number): void {
    if (finalId >= this.expected) {
      this.tally.lost += matchingBetween(this.expected, finalId, this.match);
      this.expected = nextMatching(finalId + 1, this.match);
    }
  }

  private sendClose(code: number): void {
    if (this.closeSent || this.socket.destroyed || !this.socket.writable) return;
    this.closeSent = true;
    this.socket.write(encodeFrame(Opcodes.CLOSE, closePayload(code)));
  }

  private fail(message: string): void {
    if (this.ended) return;
    this.ended = true;
    this.error = message;
    // After a close frame the socket ends once ours is written; otherwise it goes at once.
    if (this.closeSent) this.socket.end();
    else this.socket.destroy();
  }

  /** Closes politely (a masked close frame, 1000) and then the socket. */
  close(): void {
    if (!this.ended && this.openedAt) this.sendClose(1000);
    this.ended = true;
    this.socket.destroy();
  }
}
