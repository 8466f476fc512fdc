import { EventSource } from 'eventsource';
import { request, type ClientRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { Delivery } from './chaos.js';
import { SseParser, type SseEvent } from './sse-stream.js';
import { withTimeout } from './wait.js';
import { RawHttpResponse } from './raw-http-response.js';

/** Feed an SSE event into a delivery: rows and resets; comments and other events are ignored. */
function deliver(delivery: Delivery, event: SseEvent): void {
  if (event.event === 'message') delivery.row(Number(event.id));
  else if (event.event === 'reset') delivery.reset(Number(event.id));
}

/**
 * A raw SSE client that reconnects by itself, as a careful non-browser client would: whenever its stream ends or
 * fails it waits `reconnectMs` and opens a new one with `Last-Event-ID` set to the last id it received.
 */
export class ReconnectingSseClient {
  readonly delivery: Delivery;
  connects = 0;
  failures = 0;
  readonly statuses = new Map<number, number>();
  private req: ClientRequest | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  /** `port()` is asked at each connect, so the client follows a server restarted on another port too. */
  constructor(
    private readonly port: () => number,
    private readonly path = '/events?lastEventId=0',
    private readonly reconnectMs = 100,
    cursor?: number,
  ) {
    this.delivery = new Delivery(cursor);
    this.connect();
  }

  private connect(): void {
    if (this.stopped) return;
    this.connects++;
    const headers: Record<string, string> = { Accept: 'text/event-stream' };
    if (this.delivery.cursor !== undefined) headers['Last-Event-ID'] = String(this.delivery.cursor);
    const parser = new SseParser((event) => deliver(this.delivery, event));
    let done = false;
    const again = () => {
      if (done) return;
      done = true;
      if (!this.stopped) this.timer = setTimeout(() => this.connect(), this.reconnectMs);
    };
    const req = request({ host: '127.0.0.1', port: this.port(), path: this.path, headers, agent: false });
    this.req = req;
    req.on('response', (response) => {
      const status = response.statusCode ?? 0;
      this.statuses.set(status, (this.statuses.get(status) ?? 0) + 1);
      response.setEncoding('utf8');
      if (status === 200) response.on('data', (chunk: string) => parser.push(chunk));
      else response.resume();
      response.on('end', again);
      response.on('close', again);
      response.on('error', again);
    });
    req.on('error', () => {
      this.failures++;
      again();
    });
    req.end();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.req?.destroy();
  }
}

/** A real EventSource client (the `eventsource` package): it reconnects by itself with Last-Event-ID. */
export class EventSourceClient {
  readonly delivery = new Delivery();
  readonly source: EventSource;
  opens = 0;
  errors = 0;

  constructor(url: string) {
    this.source = new EventSource(url);
    this.source.onmessage = (event) => this.delivery.row(Number(event.lastEventId));
    this.source.addEventListener('reset', (event) => this.delivery.reset(Number((event as MessageEvent).lastEventId)));
    this.source.onopen = () => this.opens++;
    this.source.onerror = () => this.errors++;
  }

  stop(): void {
    this.source.close();
  }
}

/**
 * One SSE request on a bare TCP socket, whose reading the test controls: paused (the kernel buffers fill and the
 * server sees a client that stopped reading), one byte at a time, or flowing.
 */
export class RawSseSocket {
  readonly delivery: Delivery;
  readonly socket: Socket;
  head = '';
  bytes = 0;
  ended = false;
  endedAt = 0;
  private readonly parser: SseParser;
  private readonly decoder = new TextDecoder();
  private readonly response = new RawHttpResponse();

  constructor(port: number, path: string, options: { paused?: boolean; headers?: Record<string, string>; cursor?: number } = {}) {
    this.delivery = new Delivery(options.cursor);
    this.parser = new SseParser((event) => deliver(this.delivery, event));
    this.socket = connect({ port, host: '127.0.0.1' });
    const gone = () => {
      if (!this.ended) this.endedAt = Date.now();
      this.ended = true;
    };
    this.socket.on('error', gone);
    this.socket.on('close', gone);
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    const headers = Object.entries(options.headers ?? {})
      .map(([name, value]) => `${name}: ${value}\r\n`)
      .join('');
    this.socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\n${headers}\r\n`);
    if (options.paused) this.socket.pause();
  }

  connected(timeoutMs = 5000): Promise<void> {
    if (!this.socket.connecting) return Promise.resolve();
    return withTimeout(new Promise<void>((resolve) => this.socket.once('connect', () => resolve())), timeoutMs, 'TCP connect');
  }

  /** Take one byte from what the socket holds (the socket stays paused: the kernel hands over no more than it can hold). */
  readOneByte(): void {
    this.socket.read(1);
  }

  resume(): void {
    this.socket.resume();
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    this.bytes += chunk.length;
    const body = this.response.push(chunk);
    this.head = this.response.head;
    if (body.length > 0) this.parser.push(this.decoder.decode(body, { stream: true }));
  }
}
