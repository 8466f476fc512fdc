import { createServer, type Server } from 'node:http';
import { execFileSync } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CompactSign, exportJWK, exportPKCS8, exportSPKI, generateKeyPair, SignJWT, UnsecuredJWT, type JWK, type JWTPayload } from 'jose';
import { ErrorCodes, SseError } from '../src/errors.js';
import { CLOCK_TOLERANCE_SECONDS, createTokenVerifier, type TokenOptions, type TokenVerifier } from '../src/access/token-verifier.js';
import { removeDirectory } from './helpers/cleanup.js';
import { tempDirectory } from './helpers/database.js';
import { withTimeout } from './helpers/wait.js';

const SECRET = 'a-shared-secret-of-32-bytes-long!';
const now = () => Math.floor(Date.now() / 1000);
type SigningKey = Parameters<SignJWT['sign']>[0];

/** A token as an identity provider would mint it: subject, issued now, valid for an hour unless `claims` say otherwise. */
function sign(key: SigningKey, alg: string, claims: JWTPayload = {}, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT({ sub: 'user-42', iat: now(), exp: now() + 3600, ...claims }).setProtectedHeader({ ...header, alg }).sign(key);
}

const secretBytes = (text: string) => new TextEncoder().encode(text);

function verifierFor(options: TokenOptions): TokenVerifier {
  const verifier = createTokenVerifier(options);
  assert.ok(verifier, 'a verifier');
  return verifier;
}

async function refusal(verifier: TokenVerifier, token: string | undefined): Promise<string> {
  const result = await verifier.verify(token);
  return result.ok ? 'accepted' : result.reason;
}

/** The BAD_OPTION message `createTokenVerifier` throws for these options; fails if it does not throw one. */
function optionError(options: TokenOptions): string {
  try {
    createTokenVerifier(options);
  } catch (error) {
    assert.instance(error, SseError);
    assert.is((error as SseError).code, ErrorCodes.BAD_OPTION);
    const { message } = error as SseError;
    assert.not.match(message, /\n/, 'one line');
    return message;
  }
  assert.unreachable(`no error for ${JSON.stringify(options)}`);
  return '';
}

/** Writes a PEM file into a temp dir and runs `body` with its path. */
async function withPem(pem: string, body: (path: string) => Promise<void> | void): Promise<void> {
  const dir = tempDirectory();
  try {
    const path = join(dir, 'key.pem');
    writeFileSync(path, pem);
    await body(path);
  } finally {
    removeDirectory(dir);
  }
}

async function publicPem(alg: string) {
  const pair = await generateKeyPair(alg, { extractable: true });
  return { ...pair, pem: await exportSPKI(pair.publicKey) };
}

test('no JWT option: no verifier, so the server behaves as before', () => {
  assert.is(createTokenVerifier({}), undefined);
});

test('HS256: a token signed with the secret is accepted with its claims; it stops at exp plus the clock tolerance', async () => {
  const verifier = verifierFor({ jwtSecret: SECRET });
  const exp = now() + 600;
  const result = await verifier.verify(await sign(secretBytes(SECRET), 'HS256', { exp, teams: ['a', 'b'] }));
  assert.ok(result.ok);
  if (!result.ok) return;
  assert.is(result.claims.sub, 'user-42');
  assert.equal(result.claims.teams, ['a', 'b']);
  assert.is(result.expiresAt, (exp + CLOCK_TOLERANCE_SECONDS) * 1000);
});

test('a token without exp is accepted and has no expiry', async () => {
  const verifier = verifierFor({ jwtSecret: SECRET });
  const token = await new SignJWT({ sub: 'forever' }).setProtectedHeader({ alg: 'HS256' }).sign(secretBytes(SECRET));
  const result = await verifier.verify(token);
  assert.ok(result.ok);
  if (result.ok) assert.is(result.expiresAt, undefined);
});

