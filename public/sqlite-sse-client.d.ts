/** Types of sqlite-sse-client.js, the browser client of sqlite-sse (an ES module; no build step needed). */

/** How the connection is held. `auto`: `shared-worker` where SharedWorker exists, else `leader` where the Web Locks API and BroadcastChannel exist, else `direct`. */
export type Mode = 'auto' | 'shared-worker' | 'leader' | 'direct';

export interface Status {
  /** `connecting` until the stream opens, `live` while it is open, `reconnecting` after it broke (rows resume without loss), `closed` after `close()`. */
  state: 'connecting' | 'live' | 'reconnecting' | 'closed';
  /** The path in use (never `auto`). */
  mode: Exclude<Mode, 'auto'>;
  /** True when this tab holds the EventSource itself (the leader, or `direct`); false in a follower tab or with a SharedWorker. */
  leader: boolean;
  /** The id of the last row delivered to this tab, or null before the first. */
  lastId: number | null;
}

/** The data of a `reset` event: the database was replaced by one whose highest id is below what was seen. */
export interface ResetInfo {
  reason: string;
  /** The cursor the stream had. */
  lastEventId: number;
  /** The table's highest id: rows continue after it. */
  lastId: number;
}

export interface SubscribeOptions<Row = Record<string, unknown>> {
  /** Called once per row, in id order, exactly once per tab. */
  onRow?: (row: Row, id: number) => void;
  /** Called when the state or the role changes. */
  onStatus?: (status: Status) => void;
  /** Called when the server sends `reset`; rows that follow reuse ids at or below ones already seen. */
  onReset?: (info: ResetInfo) => void;
  /** Default: `'auto'`. */
  mode?: Mode;
  /** The SSE event name of rows (the server's `--event`). Default: `'message'`. */
  event?: string;
  /** Start after this id (rows with greater ids, then live). Default: none, like a fresh EventSource: the most recent rows, then live. */
  lastEventId?: number;
  /** Rows a tab without `lastEventId` gets first when it joins a connection already open (match the server's `--recent-rows`). Default: `100`. */
  recentRows?: number;
  /** Rows the holder of the connection keeps for tabs that join or fall behind; older ones are read from the server. Default: `1000`. */
  bufferRows?: number;
  /**
   * For a server with signed tokens (`--jwt-secret`, `--jwt-public-key`, `--jwks-url`): called before each connection;
   * the token goes in `?token=`. When it expires (the server sends `token-expired`, or refuses a reconnect), the client
   * closes the EventSource, calls `getToken()` again and reopens from the last row it delivered: nothing is lost.
   * A token belongs to its page, so each tab holds its own connection (`mode` must be `'auto'` or `'direct'`).
   */
  getToken?: () => string | Promise<string>;
}

export interface Subscription {
  /** Stop. The shared connection closes when no tab uses it; a leader hands over to the next tab. Idempotent; also done on `pagehide`. */
  close(): void;
  readonly status: Status;
  readonly mode: Exclude<Mode, 'auto'>;
}

/** Subscribe to an sqlite-sse stream (`url`, for example `'/events'`). */
export function subscribe<Row = Record<string, unknown>>(url: string | URL, options?: SubscribeOptions<Row>): Subscription;

/** The mode `auto` picks in this browser. */
export function detectMode(): Exclude<Mode, 'auto'>;
