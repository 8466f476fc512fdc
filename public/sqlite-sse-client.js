// sqlite-sse browser client: one SSE connection per browser, shared by every same-origin tab.
//
//   import { subscribe } from '/sqlite-sse-client.js';
//   const subscription = subscribe('/events', { onRow(row, id) { ... }, onStatus(status) { ... } });
//
// Three ways to hold the connection, tried in this order (`mode: 'auto'`):
//   shared-worker  a SharedWorker holds the EventSource and relays rows to every tab through MessagePorts;
//   leader         tabs elect a leader with the Web Locks API; it holds the EventSource and relays through a
//                  BroadcastChannel; when it closes or crashes the next tab takes the lock and resumes from the
//                  last id it has seen (`?lastEventId=`);
//   direct         a plain EventSource per tab.
// Whatever the path, each tab gets every row exactly once, in id order, from its own start: a tab without a cursor
// starts like a fresh EventSource client (the most recent rows, then live rows).
//
// How exactly-once survives relays: whoever holds the EventSource (the hub) tags each row with `prev`, the id of the
// row before it in its stream, and an `epoch` that counts `reset` events. A tab delivers a row only when `prev` is at
// or before the last id it delivered, drops ids it already has, and holds back a row that would leave a gap while it
// asks the hub for what it missed (the hub keeps a buffer of recent rows) or, when the hub no longer has it, reads
// it from the server itself with `?lastEventId=` (a short-lived catch-up stream) until it meets the shared stream.
// This module runs both in pages and in the SharedWorker (which imports `Hub` from it); it has no dependency.

const DEFAULTS = Object.freeze({
  mode: 'auto',
  event: 'message',
  lastEventId: undefined,
  recentRows: 100,
  bufferRows: 1000,
  onRow: undefined,
  onStatus: undefined,
  onReset: undefined,
  getToken: undefined,
});
const MODES = ['auto', 'shared-worker', 'leader', 'direct'];
const WORKER_URL = new URL('./sqlite-sse-worker.js', import.meta.url);
/** A sync request that has no answer by then (no leader at the moment) is sent again. */
const SYNC_RETRY_MS = 1000;
const RECONNECT_MIN_MS = 1000;
const RECONNECT_MAX_MS = 30000;

/**
 * Subscribe to an sqlite-sse stream. Returns at once; rows arrive through `onRow`.
 * @param {string | URL} url the stream, for example `'/events'`
 * @param {import('./sqlite-sse-client.js').SubscribeOptions} options
 * @returns {import('./sqlite-sse-client.js').Subscription}
 */
export function subscribe(url, options = {}) {
  return new Subscription(url, options);
}

/** The mode `auto` resolves to in this browser. */
export function detectMode() {
  if (typeof SharedWorker === 'function') return 'shared-worker';
  if (typeof navigator !== 'undefined' && navigator.locks && typeof BroadcastChannel === 'function') return 'leader';
  return 'direct';
}

function cursorUrl(url, lastId, token) {
  if (lastId === null && token === undefined) return url;
  const out = new URL(url);
  if (lastId !== null) out.searchParams.set('lastEventId', String(lastId));
  // An EventSource cannot send headers: a signed token travels in the query (docs/access.md).
  if (token !== undefined) out.searchParams.set('token', token);
  return out.href;
}

function randomId() {
  return Math.random().toString(36).slice(2, 10) + Date.now().toString(36);
}

/**
 * Holds one EventSource and a buffer of recent rows; hands every row, tagged with `prev` and `epoch`, to `emit`.
 * Runs in the SharedWorker, in the leader tab, or in a tab of its own (direct).
 */
export class Hub {
  /**
   * @param {{ url: string, event: string, bufferRows: number, recentRows: number, getToken?: () => Promise<string> }} config
   * @param {{ epoch: number, lastId: number | null, buffer: object[] }} start where the stream resumes
   * @param {(message: object) => void} emit receives `{ t: 'items', items }` and `{ t: 'status', state }`
   */
  constructor(config, start, emit) {
    this.config = config;
    this.epoch = start.epoch;
    this.lastId = start.lastId;
    this.buffer = start.buffer.slice(-config.bufferRows);
    this.emit = emit;
    this.state = 'connecting';
    this.source = null;
    this.retryTimer = undefined;
    this.retryMs = RECONNECT_MIN_MS;
    this.closed = false;
  }

