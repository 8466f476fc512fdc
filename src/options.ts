import { ErrorCodes, SseError } from './errors.js';
import { readFileSync } from 'node:fs';
import { AREAS, type Area } from './access/access.js';
import type { LogFormat, LogLevel } from './logger.js';
import type { WatcherBackend } from './source/watcher.js';
import { assertFieldValue } from './transport/sse-frame.js';
import { parseRedisUrl, redactUrl } from './redis/redis-connection.js';

/** Everything the server can be told, after defaults and validation. */
export interface ServerOptions {
  db: string;
  /** The first of `tables`: the stream `/events` serves without `?table=`. */
  table: string;
  /** Insert mode: the tables streamed, each with its own ids (`?table=NAME`). Change mode: narrows the change log to these (empty: every tracked table). */
  tables: readonly string[];
  /** Stream the change log of tracked tables (updates and deletes too) instead of new rows. */
  changes: boolean;
  /** Signed tokens (see src/access/token-verifier.ts); all undefined: off. */
  jwtSecret: string | undefined;
  jwtSecretFile: string | undefined;
  jwtPublicKey: string | undefined;
  jwksUrl: string | undefined;
  jwtIssuer: string | undefined;
  jwtAudience: string | undefined;
  /** Access rules filled from a token's claims, ANDed with what each client asks (`[TABLE.]column=op.{claim}`). */
  rowFilters: readonly string[];
  /** Origin: also publish every event to Redis Streams at this URL. */
  redis: string | undefined;
  /** Prefix of the stream keys: `<prefix><table>` or `<prefix>changes`. */
  redisPrefix: string;
  /** Entries a stream keeps (`MAXLEN ~`). */
  redisMaxLen: number;
  /** Edge: serve the stream that an origin publishes to Redis at this URL; open no database. */
  edge: string | undefined;
  /** Edge: the origin's URL, for history older than the Redis stream and for snapshots. */
  origin: string | undefined;
  host: string;
  port: number;
  idColumn: string | undefined;
  event: string | undefined;
  historyRows: number;
  historyBytes: number;
  recentRows: number;
  heartbeatMs: number;
  retryMs: number;
  clientBufferBytes: number;
  slowClientTimeoutMs: number;
  pageRows: number;
  /** Create a missing database file or table with the demo schema. */
  create: boolean;
  publicDir: string | undefined;
  /** PEM certificate and key: serve HTTP/2 over TLS, with HTTP/1.1 on the same port. */
  tlsCert: string | undefined;
  tlsKey: string | undefined;
  /** Serve Prometheus metrics at /metrics. */
  metrics: boolean;
  logLevel: LogLevel;
  logFormat: LogFormat;
  /** Streams held at once (0: no limit); past it, 503 with Retry-After. */
  maxClients: number;
  /** Streams one address may hold (0: no limit); past it, 429 with Retry-After. */
  maxClientsPerIp: number;
  /** Rows one connection may be served from the database before its stream ends and it resumes (0: no limit). */
  maxCatchUpRows: number;
  /** Origins allowed to read cross-origin; `*` for any. Empty: CORS off. */
  corsOrigins: readonly string[];
  /** Shared secret from --token or --token-file; undefined: off. */
  token: string | undefined;
  /** What the token guards. */
  protect: ReadonlySet<Area>;
  /** Server processes sharing the port, each with its own hub. */
  workers: number;
  /** What rings the doorbell on a commit. */
  watcher: WatcherBackend;
}

/** Flags whose text is turned into another field (see applyAccessFlags). */
interface RawOnly {
  corsOrigin?: string;
  tokenFile?: string;
  protectList?: string;
}
const RAW_KEYS = new Set<string>(['corsOrigin', 'tokenFile', 'protectList']);

type Kind = 'string' | 'count' | 'bytes' | 'seconds' | 'milliseconds' | 'flag' | 'choice';

interface FlagSpec {
  key: keyof ServerOptions | keyof RawOnly;
  kind: Kind;
  /** The flag may be given more than once; its values are kept in order. */
  multiple?: boolean;
  value?: string;
  help: string;
  default: string;
  min?: number;
  choices?: readonly string[];
}

