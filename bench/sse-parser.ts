import { StringDecoder } from 'node:string_decoder';

/** One dispatched event, as `EventSource` would see it. */
export interface SseEvent {
  /** The last event id (it persists across events, as in the spec). */
  id: string;
  /** `message` unless an `event:` field named it. */
  event: string;
  /** The `data:` lines joined with LF. */
  data: string;
}

export interface SseParserHandlers {
  onEvent(event: SseEvent): void;
  onComment?(text: string): void;
  onRetry?(ms: number): void;
}

/**
 * A minimal incremental parser of an SSE body (WHATWG HTML, "Parsing an event stream"): bytes may be split anywhere,
 * even inside a UTF-8 character or between the CR and LF of a line break; lines end with CR LF, CR or LF.
 */
export class SseParser {
  private readonly handlers: SseParserHandlers;
  private decoder: StringDecoder | undefined;
  private rest = '';
  /** The previous chunk ended with CR: an LF at the start of the next one belongs to that line break. */
  private afterCR = false;
  private lastId = '';
  private eventType = '';
  private data = '';
  private hasData = false;

  constructor(handlers: SseParserHandlers) {
    this.handlers = handlers;
  }

  /** Feed bytes (decoded as UTF-8, a split character waits for its end) or already decoded text. */
  feed(chunk: Buffer | string): void {
    let text: string;
    if (typeof chunk === 'string') text = chunk;
    else {
      this.decoder ??= new StringDecoder('utf8');
      text = this.decoder.write(chunk);
    }
    if (text.length === 0) return;
    let buffer = this.rest.length ? this.rest + text : text;
    let position = 0;
    if (this.afterCR) {
      this.afterCR = false;
      if (buffer.charCodeAt(0) === 10) position = 1;
    }
    const length = buffer.length;
    while (position < length) {
      let end = position;
      let code = 0;
      // A plain scan is faster than a regex for short lines.
      for (; end < length; end++) {
        code = buffer.charCodeAt(end);
        if (code === 10 || code === 13) break;
      }
      if (end === length) break;
      this.line(buffer, position, end);
      position = end + 1;
      if (code === 13) {
        if (position < length) {
          if (buffer.charCodeAt(position) === 10) position++;
        } else {
          this.afterCR = true;
        }
      }
    }
    this.rest = position < length ? buffer.slice(position) : '';
    buffer = '';
  }

  private line(buffer: string, start: number, end: number): void {
    if (start === end) {
      this.dispatch();
      return;
    }
    if (buffer.charCodeAt(start) === 58 /* : */) {
      this.handlers.onComment?.(buffer.slice(start + 1 < end && buffer.charCodeAt(start + 1) === 32 ? start + 2 : start + 1, end));
      return;
    }
    const colon = buffer.indexOf(':', start);
    let field: string;
    let value: string;
    if (colon === -1 || colon >= end) {
      field = buffer.slice(start, end);
      value = '';
    } else {
      field = buffer.slice(start, colon);
      const valueStart = colon + 1 < end && buffer.charCodeAt(colon + 1) === 32 ? colon + 2 : colon + 1;
      value = buffer.slice(valueStart, end);
    }
    switch (field) {
      case 'data':
        this.data = this.hasData ? this.data + '\n' + value : value;
        this.hasData = true;
        break;
      case 'id':
        if (!value.includes('\0')) this.lastId = value;
        break;
      case 'event':
        this.eventType = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) this.handlers.onRetry?.(Number(value));
        break;
      default:
      // Unknown fields are ignored, as the spec says.
    }
  }

  private dispatch(): void {
    if (this.hasData) this.handlers.onEvent({ id: this.lastId, event: this.eventType || 'message', data: this.data });
    this.data = '';
    this.hasData = false;
    this.eventType = '';
  }
}
