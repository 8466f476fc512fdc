import { existsSync } from 'node:fs';
import { ChangeSource, type TableSchema } from './source/change-source.js';
import { createDemoTable } from './cli/demo-database.js';
import { Hub } from './hub/hub.js';
import type { Logger } from './logger.js';
import type { ServerOptions } from './options.js';
import { originHistory } from './http/history-endpoint.js';
import { PublishedSource } from './redis/published-source.js';
import { redactUrl } from './redis/redis-entry.js';
import { originSnapshot } from './http/snapshot-endpoint.js';
import { RedisStreamSource } from './redis/redis-stream-source.js';
import type { Source } from './source/source.js';
import type { TableInfo } from './source/table-reader.js';
import { TableSource } from './source/table-source.js';

/** One hub and what it streams: new rows of a table, or the change log of tracked tables. */
export interface Stream {
  /** The table's name (insert mode), or `changes`. */
  readonly name: string;
  readonly hub: Hub;
}

/**
 * The hubs an instance serves, built from options in one place: one per table of the insert stream (each with its own
 * ids, ring and cursor rules), or one over the change log, or on an edge one over the Redis stream an origin
 * publishes. The origin's sources are wrapped to publish to Redis when `--redis` is set.
 */
export class Streams {
  readonly kind: 'rows' | 'changes';
  readonly list: readonly Stream[];
  readonly edge: boolean;
  /** On an edge: the tables' schemas as the origin published them beside the stream (it has no database to read). */
  private edgeSchemas = new Map<string, TableSchema>();
  private edgeSchemasReadAt = 0;

  private constructor(kind: 'rows' | 'changes', list: Stream[], edge: boolean) {
    this.kind = kind;
    this.list = list;
    this.edge = edge;
  }

  /** Opens every stream's source; rejects with the first one-line SseError, leaving nothing open. */
  static async open(options: Readonly<ServerOptions>, logger: Logger, createDemo: boolean): Promise<Streams> {
    const kind = options.changes ? 'changes' : 'rows';
    const names = options.changes ? ['changes'] : options.tables;
    if (!options.edge && (options.create || (createDemo && !existsSync(options.db))) && !options.changes) {
      for (const table of options.tables) {
        const created = createDemoTable(options.db, table);
        if (created !== 'nothing') logger.info(`created ${created === 'database' ? 'database ' + options.db + ' with ' : ''}table ${table}(id, message)`);
      }
    }
    const list: Stream[] = [];
    const publishers: { schemas: () => string | undefined }[] = [];
    try {
      for (const name of names) {
        const publisher = { schemas: (): string | undefined => undefined };
        publishers.push(publisher);
        const hub = new Hub(sourceFor(options, name, logger, () => publisher.schemas()), options);
        hub.on('warning', (message) => logger.warn(message));
        await hub.start();
        list.push({ name, hub });
      }
    } catch (error) {
      await Promise.all(list.map((stream) => stream.hub.close()));
      throw error;
    }
    const streams = new Streams(kind, list, options.edge !== undefined);
    for (const publisher of publishers) publisher.schemas = () => streams.schemasJson();
    await streams.refreshEdgeSchemas();
    return streams;
  }

  /** The stream `/events` serves without `?table=`. */
  get first(): Stream {
    return this.list[0];
  }

  get hubs(): Hub[] {
    return this.list.map((stream) => stream.hub);
  }

  /** The insert stream of `table` (any case), or undefined. */
  find(table: string): Stream | undefined {
    return this.list.find((stream) => stream.name.toLowerCase() === table.toLowerCase());
  }

  /** The change source, in change mode on an origin. */
  get changeSource(): ChangeSource | undefined {
    const source = unwrap(this.first.hub.source);
    return source instanceof ChangeSource ? source : undefined;
  }

  /** The tables served: the insert streams' tables, or the change log's tracked tables. */
  tableNames(): readonly string[] {
    if (this.edge && this.kind === 'changes') return [...this.edgeSchemas.values()].map((schema) => schema.table);
    if (this.kind === 'changes') return this.changeSource?.tables ?? [];
    return this.list.map((stream) => tableSource(stream)?.tableInfo?.table ?? stream.name);
  }

  /** A served table's columns and key, for filters; undefined on an edge (no database to read them from). */
  schema(table: string): TableSchema | undefined {
    if (this.edge) return this.edgeSchemas.get(table.toLowerCase());
    if (this.kind === 'changes') return this.changeSource?.schema(table);
    const info = tableSource(this.find(table))?.tableInfo;
    return info && { table: info.table, columns: info.columns, keyColumns: [info.idColumn], withoutRowid: false };
  }