/** The flags, in the order `--help` lists them. */
export const FLAGS: Record<string, FlagSpec> = {
  db: { key: 'db', kind: 'string', value: 'PATH', help: 'SQLite database to stream', default: './sse.db (created with the demo table if missing)' },
  table: { key: 'tables', kind: 'string', multiple: true, value: 'NAME', help: 'table whose rows are streamed; repeat for more (GET /events?table=NAME); with --changes, narrows the change log', default: 'messages (with --changes: every tracked table)' },
  changes: { key: 'changes', kind: 'flag', help: 'stream every change (insert, update, delete) of tables tracked with `sqlite-sse track`', default: 'off: new rows only' },
  port: { key: 'port', kind: 'count', value: 'N', help: 'TCP port (0: any free port)', default: '8000' },
  host: { key: 'host', kind: 'string', value: 'H', help: 'address to listen on', default: '127.0.0.1' },
  'id-column': { key: 'idColumn', kind: 'string', value: 'NAME', help: 'integer column whose values only grow', default: "the table's INTEGER PRIMARY KEY" },
  event: { key: 'event', kind: 'string', value: 'NAME', help: 'SSE event name of each row', default: 'none, so onmessage fires' },
  'history-rows': { key: 'historyRows', kind: 'count', value: 'N', help: 'rows kept in memory for resuming clients', default: '10000' },
  'history-bytes': { key: 'historyBytes', kind: 'bytes', value: 'BYTES', help: 'memory for those rows (suffix k, m, g)', default: '16m' },
  'recent-rows': { key: 'recentRows', kind: 'count', value: 'N', help: 'rows a client without a cursor gets first', default: '100' },
  heartbeat: { key: 'heartbeatMs', kind: 'seconds', value: 'SECONDS', help: 'interval of heartbeat comments', default: '15', min: 0.01 },
  retry: { key: 'retryMs', kind: 'milliseconds', value: 'MS', help: 'reconnect delay hinted to clients (retry:)', default: '2000' },
  'client-buffer': { key: 'clientBufferBytes', kind: 'bytes', value: 'BYTES', help: 'bytes a client may lag before it is paused and caught up', default: '1m', min: 1 },
  'slow-client-timeout': { key: 'slowClientTimeoutMs', kind: 'seconds', value: 'SECONDS', help: 'a client that takes nothing this long is closed', default: '30', min: 0.01 },
  'page-rows': { key: 'pageRows', kind: 'count', value: 'N', help: 'rows per database read', default: '1000', min: 1 },
  create: { key: 'create', kind: 'flag', help: 'create a missing database or table with the demo schema', default: 'off' },
  'tls-cert': { key: 'tlsCert', kind: 'string', value: 'PATH', help: 'PEM certificate: serve HTTPS with HTTP/2 (and HTTP/1.1)', default: 'none (plain HTTP/1.1)' },
  'tls-key': { key: 'tlsKey', kind: 'string', value: 'PATH', help: 'PEM private key of --tls-cert', default: 'none' },
  'max-clients': { key: 'maxClients', kind: 'count', value: 'N', help: 'streams held at once, then 503 (0: no limit)', default: '20000' },
  'max-clients-per-ip': { key: 'maxClientsPerIp', kind: 'count', value: 'N', help: 'streams one address may hold, then 429 (0: no limit)', default: '0 (no limit)' },
  'max-catchup-rows': { key: 'maxCatchUpRows', kind: 'count', value: 'N', help: 'rows one connection may read from the database, then it resumes (0: no limit)', default: '100000' },
  'cors-origin': { key: 'corsOrigin', kind: 'string', value: 'LIST', help: 'origins (comma-separated, or *) allowed to read cross-origin', default: 'none: same origin only' },
  token: { key: 'token', kind: 'string', value: 'SECRET', help: 'require this token (Bearer header, sse_token cookie or ?token=)', default: 'none' },
  'token-file': { key: 'tokenFile', kind: 'string', value: 'PATH', help: 'read the token from a file (keeps it out of ps)', default: 'none' },
  protect: { key: 'protectList', kind: 'string', value: 'LIST', help: `what the token guards: ${AREAS.join(', ')}`, default: 'events,ws,metrics' },
  'jwt-secret': { key: 'jwtSecret', kind: 'string', value: 'SECRET', help: 'verify signed tokens (HS256) with this secret (at least 32 bytes)', default: 'none' },
  'jwt-secret-file': { key: 'jwtSecretFile', kind: 'string', value: 'PATH', help: 'read the HS256 secret from a file', default: 'none' },
  'jwt-public-key': { key: 'jwtPublicKey', kind: 'string', value: 'PATH', help: 'verify signed tokens with this PEM public key (RS256, ES256, EdDSA)', default: 'none' },
  'jwks-url': { key: 'jwksUrl', kind: 'string', value: 'URL', help: "verify signed tokens with the identity provider's key set (fetched, cached, refreshed)", default: 'none' },
  'jwt-issuer': { key: 'jwtIssuer', kind: 'string', value: 'ISS', help: 'accept only tokens with this iss claim', default: 'any' },
  'jwt-audience': { key: 'jwtAudience', kind: 'string', value: 'AUD', help: 'accept only tokens with this aud claim', default: 'any' },
  'row-filter': { key: 'rowFilters', kind: 'string', multiple: true, value: 'FILTER', help: "access rule from the token's claims, e.g. 'user_id=eq.{sub}' or 'notes.team=in.{teams}'; repeatable", default: 'none' },
  redis: { key: 'redis', kind: 'string', value: 'URL', help: 'origin: also publish every event to Redis Streams (for edges); redis+sentinel://HOST:26379[,HOST:PORT]/MASTER follows failovers', default: 'none' },
  'redis-prefix': { key: 'redisPrefix', kind: 'string', value: 'PREFIX', help: 'prefix of the Redis stream keys (<prefix><table>, <prefix>changes)', default: 'sqlite-sse:' },
  'redis-maxlen': { key: 'redisMaxLen', kind: 'count', value: 'N', help: 'entries each Redis stream keeps (MAXLEN ~)', default: '1000000', min: 1 },
  edge: { key: 'edge', kind: 'string', value: 'URL', help: 'edge: serve the stream an origin publishes to this Redis (redis:// or redis+sentinel://); open no database', default: 'none' },
  origin: { key: 'origin', kind: 'string', value: 'URL', help: "edge: the origin's http(s) URL, for history older than the Redis stream and for snapshots", default: 'none: history-gone reset, no snapshots' },
  watcher: { key: 'watcher', kind: 'choice', value: 'KIND', help: 'file notifications: native (fs.watch) or chokidar (raw events)', default: 'native', choices: ['native', 'chokidar'] },
  workers: { key: 'workers', kind: 'count', value: 'N', help: 'processes sharing the port, each reading the table once (use the cores)', default: '1', min: 1 },
  metrics: { key: 'metrics', kind: 'flag', help: 'serve Prometheus metrics at GET /metrics', default: 'off' },
  'log-level': { key: 'logLevel', kind: 'choice', value: 'LEVEL', help: 'debug (a line per connection), info, warn or error', default: 'info', choices: ['debug', 'info', 'warn', 'error'] },
  'log-format': { key: 'logFormat', kind: 'choice', value: 'FORMAT', help: 'text for people, json for machines', default: 'text', choices: ['text', 'json'] },
  public: { key: 'publicDir', kind: 'string', value: 'DIR', help: 'folder of the web page served at /', default: "the package's public/" },
};