  open() {
    if (this.closed || this.source) return;
    const { getToken } = this.config;
    if (getToken) {
      // A fresh token before each connection; the stream resumes from lastId, so nothing is lost in between.
      this.source = 'fetching-token';
      Promise.resolve()
        .then(() => getToken())
        .then(
          (token) => {
            this.source = null;
            if (!this.closed) this.connect(String(token));
          },
          () => {
            this.source = null;
            this.retryLater();
          },
        );
      return;
    }
    this.connect(undefined);
  }

  connect(token) {
    const source = new EventSource(cursorUrl(this.config.url, this.lastId, token));
    this.source = source;
    source.addEventListener(this.config.event, this.onRow);
    source.addEventListener('reset', this.onReset);
    if (token !== undefined) {
      // The server ends the stream when the token expires: reopen at once with a fresh one, before the
      // EventSource reconnects by itself with the expired token (which would get 401).
      source.addEventListener('token-expired', () => {
        if (this.source !== source) return;
        source.close();
        this.source = null;
        this.setState('reconnecting');
        this.open();
      });
    }
    source.onopen = () => {
      this.retryMs = RECONNECT_MIN_MS;
      this.setState('live');
    };
    source.onerror = () => {
      this.setState('reconnecting');
      // EventSource retries by itself after a network error, but gives up for good on a non-200 answer (a proxy's
      // 502 while the server restarts): then open a new one, with the cursor, after a growing delay.
      // With getToken, a 401 (the token expired while the stream was away) ends up here too: open asks for a new one.
      if (source.readyState === EventSource.CLOSED && this.source === source) {
        source.close();
        this.source = null;
        this.retryLater();
      }
    };
  }

  retryLater() {
    if (this.closed) return;
    this.retryTimer = setTimeout(() => this.open(), this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, RECONNECT_MAX_MS);
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.emit({ t: 'status', state });
  }

  onRow = (event) => {
    const id = Number(event.lastEventId);
    if (this.lastId !== null && id <= this.lastId) return;
    this.push({ kind: 'row', id, prev: this.lastId, epoch: this.epoch, data: event.data });
  };

  onReset = (event) => {
    // The database was replaced: ids restart below what was seen. A new epoch, and the buffer starts again.
    this.epoch += 1;
    this.buffer = [];
    this.push({ kind: 'reset', id: Number(event.lastEventId), prev: this.lastId, epoch: this.epoch, data: event.data });
  };

  push(item) {
    this.lastId = item.id;
    this.buffer.push(item);
    if (this.buffer.length > this.config.bufferRows) this.buffer.splice(0, this.buffer.length - this.config.bufferRows);
    this.emit({ t: 'items', items: [item] });
  }

  /**
   * What a tab needs to join: `after` null means a fresh start (the most recent rows); otherwise the rows after
   * `{ epoch, id }`, if the buffer still reaches back that far (`covered`).
   */
  sync(after) {
    const position = { epoch: this.epoch, id: this.lastId };
    const reply = { covered: true, items: [], position, state: this.state };
    if (after === null) {
      const rows = this.buffer.filter((item) => item.kind === 'row' && item.epoch === this.epoch);
      reply.items = rows.slice(-this.config.recentRows);
      return reply;
    }
    const first = this.buffer[0];
    if (after.epoch === this.epoch) {
      if (this.lastId !== null && after.id >= this.lastId) return reply;
      const reaches = first && (first.id <= after.id || (first.prev !== null && first.prev <= after.id && first.epoch === after.epoch));
      if (reaches) reply.items = this.buffer.filter((item) => item.epoch === this.epoch && item.id > after.id);
      else reply.covered = false;
    } else if (after.epoch === this.epoch - 1 && first?.kind === 'reset' && first.epoch === this.epoch) {
      reply.items = this.buffer.slice();
    } else {
      reply.covered = false;
    }
    return reply;
  }

