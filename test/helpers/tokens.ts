import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportJWK, SignJWT, UnsecuredJWT, type JWK, type JWTPayload } from 'jose';

/** An HS256 secret of 32 bytes or more, as `--jwt-secret` demands. */
export const SECRET = 'test-secret-that-is-long-enough-for-hs256';

const now = (): number => Math.floor(Date.now() / 1000);

export interface TokenOptions {
  /** Seconds from now to `exp` (negative: already expired); null: no `exp`. Default one hour. */
  expiresIn?: number | null;
  /** The HS256 secret (default `SECRET`), or a private key for `alg`. */
  key?: string | KeyObject;
  alg?: string;
  /** The `kid` header: which key of a key set (`--jwks-url`) signed it. */
  kid?: string;
}

/** A token signed with jose, as an application or identity provider would issue it. */
export function signToken(claims: JWTPayload, { expiresIn = 3600, key = SECRET, alg = 'HS256', kid }: TokenOptions = {}): Promise<string> {
  const jwt = new SignJWT({ iat: now(), ...claims }).setProtectedHeader(kid === undefined ? { alg } : { alg, kid });
  if (expiresIn !== null) jwt.setExpirationTime(now() + expiresIn);
  return jwt.sign(typeof key === 'string' ? new TextEncoder().encode(key) : key);
}

/** A token with `alg: none`: no signature at all. */
export const unsignedToken = (claims: JWTPayload): string => new UnsecuredJWT({ iat: now(), exp: now() + 3600, ...claims }).encode();

/** A fresh ES256 (P-256) key pair; the public key written as PEM to `directory/public.pem` for `--jwt-public-key`. */
export function es256KeyPair(directory: string): { privateKey: KeyObject; publicKeyPath: string; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const publicKeyPath = join(directory, 'public.pem');
  writeFileSync(publicKeyPath, publicPem);
  return { privateKey, publicKeyPath, publicPem };
}

/**
 * An identity provider's key set on a local HTTP server (`--jwks-url` accepts http for 127.0.0.1): `keys` is served as
 * `{"keys": [...]}` at `/jwks.json` and may be changed between requests; `fetches` counts the requests.
 */
export async function serveKeySet(keys: JWK[]): Promise<{ url: string; keys: JWK[]; fetches: number; close(): Promise<void> }> {
  const state = { keys, fetches: 0 };
  const server = createServer((request, response) => {
    state.fetches++;
    response.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ keys: state.keys }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}/jwks.json`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  });
}

/** The public JWK of an ES256 private key, with `kid`. */
export const publicJwk = async (privateKey: KeyObject, kid: string): Promise<JWK> => ({
  ...(await exportJWK(createPublicKey(privateKey))),
  kid,
  alg: 'ES256',
  use: 'sig',
});
