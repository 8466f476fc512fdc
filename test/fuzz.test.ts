import { readdirSync, readFileSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CrashWatch, healthz, report, RssSampler, scaled, settle, tableIdsAsync, tally, Writers } from './helpers/chaos.js';
import { ReconnectingSseClient } from './helpers/chaos-clients.js';
import { removeDirectory } from './helpers/cleanup.js';
import { createMessagesDatabase, sqlite, tempDirectory } from './helpers/database.js';
import { startServer, type ServerProcess } from './helpers/server-process.js';
import { waitFor } from './helpers/wait.js';

/** The seed of this run: printed with every failure; `FUZZ_SEED=N` replays a run. */
const SEED = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PUBLIC = join(ROOT, 'public');

/** A seeded generator (mulberry32), so a failing run can be replayed exactly. */
class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(from: number, to: number): number {
    return from + Math.floor(this.next() * (to - from + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  /** Random characters from an alphabet (no letters that could spell a stack frame or a file's content). */
  text(length: number, alphabet = '0123456789-+. eE%xX/\\:;,=&?#~!$\'"()*[]{}<>|^`_'): string {
    let out = '';
    for (let i = 0; i < length; i++) out += alphabet[Math.floor(this.next() * alphabet.length)];
    return out;
  }
}

const METHODS = ['GET', 'GET', 'GET', 'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE', 'CONNECT', 'PRI', 'get', 'G E T', 'GET\0', 'M'.repeat(300), '', 'ÄÖÜ'];
const BASES = ['/', '/events', '/events', '/healthz', '/metrics', '/ws', '/index.html', '/app.js', '/style.css', '/package.json', '/etc/passwd', '/README.md', '/src/cli/server.ts', '/dist/src/cli.js', '/tsconfig.json', '/test.db', '/.git/config', '/node_modules/ws/package.json', '/public/index.html'];
const TRAVERSALS = [
  '',
  '',
  '/..',
  '/../..',
  '/../../../../../../..',
  '/%2e%2e',
  '/%2E%2E/%2e%2e',
  '/..%2f..',
  '/%2e%2e%2f%2e%2e',
  '/..%5c..',
  '/%5c..%5c..',
  '/..\\..',
  '\\..\\..',
  '//',
  '///',
  '/./',
  '/%2f',
  '/%252e%252e',
  '/%c0%ae%c0%ae',
  '/%c0%ae%c0%ae/%c0%ae%c0%ae',
  '/%e0%80%ae%e0%80%ae',
  '/%c0%af',
  '/..%c0%af..',
  '/.%2e',
  '/%2e.',
  '/public/..',
  '/public/../..',
  '/%00',
  '/..;',
  '/%u002e%u002e',
  '/..%00',
  '/%ef%bc%8e%ef%bc%8e',
];
const SUFFIXES = ['', '', '', '%00', '%00.html', '?', '#frag', '/.', '/..', '%2f', ';.js', '?token=x', '%', '%zz', '%c0', '/%2e%2e/package.json'];
const VERSIONS = ['HTTP/1.1', 'HTTP/1.1', 'HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/0.9', 'HTTP/1.1 x', '', 'HTTP/1.12', 'http/1.1', 'HTTP/11', 'HTTP/9.9'];
const CURSORS = ['-1', '1e3', ' 5', '5 ', 'abc', '9007199254740992', '99999999999999999999', '0x10', '', '１２３', '0', '00000000000000000000001', '1.5', '+1', '∞', 'NaN', '%30', '%00', '9007199254740991'];

/** One request target, built from a base path, a traversal, an encoding and a suffix. */
function target(rng: Rng, port: number): string {
  const roll = rng.next();
  if (roll < 0.03) return '*';
  if (roll < 0.06) return `http://127.0.0.1:${port}${rng.pick(TRAVERSALS)}${rng.pick(BASES)}`;
  if (roll < 0.08) return rng.pick(['file:///etc/passwd', 'http://example.com/', '127.0.0.1:80', 'javascript:alert(1)']);
  if (roll < 0.1) return '/' + 'a/'.repeat(rng.int(10, 6000));
  if (roll < 0.13) return '/' + rng.text(rng.int(1, 200));
  // A third are plain known paths (they reach the stream, the health check, the files); the rest are hostile.
  let path = rng.chance(0.33) ? rng.pick(BASES.slice(0, 9)) : rng.pick(TRAVERSALS) + rng.pick(BASES) + rng.pick(SUFFIXES);
  // Percent-encode some characters, in upper or lower case, once or twice.
  if (rng.chance(0.3)) {
    path = [...path]
      .map((char) => {
        if (char === '/' && rng.chance(0.7)) return char;
        if (!rng.chance(0.3)) return char;
        const code = char.charCodeAt(0).toString(16).padStart(2, '0');
        const once = '%' + (rng.chance(0.5) ? code.toUpperCase() : code);
        return rng.chance(0.2) ? once.replace('%', '%25') : once;
      })
      .join('');
  }
  if (rng.chance(0.25)) {
    const cursor = rng.pick(CURSORS);
    path += (path.includes('?') ? '&' : '?') + 'lastEventId=' + encodeURIComponent(cursor) + (rng.chance(0.2) ? '&lastEventId=1' : '');
  }
  return path;
}

/** Zero or more header lines (each without its line end); `clean`: well-formed ones only. */
function headers(rng: Rng, port: number, clean: boolean): string[] {
  const out: string[] = [];
  if (clean || !rng.chance(0.1)) out.push(`Host: ${clean || rng.chance(0.9) ? `127.0.0.1:${port}` : rng.text(rng.int(0, 30))}`);
  if (!clean && rng.chance(0.05)) out.push('Host: second.example');
  const count = clean ? rng.int(0, 2) : rng.int(0, 5);
  for (let i = 0; i < count; i++) {
    switch (clean ? rng.pick([0, 1, 2, 3, 4, 5, 8, 12]) : rng.int(0, 15)) {
      case 0:
        out.push(`Last-Event-ID: ${rng.pick(CURSORS)}`);
        break;
      case 1:
        out.push(`Last-Event-ID: ${rng.text(rng.int(0, 64))}`);
        break;
      case 2:
        out.push(`Upgrade: ${rng.pick(['websocket', 'WebSocket', 'h2c', 'foo', 'TLS/1.0', 'websocket, h2c', ''])}`, 'Connection: Upgrade');
        if (rng.chance(0.5)) out.push('Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', `Sec-WebSocket-Version: ${rng.pick(['13', '8', 'x', ''])}`);
        break;
      case 3:
        out.push(`Origin: ${rng.pick(['https://evil.example', 'null', `http://127.0.0.1:${port}`, rng.text(20)])}`);
        break;
      case 4:
        out.push(`Authorization: ${rng.pick(['Bearer ', 'Bearer x', 'Basic Zm9vOmJhcg==', rng.text(40)])}`);
        break;
      case 5:
        out.push(`Cookie: ${rng.pick(['sse_token=%ZZ', 'sse_token=', 'a=b; sse_token=%E0%A4%A', '=;=;=', rng.text(50)])}`);
        break;
      case 6:
        out.push(`Content-Length: ${rng.pick(['0', '5', '-1', 'abc', '99999999999', '1, 2', '18446744073709551616'])}`);
        break;
      case 7:
        out.push(`Transfer-Encoding: ${rng.pick(['chunked', 'gzip, chunked', 'identity', 'chunked\x0b', 'xchunked'])}`);
        break;
      case 8:
        out.push(`X-Big: ${'a'.repeat(rng.pick([100, 4000, 9000, 17000, 70000]))}`);
        break;
      case 9:
        for (let j = 0; j < rng.pick([50, 200, 2100]); j++) out.push(`X-N${j}: v`);
        break;
      case 10:
        out.push('X-Fold: a', ' folded');
        break;
      case 11:
        out.push(rng.pick(['NoColon', 'Host : spaced', ': empty-name', 'X-Nul: a\0b', 'X-Cr: a\rb', 'X-Ctl: \x01\x02']));
        break;
      case 12:
        out.push(`Accept: ${rng.pick(['text/event-stream', '*/*', rng.text(30)])}`);
        break;
      case 13:
        out.push(`Connection: ${rng.pick(['close', 'keep-alive', 'Upgrade, HTTP2-Settings', rng.text(10)])}`);
        break;
      case 14:
        out.push(`Expect: ${rng.pick(['100-continue', 'x'])}`);
        break;
      default:
        out.push(`${rng.text(rng.int(1, 10), 'abcdefghijklmnopqrstuvwxyz-_')}: ${rng.text(rng.int(0, 40))}`);
    }
  }
  return out;
}

/**
 * One request as raw bytes: a request line, headers, maybe a body. Half are well-formed HTTP/1.1 with a hostile
 * target or header value (they reach the router); the rest are malformed anywhere (they exercise the parser).
 */
function requestBytes(rng: Rng, port: number): Buffer {
  const clean = rng.chance(0.5);
  const method = clean ? rng.pick(['GET', 'GET', 'GET', 'GET', 'HEAD', 'POST', 'OPTIONS', 'DELETE']) : rng.pick(METHODS);
  const version = clean ? 'HTTP/1.1' : rng.pick(VERSIONS);
  const line = `${method} ${target(rng, port)}${clean || rng.chance(0.95) ? ' ' : ''}${version}`.trimEnd();
  const eol = clean ? '\r\n' : rng.pick(['\r\n', '\r\n', '\r\n', '\r\n', '\n', '\r']);
  let text = [line, ...headers(rng, port, clean)].join(eol) + eol + eol;
  if (!clean && rng.chance(0.1)) text += rng.pick(['hello', '5\r\nhello\r\n0\r\n\r\n', 'zz\r\n', rng.text(rng.int(1, 500))]);
  // latin1 keeps any byte as is; some requests carry UTF-8 bytes (and invalid sequences) instead.
  const bytes = Buffer.from(text, rng.chance(0.8) ? 'latin1' : 'utf8');
  if (!clean && rng.chance(0.03)) bytes[rng.int(0, bytes.length - 1)] = rng.int(0, 255);
  return bytes;
}

/** A well-formed WebSocket upgrade followed by garbage frames. */
function websocketGarbage(rng: Rng, port: number): Buffer {
  const head = `GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`;
  const garbage = Buffer.alloc(rng.pick([1, 2, 14, 200, 9000]));
  for (let i = 0; i < garbage.length; i++) garbage[i] = rng.int(0, 255);
  return Buffer.concat([Buffer.from(head), garbage]);
}

/** Send bytes in a few pieces and collect the answer: until the server closes, 150 ms of silence after data, or 1 s of none. */
function exchange(port: number, pieces: Buffer[]): Promise<Buffer> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    const chunks: Buffer[] = [];
    let size = 0;
    let idle: NodeJS.Timeout | undefined;
    const done = () => {
      clearTimeout(idle);
      clearTimeout(overall);
      socket.destroy();
      resolve(Buffer.concat(chunks));
    };
    const overall = setTimeout(done, 1000);
    socket.on('data', (chunk: Buffer) => {
      if (size < 256 * 1024) chunks.push(chunk);
      size += chunk.length;
      clearTimeout(idle);
      idle = setTimeout(done, 150);
    });
    socket.on('error', done);
    socket.on('close', done);
    socket.once('connect', async () => {
      for (const piece of pieces) {
        if (socket.destroyed) return;
        socket.write(piece);
        await new Promise((r) => setTimeout(r, 2));
      }
    });
  });
}

