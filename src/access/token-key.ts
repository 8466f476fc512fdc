import { createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRemoteJWKSet, type RemoteJWKSet } from 'jose';
import { ErrorCodes, SseError } from '../errors.js';

/** The JWT options of the command line (`--jwt-*`, `--jwks-url`); see docs/access.md. */
export interface TokenOptions {
  /** `--jwt-secret`: HS256 shared secret, at least 32 bytes. */
  jwtSecret?: string;
  /** `--jwt-secret-file`: a file holding the HS256 secret (trimmed), which keeps it out of `ps`. */
  jwtSecretFile?: string;
  /** `--jwt-public-key`: a PEM public key (SPKI, PKCS#1) or X.509 certificate: RSA, EC P-256/384/521 or Ed25519. */
  jwtPublicKey?: string;
  /** `--jwks-url`: an identity provider's JSON Web Key Set (https; http only for a loopback host). */
  jwksUrl?: string;
  /** `--jwt-issuer`: the `iss` a token must carry. */
  jwtIssuer?: string;
  /** `--jwt-audience`: the `aud` a token must carry (or list). */
  jwtAudience?: string;
  /** Not a flag. After a key set was fetched, how long an unknown `kid` waits before fetching it again. Default 30 s. */
  jwksCooldownMs?: number;
  /** Not a flag. How long a fetched key set is trusted before it is fetched again. Default 10 min. */
  jwksCacheMaxAgeMs?: number;
  /** Not a flag. How long a key-set fetch may take. Default 5 s. */
  jwksTimeoutMs?: number;
}

/** What verifies a token: one key, or a key set resolved per token, and the algorithms it may be used with. */
export interface TokenKey {
  /** What the key is, for the start-up log: `HS256 secret`, `RS256… public key`, `JWKS https://…`. */
  description: string;
  key: Uint8Array | KeyObject | RemoteJWKSet;
  algorithms: string[];
}

/** RFC 7518 §3.2: an HMAC key at least as long as the hash, or a token gives it away to an offline guess. */
export const MIN_SECRET_BYTES = 32;

const RSA_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
const PSS_ALGORITHMS = ['PS256', 'PS384', 'PS512'];
const EC_ALGORITHMS: Record<string, string> = { prime256v1: 'ES256', secp384r1: 'ES384', secp521r1: 'ES512' };
const EDDSA_ALGORITHMS = ['EdDSA', 'Ed25519'];
/** What a key set may sign with: asymmetric only, so no HS token can be checked against a public key. */
const JWKS_ALGORITHMS = [...RSA_ALGORITHMS, 'ES256', 'ES384', 'ES512', ...EDDSA_ALGORITHMS];

const KEY_FLAGS = [
  ['jwtSecret', '--jwt-secret'],
  ['jwtSecretFile', '--jwt-secret-file'],
  ['jwtPublicKey', '--jwt-public-key'],
  ['jwksUrl', '--jwks-url'],
] as const;

const badOption = (message: string): SseError => new SseError(ErrorCodes.BAD_OPTION, message);

/** Whether any JWT option is set (then exactly one key source must be). */
export function tokenOptionsSet(options: TokenOptions): boolean {
  return KEY_FLAGS.some(([key]) => options[key] !== undefined) || options.jwtIssuer !== undefined || options.jwtAudience !== undefined;
}

/**
 * The key the options name, checked now so that a mistake stops the start rather than every client.
 * Throws `SseError(BAD_OPTION)`: two key sources, none, an unreadable file, a short secret, a PEM that is not a
 * public key, an unsupported key type, a JWKS URL that is not https.
 */
