import type { IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import { WebSocket } from 'ws';
import { waitFor } from './wait.js';

/** A message of the `/ws` protocol: a row, or a reset (the cursor was ahead of the table). */
export interface WsMessage {
  type: string;
  id: number;
  row?: Record<string, unknown>;
  /** A change-stream message (`type: 'change'`, with `--changes`): op, table, pk, row, old, move. */
  change?: Record<string, unknown>;
  reason?: string;
  lastEventId?: number;
  lastId?: number;
}

/** An upgrade the server answered with a plain HTTP status instead of `101`. */
export interface WsRefusal {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface WsRecorderOptions {
  headers?: Record<string, string>;
  /** Connect from this local address (any 127.x.y.z works on Linux loopback), for per-address limits. */
  localAddress?: string;
  /** Stop reading the socket as soon as it is open: the kernel buffers fill and the server sees a stalled peer. */
  pauseOnOpen?: boolean;
}

/**
 * A real `ws` client on `/ws` that records everything: raw text messages, parsed messages, the close code and
 * reason, or the HTTP refusal of the upgrade. Errors are recorded, never thrown, so a test asserts on them.
 */
export class WsRecorder {
  readonly ws: WebSocket;
  /** Every text message as received. */
  readonly raw: string[] = [];
  readonly messages: WsMessage[] = [];
  binaryMessages = 0;
  opened = false;
  closed = false;
  closeCode: number | undefined;
  closeReason = '';
  refusal: WsRefusal | undefined;
  error: Error | undefined;

  constructor(url: string, options: WsRecorderOptions = {}) {
    this.ws = new WebSocket(url, { headers: options.headers, localAddress: options.localAddress, perMessageDeflate: false });
    this.ws.on('open', () => {
      this.opened = true;
      if (options.pauseOnOpen) this.pause();
    });
    this.ws.on('message', (data, isBinary) => {
      if (isBinary) {
        this.binaryMessages++;
        return;
      }
      const text = data.toString();
      this.raw.push(text);
      this.messages.push(JSON.parse(text) as WsMessage);
    });
    this.ws.on('close', (code, reason) => {
      this.closed = true;
      this.closeCode = code;
      this.closeReason = reason.toString();
    });
    this.ws.on('error', (error) => {
      this.error ??= error;
    });
    // With a listener here, ws reports a non-101 answer as this event instead of an error.
    this.ws.on('unexpected-response', (request, response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => {
        this.refusal = { status: response.statusCode!, headers: response.headers, body };
        request.destroy();
      });
    });
  }

  /** The underlying TCP socket (ws keeps it in `_socket`). */
  get socket(): Socket | undefined {
    return (this.ws as unknown as { _socket?: Socket })._socket;
  }

  /** Stop reading: nothing more is taken from the socket until `resume`. */
  pause(): void {
    this.socket?.pause();
  }

  resume(): void {
    this.socket?.resume();
  }

  rows(): WsMessage[] {
    return this.messages.filter((message) => message.type === 'row');
  }

  /** The change messages of the change stream (`--changes`), in arrival order. */
  changes(): WsMessage[] {
    return this.messages.filter((message) => message.type === 'change');
  }

  /** Ids of the row messages, in arrival order. */
  ids(): number[] {
    return this.rows().map((message) => message.id);
  }

  async waitForOpen(timeoutMs = 5000): Promise<void> {
    await waitFor(`ws open (${this.describe()})`, () => this.opened || this.closed || this.refusal !== undefined, timeoutMs, 5);
    if (!this.opened) throw new Error(`ws did not open: ${this.describe()}`);
  }

  async waitForRows(count: number, timeoutMs = 10000): Promise<void> {
    await waitFor(`${count} ws rows (have ${this.ids().length}; ${this.describe()})`, () => this.ids().length >= count, timeoutMs, 5);
  }

  async waitForClose(timeoutMs = 5000): Promise<{ code: number | undefined; reason: string }> {
    await waitFor(`ws close (${this.describe()})`, () => this.closed, timeoutMs, 5);
    return { code: this.closeCode, reason: this.closeReason };
  }

  async waitForRefusal(timeoutMs = 5000): Promise<WsRefusal> {
    return (await waitFor(`ws upgrade refusal (${this.describe()})`, () => this.refusal, timeoutMs, 5))!;
  }

  describe(): string {
    return `opened ${this.opened}, closed ${this.closed} ${this.closeCode ?? ''} ${JSON.stringify(this.closeReason)}, refusal ${this.refusal?.status ?? 'none'}, error ${this.error?.message ?? 'none'}`;
  }

  /** Close abruptly (no close handshake): safe in finally blocks. */
  terminate(): void {
    this.ws.terminate();
  }
}

/**
 * A WebSocket reader that behaves as the README tells clients to: closed with 4429 (it fell more than
 * `--client-buffer` behind, which a busy machine can make any reader do), it reconnects at once with
 * `?lastEventId=` of the last row it got. `ids()` is everything it got over all its connections.
 */
export class ResumingWsReader {
  readonly connections: WsRecorder[] = [];
  private stopped = false;

  /** `open(pathAndQuery)` opens (and tracks) one connection, e.g. `LiveFixture.ws`. */
  constructor(private open: (pathAndQuery: string) => WsRecorder, private readonly cursor = 0) {
    this.connect(cursor);
  }

  /** The id of the last row received over every connection (the starting cursor before any). */
  get lastId(): number {
    const ids = this.ids();
    return ids.length > 0 ? ids[ids.length - 1] : this.cursor;
  }

  /**
   * Drop the current connection and reconnect with `?lastEventId=` of the last row, through `open` (another server,
   * or the same one after a restart), as a client does whose connection was cut.
   */
  moveTo(open: (pathAndQuery: string) => WsRecorder): void {
    this.open = open;
    this.current.terminate();
    this.connect(this.lastId);
  }

  private connect(cursor: number): void {
    const recorder = this.open(`/ws?lastEventId=${cursor}`);
    this.connections.push(recorder);
    recorder.ws.on('close', (code) => {
      if (this.stopped || code !== 4429) return;
      const ids = this.ids();
      this.connect(ids.length > 0 ? ids[ids.length - 1] : cursor);
    });
  }

  get current(): WsRecorder {
    return this.connections[this.connections.length - 1];
  }

  ids(): number[] {
    return this.connections.flatMap((recorder) => recorder.ids());
  }

  async waitForRows(count: number, timeoutMs = 10000): Promise<void> {
    await waitFor(`${count} rows over ${this.connections.length} connection(s) (have ${this.ids().length}; ${this.current.describe()})`, () => this.ids().length >= count, timeoutMs, 10);
  }

  stop(): void {
    this.stopped = true;
    for (const recorder of this.connections) recorder.terminate();
  }
}
