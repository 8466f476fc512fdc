/**
 * Reads an HTTP/1.1 response from raw socket bytes: the head, then the body, de-chunked when the server used
 * `Transfer-Encoding: chunked` (Node's http does for a stream without a length). Chunks are passed on without copying.
 */
export interface HttpStreamHandlers {
  onHead(status: number, headers: Record<string, string>): void;
  onBody(chunk: Buffer): void;
  /** The body ended (the final zero-size chunk). */
  onEnd?(): void;
  onError(message: string): void;
}

const MAX_HEAD_BYTES = 64 * 1024;

type State = 'head' | 'raw' | 'size' | 'data' | 'data-crlf' | 'done' | 'failed';

export class HttpStreamReader {
  private readonly handlers: HttpStreamHandlers;
  private state: State = 'head';
  private head: Buffer | undefined;
  private sizeLine = '';
  private remaining = 0;
  private crlfLeft = 0;

  constructor(handlers: HttpStreamHandlers) {
    this.handlers = handlers;
  }

  feed(chunk: Buffer): void {
    if (this.state === 'head') {
      const buffer = this.head ? Buffer.concat([this.head, chunk]) : chunk;
      const end = buffer.indexOf('\r\n\r\n');
      if (end === -1) {
        if (buffer.length > MAX_HEAD_BYTES) this.fail('response head too large');
        else this.head = buffer;
        return;
      }
      this.head = undefined;
      if (!this.parseHead(buffer.toString('latin1', 0, end))) return;
      chunk = buffer.subarray(end + 4);
    }
    if (this.state === 'raw') {
      if (chunk.length) this.handlers.onBody(chunk);
      return;
    }
    let position = 0;
    while (position < chunk.length) {
      switch (this.state) {
        case 'size': {
          const lf = chunk.indexOf(10, position);
          if (lf === -1) {
            this.sizeLine += chunk.toString('latin1', position);
            if (this.sizeLine.length > 1024) return this.fail('chunk size line too long');
            return;
          }
          this.sizeLine += chunk.toString('latin1', position, lf);
          position = lf + 1;
          const size = parseInt(this.sizeLine.split(';')[0].trim(), 16);
          this.sizeLine = '';
          if (!Number.isFinite(size) || size < 0) return this.fail('bad chunk size');
          if (size === 0) {
            this.state = 'done';
            this.handlers.onEnd?.();
            return;
          }
          this.remaining = size;
          this.state = 'data';
          break;
        }
        case 'data': {
          const take = Math.min(this.remaining, chunk.length - position);
          this.handlers.onBody(chunk.subarray(position, position + take));
          position += take;
          this.remaining -= take;
          if (this.remaining === 0) {
            this.state = 'data-crlf';
            this.crlfLeft = 2;
          }
          break;
        }
        case 'data-crlf': {
          // Skip the CR LF after a chunk's data.
          const take = Math.min(this.crlfLeft, chunk.length - position);
          position += take;
          this.crlfLeft -= take;
          if (this.crlfLeft === 0) this.state = 'size';
          break;
        }
        default:
          return;
      }
    }
  }

  private parseHead(text: string): boolean {
    const lines = text.split('\r\n');
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
    if (!status) {
      this.fail(`not an HTTP response: ${JSON.stringify(lines[0].slice(0, 80))}`);
      return false;
    }
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    this.state = /chunked/i.test(headers['transfer-encoding'] ?? '') ? 'size' : 'raw';
    this.handlers.onHead(Number(status[1]), headers);
    return true;
  }

  private fail(message: string): void {
    this.state = 'failed';
    this.handlers.onError(message);
  }
}
