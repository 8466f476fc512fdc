import { Redis, type RedisOptions } from 'ioredis';

/**
 * Where Redis is, from the one URL `--redis` and `--edge` take (docs/scaling.md):
 *
 * - `redis://[[user]:password@]host[:port][/db]` (`rediss://` for TLS): one server, handed to ioredis as is.
 * - `redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/master[/db][?sentinelPassword=P&sentinelUsername=U]`:
 *   the Sentinels to ask (port 26379 unless given) for the primary of the group `master`. The user and password
 *   are the primary's (and its replicas'); `sentinelPassword` and `sentinelUsername` are for Sentinels that have
 *   their own `requirepass`. Every connection asks a Sentinel where the primary is, so after a failover the next
 *   reconnect lands on the new primary.
 *
 * Parsed here, once, for the flags' validation, for the connections of the publisher and of an edge, and for logs
 * (passwords redacted).
 */

export type RedisTarget =
  | { kind: 'server'; url: string }
  | {
      kind: 'sentinel';
      sentinels: { host: string; port: number }[];
      /** The master group's name as the Sentinels know it (`sentinel monitor NAME ...`). */
      name: string;
      db: number;
      username: string | undefined;
      password: string | undefined;
      sentinelUsername: string | undefined;
      sentinelPassword: string | undefined;
    };

export const SENTINEL_PORT = 26379;

/** Why a Redis URL was refused; `message` is one line saying what is wrong. */
export class RedisUrlError extends Error {}

const SENTINEL_QUERY = new Set(['sentinelPassword', 'sentinelUsername']);

/** The target of a Redis URL; throws RedisUrlError saying what is wrong. */
export function parseRedisUrl(text: string): RedisTarget {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(text)?.[1].toLowerCase();
  if (scheme === 'redis' || scheme === 'rediss') return { kind: 'server', url: parseServerUrl(text) };
  if (scheme === 'redis+sentinel') return parseSentinelUrl(text);
  if (scheme === 'rediss+sentinel') throw new RedisUrlError('TLS through Sentinel (rediss+sentinel://) is not supported yet');
  throw new RedisUrlError(scheme ? `unknown scheme ${scheme}://` : 'no scheme');
}

function parseServerUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new RedisUrlError('not a URL');
  }
  if (!/^(\/\d*)?\/?$/.test(url.pathname)) throw new RedisUrlError(`the path ${url.pathname} is not a database number`);
  if (url.search || url.hash) throw new RedisUrlError('no query or fragment is understood');
  return text;
}

