/**
 * Spec-exact Server-Sent Events framing (WHATWG HTML, "Server-sent events").
 * A frame is built once as a Buffer and written unchanged to every client.
 */

const LINE_BREAK = /\r\n|\r|\n/;
const FORBIDDEN_IN_FIELD = /[\r\n\0]/;

/** Throws when a value could end its line early or smuggle in another field (CR, LF, NUL). */
export function assertFieldValue(name: string, value: string): void {
  if (FORBIDDEN_IN_FIELD.test(value)) {
    throw new TypeError(`${name} must not contain CR, LF or NUL`);
  }
}

/** One `data:` line per line of the payload, so no payload can end the event or add a field. */
function dataLines(data: string): string {
  let out = '';
  for (const line of data.split(LINE_BREAK)) out += 'data: ' + line + '\n';
  return out;
}

/** An event: `id:` (unless undefined), optional `event:`, the payload as `data:` lines, then the blank line that dispatches it. */
export function encodeEvent(id: string | undefined, event: string | undefined, data: string): Buffer {
  let text = '';
  if (id !== undefined) {
    assertFieldValue('id', id);
    text += 'id: ' + id + '\n';
  }
  if (event) {
    assertFieldValue('event', event);
    text += 'event: ' + event + '\n';
  }
  text += dataLines(data) + '\n';
  return Buffer.from(text, 'utf8');
}

/** A control event (reset, snapshot-end, token-expired): `id:` when the fields carry one, the other fields as JSON data. */
export function encodeControl(name: string, fields: { id?: number; [field: string]: unknown }): Buffer {
  const { id, ...data } = fields;
  return encodeEvent(id === undefined ? undefined : String(id), name, JSON.stringify(data));
}

/** The reconnect hint, sent once per connection as its first bytes. */
export function encodeRetry(milliseconds: number): Buffer {
  return Buffer.from('retry: ' + Math.round(milliseconds) + '\n\n', 'utf8');
}

/** A comment line: ignored by clients, keeps proxies and idle timers from closing the stream. */
export function encodeComment(text: string): Buffer {
  return Buffer.from(': ' + text.replace(/[\r\n\0]/g, ' ') + '\n\n', 'utf8');
}
