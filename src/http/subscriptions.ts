import type { ChangeSource, TableSchema } from '../source/change-source.js';
import { ChangeView, type TableScope } from '../hub/change-view.js';
import type { Client } from '../hub/client.js';
import { requestCursor } from './cursor.js';
import { ErrorCodes, SseError } from '../errors.js';
import { parseFilter, RESERVED_PARAMETERS, type Filter } from '../filter/filter.js';
import type { Hub, SnapshotRequest } from '../hub/hub.js';
import { rowFilterFor, type RowFilterTemplate } from '../access/row-filter.js';
import { RowView } from '../hub/row-view.js';
import type { Streams } from '../streams.js';
import { TokenExpiry } from '../access/token-expiry.js';
import type { TokenRefusal, TokenVerifier } from '../access/token-verifier.js';
import { EVERY_EVENT, type View } from '../hub/view.js';

/** What a request to `/events` or `/ws` brings, whatever the transport. */
export interface SubscriptionInput {
  /** The `Last-Event-ID` header. */
  lastEventId: string | undefined;
  query: URLSearchParams;
  /** The token presented (Bearer header, `sse_token` cookie or `?token=`). */
  token: string | undefined;
}

/** A request let in: the hub, where the client starts, and what it sees. */
export interface Accepted {
  ok: true;
  hub: Hub;
  cursor: number | undefined;
  view: View;
  snapshot: SnapshotRequest | undefined;
  /** When the signed token expires (ms since the epoch): the stream ends then. */
  expiresAt: number | undefined;
}

/** A request refused before any stream opens: the status and one line saying why; `reason` is counted in /metrics. */
export interface Refused {
  ok: false;
  status: number;
  reason: string;
  message: string;
  headers?: Record<string, string>;
}

const TOKEN_MESSAGES: Record<TokenRefusal, string> = {
  missing: 'a signed token is required: send Authorization: Bearer TOKEN, the sse_token cookie, or ?token=TOKEN',
  malformed: 'the token is not a well-formed signed token (JWT)',
  expired: 'the token has expired: get a fresh one and reconnect with Last-Event-ID',
  'bad-signature': 'the token is not signed by a key this server trusts',
  'bad-claims': 'the token is not valid here (issuer, audience or not-before)',
  'jwks-unavailable': "the identity provider's keys cannot be fetched right now: retry shortly",
};

const SNAPSHOT_VALUES = new Map([
  ['1', true],
  ['true', true],
  ['0', false],
  ['false', false],
  ['', false],
]);

/**
 * Turns a request into a subscription, the same way for SSE, WebSocket and the Fetch adapter: the cursor, the signed
 * token, the stream (`table=`), the client's filter and columns ANDed with the access rule its token's claims fill
 * (a client can never widen it), and a snapshot. Everything that can be wrong is answered here, before a stream
 * opens, with a status and one line.
 */
export class Subscriptions {
  private readonly expiry = new TokenExpiry();

  constructor(
    private readonly streams: Streams,
    private readonly tokens: TokenVerifier | undefined,
    private readonly rowFilters: readonly RowFilterTemplate[],
    private readonly eventName: string | undefined,
  ) {}

  async resolve(input: SubscriptionInput): Promise<Accepted | Refused> {
    const { query } = input;
    // An edge knows the tables' columns from what the origin publishes beside the stream.
    if (this.streams.edge) await this.streams.refreshEdgeSchemas();
    let cursor: number | undefined;
    try {
      cursor = requestCursor(input.lastEventId, query);
    } catch (error) {
      if (!(error instanceof SseError)) throw error;
      return refused(400, 'bad-cursor', error.message);
    }
    let claims: Record<string, unknown> = {};
    let expiresAt: number | undefined;
    if (this.tokens) {
      const verified = await this.tokens.verify(input.token);
      if (!verified.ok) {
        const unavailable = verified.reason === 'jwks-unavailable';
        return refused(unavailable ? 503 : 401, `token-${verified.reason}`, TOKEN_MESSAGES[verified.reason], {
          ...(unavailable ? { 'Retry-After': '5' } : {}),
          'WWW-Authenticate': verified.reason === 'missing' ? 'Bearer realm="sqlite-sse"' : 'Bearer realm="sqlite-sse", error="invalid_token"',
        });
      }
      claims = verified.claims as Record<string, unknown>;
      expiresAt = verified.expiresAt;
    }
    const tables = query.getAll('table');
    if (tables.length > 1) return refused(400, 'bad-table', 'table must be given at most once');
    const snapshot = SNAPSHOT_VALUES.get(query.get('snapshot') ?? '');
    if (snapshot === undefined) return refused(400, 'bad-snapshot', `snapshot must be 1 or 0, got ${JSON.stringify(query.get('snapshot')).slice(0, 40)}`);
    // Fix (found by test/edges.test.ts): an edge has no database to read a snapshot from, and without one its hub
    // quietly dropped the request: the client asked for the tables' rows and `snapshot-end`, and got the newest
    // changes instead. An edge started with --origin reads the snapshot from the origin's /snapshot; one without is
    // refused in one line.
    if (snapshot && this.streams.edge && this.streams.kind === 'changes' && !this.streams.first.hub.source.snapshot) {
      return refused(400, 'bad-snapshot', 'snapshots are not available on an edge started without --origin: it reads them from the origin (start it with --origin URL, or take snapshot=1 from the origin, then resume here with its Last-Event-ID)');
    }
    try {
      const chosen = this.streams.kind === 'rows' ? this.rows(query, tables[0], claims, snapshot) : this.changes(query, tables[0], claims, snapshot);
      if (!chosen.ok) return chosen;
      return { ...chosen, cursor, expiresAt };
    } catch (error) {
      if (error instanceof SseError && error.code === ErrorCodes.BAD_FILTER) return refused(400, 'bad-filter', error.message);
      throw error;
    }
  }