test('no token, an empty one, and garbage are refused as missing or malformed', async () => {
  const verifier = verifierFor({ jwtSecret: SECRET });
  assert.is(await refusal(verifier, undefined), 'missing');
  assert.is(await refusal(verifier, ''), 'missing');
  for (const garbage of ['abc', 'a.b', 'a.b.c', '...', 'bearer', '{"alg":"HS256"}.e30.x', 'ü.ü.ü', 'e30.e30.']) {
    assert.is(await refusal(verifier, garbage), 'malformed', garbage);
  }
  // Signed, so the signature holds, but the payload is not a claims object.
  for (const payload of ['not json', '[1,2]', '"sub"']) {
    const token = await new CompactSign(secretBytes(payload)).setProtectedHeader({ alg: 'HS256' }).sign(secretBytes(SECRET));
    assert.is(await refusal(verifier, token), 'malformed', payload);
  }
  const unsigned = `${Buffer.from('{"alg":"HS256"}').toString('base64url')}.not-json.sig`;
  assert.is(await refusal(verifier, unsigned), 'bad-signature', 'the signature is checked before the payload is read');
});

test('HS256: another secret, a changed payload, and a token of another algorithm are bad signatures', async () => {
  const verifier = verifierFor({ jwtSecret: SECRET });
  assert.is(await refusal(verifier, await sign(secretBytes(`${SECRET}?`), 'HS256')), 'bad-signature');
  const [header, , signature] = (await sign(secretBytes(SECRET), 'HS256')).split('.');
  const forged = Buffer.from(JSON.stringify({ sub: 'admin', exp: now() + 3600 })).toString('base64url');
  assert.is(await refusal(verifier, `${header}.${forged}.${signature}`), 'bad-signature');
  assert.is(await refusal(verifier, await sign(secretBytes(SECRET), 'HS512')), 'bad-signature', 'only HS256 is allowed');
});

test('alg none is refused whatever the key', async () => {
  const unsecured = new UnsecuredJWT({ sub: 'admin', exp: now() + 3600 }).encode();
  assert.is(await refusal(verifierFor({ jwtSecret: SECRET }), unsecured), 'bad-signature');
  const { pem } = await publicPem('RS256');
  await withPem(pem, async (path) => assert.is(await refusal(verifierFor({ jwtPublicKey: path }), unsecured), 'bad-signature'));
});

test('expired and not-yet-valid tokens are refused; a clock a few seconds off is tolerated', async () => {
  const verifier = verifierFor({ jwtSecret: SECRET });
  const key = secretBytes(SECRET);
  assert.is(await refusal(verifier, await sign(key, 'HS256', { exp: now() - 60 })), 'expired');
  assert.is(await refusal(verifier, await sign(key, 'HS256', { nbf: now() + 600 })), 'bad-claims');
  assert.is(await refusal(verifier, await sign(key, 'HS256', { exp: now() - 1 })), 'accepted', 'expired a second ago');
  assert.is(await refusal(verifier, await sign(key, 'HS256', { nbf: now() + 2 })), 'accepted', 'minted by a clock 2 s ahead');
  assert.is(await refusal(verifier, await sign(key, 'HS256', { exp: 'tomorrow' as unknown as number })), 'bad-claims', 'exp must be a number');
});

test('--jwt-issuer and --jwt-audience: a wrong or absent iss/aud is refused, the right one accepted', async () => {
  const verifier = verifierFor({ jwtSecret: SECRET, jwtIssuer: 'https://id.example', jwtAudience: 'sqlite-sse' });
  const key = secretBytes(SECRET);
  const good = { iss: 'https://id.example', aud: 'sqlite-sse' };
  assert.is(await refusal(verifier, await sign(key, 'HS256', good)), 'accepted');
  assert.is(await refusal(verifier, await sign(key, 'HS256', { ...good, aud: ['other', 'sqlite-sse'] })), 'accepted', 'aud may be a list');
  assert.is(await refusal(verifier, await sign(key, 'HS256', { ...good, iss: 'https://evil.example' })), 'bad-claims');
  assert.is(await refusal(verifier, await sign(key, 'HS256', { ...good, aud: 'another-app' })), 'bad-claims');
  assert.is(await refusal(verifier, await sign(key, 'HS256', { aud: 'sqlite-sse' })), 'bad-claims', 'no iss');
  assert.is(await refusal(verifier, await sign(key, 'HS256', { iss: 'https://id.example' })), 'bad-claims', 'no aud');
});