const BYTE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3 };

/** Parse one flag's text; throws SSE_ERR_BAD_OPTION naming the flag and what it expects. */
function parseValue(flag: string, spec: FlagSpec, text: string): string | number | boolean {
  const bad = (expected: string) => new SseError(ErrorCodes.BAD_OPTION, `--${flag} expects ${expected}, got ${JSON.stringify(text)}`);
  const min = spec.min ?? 0;
  switch (spec.kind) {
    case 'string':
      if (text === '') throw bad('a value');
      return text;
    case 'count':
    case 'milliseconds': {
      if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text)) || Number(text) < min) throw bad(`a whole number of at least ${min}`);
      return Number(text);
    }
    case 'seconds': {
      const seconds = Number(text);
      if (!/^\d+(\.\d+)?$/.test(text) || seconds < min) throw bad(`a number of seconds of at least ${min}`);
      return Math.round(seconds * 1000);
    }
    case 'bytes': {
      const match = /^(\d+)\s*([a-z]*)$/i.exec(text);
      const unit = match ? BYTE_UNITS[match[2].toLowerCase()] : undefined;
      if (!match || unit === undefined || Number(match[1]) * unit < min) throw bad('a size in bytes, like 65536, 512k or 16m');
      return Number(match[1]) * unit;
    }
    case 'flag':
      return true;
    case 'choice':
      if (!spec.choices!.includes(text)) throw bad(`one of ${spec.choices!.join(', ')}`);
      return text;
  }
}

/**
 * Defaults under the flags given, validated and frozen. `flags` maps a flag name (without `--`) to its text (a list of
 * texts for a repeatable flag).
 */