  /** Streams the hub to `client` as `accepted` says, and ends it when its token expires. */
  attach(client: Client, accepted: Accepted): void {
    if (accepted.expiresAt !== undefined) this.expiry.add(client, accepted.expiresAt);
    accepted.hub.attach(client, accepted.cursor, accepted.view, accepted.snapshot);
  }

  detach(client: Client, accepted: Accepted): void {
    this.expiry.delete(client);
    accepted.hub.detach(client);
  }

  close(): void {
    this.expiry.close();
  }

  private rows(query: URLSearchParams, table: string | undefined, claims: Record<string, unknown>, snapshot: boolean) {
    const stream = table === undefined ? this.streams.first : this.streams.find(table);
    if (!stream) return refused(400, 'unknown-table', `table ${JSON.stringify(table)} is not served (tables: ${this.streams.tableNames().join(', ')})`);
    if (snapshot) return refused(400, 'bad-snapshot', 'snapshot=1 needs the change stream: start the server with --changes');
    const name = this.streams.tableNames()[this.streams.list.indexOf(stream)];
    const params = this.withRule(query, name, claims);
    if (!params.ok) return params;
    const schema = this.streams.schema(stream.name);
    const filter = this.filterFor(params.params, schema, name);
    const view = filter ? new RowView(name, filter, this.eventName) : EVERY_EVENT;
    return { ok: true as const, hub: stream.hub, view, snapshot: undefined };
  }

  private changes(query: URLSearchParams, table: string | undefined, claims: Record<string, unknown>, snapshot: boolean) {
    const source = this.streams.changeSource;
    let names: readonly string[];
    if (table !== undefined) {
      const found = source?.findTable(table) ?? this.streams.tableNames().find((name) => name.toLowerCase() === table.toLowerCase());
      if (!found) return refused(400, 'unknown-table', `table ${JSON.stringify(table)} is not tracked here (tables: ${this.streams.tableNames().join(', ') || 'none: run sqlite-sse track'})`);
      names = [found];
    } else {
      if (hasFilterParameters(query)) return refused(400, 'bad-filter', 'filters and select need table=NAME on the change stream (columns belong to a table)');
      names = this.streams.tableNames();
      // An edge learns the tables from what the origin publishes beside the stream: until then a snapshot would be
      // of no table at all, and the client would take the changes that follow for the whole state.
      if (snapshot && this.streams.edge && names.length === 0) {
        return refused(503, 'bad-snapshot', 'the tables are not known here yet (an edge learns them from its origin, started with --redis): retry shortly', { 'Retry-After': '1' });
      }
    }
    const scopes: TableScope[] = [];
    for (const name of names) {
      const params = this.withRule(table === undefined ? new URLSearchParams() : query, name, claims);
      if (!params.ok) return params;
      const schema = this.streams.schema(name);
      scopes.push({ table: name, filter: this.filterFor(params.params, schema, name, source) });
    }
    const plain = table === undefined && scopes.every((scope) => scope.filter === undefined);
    const view = plain ? EVERY_EVENT : new ChangeView(scopes, this.eventName);
    return { ok: true as const, hub: this.streams.first.hub, view, snapshot: { tables: names, now: snapshot } };
  }

  /** The client's parameters with the access rule for `table` appended: both are ANDed by the filter. */
  private withRule(query: URLSearchParams, table: string, claims: Record<string, unknown>) {
    if (this.rowFilters.length === 0) return { ok: true as const, params: query };
    const rule = rowFilterFor(this.rowFilters, table, claims);
    // The line starts as docs/access.md writes the refusal: `403 missing claim NAME`.
    if (!rule.ok) return refused(403, 'missing-claim', `missing claim ${rule.missingClaim}: the token has no usable value for it, which the access rule for ${table} needs`);
    const params = new URLSearchParams(query);
    for (const [name, value] of rule.params) params.append(name, value);
    return { ok: true as const, params };
  }

  /** The filter of `params` on `table`, or undefined when it has no condition and no column selection. */
  private filterFor(params: URLSearchParams, schema: TableSchema | undefined, table: string, source?: ChangeSource): Filter | undefined {
    if (!hasFilterParameters(params)) return undefined;
    if (!schema) throw new SseError(ErrorCodes.BAD_FILTER, `filters on ${table} are not available here yet: its columns are not known (an edge learns them from its origin, started with --redis)`);
    let filter: Filter;
    try {
      filter = parseFilter(params, schema.columns, schema.keyColumns, table);
    } catch (error) {
      // A column added since the table's schema was read: read it again once.
      if (!source || (error as SseError).code !== ErrorCodes.BAD_FILTER) throw error;
      source.forgetSchema(table);
      const fresh = source.schema(table);
      filter = parseFilter(params, fresh.columns, fresh.keyColumns, table);
    }
    return filter.conditions.length === 0 && !filter.select ? undefined : filter;
  }
}

function hasFilterParameters(query: URLSearchParams): boolean {
  for (const name of query.keys()) if (!RESERVED_PARAMETERS.has(name) || name === 'select') return true;
  return false;
}

function refused(status: number, reason: string, message: string, headers?: Record<string, string>): Refused {
  return { ok: false, status, reason, message, headers };
}
