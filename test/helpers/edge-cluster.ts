import { removeDirectory } from './cleanup.js';
import { createMessagesDatabase, sqlite, tempDirectory } from './database.js';
import { startRedis, type RedisProcess } from './redis.js';
import { startServer, type ServerProcess } from './server-process.js';
import { freePort } from './sse-stream.js';
import { withTimeout } from './wait.js';

/**
 * An origin and edges as a user runs them, each a CLI process of its own, over a redis-server of the test's own:
 * `--db D --redis URL` for the origin, `--edge URL --table messages [--origin URL]` for each edge. Every process
 * listens on a port chosen up front, so a killed one restarts where its clients reconnect.
 */
export interface EdgeCluster {
  redis: RedisProcess;
  directory: string;
  db: string;
  origin: ServerProcess;
  edges: ServerProcess[];
  /** Start the origin again (after `origin.stop('SIGKILL')`) on the same port, database and Redis. */
  restartOrigin(): Promise<ServerProcess>;
  /** Start edge `index` again on its port with its flags. */
  restartEdge(index: number): Promise<ServerProcess>;
  /** Start one more edge (its flags after the common ones), on Redis at `redisUrl` (a proxy in front of it); it joins `edges`. */
  addEdge(extra?: string[], redisUrl?: string): Promise<ServerProcess>;
  /** Kill every process, stop Redis, remove the temp dirs. Safe in finally blocks, and more than once. */
  dispose(): Promise<void>;
}

export interface EdgeClusterOptions {
  edges?: number;
  /** Rows `pre-N` in the table before the origin starts. */
  preRows?: number;
  /** Flags after the origin's `--db D --redis URL`. */
  originArgs?: string[];
  /** Flags after each edge's `--edge URL --table messages`; a function gets the origin's URL. */
  edgeArgs?: string[] | ((originUrl: string, index: number) => string[]);
  /** Runs on the database before the origin starts (e.g. `sqlite-sse track`). */
  setup?: (db: string) => Promise<unknown>;
  /** Redis with its append-only file (default), or with no persistence at all. */
  appendonly?: boolean;
  /** Redis requires this password (it is in `redis.url`, which origin and edges are given). */
  redisPassword?: string;
}

/** Insert `count` rows `prefix-N` in one transaction through the sqlite3 shell (a separate writer process). */
export function insertRows(db: string, count: number, prefix: string): void {
  sqlite(db, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${count}) INSERT INTO messages(message) SELECT '${prefix}-' || i FROM n;`);
}

export async function startEdgeCluster(options: EdgeClusterOptions = {}): Promise<EdgeCluster> {
  const redis = await startRedis({ appendonly: options.appendonly ?? true, password: options.redisPassword });
  const directory = tempDirectory();
  const processes: ServerProcess[] = [];
  const track = (server: ServerProcess) => (processes.push(server), server);
  const db = createMessagesDatabase(directory);
  await options.setup?.(db);
  if (options.preRows) insertRows(db, options.preRows, 'pre');
  const originPort = await freePort();
  const originArgs = ['--db', db, '--redis', redis.url, '--port', String(originPort), '--heartbeat', '0.2', ...(options.originArgs ?? [])];
  const edgePorts: number[] = [];
  const edgeArgs: string[][] = [];
  const edgeRedis: string[] = [];
  const startEdge = (index: number) => startServer(['--edge', edgeRedis[index], '--table', 'messages', '--port', String(edgePorts[index]), '--heartbeat', '0.2', ...edgeArgs[index]]).then(track);
  const cluster: EdgeCluster = {
    redis,
    directory,
    db,
    origin: undefined as never,
    edges: [],
    restartOrigin: async () => (cluster.origin = track(await startServer(originArgs))),
    restartEdge: async (index) => (cluster.edges[index] = await startEdge(index)),
    addEdge: async (extra = [], redisUrl = redis.url) => {
      edgePorts.push(await freePort());
      edgeArgs.push(extra);
      edgeRedis.push(redisUrl);
      const edge = await startEdge(edgePorts.length - 1);
      cluster.edges.push(edge);
      return edge;
    },
    dispose: async () => {
      for (const server of processes.splice(0)) await server.stop('SIGKILL').catch(() => undefined);
      await redis.dispose();
      removeDirectory(directory);
    },
  };
  try {
    await cluster.restartOrigin();
    for (let i = 0; i < (options.edges ?? 1); i++) {
      const extra = typeof options.edgeArgs === 'function' ? options.edgeArgs(cluster.origin.url, i) : (options.edgeArgs ?? []);
      await cluster.addEdge(extra);
    }
  } catch (error) {
    await cluster.dispose();
    throw error;
  }
  return cluster;
}

/** `GET /healthz` as JSON. */
export async function health(url: string): Promise<Record<string, unknown>> {
  const response = await withTimeout(fetch(`${url}/healthz`), 5000, `GET ${url}/healthz`);
  return (await response.json()) as Record<string, unknown>;
}

/** An SSE body with its heartbeat comments taken out: what two servers must send alike, byte for byte. */
export function withoutComments(raw: string): string {
  return raw.replace(/^:[^\n]*\n\n/gm, '');
}