  close() {
    this.closed = true;
    clearTimeout(this.retryTimer);
    if (typeof this.source === 'object') this.source?.close();
    this.source = null;
  }
}

/** One tab's subscription: puts rows from whichever hub in order, exactly once, and reports status. */
class Subscription {
  constructor(url, options) {
    for (const key of Object.keys(options)) {
      if (!(key in DEFAULTS)) throw new TypeError(`sqlite-sse: unknown option ${key} (known: ${Object.keys(DEFAULTS).join(', ')})`);
    }
    const settings = { ...DEFAULTS, ...options };
    if (!MODES.includes(settings.mode)) throw new TypeError(`sqlite-sse: mode must be one of ${MODES.join(', ')}, got ${settings.mode}`);
    const start = settings.lastEventId;
    if (start !== undefined && start !== null && !(Number.isSafeInteger(start) && start >= 0)) {
      throw new TypeError(`sqlite-sse: lastEventId must be a whole number from 0, got ${start}`);
    }
    if (settings.getToken !== undefined && typeof settings.getToken !== 'function') {
      throw new TypeError('sqlite-sse: getToken must be a function that returns a token (or a promise of one)');
    }
    // A token belongs to this page: a SharedWorker cannot call it, and tabs signed in as different users must never
    // share a connection. With getToken, each tab holds its own (direct).
    if (settings.getToken && settings.mode !== 'auto' && settings.mode !== 'direct') {
      throw new TypeError(`sqlite-sse: getToken works with mode direct (each tab its own connection), not ${settings.mode}`);
    }
    this.settings = settings;
    this.config = {
      url: new URL(String(url), globalThis.location?.href).href,
      event: settings.event,
      bufferRows: settings.bufferRows,
      recentRows: settings.recentRows,
    };
    if (settings.getToken) this.config.getToken = settings.getToken;
    this.tabId = randomId();
    // Where this tab is: the last id delivered (null: none yet, a fresh start) in the current epoch.
    this.epoch = 0;
    this.lastId = start ?? null;
    this.fresh = start === undefined || start === null;
    this.synced = false;
    this.pending = [];
    this.buffer = [];
    this.hubPosition = { epoch: 0, id: null };
    this.syncTimer = undefined;
    this.catchUp = null;
    this.hub = null;
    this.state = 'connecting';
    this.leaderId = null;
    this.closed = false;
    this.onPageHide = () => this.close();
    globalThis.addEventListener?.('pagehide', this.onPageHide);

    this.mode = settings.getToken ? 'direct' : settings.mode === 'auto' ? detectMode() : settings.mode;
    if (this.mode === 'shared-worker') this.startWorker();
    else if (this.mode === 'leader') this.startLeaderElection();
    else this.lead();
  }

  /** The status handed to `onStatus` (and readable at any time). */
  get status() {
    return { state: this.state, mode: this.mode, leader: this.hub !== null && this.mode !== 'shared-worker', lastId: this.lastId };
  }

  // --- the three paths -------------------------------------------------------------------------------------------

  startWorker() {
    let worker;
    try {
      worker = new SharedWorker(WORKER_URL, { type: 'module', name: `sqlite-sse ${this.config.url} ${this.config.event}` });
    } catch {
      this.fallBack();
      return;
    }
    this.port = worker.port;
    let heard = false;
    worker.onerror = () => {
      if (!heard) this.fallBack();
    };
    this.port.onmessage = (event) => {
      heard = true;
      this.onHubMessage(event.data);
    };
    this.port.start();
    this.post = (message) => this.port.postMessage(message);
    this.requestSync();
  }

  fallBack() {
    if (this.closed) return;
    this.port?.close();
    this.port = null;
    this.mode = typeof navigator !== 'undefined' && navigator.locks && typeof BroadcastChannel === 'function' ? 'leader' : 'direct';
    if (this.mode === 'leader') this.startLeaderElection();
    else this.lead();
  }

