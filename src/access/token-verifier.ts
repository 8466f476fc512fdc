import { errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey, type JWTVerifyOptions, type KeyObject, type RemoteJWKSet } from 'jose';
import { loadTokenKey, tokenOptionsSet, type TokenKey, type TokenOptions } from './token-key.js';

export type { TokenOptions } from './token-key.js';

/** Why a token was refused; the HTTP layer answers `401` with it (docs/access.md). */
export type TokenRefusal = 'missing' | 'malformed' | 'expired' | 'bad-signature' | 'bad-claims' | 'jwks-unavailable';

/**
 * A verified token's claims, and when the token stops verifying (ms since the epoch: its `exp` plus the clock
 * tolerance), which is when its stream must end. No `expiresAt`: the token has no `exp`.
 */
export type TokenResult =
  | { ok: true; claims: JWTPayload; expiresAt?: number }
  | { ok: false; reason: TokenRefusal };

/**
 * Clocks of the identity provider and of this server differ by a few seconds; without slack, a token minted a moment
 * ago could be "not yet valid" here.
 */
export const CLOCK_TOLERANCE_SECONDS = 5;

/** A key-set fetch that failed, told apart from a token that failed. */
class KeySetUnavailable extends Error {}

/** Checks signed tokens (JWS compact JWTs) with jose, against one key or an identity provider's key set. */
export class TokenVerifier {
  /** What tokens are checked against, for the start-up log. */
  readonly description: string;
  private readonly key: TokenKey;
  private readonly options: JWTVerifyOptions;
  private readonly keySet: JWTVerifyGetKey | undefined;

  constructor(key: TokenKey, options: TokenOptions) {
    this.key = key;
    this.keySet = typeof key.key === 'function' ? distinguishFetchFailures(key.key) : undefined;
    this.description = key.description;
    this.options = Object.freeze({
      algorithms: key.algorithms,
      issuer: options.jwtIssuer,
      audience: options.jwtAudience,
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
    });
  }

  /** Verifies a presented token (see `presentedToken` in access.ts). Never throws: a refusal says why. */
  async verify(token: string | undefined): Promise<TokenResult> {
    if (token === undefined || token === '') return { ok: false, reason: 'missing' };
    try {
      const { payload } = await this.verifyWithKey(token);
      const result: TokenResult = { ok: true, claims: payload };
      if (typeof payload.exp === 'number') result.expiresAt = (payload.exp + CLOCK_TOLERANCE_SECONDS) * 1000;
      return result;
    } catch (error) {
      return { ok: false, reason: refusalFor(error) };
    }
  }

  /**
   * Fetches the key set now, so the first client does not wait for it and a wrong URL shows in the start-up log.
   * Resolves with a one-line warning when it cannot be fetched (the server still starts: the provider may come
   * back), undefined otherwise or when there is no key set.
   */
  async warmUp(): Promise<string | undefined> {
    const { key } = this.key;
    if (typeof key !== 'function') return undefined;
    try {
      await key.reload();
      return undefined;
    } catch (error) {
      return `cannot fetch the ${this.description}: ${(error as Error).message}`;
    }
  }

  private async verifyWithKey(token: string) {
    if (!this.keySet) return jwtVerify(token, this.key.key as Uint8Array | KeyObject, this.options);
    try {
      return await jwtVerify(token, this.keySet, this.options);
    } catch (error) {
      // A token without `kid` when the set holds several keys of its type: try each, as jose's docs advise.
      if (!(error instanceof errors.JWKSMultipleMatchingKeys)) throw error;
      for await (const candidate of error as unknown as AsyncIterable<CryptoKey>) {
        try {
          return await jwtVerify(token, candidate, this.options);
        } catch (inner) {
          if (!(inner instanceof errors.JWSSignatureVerificationFailed)) throw inner;
        }
      }
      throw new errors.JWSSignatureVerificationFailed();
    }
  }
}

/** The key set, wrapped so that a failed fetch (timeout, refused, non-200, not JSON) is told apart from a bad token. */
function distinguishFetchFailures(keySet: RemoteJWKSet): JWTVerifyGetKey {
  return async (header, token) => {
    try {
      return await keySet(header, token);
    } catch (error) {
      if (fetchFailure(error)) throw new KeySetUnavailable((error as Error).message);
      throw error;
    }
  };
}

/** Whether an error of the key set is about fetching it rather than about the token's key. */
function fetchFailure(error: unknown): boolean {
  if (error instanceof errors.JWKSTimeout || error instanceof errors.JWKSInvalid) return true;
  if (!(error instanceof errors.JOSEError)) return true; // fetch's own TypeError: refused, reset, DNS
  return error.code === 'ERR_JOSE_GENERIC'; // non-200 answer, or a body that is not JSON
}

function refusalFor(error: unknown): TokenRefusal {
  if (error instanceof KeySetUnavailable) return 'jwks-unavailable';
  if (error instanceof errors.JWTExpired) return 'expired';
  if (error instanceof errors.JWTClaimValidationFailed) return 'bad-claims';
  if (error instanceof errors.JWSInvalid || error instanceof errors.JWTInvalid) return 'malformed';
  // Signature mismatch, an algorithm the key does not allow (alg confusion, `none`), no key for its kid, or a key the
  // token's algorithm cannot use: in every case no trusted key vouches for this token.
  return 'bad-signature';
}

/**
 * The verifier the options describe, or undefined when no JWT option is set.
 * Throws `SseError(BAD_OPTION)` with a one-line message for conflicting, unreadable or unsafe options.
 */
export function createTokenVerifier(options: TokenOptions): TokenVerifier | undefined {
  if (!tokenOptionsSet(options)) return undefined;
  return new TokenVerifier(loadTokenKey(options), options);
}