  /** What the insert streams' tables are (empty in change mode and on an edge), for the start-up warnings. */
  rowTables(): TableInfo[] {
    return this.list.map((stream) => tableSource(stream)?.tableInfo).filter((info): info is TableInfo => info !== undefined);
  }

  /** The streams as the start-up line names them, after `listening on URL`. */
  describe(options: Readonly<ServerOptions>): string {
    if (this.edge) return `edge of ${redactUrl(options.edge!)}, stream ${options.redisPrefix}${this.first.name}, last id ${this.first.hub.lastId}`;
    if (this.kind === 'changes') {
      return `db ${options.db}, changes of ${this.tableNames().join(', ') || 'no tracked table yet'}, last seq ${this.first.hub.lastId}`;
    }
    const names = this.tableNames();
    return this.list.map((stream, i) => `${i === 0 ? `db ${options.db}, ` : ''}table ${names[i]}, last id ${stream.hub.lastId}`).join('; ');
  }

  /** What an origin publishes beside its Redis stream for edges: every served table's schema, as JSON. */
  schemasJson(): string {
    return JSON.stringify(this.tableNames().map((table) => this.schema(table)).filter((schema) => schema !== undefined));
  }

  /** On an edge, reads the schemas the origin published (at most once a second; a failed read keeps the last). */
  async refreshEdgeSchemas(): Promise<void> {
    const source = this.first.hub.source;
    if (!this.edge || !(source instanceof RedisStreamSource) || Date.now() - this.edgeSchemasReadAt < 1000) return;
    this.edgeSchemasReadAt = Date.now();
    const meta = await source.readMeta();
    if (meta === undefined) return;
    try {
      const schemas = JSON.parse(meta) as TableSchema[];
      this.edgeSchemas = new Map(schemas.map((schema) => [schema.table.toLowerCase(), schema]));
    } catch {
      // Not ours, or from another version: filters stay unavailable until a readable one is published.
    }
  }

  /** Clients of every stream. */
  get clientCount(): number {
    return this.list.reduce((sum, stream) => sum + stream.hub.clientCount, 0);
  }

  /** `/healthz`: the first stream's figures with every stream's clients counted, and each stream's when there are several. */
  stats() {
    const first = this.first.hub.stats();
    if (this.list.length === 1) return first;
    return {
      ...first,
      ok: this.list.every((stream) => stream.hub.stats().ok),
      clients: this.clientCount,
      tables: Object.fromEntries(this.list.map((stream) => [stream.name, stream.hub.stats()])),
    };
  }

  close(): Promise<void> {
    return Promise.all(this.list.map((stream) => stream.hub.close())).then(() => undefined);
  }
}

/** The source of one stream; `schemas` is what an origin publishes beside its Redis stream for edges. */
function sourceFor(options: Readonly<ServerOptions>, name: string, logger: Logger, schemas: () => string | undefined): Source {
  const key = options.redisPrefix + name;
  if (options.edge !== undefined) {
    return new RedisStreamSource({
      url: options.edge,
      key,
      eventName: options.event,
      log: logger,
      pageRows: options.pageRows,
      // Fix (found by test/edges.test.ts): an origin started with --token guards /history (as /metrics), and the
      // edge asked without it: every page was refused with 401 and clients with an older cursor waited forever. The
      // edge sends its own --token, the deployment's shared secret.
      olderHistory: options.origin ? originHistory(options.origin, options.event, options.token) : undefined,
      // A change stream's snapshots (snapshot=1, and the fresh one after a history-gone reset) from the origin's /snapshot.
      snapshotPages: options.origin && options.changes ? originSnapshot(options.origin, options.event, options.token) : undefined,
    });
  }
  const source: Source = options.changes
    ? new ChangeSource({ path: options.db, tables: options.tables, event: options.event, pageRows: options.pageRows, watcher: options.watcher })
    : new TableSource({ path: options.db, table: name, idColumn: options.idColumn, event: options.event, pageRows: options.pageRows, watcher: options.watcher });
  if (options.redis === undefined) return source;
  return new PublishedSource(source, { url: options.redis, key, maxLen: options.redisMaxLen, log: logger, meta: schemas });
}

function unwrap(source: Source): Source {
  return source instanceof PublishedSource ? source.source : source;
}

function tableSource(stream: Stream | undefined): TableSource | undefined {
  const source = stream && unwrap(stream.hub.source);
  return source instanceof TableSource ? source : undefined;
}