  startLeaderElection() {
    const name = `sqlite-sse ${this.config.url} ${this.config.event}`;
    this.channel = new BroadcastChannel(name);
    this.channel.onmessage = (event) => this.onChannelMessage(event.data);
    this.post = (message) => this.channel.postMessage(message);
    this.abort = new AbortController();
    const holdUntilClosed = () =>
      new Promise((resolve) => {
        this.releaseLock = resolve;
        this.lead();
      });
    // First ask without waiting: granted means nobody leads, so this tab does. Otherwise follow, and queue for the
    // lock: the browser grants it to the next tab when the leader closes or crashes.
    navigator.locks
      .request(name, { ifAvailable: true }, (lock) => {
        if (this.closed) return undefined;
        if (lock) return holdUntilClosed();
        this.requestSync();
        return navigator.locks.request(name, { signal: this.abort.signal }, () => (this.closed ? undefined : holdUntilClosed())).catch(() => {});
      })
      .catch(() => {});
  }

  /** Become the hub: open the EventSource from where this tab is (leader and direct modes). */
  lead() {
    clearTimeout(this.syncTimer);
    this.stopCatchUp();
    // Rows held back came from the previous hub; this hub reads everything after lastId again.
    this.pending = [];
    this.synced = true;
    const start = { epoch: this.epoch, lastId: this.lastId, buffer: this.buffer };
    this.hub = new Hub(this.config, start, (message) => {
      if (this.mode === 'leader') this.post({ ...message, leader: this.tabId });
      this.onHubMessage({ ...message, leader: this.tabId }, true);
    });
    this.leaderId = this.tabId;
    this.setState('connecting');
    if (this.mode === 'leader') this.post({ t: 'status', state: 'connecting', leader: this.tabId });
    this.hub.open();
  }

  onChannelMessage(message) {
    if (this.closed) return;
    if (message.t === 'sync-request') {
      if (this.hub) this.channel.postMessage({ t: 'sync', to: message.from, leader: this.tabId, ...this.hub.sync(message.after) });
      return;
    }
    if (this.hub) return; // the leader hears its own hub directly
    this.onHubMessage(message);
  }

  // --- from the hub ------------------------------------------------------------------------------------------------

  onHubMessage(message, local = false) {
    if (this.closed) return;
    if (message.t === 'items') {
      for (const item of message.items) {
        this.seeHub(item);
        if (this.synced || local) this.accept(item, local);
        else this.pending.push(item);
      }
      this.settle();
    } else if (message.t === 'status') {
      if (message.leader && message.leader !== this.leaderId) {
        this.leaderId = message.leader;
        // A new leader: a sync request the old one never answered is asked again.
        if (!this.synced) this.requestSync();
      }
      this.setState(message.state);
    } else if (message.t === 'sync' && message.to === this.tabId) {
      this.onSync(message);
    }
  }

  seeHub(item) {
    const position = this.hubPosition;
    if (item.epoch > position.epoch || (item.epoch === position.epoch && (position.id === null || item.id > position.id))) {
      this.hubPosition = { epoch: item.epoch, id: item.id };
    }
  }

  requestSync() {
    clearTimeout(this.syncTimer);
    if (this.closed || this.hub) return;
    this.synced = false;
    const after = this.fresh && this.lastId === null ? null : { epoch: this.epoch, id: this.lastId ?? 0 };
    const message = { t: 'sync-request', from: this.tabId, after, config: this.config };
    this.post(message);
    this.syncTimer = setTimeout(() => this.requestSync(), SYNC_RETRY_MS);
  }

  onSync(reply) {
    if (this.synced || this.hub) return;
    clearTimeout(this.syncTimer);
    this.synced = true;
    if (reply.leader) this.leaderId = reply.leader;
    if (reply.position.id !== null) this.seeHub(reply.position);
    if (this.fresh && this.lastId === null) {
      // A fresh start: begin just before the recent rows the hub hands over, in its epoch.
      this.epoch = reply.position.epoch;
      this.lastId = reply.items.length > 0 ? reply.items[0].prev : reply.position.id;
      this.fresh = false;
    }
    const held = this.pending;
    this.pending = [];
    for (const item of reply.items) this.accept(item, true);
    for (const item of held) this.accept(item, false);
    if (!reply.covered) this.startCatchUp();
    this.setState(reply.state);
    this.settle();
  }

