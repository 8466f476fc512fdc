import { ErrorCodes, SseError } from '../errors.js';

/** Digits only: no sign, no spaces, no exponent, no fraction. */
const DECIMAL = /^[0-9]+$/;

/**
 * Parse a client cursor (`Last-Event-ID` or `lastEventId`).
 * Returns `undefined` for an absent or empty value (an empty id means "none" in SSE),
 * the id for a decimal integer in 0..2^53-1, and throws SSE_ERR_BAD_CURSOR otherwise.
 */
export function parseCursor(raw: string | undefined | null, source: string): number | undefined {
  if (raw === undefined || raw === null || raw === '') return undefined;
  if (raw.length > 16 || !DECIMAL.test(raw)) {
    throw new SseError(ErrorCodes.BAD_CURSOR, `${source} must be a decimal integer from 0 to ${Number.MAX_SAFE_INTEGER}, got ${quote(raw)}`);
  }
  const value = Number(raw);
  if (!Number.isSafeInteger(value)) {
    throw new SseError(ErrorCodes.BAD_CURSOR, `${source} must be at most ${Number.MAX_SAFE_INTEGER}, got ${quote(raw)}`);
  }
  return value;
}

/** Show a bad value safely on one line, whatever bytes it holds. */
function quote(raw: string): string {
  const shown = raw.length > 40 ? raw.slice(0, 40) + '...' : raw;
  return JSON.stringify(shown);
}

/**
 * The cursor of a request, in the contract's order of precedence:
 * the `Last-Event-ID` header (browsers send it on reconnect), then the `lastEventId` query parameter.
 */
export function requestCursor(headerValue: string | string[] | undefined, query: URLSearchParams): number | undefined {
  const header = Array.isArray(headerValue) ? headerValue[0] : headerValue;
  if (header !== undefined && header !== '') return parseCursor(header, 'Last-Event-ID');
  const fromQuery = query.getAll('lastEventId');
  if (fromQuery.length > 1) {
    throw new SseError(ErrorCodes.BAD_CURSOR, 'lastEventId must be given at most once');
  }
  return parseCursor(fromQuery[0], 'lastEventId');
}
