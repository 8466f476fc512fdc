import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { sqlite } from './database.js';
import { SseParser, type SseEvent } from './sse-stream.js';
import { withTimeout } from './wait.js';
import { RawHttpResponse } from './raw-http-response.js';

/** Every id in the table, in id order, read afterwards by a separate `sqlite3` process. */
export function tableIds(path: string, table = 'messages'): number[] {
  return sqlite(path, `SELECT id FROM ${table} ORDER BY id;`)
    .split('\n')
    .filter((line) => line !== '')
    .map(Number);
}

/** Every row of the demo table as `{ id, message }`, in id order, read by a separate `sqlite3` process. */
export function tableRows(path: string, table = 'messages'): { id: number; message: string }[] {
  const out = sqlite(path, `.mode json\nSELECT id, message FROM ${table} ORDER BY id;`).trim();
  return out === '' ? [] : (JSON.parse(out) as { id: number; message: string }[]);
}

/** The resident memory of a process, from `/proc/PID/status` (Linux). */
export function residentBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]) * 1024;
}

/** Ids of the row events (`message`) among recorded events. */
export function rowIds(events: readonly SseEvent[]): number[] {
  return events.filter((event) => event.event === 'message').map((event) => Number(event.id));
}

/**
 * A raw TCP SSE client whose reading can be stopped: it sends `GET path` and then, when `paused`, takes nothing
 * from the socket, so the kernel buffers fill and the server sees a client that stopped reading.
 */
export class PausableSseSocket {
  readonly events: SseEvent[] = [];
  readonly socket: Socket;
  head = '';
  bytes = 0;
  ended = false;
  private readonly parser = new SseParser((event) => this.events.push(event));
  private readonly decoder = new TextDecoder();
  private readonly response = new RawHttpResponse();

  constructor(port: number, path: string, { paused = false }: { paused?: boolean } = {}) {
    this.socket = connect({ port, host: '127.0.0.1' });
    this.socket.on('error', () => (this.ended = true));
    this.socket.on('close', () => (this.ended = true));
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\n\r\n`);
    if (paused) this.socket.pause();
  }

  /** Wait until the socket is connected and the request is sent. */
  connected(timeoutMs = 5000): Promise<void> {
    if (!this.socket.connecting) return Promise.resolve();
    return withTimeout(new Promise<void>((resolve) => this.socket.once('connect', () => resolve())), timeoutMs, 'TCP connect');
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  ids(): number[] {
    return rowIds(this.events);
  }

  /** The stream has no Content-Length, so HTTP/1.1 sends it chunked: chunk headers are stripped (as bytes) before parsing. */
  private onData(chunk: Buffer): void {
    this.bytes += chunk.length;
    const body = this.response.push(chunk);
    this.head = this.response.head;
    if (body.length > 0) this.parser.push(this.decoder.decode(body, { stream: true }));
  }

  close(): void {
    this.socket.destroy();
  }
}