export function resolveOptions(flags: Record<string, string | boolean | readonly string[] | undefined>): Readonly<ServerOptions> {
  const options: ServerOptions = {
    db: './sse.db',
    table: 'messages',
    tables: [],
    changes: false,
    jwtSecret: undefined,
    jwtSecretFile: undefined,
    jwtPublicKey: undefined,
    jwksUrl: undefined,
    jwtIssuer: undefined,
    jwtAudience: undefined,
    rowFilters: [],
    redis: undefined,
    redisPrefix: 'sqlite-sse:',
    redisMaxLen: 1000000,
    edge: undefined,
    origin: undefined,
    host: '127.0.0.1',
    port: 8000,
    idColumn: undefined,
    event: undefined,
    historyRows: 10000,
    historyBytes: 16 * 1024 ** 2,
    recentRows: 100,
    heartbeatMs: 15000,
    retryMs: 2000,
    clientBufferBytes: 1024 ** 2,
    slowClientTimeoutMs: 30000,
    pageRows: 1000,
    create: false,
    publicDir: undefined,
    tlsCert: undefined,
    tlsKey: undefined,
    metrics: false,
    logLevel: 'info',
    logFormat: 'text',
    maxClients: 20000,
    maxClientsPerIp: 0,
    maxCatchUpRows: 100000,
    corsOrigins: [],
    token: undefined,
    protect: new Set<Area>(['events', 'ws', 'metrics']),
    workers: 1,
    watcher: 'native',
  };
  const raw: RawOnly = {};
  for (const [flag, text] of Object.entries(flags)) {
    if (text === undefined) continue;
    const spec = FLAGS[flag];
    if (!spec) throw new SseError(ErrorCodes.BAD_OPTION, `unknown option --${flag} (see --help)`);
    const value = spec.multiple
      ? (Array.isArray(text) ? text : [text]).map((one) => parseValue(flag, spec, String(one)))
      : spec.kind === 'flag'
        ? Boolean(text)
        : parseValue(flag, spec, String(Array.isArray(text) ? text[text.length - 1] : text));
    const target = RAW_KEYS.has(spec.key) ? raw : options;
    (target as Record<string, unknown>)[spec.key] = value;
  }
  applyAccessFlags(options, raw);
  applyStreamFlags(options);
  if (options.port > 65535) throw new SseError(ErrorCodes.BAD_OPTION, `--port expects a number from 0 to 65535, got ${options.port}`);
  if ((options.tlsCert === undefined) !== (options.tlsKey === undefined)) {
    throw new SseError(ErrorCodes.BAD_OPTION, '--tls-cert and --tls-key go together: pass both, or neither for plain HTTP');
  }
  if (options.event !== undefined) {
    try {
      assertFieldValue('--event', options.event);
    } catch {
      throw new SseError(ErrorCodes.BAD_OPTION, '--event must not contain CR, LF or NUL');
    }
  }
  return Object.freeze(options);
}

/** The tables, change mode, signed tokens and Redis roles: what combines and what conflicts. */
function applyStreamFlags(options: ServerOptions): void {
  const bad = (message: string) => new SseError(ErrorCodes.BAD_OPTION, message);
  const seen = new Set<string>();
  for (const table of options.tables) {
    if (seen.has(table.toLowerCase())) throw bad(`--table ${table} is given twice`);
    seen.add(table.toLowerCase());
  }
  if (options.tables.length > 0) options.table = options.tables[0];
  else if (!options.changes) options.tables = [options.table];
  if (options.changes && options.idColumn !== undefined) throw bad('--id-column does not apply to --changes: the change log orders changes by its own sequence');
  const jwt = [options.jwtSecret !== undefined, options.jwtSecretFile !== undefined, options.jwtPublicKey !== undefined, options.jwksUrl !== undefined].filter(Boolean).length;
  if (options.rowFilters.length > 0 && jwt === 0) throw bad('--row-filter needs signed tokens: pass --jwt-secret, --jwt-public-key or --jwks-url');
  if (options.edge !== undefined) {
    if (options.redis !== undefined) throw bad('--edge and --redis go alone: an edge reads the stream an origin (started with --redis) publishes');
    checkRedisUrl('edge', options.edge);
    if (options.tables.length > 1) throw bad('--edge serves one stream: pass one --table (or --changes)');
    if (options.workers > 1) throw bad('--edge runs in one process: --workers does not apply');
  } else if (options.origin !== undefined) {
    throw bad('--origin goes with --edge');
  }
  if (options.origin !== undefined && !/^https?:\/\/[^/\s]+/.test(options.origin)) {
    throw bad(`--origin expects the origin's URL like http://origin:8000, got ${JSON.stringify(options.origin)}`);
  }
  if (options.redis !== undefined) checkRedisUrl('redis', options.redis);
  if (options.redis !== undefined && options.tables.length > 1 && !options.changes) throw bad('--redis publishes one stream: pass one --table (or --changes)');
  // One publisher per stream key: each worker would run its own, and one lagging behind the stream's top would take it
  // for a replaced database and rebuild the stream.
  if (options.redis !== undefined && options.workers > 1) throw bad('--redis publishes from one process: --workers does not apply (run edges for more connections)');
}

