import type { Client } from '../hub/client.js';
import { CLOCK_TOLERANCE_SECONDS } from './token-verifier.js';

/**
 * Ends streams whose signed token expires, with one timer for all of them (armed for the earliest expiry), not a
 * timer per client. At `exp` the client is sent `token-expired` (SSE: an event with a data line, since browsers
 * dispatch none without one) and closed (WebSocket: 4401); it reconnects with a fresh token and its cursor.
 */
export class TokenExpiry {
  private readonly expiries = new Map<Client, number>();
  private timer: NodeJS.Timeout | undefined;
  private armedFor = Infinity;

  /** Ends `client` at `expiresAt` (milliseconds since the epoch). */
  add(client: Client, expiresAt: number): void {
    this.expiries.set(client, expiresAt);
    if (expiresAt < this.armedFor) this.arm(expiresAt);
  }

  delete(client: Client): void {
    this.expiries.delete(client);
  }

  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.expiries.clear();
  }

  private arm(at: number): void {
    clearTimeout(this.timer);
    this.armedFor = at;
    // setTimeout holds at most 2^31-1 ms; a later expiry re-arms when this one fires.
    this.timer = setTimeout(() => this.fire(), Math.min(Math.max(at - Date.now(), 0), 2 ** 31 - 1));
    this.timer.unref();
  }

  private fire(): void {
    this.timer = undefined;
    this.armedFor = Infinity;
    const now = Date.now();
    let next = Infinity;
    for (const [client, at] of this.expiries) {
      if (at <= now) {
        this.expiries.delete(client);
        // `at` is when the token stops verifying: its `exp` plus the clock tolerance. The event tells the token's
        // own `exp` (docs/access.md), which a client can compare with the tokens it holds.
        client.sendControl('token-expired', { exp: Math.floor(at / 1000) - CLOCK_TOLERANCE_SECONDS });
        client.close('token-expired');
      } else if (at < next) {
        next = at;
      }
    }
    if (next !== Infinity) this.arm(next);
  }
}