/** Bytes that only a file outside public/ (or the database itself) would put in an answer. */
function forbiddenMarkers(): string[] {
  const pkg = readFileSync(join(ROOT, 'package.json'), 'utf8');
  const candidates = [
    '"devDependencies"',
    '"better-sqlite3":',
    JSON.parse(pkg).description as string,
    'root:x:0:0',
    '"compilerOptions"',
    'export class Hub',
    'SQLite format 3',
    '# sqlite-sse',
    '[core]',
    '"tsBuildInfoFile"',
  ];
  // A marker that a public file itself contains would prove nothing: leave it out (and the test says so).
  const publicText = listFiles(PUBLIC).map((file) => readFileSync(file, 'latin1'));
  return candidates.filter((marker) => !publicText.some((text) => text.includes(marker)));
}

function listFiles(directory: string): string[] {
  return readdirSync(directory).flatMap((name) => {
    const path = join(directory, name);
    return statSync(path).isDirectory() ? listFiles(path) : [path];
  });
}

/** A stack frame, an internal module, or an error naming a file on this machine. */
const STACK_PATTERNS = [/\n\s*at [^\n]*[(\s](file:|node:|\/)[^\n]*:\d+/, /node:internal/, /Error:[^\n]*\/(work|src|dist|node_modules|tmp)\//, /\.(ts|js|mjs):\d+:\d+/];

test('fuzz: thousands of random and malformed requests never crash the server, leak a stack or a file outside public/, or disturb a stream', async () => {
  const started = Date.now();
  const total = scaled(2000, 20000);
  const rng = new Rng(SEED);
  const markers = forbiddenMarkers();
  const dir = tempDirectory();
  const crashes = new CrashWatch();
  let server: ServerProcess | undefined;
  let writers: Writers | undefined;
  let rss: RssSampler | undefined;
  let watcher: ReconnectingSseClient | undefined;
  const failures: string[] = [];
  const statuses = new Map<string, number>();
  try {
    assert.ok(markers.length >= 6, `enough markers to recognise a file outside public/ (${markers.length})`);
    const path = createMessagesDatabase(dir, 'wal');
    sqlite(path, `INSERT INTO messages(message) VALUES ('before-1'), ('before-2');`);
    server = crashes.watch(await startServer(['--db', path, '--metrics']));
    const port = server.port;
    const pid = server.child.pid!;
    rss = new RssSampler(() => pid);
    watcher = new ReconnectingSseClient(() => port, '/events?lastEventId=0', 100);
    await waitFor('the watching client attached', () => watcher!.delivery.count >= 2, 5000);
    writers = new Writers(path, join(dir, 'control'), { count: 1, perCommitMax: 3, delayMs: 5 });

    let next = 0;
    const worker = async () => {
      while (next < total && failures.length < 20) {
        const index = next++;
        let bytes: Buffer;
        if (rng.chance(0.03)) bytes = websocketGarbage(rng, port);
        else {
          // Pipelining: up to four requests in one go, sometimes with garbage between them.
          const count = rng.chance(0.1) ? rng.int(2, 4) : 1;
          const parts: Buffer[] = [];
          for (let i = 0; i < count; i++) {
            parts.push(requestBytes(rng, port));
            if (rng.chance(0.1)) parts.push(Buffer.from(rng.text(rng.int(1, 20))));
          }
          bytes = Buffer.concat(parts);
        }
        // Split at random points: the parser must cope with any fragmentation.
        const pieces: Buffer[] = [];
        let at = 0;
        while (at < bytes.length) {
          const size = rng.chance(0.7) ? bytes.length - at : rng.int(1, Math.max(1, bytes.length - at));
          pieces.push(bytes.subarray(at, at + size));
          at += size;
        }
        const answer = (await exchange(port, pieces)).toString('latin1');
        const status = /^HTTP\/1\.[01] (\d{3})/.exec(answer)?.[1] ?? (answer === '' ? 'none' : 'other');
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        const request = JSON.stringify(bytes.subarray(0, 300).toString('latin1'));
        if (process.env.FUZZ_DEBUG && index < Number(process.env.FUZZ_DEBUG)) console.log(status, request.slice(0, 200));
        for (const pattern of STACK_PATTERNS) {
          if (pattern.test(answer)) failures.push(`request #${index} ${request} got a stack trace (${pattern}): ${JSON.stringify(answer.slice(0, 600))}`);
        }
        for (const marker of markers) {
          if (answer.includes(marker)) failures.push(`request #${index} ${request} got content of a file outside public/ (${marker}): ${JSON.stringify(answer.slice(0, 600))}`);
        }
        if (crashes.crashes > 0) failures.push(`the server died after request #${index} ${request}`);
      }
    };
    await Promise.all(Array.from({ length: 32 }, worker));

    const alive = server.child.exitCode === null && server.child.signalCode === null;
    const health = await healthz(port).then(
      (h) => `200 ok=${h.ok}`,
      (error: Error) => `failed: ${error.message}`,
    );
    await writers.stop();
    const expected = [await tableIdsAsync(path)];
    const settled = await settle([watcher.delivery], expected, 20000);
    const result = tally(watcher.delivery, expected);
    const maxRss = rss.stop();
    const statusList = [...statuses].sort().map(([status, count]) => `${status}:${count}`).join(' ');
    report({
      scenario: 'fuzz',
      repetitions: total,
      rowsWritten: expected[0].length,
      delivered: [result.delivered],
      lost: result.lost,
      duplicated: result.duplicated,
      maxRssBytes: maxRss,
      crashes: crashes.crashes,
      seconds: (Date.now() - started) / 1000,
      notes: `seed ${SEED} (FUZZ_SEED=${SEED} replays it); answers ${statusList}; /healthz after: ${health}; stream connects ${watcher.connects}; markers ${markers.length}`,
    });
    const seedNote = ` (seed ${SEED}: FUZZ_SEED=${SEED} replays this run)`;
    assert.equal(failures, [], 'no stack trace, no file outside public/, no crash' + seedNote);
    assert.ok(alive, 'the server process is alive' + seedNote);
    assert.is(crashes.crashes, 0, 'no crash' + seedNote);
    assert.is(health, '200 ok=true', '/healthz answers 200 after the fuzzing' + seedNote);
    assert.ok(settled, 'the watching client caught up' + seedNote);
    assert.is(watcher.connects, 1, 'the well-behaved stream was never cut off' + seedNote);
    assert.equal(watcher.delivery.epochs, expected, 'the well-behaved stream got every row written meanwhile, exactly once, in order' + seedNote);
  } finally {
    rss?.stop();
    watcher?.stop();
    writers?.kill();
    if (server) await crashes.kill(server).catch(() => undefined);
    removeDirectory(dir);
  }
});

test.run();
