import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** What a token can guard. */
export type Area = 'events' | 'ws' | 'metrics' | 'healthz' | 'page';
export const AREAS: readonly Area[] = ['events', 'ws', 'metrics', 'healthz', 'page'];

export interface AccessOptions {
  /** Origins allowed to read cross-origin (`*` for any); empty: same origin only. */
  corsOrigins: readonly string[];
  /** Shared secret; undefined: no token needed anywhere. */
  token: string | undefined;
  /** Areas that need the token when one is set. */
  protect: ReadonlySet<Area>;
}

const TOKEN_COOKIE = 'sse_token';

const digest = (text: string): Buffer => createHash('sha256').update(text).digest();

/** Reads the token from `Authorization: Bearer`, the `sse_token` cookie, or `?token=`, in that order. */
export function presentedToken(request: IncomingMessage, query: URLSearchParams): string | undefined {
  const authorization = request.headers.authorization;
  if (authorization && /^Bearer\s+/i.test(authorization)) return authorization.replace(/^Bearer\s+/i, '').trim();
  const cookie = request.headers.cookie;
  if (cookie) {
    for (const part of cookie.split(';')) {
      const [name, ...rest] = part.trim().split('=');
      if (name === TOKEN_COOKIE) {
        try {
          return decodeURIComponent(rest.join('='));
        } catch {
          return undefined;
        }
      }
    }
  }
  return query.get('token') ?? undefined;
}

/** CORS and the optional shared-secret token. Both are off unless configured. */
export class AccessControl {
  private readonly options: AccessOptions;
  private readonly tokenDigest: Buffer | undefined;
  private readonly anyOrigin: boolean;

  constructor(options: AccessOptions) {
    this.options = options;
    this.tokenDigest = options.token === undefined ? undefined : digest(options.token);
    this.anyOrigin = options.corsOrigins.includes('*');
  }

  get corsEnabled(): boolean {
    return this.options.corsOrigins.length > 0;
  }

  /** Whether the request may use `area`. Compares digests in constant time, so timing reveals nothing of the token. */
  authorized(request: IncomingMessage, query: URLSearchParams, area: Area): boolean {
    if (!this.tokenDigest || !this.options.protect.has(area)) return true;
    const presented = presentedToken(request, query);
    return presented !== undefined && timingSafeEqual(digest(presented), this.tokenDigest);
  }

  /** The CORS response headers for this request's Origin: none unless it is allowed. */
  corsHeaders(request: IncomingMessage): Record<string, string> {
    const origin = request.headers.origin;
    if (!origin || !this.corsEnabled) return {};
    if (this.options.corsOrigins.includes(origin)) {
      return { 'Access-Control-Allow-Origin': origin, 'Access-Control-Allow-Credentials': 'true', Vary: 'Origin' };
    }
    return this.anyOrigin ? { 'Access-Control-Allow-Origin': '*' } : {};
  }

  /** The answer to a CORS preflight (`OPTIONS`) from an allowed origin, or undefined. */
  preflightHeaders(request: IncomingMessage): Record<string, string> | undefined {
    const headers = this.corsHeaders(request);
    if (!headers['Access-Control-Allow-Origin']) return undefined;
    return {
      ...headers,
      'Access-Control-Allow-Methods': 'GET, HEAD',
      'Access-Control-Allow-Headers': 'Last-Event-ID, Authorization',
      'Access-Control-Max-Age': '600',
    };
  }

  /**
   * Browsers apply no CORS to WebSocket: any page could open `/ws` with the user's cookies. So an upgrade whose
   * Origin is neither this server's own host nor an allowed origin is refused.
   */
  websocketOriginAllowed(request: IncomingMessage): boolean {
    const origin = request.headers.origin;
    if (!origin || this.anyOrigin || this.options.corsOrigins.includes(origin)) return true;
    try {
      return new URL(origin).host === request.headers.host;
    } catch {
      return false;
    }
  }
}
