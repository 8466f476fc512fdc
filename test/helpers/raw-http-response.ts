/**
 * Decodes an HTTP/1.1 response read from a raw socket: the head, then the body's bytes with any chunked
 * transfer framing removed. The SSE stream has no Content-Length, so it arrives chunked.
 */
export class RawHttpResponse {
  /** The status line and headers, once they have arrived. */
  head = '';
  private inBody = false;
  private chunked = false;
  private pending: Buffer = Buffer.alloc(0);
  /** Bytes of the current chunk still to come. */
  private remaining = 0;

  /** Takes bytes from the socket; returns the body bytes they complete (possibly none). */
  push(chunk: Buffer): Buffer {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    if (!this.inBody) {
      const end = this.pending.indexOf('\r\n\r\n');
      if (end === -1) return Buffer.alloc(0);
      this.head = this.pending.subarray(0, end).toString('latin1');
      this.pending = this.pending.subarray(end + 4);
      this.inBody = true;
      this.chunked = /^transfer-encoding:\s*chunked/im.test(this.head);
    }
    return this.chunked ? this.dechunk() : this.takeAll();
  }

  private takeAll(): Buffer {
    const out = this.pending;
    this.pending = Buffer.alloc(0);
    return out;
  }

  private dechunk(): Buffer {
    const parts: Buffer[] = [];
    for (;;) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, this.pending.length);
        parts.push(this.pending.subarray(0, take));
        this.pending = this.pending.subarray(take);
        this.remaining -= take;
        if (this.remaining > 0) break;
        continue;
      }
      // Between chunks: the CRLF that ends the previous chunk, then `SIZE\r\n`.
      let at = 0;
      if (this.pending.length >= 2 && this.pending[0] === 13 && this.pending[1] === 10) at = 2;
      const lineEnd = this.pending.indexOf('\r\n', at);
      if (lineEnd === -1) break;
      const size = parseInt(this.pending.subarray(at, lineEnd).toString('latin1'), 16);
      this.pending = this.pending.subarray(lineEnd + 2);
      if (!(size > 0)) break;
      this.remaining = size;
    }
    return Buffer.concat(parts);
  }
}