function parseSentinelUrl(text: string): RedisTarget {
  const match = /^redis\+sentinel:\/\/(?:([^@/]*)@)?([^/?#@]*)(\/[^?#]*)?(?:\?([^#]*))?$/i.exec(text);
  if (!match) throw new RedisUrlError('not a URL of the form redis+sentinel://HOST:PORT[,HOST:PORT...]/MASTER[/DB]');
  const [, userInfo, hostList, path = '', query] = match;
  let username: string | undefined;
  let password: string | undefined;
  if (userInfo !== undefined) {
    const colon = userInfo.indexOf(':');
    username = decode(colon === -1 ? userInfo : userInfo.slice(0, colon), 'user') || undefined;
    password = colon === -1 ? undefined : decode(userInfo.slice(colon + 1), 'password') || undefined;
  }
  if (hostList === '') throw new RedisUrlError('no Sentinel address');
  const sentinels = hostList.split(',').map(sentinelAddress);
  const [, master = '', db = '', ...extra] = path.split('/');
  if (master === '') throw new RedisUrlError("the master's name is missing after the Sentinel addresses (…:26379/MASTER)");
  if (extra.length > 0 && !(extra.length === 1 && extra[0] === '')) throw new RedisUrlError(`the path ${path} is not /MASTER or /MASTER/DB`);
  if (db !== '' && !/^\d{1,5}$/.test(db)) throw new RedisUrlError(`the database ${JSON.stringify(db)} is not a number`);
  const params = new URLSearchParams(query ?? '');
  for (const key of params.keys()) {
    if (!SENTINEL_QUERY.has(key)) throw new RedisUrlError(`unknown parameter ${key} (known: ${[...SENTINEL_QUERY].join(', ')})`);
  }
  return {
    kind: 'sentinel',
    sentinels,
    name: decode(master, "master's name"),
    db: db === '' ? 0 : Number(db),
    username,
    password,
    sentinelUsername: params.get('sentinelUsername') || undefined,
    sentinelPassword: params.get('sentinelPassword') || undefined,
  };
}

function sentinelAddress(text: string): { host: string; port: number } {
  const match = /^(\[[0-9a-f:.]+\]|[^:[\]]+)(?::(\d*))?$/i.exec(text);
  if (!match) throw new RedisUrlError(`${JSON.stringify(text)} is not a HOST or HOST:PORT`);
  const port = match[2] === undefined || match[2] === '' ? SENTINEL_PORT : Number(match[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RedisUrlError(`the port of ${JSON.stringify(text)} is not from 1 to 65535`);
  return { host: match[1].replace(/^\[|\]$/g, ''), port };
}

function decode(text: string, what: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new RedisUrlError(`the ${what} is not valid percent-encoding`);
  }
}

/** A Redis URL without its passwords, for logs and error messages; works on malformed URLs too. */
export function redactUrl(url: string): string {
  if (/^redis\+sentinel:/i.test(url) || !URL.canParse(url)) return redactText(url);
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '***';
  return parsed.href.replace(/\/$/, '');
}

function redactText(url: string): string {
  return url.replace(/^([^:/]+:\/\/[^:@/]*):[^@/]*@/, '$1:***@').replace(/([?&]sentinelPassword=)[^&#]*/gi, '$1***');
}

/**
 * A connection to the Redis of `url`, with `options` (the caller's policy: retries, timeouts, queueing). For a
 * Sentinel URL, the primary is asked of the Sentinels at every connect.
 */
export function createRedis(url: string, options: RedisOptions): Redis {
  const target = parseRedisUrl(url);
  if (target.kind === 'server') return new Redis(url, options);
  const { sentinels, name, db, username, password, sentinelUsername, sentinelPassword } = target;
  return new SentinelRedis({ ...options, sentinels, name, db, username, password, sentinelUsername, sentinelPassword });
}

/**
 * ioredis' Sentinel connector has two ways of meeting Sentinels that do not answer, and neither fits a caller that
 * must start while Redis is away: by default it retries inside `connect()`, which then never settles (an origin
 * would never listen); with `sentinelRetryStrategy` returning null it gives up for good (status `end`, the
 * caller's `retryStrategy` is never asked). So: one round over the Sentinels per attempt, and after a failed round
 * the next attempt is scheduled here with the caller's `retryStrategy`, as for a server that refused the connection.
 * A caller's `disconnect()` (also what follows a failed `quit()`) stops that for good.
 */
class SentinelRedis extends Redis {
  private closedByCaller = false;
  private sentinelsUnreachable = false;
  private failedRounds = 0;
  private retry: NodeJS.Timeout | undefined;

  constructor(options: RedisOptions) {
    super({ ...options, sentinelRetryStrategy: () => null });
    const retryStrategy = options.retryStrategy;
    this.on('error', (error: Error) => {
      if (!/All sentinels are unreachable/.test(error.message)) return;
      this.sentinelsUnreachable = true;
      // The caller logs this error: it is retried (below), whatever ioredis' own text says.
      error.message = error.message.replace(/ and retry is disabled\./, '.');
    });
    this.on('ready', () => (this.failedRounds = 0));
    this.on('end', () => {
      if (!this.sentinelsUnreachable || this.closedByCaller) return;
      this.sentinelsUnreachable = false;
      const delay = retryStrategy?.(++this.failedRounds);
      if (typeof delay !== 'number') return;
      this.retry = setTimeout(() => {
        if (!this.closedByCaller && this.status === 'end') this.connect().catch(() => undefined);
      }, delay);
      this.retry.unref();
    });
  }

  override disconnect(reconnect = false): void {
    if (!reconnect) {
      this.closedByCaller = true;
      clearTimeout(this.retry);
    }
    super.disconnect(reconnect);
  }
}
