import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * What the origin's internal endpoints for edges (`/history`, `/snapshot`) share: their method and busy answers, and
 * the edge's side of the call.
 */

/** Answers 405 for a method other than GET or HEAD; true when it did. */
export function refusedMethod(request: IncomingMessage, response: ServerResponse): boolean {
  if (request.method === 'GET' || request.method === 'HEAD') return false;
  response.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' }).end('use GET\n');
  return true;
}

/** 503 with `Retry-After` in whole seconds: the database is locked right now. */
export function sendBusy(response: ServerResponse, retryMs: number): void {
  const retryAfter = String(Math.max(1, Math.ceil(retryMs / 1000)));
  response.writeHead(503, { 'Retry-After': retryAfter, 'Cache-Control': 'no-store', 'Content-Type': 'text/plain; charset=utf-8' }).end('the store is busy: try again\n');
}

/** 400 with one line saying which parameter is wrong. */
export function sendBadRequest(response: ServerResponse, message: string): void {
  response.writeHead(400, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' }).end(`${message}\n`);
}

/**
 * An edge's GET of `path` on the origin, with the shared `--token` as a Bearer token (the origin guards these
 * endpoints as it guards /metrics). A 503 resolves `{retryMs}` from its `Retry-After`; other statuses are the caller's.
 */
export async function fetchFromOrigin(originUrl: string, path: string, params: Record<string, string>, timeoutMs: number, token: string | undefined): Promise<{ url: URL; response: Response } | { retryMs: number }> {
  const url = new URL(path, originUrl.endsWith('/') ? originUrl : `${originUrl}/`);
  for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
  const headers: Record<string, string> = token === undefined ? {} : { Authorization: `Bearer ${token}` };
  const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), headers });
  if (response.status === 503) {
    await response.body?.cancel();
    return { retryMs: 1000 * (Number(response.headers.get('retry-after')) || 1) };
  }
  return { url, response };
}