test('RS256 public key: its tokens pass (RS and PS), another key\'s fail, and an HS256 token signed with the PEM as secret fails', async () => {
  // A Node key object, not a WebCrypto key: WebCrypto binds a key to RSASSA or to PSS, and this key signs both.
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const other = await generateKeyPair('RS256');
  await withPem(pem, async (path) => {
    const verifier = verifierFor({ jwtPublicKey: path });
    assert.match(verifier.description, /RS256/);
    assert.is(await refusal(verifier, await sign(privateKey, 'RS256')), 'accepted');
    assert.is(await refusal(verifier, await sign(privateKey, 'PS256')), 'accepted');
    assert.is(await refusal(verifier, await sign(other.privateKey, 'RS256')), 'bad-signature');
    // The classic confusion: a verifier that let the token pick HS256 would check it with the public PEM as secret.
    assert.is(await refusal(verifier, await sign(secretBytes(pem), 'HS256')), 'bad-signature');
    assert.is(await refusal(verifier, await sign(secretBytes(pem.trim()), 'HS256')), 'bad-signature');
  });
});

test('ES256 and EdDSA public keys verify their own tokens only', async () => {
  const es = await publicPem('ES256');
  await withPem(es.pem, async (path) => {
    const verifier = verifierFor({ jwtPublicKey: path });
    assert.is(await refusal(verifier, await sign(es.privateKey, 'ES256')), 'accepted');
    assert.is(await refusal(verifier, await sign((await generateKeyPair('ES256')).privateKey, 'ES256')), 'bad-signature');
    assert.is(await refusal(verifier, await sign(secretBytes(es.pem), 'HS256')), 'bad-signature');
  });
  const ed = await publicPem('EdDSA');
  await withPem(ed.pem, async (path) => {
    const verifier = verifierFor({ jwtPublicKey: path });
    assert.is(await refusal(verifier, await sign(ed.privateKey, 'EdDSA')), 'accepted');
    assert.is(await refusal(verifier, await sign((await generateKeyPair('EdDSA')).privateKey, 'EdDSA')), 'bad-signature');
    assert.is(await refusal(verifier, await sign(es.privateKey, 'ES256')), 'bad-signature');
  });
});

