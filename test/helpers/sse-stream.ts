import { request, type IncomingMessage } from 'node:http';
import { createServer } from 'node:net';
import { waitFor } from './wait.js';

export interface SseEvent {
  id: string | undefined;
  event: string;
  data: string;
}

/** A minimal SSE parser (WHATWG rules: CR, LF or CRLF lines; `field: value`; blank line dispatches). */
export class SseParser {
  private buffer = '';
  private id: string | undefined;
  private event = '';
  private data: string[] = [];
  private sawData = false;
  comments = 0;
  retry: number | undefined;

  constructor(private readonly onEvent: (event: SseEvent) => void) {}

  push(text: string): void {
    this.buffer += text;
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.buffer);
      // A lone CR at the end may be the first half of CRLF: wait for more.
      if (!match || (match[0] === '\r' && match.index === this.buffer.length - 1)) return;
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      this.line(line);
    }
  }

  private line(line: string): void {
    if (line === '') {
      if (this.sawData) this.onEvent({ id: this.id, event: this.event || 'message', data: this.data.join('\n') });
      this.event = '';
      this.data = [];
      this.sawData = false;
      return;
    }
    if (line.startsWith(':')) {
      this.comments++;
      return;
    }
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') {
      this.data.push(value);
      this.sawData = true;
    } else if (field === 'id' && !value.includes('\0')) this.id = value;
    else if (field === 'event') this.event = value;
    else if (field === 'retry' && /^\d+$/.test(value)) this.retry = Number(value);
  }
}

/** One raw SSE connection that records what it receives. */
export class SseStream {
  readonly events: SseEvent[] = [];
  response: IncomingMessage | undefined;
  raw = '';
  ended = false;
  private readonly parser = new SseParser((event) => this.events.push(event));
  private readonly req;

  constructor(url: string, headers: Record<string, string> = {}, private readonly keepRaw = false) {
    this.req = request(url, { headers: { Accept: 'text/event-stream', ...headers } });
    this.req.on('response', (response) => {
      this.response = response;
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        if (this.keepRaw) this.raw += chunk;
        this.parser.push(chunk);
      });
      response.on('end', () => (this.ended = true));
      response.on('close', () => (this.ended = true));
    });
    this.req.on('error', () => (this.ended = true));
    this.req.end();
  }

  get comments(): number {
    return this.parser.comments;
  }

  get retry(): number | undefined {
    return this.parser.retry;
  }

  /** Row events parsed as JSON, in arrival order. */
  rows<T = Record<string, unknown>>(): T[] {
    return this.events.filter((event) => event.event === 'message').map((event) => JSON.parse(event.data) as T);
  }

  ids(): number[] {
    return this.events.filter((event) => event.event === 'message').map((event) => Number(event.id));
  }

  async waitForResponse(timeoutMs = 5000): Promise<IncomingMessage> {
    return (await waitFor('a response', () => this.response, timeoutMs, 5))!;
  }

  async waitForRows(count: number, timeoutMs = 10000): Promise<void> {
    await waitFor(`${count} rows (have ${this.ids().length})`, () => this.ids().length >= count, timeoutMs, 5);
  }

  close(): void {
    this.req.destroy();
  }
}

/** A port that was free a moment ago, for a server that must restart on the same port. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** The ids 1..n (or from..to). */
export const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/**
 * A reader that behaves as EventSource does across reconnects, but to whichever server the test names: `moveTo(url)`
 * drops the current connection and reconnects there with `Last-Event-ID` of the last event it got (a load balancer
 * without sticky sessions sending it to another edge, or the same server back after a restart). `ids()` and
 * `events()` are everything it got over all its connections, in order.
 */
export class ResumingSseReader {
  readonly connections: SseStream[] = [];

  constructor(url: string, cursor?: number, private readonly keepRaw = false) {
    this.open(url, cursor);
  }

  private open(url: string, cursor: number | undefined): void {
    this.connections.push(new SseStream(`${url}/events`, cursor === undefined ? {} : { 'Last-Event-ID': String(cursor) }, this.keepRaw));
  }

  get current(): SseStream {
    return this.connections[this.connections.length - 1];
  }

  /** The last `id:` received (a row's or a reset's), as EventSource would send it back. */
  lastEventId(): number | undefined {
    for (let c = this.connections.length - 1; c >= 0; c--) {
      const events = this.connections[c].events;
      for (let i = events.length - 1; i >= 0; i--) if (events[i].id !== undefined) return Number(events[i].id);
    }
    return undefined;
  }

  moveTo(url: string): void {
    this.current.close();
    this.open(url, this.lastEventId());
  }

  events(): SseEvent[] {
    return this.connections.flatMap((stream) => stream.events);
  }

  ids(): number[] {
    return this.connections.flatMap((stream) => stream.ids());
  }

  async waitForRows(count: number, timeoutMs = 10000): Promise<void> {
    await waitFor(`${count} rows over ${this.connections.length} connection(s) (have ${this.ids().length}, last ${this.lastEventId()})`, () => this.ids().length >= count, timeoutMs, 10);
  }

  close(): void {
    for (const stream of this.connections) stream.close();
  }
}
