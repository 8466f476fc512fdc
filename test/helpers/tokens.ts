import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT, UnsecuredJWT, type JWTPayload } from 'jose';

/** An HS256 secret of 32 bytes or more, as `--jwt-secret` demands. */
export const SECRET = 'test-secret-that-is-long-enough-for-hs256';

const now = (): number => Math.floor(Date.now() / 1000);

export interface TokenOptions {
  /** Seconds from now to `exp` (negative: already expired); null: no `exp`. Default one hour. */
  expiresIn?: number | null;
  /** The HS256 secret (default `SECRET`), or a private key for `alg`. */
  key?: string | KeyObject;
  alg?: string;
}

/** A token signed with jose, as an application or identity provider would issue it. */
export function signToken(claims: JWTPayload, { expiresIn = 3600, key = SECRET, alg = 'HS256' }: TokenOptions = {}): Promise<string> {
  const jwt = new SignJWT({ iat: now(), ...claims }).setProtectedHeader({ alg });
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