  // --- ordering ----------------------------------------------------------------------------------------------------

  /** Deliver an item if it follows what this tab has, drop it if already had, hold it back if it would leave a gap. */
  accept(item, trusted) {
    if (item.epoch < this.epoch) return;
    if (item.kind === 'reset') {
      if (item.epoch === this.epoch) return;
      this.epoch = item.epoch;
      this.lastId = item.id;
      this.pending = this.pending.filter((other) => other.epoch >= this.epoch);
      this.remember({ ...item });
      this.settings.onReset?.(JSON.parse(item.data));
      this.drain();
      return;
    }
    if (item.epoch === this.epoch && this.lastId !== null && item.id <= this.lastId) return;
    const follows =
      item.epoch === this.epoch &&
      (item.prev === this.lastId || (item.prev !== null && this.lastId !== null && item.prev < this.lastId) || (trusted && this.lastId === null));
    if (!follows) {
      this.pending.push(item);
      return;
    }
    const prev = this.lastId;
    this.lastId = item.id;
    this.fresh = false;
    this.remember({ ...item, prev });
    this.settings.onRow?.(JSON.parse(item.data), item.id);
    this.drain();
  }

  remember(item) {
    this.buffer.push(item);
    if (this.buffer.length > this.config.bufferRows * 1.5) this.buffer.splice(0, this.buffer.length - this.config.bufferRows);
  }

  drain() {
    if (this.pending.length === 0) return;
    const held = this.pending.sort((a, b) => a.epoch - b.epoch || a.id - b.id);
    this.pending = [];
    for (const item of held) this.accept(item, false);
  }

  /** After a batch: a gap held back asks for a fill; a catch-up stream that met the shared stream is closed. */
  settle() {
    if (this.closed || this.hub || !this.synced) return;
    if (this.pending.length > 0) {
      if (!this.catchUp) this.requestSync();
      return;
    }
    const hub = this.hubPosition;
    if (this.catchUp && hub.id !== null && this.lastId !== null && (this.epoch > hub.epoch || (this.epoch === hub.epoch && this.lastId >= hub.id))) {
      this.stopCatchUp();
    }
  }

  /** Read the missing rows from the server itself, from this tab's last id, until they meet the shared stream. */
  startCatchUp() {
    if (this.catchUp || this.closed) return;
    const from = this.lastId ?? 0;
    const source = new EventSource(cursorUrl(this.config.url, from));
    let prev = from;
    let epoch = this.epoch;
    source.addEventListener(this.config.event, (event) => {
      const id = Number(event.lastEventId);
      if (id <= prev) return;
      this.accept({ kind: 'row', id, prev, epoch, data: event.data }, true);
      prev = id;
      this.settle();
    });
    source.addEventListener('reset', (event) => {
      epoch += 1;
      prev = Number(event.lastEventId);
      this.accept({ kind: 'reset', id: prev, prev: null, epoch, data: event.data }, true);
      this.settle();
    });
    this.catchUp = source;
  }

  stopCatchUp() {
    this.catchUp?.close();
    this.catchUp = null;
  }

  setState(state) {
    this.state = state;
    this.settings.onStatus?.(this.status);
  }

  /** Stop for good: the connection closes when no tab needs it; a leader hands over to the next tab. Idempotent. */
  close() {
    if (this.closed) return;
    this.closed = true;
    globalThis.removeEventListener?.('pagehide', this.onPageHide);
    clearTimeout(this.syncTimer);
    this.stopCatchUp();
    this.hub?.close();
    this.hub = null;
    if (this.port) {
      this.port.postMessage({ t: 'bye' });
      this.port.close();
    }
    this.abort?.abort();
    this.releaseLock?.();
    this.channel?.close();
    this.state = 'closed';
    this.settings.onStatus?.(this.status);
  }
}