export function loadTokenKey(options: TokenOptions): TokenKey {
  const given = KEY_FLAGS.filter(([key]) => options[key] !== undefined).map(([, flag]) => flag);
  if (given.length > 1) throw badOption(`${given.join(' and ')} each give the token key: pass one of them`);
  if (given.length === 0) {
    const flag = options.jwtIssuer !== undefined ? '--jwt-issuer' : '--jwt-audience';
    throw badOption(`${flag} needs a key to check tokens with: --jwt-secret, --jwt-secret-file, --jwt-public-key or --jwks-url`);
  }
  for (const [value, flag] of [[options.jwtIssuer, '--jwt-issuer'], [options.jwtAudience, '--jwt-audience']] as const) {
    if (value !== undefined && value.trim() === '') throw badOption(`${flag} is empty: give the expected value or leave it out`);
  }
  if (options.jwtSecret !== undefined) return secretKey(options.jwtSecret, '--jwt-secret');
  if (options.jwtSecretFile !== undefined) {
    return secretKey(readOptionFile(options.jwtSecretFile, '--jwt-secret-file').trim(), `--jwt-secret-file ${options.jwtSecretFile}`);
  }
  if (options.jwtPublicKey !== undefined) return publicKey(options.jwtPublicKey);
  return remoteKeySet(options);
}

function readOptionFile(path: string, flag: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw badOption(`cannot read ${flag} ${path}: ${(error as Error).message}`);
  }
}

function secretKey(secret: string, what: string): TokenKey {
  const bytes = new TextEncoder().encode(secret);
  if (bytes.length < MIN_SECRET_BYTES) {
    throw badOption(`${what} is ${bytes.length} bytes: HS256 needs at least ${MIN_SECRET_BYTES} (a shorter one can be guessed offline from any token)`);
  }
  return { description: 'HS256 secret', key: bytes, algorithms: ['HS256'] };
}

function publicKey(path: string): TokenKey {
  const pem = readOptionFile(path, '--jwt-public-key');
  const flag = `--jwt-public-key ${path}`;
  // createPublicKey would quietly derive the public half of a private key: refuse it, a server needs no signing key.
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    throw badOption(`${flag} holds a private key: give the server the public key only (openssl pkey -in KEY -pubout)`);
  }
  let key: KeyObject;
  try {
    key = pem.includes('-----BEGIN CERTIFICATE-----') ? new X509Certificate(pem).publicKey : createPublicKey(pem);
  } catch {
    throw badOption(`${flag} is not a PEM public key or certificate`);
  }
  const algorithms = algorithmsFor(key, flag);
  return { description: `${algorithms.join('/')} public key`, key, algorithms };
}

/** The algorithms a public key can verify: pinned to its type, so a token cannot pick a weaker or a symmetric one. */
function algorithmsFor(key: KeyObject, flag: string): string[] {
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'rsa':
    case 'rsa-pss':
      if ((details.modulusLength ?? 0) < 2048) throw badOption(`${flag} is a ${details.modulusLength}-bit RSA key: at least 2048 bits are needed`);
      return key.asymmetricKeyType === 'rsa' ? RSA_ALGORITHMS : PSS_ALGORITHMS;
    case 'ec': {
      const algorithm = EC_ALGORITHMS[details.namedCurve ?? ''];
      if (!algorithm) throw badOption(`${flag} is an EC key on curve ${details.namedCurve}: use P-256, P-384 or P-521`);
      return [algorithm];
    }
    case 'ed25519':
      return EDDSA_ALGORITHMS;
    default:
      throw badOption(`${flag} is a ${key.asymmetricKeyType} key: use RSA, EC (P-256, P-384, P-521) or Ed25519`);
  }
}

function remoteKeySet(options: TokenOptions): TokenKey {
  const text = options.jwksUrl as string;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw badOption(`--jwks-url ${text} is not a URL`);
  }
  // Keys fetched over plain http could be swapped by anyone on the path; a loopback host is the one safe exception.
  const loopback = ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) {
    throw badOption(`--jwks-url ${text} must be https (http only for localhost)`);
  }
  // jose's defaults are what identity providers expect: refetch on an unknown kid at most every 30 s (key rotation
  // publishes the new key before using it), trust a fetched set for 10 minutes, give up on a fetch after 5 s.
  const key = createRemoteJWKSet(url, {
    cooldownDuration: options.jwksCooldownMs ?? 30_000,
    cacheMaxAge: options.jwksCacheMaxAgeMs ?? 600_000,
    timeoutDuration: options.jwksTimeoutMs ?? 5_000,
  });
  // The description goes to logs: no credentials or query string from the URL.
  return { description: `JWKS ${url.origin}${url.pathname}`, key, algorithms: JWKS_ALGORITHMS };
}