/** `--redis` and `--edge`: a URL redis-connection.ts understands; the message says why not, with the password hidden. */
function checkRedisUrl(flag: 'redis' | 'edge', url: string): void {
  try {
    parseRedisUrl(url);
  } catch (error) {
    throw new SseError(
      ErrorCodes.BAD_OPTION,
      `--${flag} expects a Redis URL like redis://127.0.0.1:6379 or redis+sentinel://127.0.0.1:26379/mymaster, got ${JSON.stringify(redactUrl(url))}: ${(error as Error).message}`,
    );
  }
}

function applyAccessFlags(options: ServerOptions, raw: RawOnly): void {
  if (raw.corsOrigin !== undefined) {
    options.corsOrigins = raw.corsOrigin.split(',').map((origin) => origin.trim()).filter(Boolean);
    for (const origin of options.corsOrigins) {
      if (origin !== '*' && !/^https?:\/\/[^/\s]+$/.test(origin)) {
        throw new SseError(ErrorCodes.BAD_OPTION, `--cors-origin expects origins like https://app.example.com (scheme and host, no path) or *, got ${JSON.stringify(origin)}`);
      }
    }
  }
  if (raw.tokenFile !== undefined) {
    if (options.token !== undefined) throw new SseError(ErrorCodes.BAD_OPTION, '--token and --token-file go alone: pass one of them');
    try {
      options.token = readFileSync(raw.tokenFile, 'utf8').trim();
    } catch (error) {
      throw new SseError(ErrorCodes.BAD_OPTION, `cannot read --token-file ${raw.tokenFile}: ${(error as Error).message}`);
    }
  }
  if (options.token !== undefined && options.token.length < 8) {
    throw new SseError(ErrorCodes.BAD_OPTION, '--token must be at least 8 characters: a short secret is easy to guess');
  }
  if (raw.protectList !== undefined) {
    const areas = raw.protectList.split(',').map((area) => area.trim()).filter(Boolean);
    for (const area of areas) {
      if (!AREAS.includes(area as Area)) throw new SseError(ErrorCodes.BAD_OPTION, `--protect expects a list of ${AREAS.join(', ')}, got ${JSON.stringify(area)}`);
    }
    options.protect = new Set(areas as Area[]);
  }
}

/** The `--help` text, built from the same table the parser uses. */
export function helpText(): string {
  const lines = [
    'sqlite-sse: stream a SQLite table to browsers over Server-Sent Events',
    '',
    'Usage: npm start -- [options]        (or: node dist/src/cli.js [options])',
    '',
    'Options:',
  ];
  const rows = Object.entries(FLAGS).map(([flag, spec]) => [`  --${flag}${spec.value ? ' ' + spec.value : ''}`, `${spec.help} (default: ${spec.default})`]);
  rows.push(['  --help', 'show this help'], ['  --version', 'show the version']);
  const width = Math.max(...rows.map(([left]) => left.length)) + 2;
  for (const [left, right] of rows) lines.push(left.padEnd(width) + right);
  lines.push(
    '',
    'Endpoints: GET /events (SSE; resume with Last-Event-ID or ?lastEventId=N; ?table=NAME; filters like ?user_id=eq.42',
    '           and select=id,title; snapshot=1 with --changes), GET /ws (the same over WebSocket), GET /healthz,',
    '           GET /metrics (with --metrics), GET /history and /snapshot (with --redis), GET / (demo page).',
    'Without --db, ./sse.db is created with the demo table messages(id, message) when missing.',
    '',
    'Commands: sqlite-sse track --db PATH --table NAME [--keep N]   install the change-log triggers (see track --help)',
    '          sqlite-sse untrack --db PATH --table NAME            remove them',
  );
  return lines.join('\n');
}