test('a certificate (made by openssl) and a PKCS#1 RSA key are accepted as --jwt-public-key', async () => {
  const dir = tempDirectory();
  try {
    const keyPath = join(dir, 'private.pem');
    const certPath = join(dir, 'cert.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '1', '-subj', '/CN=id.example'], { stdio: 'ignore' });
    const verifier = verifierFor({ jwtPublicKey: certPath });
    assert.is(verifier.description, 'ES256 public key');
    const signer = createPrivateKey(readFileSync(keyPath));
    assert.is(await refusal(verifier, await sign(signer, 'ES256')), 'accepted');
    assert.is(await refusal(verifier, await sign((await generateKeyPair('ES256')).privateKey, 'ES256')), 'bad-signature');
  } finally {
    removeDirectory(dir);
  }
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  await withPem(rsa.publicKey.export({ type: 'pkcs1', format: 'pem' }).toString(), async (path) => {
    assert.is(await refusal(verifierFor({ jwtPublicKey: path }), await sign(rsa.privateKey, 'RS256')), 'accepted');
  });
});

test('bad options stop the start with one line naming the flag', async () => {
  assert.match(optionError({ jwtSecret: SECRET, jwksUrl: 'https://id.example/jwks' }), /--jwt-secret and --jwks-url/);
  assert.match(optionError({ jwtSecret: 'x'.repeat(31) }), /--jwt-secret is 31 bytes: HS256 needs at least 32/);
  assert.ok(createTokenVerifier({ jwtSecret: 'x'.repeat(32) }), '32 bytes are enough');
  assert.match(optionError({ jwtIssuer: 'https://id.example' }), /--jwt-issuer needs a key/);
  assert.match(optionError({ jwtSecret: SECRET, jwtAudience: ' ' }), /--jwt-audience is empty/);
  assert.match(optionError({ jwksUrl: 'http://id.example/jwks' }), /must be https/);
  assert.match(optionError({ jwksUrl: 'not a url' }), /is not a URL/);
  assert.ok(createTokenVerifier({ jwksUrl: 'http://127.0.0.1:1/jwks' }), 'plain http to a loopback host is allowed');
  assert.match(optionError({ jwtSecretFile: '/nonexistent/secret' }), /cannot read --jwt-secret-file \/nonexistent\/secret/);
  assert.match(optionError({ jwtPublicKey: '/nonexistent/key.pem' }), /cannot read --jwt-public-key/);

  const rsa = await generateKeyPair('RS256', { extractable: true });
  await withPem(await exportPKCS8(rsa.privateKey), (path) => assert.match(optionError({ jwtPublicKey: path }), /holds a private key/));
  await withPem('-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n', (path) => assert.match(optionError({ jwtPublicKey: path }), /is not a PEM public key/));
  await withPem(SECRET, (path) => assert.match(optionError({ jwtPublicKey: path }), /is not a PEM public key/));
  const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
  await withPem(k1, (path) => assert.match(optionError({ jwtPublicKey: path }), /EC key on curve secp256k1: use P-256, P-384 or P-521/));
  await withPem(small, (path) => assert.match(optionError({ jwtPublicKey: path }), /1024-bit RSA key: at least 2048/));
});

test('--jwt-secret-file: the secret is read and trimmed', async () => {
  await withPem(`${SECRET}\n`, async (path) => {
    const verifier = verifierFor({ jwtSecretFile: path });
    assert.is(await refusal(verifier, await sign(secretBytes(SECRET), 'HS256')), 'accepted');
  });
  await withPem('short\n', (path) => assert.match(optionError({ jwtSecretFile: path }), /--jwt-secret-file .* is 5 bytes/));
});

/** A JWKS endpoint on port 0 whose keys a test can change, and which can fail on demand. */
interface KeySetServer {
  url: string;
  keys: JWK[];
  fetches: number;
  answer: 'keys' | 'error' | 'not-json';
  close(): Promise<void>;
}

async function startKeySetServer(keys: JWK[]): Promise<KeySetServer> {
  const server: Server = createServer((_request, response) => {
    state.fetches++;
    if (state.answer === 'error') return void response.writeHead(500).end('down');
    response.writeHead(200, { 'Content-Type': 'application/json' });
    response.end(state.answer === 'not-json' ? '<html>' : JSON.stringify({ keys: state.keys }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const state: KeySetServer = {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    keys,
    fetches: 0,
    answer: 'keys',
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
  return state;
}

async function publicJwk(alg: string, kid: string) {
  const pair = await generateKeyPair(alg, { extractable: true });
  return { privateKey: pair.privateKey, jwk: { ...(await exportJWK(pair.publicKey)), kid, alg, use: 'sig' } };
}

async function withKeySet(keys: JWK[], body: (server: KeySetServer) => Promise<void>): Promise<void> {
  const server = await startKeySetServer(keys);
  try {
    await withTimeout(body(server), 20_000, 'JWKS test');
  } finally {
    await server.close();
  }
}

test('JWKS: a token whose kid is in the set passes; the set is fetched once and cached', async () => {
  const a = await publicJwk('RS256', 'key-a');
  const e = await publicJwk('ES256', 'key-e');
  await withKeySet([a.jwk, e.jwk], async (server) => {
    const verifier = verifierFor({ jwksUrl: server.url });
    assert.is(await verifier.warmUp(), undefined);
    assert.is(await refusal(verifier, await sign(a.privateKey, 'RS256', {}, { kid: 'key-a' })), 'accepted');
    assert.is(await refusal(verifier, await sign(e.privateKey, 'ES256', {}, { kid: 'key-e' })), 'accepted');
    assert.is(await refusal(verifier, await sign(a.privateKey, 'RS256', { exp: now() - 60 }, { kid: 'key-a' })), 'expired');
    assert.is(server.fetches, 1, 'one fetch for all of them');
  });
});

test('JWKS rotation: a token with a new kid makes the verifier fetch the set again and find it', async () => {
  const a = await publicJwk('RS256', 'key-a');
  const b = await publicJwk('RS256', 'key-b');
  await withKeySet([a.jwk], async (server) => {
    const verifier = verifierFor({ jwksUrl: server.url, jwksCooldownMs: 0 });
    assert.is(await refusal(verifier, await sign(a.privateKey, 'RS256', {}, { kid: 'key-a' })), 'accepted');
    const tokenB = await sign(b.privateKey, 'RS256', {}, { kid: 'key-b' });
    assert.is(await refusal(verifier, tokenB), 'bad-signature', 'not published yet');
    server.keys = [a.jwk, b.jwk];
    assert.is(await refusal(verifier, tokenB), 'accepted', 'published: fetched and used');
    server.keys = [b.jwk];
    const fetches = server.fetches;
    assert.is(await refusal(verifier, tokenB), 'accepted');
    assert.is(server.fetches, fetches, 'a known kid needs no fetch');
  });
});

test('JWKS: an unknown kid waits for the cooldown before fetching again, so tokens cannot hammer the provider', async () => {
  const a = await publicJwk('RS256', 'key-a');
  await withKeySet([a.jwk], async (server) => {
    const verifier = verifierFor({ jwksUrl: server.url });
    await verifier.warmUp();
    for (let i = 0; i < 5; i++) assert.is(await refusal(verifier, await sign(a.privateKey, 'RS256', {}, { kid: `nope-${i}` })), 'bad-signature');
    assert.is(server.fetches, 1);
  });
});

test('JWKS: HS256 tokens, alg none and other signers are refused', async () => {
  const a = await publicJwk('RS256', 'key-a');
  const stranger = await generateKeyPair('RS256');
  await withKeySet([a.jwk], async (server) => {
    const verifier = verifierFor({ jwksUrl: server.url, jwksCooldownMs: 0 });
    assert.is(await refusal(verifier, await sign(stranger.privateKey, 'RS256', {}, { kid: 'key-a' })), 'bad-signature');
    assert.is(await refusal(verifier, await sign(secretBytes(JSON.stringify(a.jwk)), 'HS256', {}, { kid: 'key-a' })), 'bad-signature');
    assert.is(await refusal(verifier, new UnsecuredJWT({ sub: 'admin' }).encode()), 'bad-signature');
  });
});

test('JWKS: a token without kid is checked against each key of its type', async () => {
  const a = await publicJwk('ES256', 'key-a');
  const b = await publicJwk('ES256', 'key-b');
  const stranger = await generateKeyPair('ES256');
  await withKeySet([a.jwk, b.jwk], async (server) => {
    const verifier = verifierFor({ jwksUrl: server.url });
    assert.is(await refusal(verifier, await sign(b.privateKey, 'ES256')), 'accepted');
    assert.is(await refusal(verifier, await sign(a.privateKey, 'ES256')), 'accepted');
    assert.is(await refusal(verifier, await sign(stranger.privateKey, 'ES256')), 'bad-signature');
  });
});

test('JWKS unreachable, failing or not JSON: refused as jwks-unavailable, and warmUp says why', async () => {
  const a = await publicJwk('RS256', 'key-a');
  const token = await sign(a.privateKey, 'RS256', {}, { kid: 'key-a' });
  await withKeySet([a.jwk], async (server) => {
    server.answer = 'error';
    const failing = verifierFor({ jwksUrl: server.url });
    assert.match(String(await failing.warmUp()), /cannot fetch the JWKS http:\/\/127\.0\.0\.1/);
    assert.is(await refusal(failing, token), 'jwks-unavailable');
    server.answer = 'not-json';
    assert.is(await refusal(verifierFor({ jwksUrl: server.url }), token), 'jwks-unavailable');
    server.answer = 'keys';
    assert.is(await refusal(failing, token), 'accepted', 'the provider is back: the next token fetches the set');
  });
  const closed = await startKeySetServer([a.jwk]);
  await closed.close();
  assert.is(await refusal(verifierFor({ jwksUrl: closed.url }), token), 'jwks-unavailable', 'connection refused');
  assert.is(await refusal(verifierFor({ jwksUrl: closed.url }), 'garbage'), 'malformed', 'a malformed token needs no key set');
});

test.run();
