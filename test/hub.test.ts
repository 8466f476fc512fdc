import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EncodedEvent } from '../src/hub/encoded-event.js';
import { HEARTBEAT_SLICE, Hub, type HubOptions } from '../src/hub/hub.js';
import type { HistoryBounds, PageResult, Source, SourceHistory, SourceSink } from '../src/source/source.js';
import type { View } from '../src/hub/view.js';
import { RecordingClient } from './helpers/recording-client.js';
import { sleep, waitFor } from './helpers/wait.js';

/** A store in memory: rows `{ id, user }`; publish() plays a writer's commit. */
class MemorySource implements Source {
  readonly name = 'memory';
  readonly rows: EncodedEvent[] = [];
  sink!: SourceSink;
  pagesRead = 0;

  async start(sink: SourceSink, bounds: HistoryBounds): Promise<SourceHistory> {
    this.sink = sink;
    const events = this.rows.slice(-bounds.rows);
    const lastId = this.rows.at(-1)?.id ?? 0;
    return { events, lastId, floor: events.length === this.rows.length ? -Infinity : events[0].id - 1 };
  }
  readPage(after: number, upTo: number, maxEvents: number): PageResult {
    this.pagesRead++;
    const events = this.rows.filter((row) => row.id > after && row.id <= upTo).slice(0, maxEvents);
    return { events, end: events.length < maxEvents ? upTo : events[events.length - 1].id };
  }
  holds(cursor: number): boolean {
    return (this.rows.at(-1)?.id ?? 0) >= cursor;
  }
  health() {
    return { ok: true };
  }
  async close(): Promise<void> {}

  write(...users: number[]): void {
    const start = (this.rows.at(-1)?.id ?? 0) + 1;
    const events = users.map((user, i) => EncodedEvent.row(start + i, { id: start + i, user }, undefined));
    this.rows.push(...events);
    this.sink?.publish(events);
  }
}

const OPTIONS: HubOptions = {
  historyRows: 50,
  historyBytes: 1 << 20,
  recentRows: 0,
  heartbeatMs: 60000,
  clientBufferBytes: 1 << 20,
  slowClientTimeoutMs: 30000,
  pageRows: 7,
  maxCatchUpRows: 0,
};

/** The rows of one user, indexed by user, counting how often it is asked about an event. */
function userView(user: number, counter = { applied: 0 }): View {
  return {
    key: `user=${user}`,
    apply(event) {
      counter.applied++;
      return (event.value as { user: number }).user === user ? event : undefined;
    },
    index: { field: 'user', terms: [String(user)], termsOf: (event) => [String((event.value as { user: number }).user)] },
  };
}

async function startedHub(source: MemorySource, options: Partial<HubOptions> = {}): Promise<Hub> {
  const hub = new Hub(source, { ...OPTIONS, ...options });
  await hub.start();
  return hub;
}

test('clients with the same view share one batch: it is filtered once per group, not per client', async () => {
  const source = new MemorySource();
  const hub = await startedHub(source);
  const counter = { applied: 0 };
  const clients = [1, 2, 3].map(() => new RecordingClient());
  for (const client of clients) hub.attach(client, 0, userView(7, counter));
  await waitFor('three live clients', () => hub.clientCount === 3 && hub.stats().catchingUp === 0);
  counter.applied = 0;
  source.write(7, 8, 7);
  assert.is(counter.applied, 2, 'asked once per event that carries its term (user 7), never about user 8');
  for (const client of clients) assert.equal(client.ids, [1, 3]);
  assert.is(clients[0].batches[0], clients[1].batches[0], 'the same batch object');
  assert.is(clients[0].batches[0].sse, clients[2].batches[0].sse, 'the same bytes');
  await hub.close();
});

test('the equality index reaches only the groups an event concerns, among a thousand', async () => {
  const source = new MemorySource();
  const hub = await startedHub(source);
  const counter = { applied: 0 };
  const clients = Array.from({ length: 1000 }, () => new RecordingClient());
  clients.forEach((client, user) => hub.attach(client, 0, userView(user, counter)));
  await waitFor('a thousand live clients', () => hub.clientCount === 1000 && hub.stats().catchingUp === 0);
  counter.applied = 0;
  source.write(5, 999, 5);
  assert.is(counter.applied, 3);
  assert.equal(clients[5].ids, [1, 3]);
  assert.equal(clients[999].ids, [2]);
  assert.is(clients.filter((client) => client.batches.length > 0).length, 2);
  await hub.close();
});

test('a filtered client gets the same rows live as replayed from memory and from the store', async () => {
  const source = new MemorySource();
  const hub = await startedHub(source);
  const live = new RecordingClient();
  hub.attach(live, 0, userView(2));
  await waitFor('a live client', () => hub.stats().catchingUp === 0);
  for (let i = 0; i < 40; i++) source.write(i % 3, (i * 7) % 5, 2);
  const fromMemory = new RecordingClient();
  hub.attach(fromMemory, 100, userView(2));
  const fromStore = new RecordingClient();
  hub.attach(fromStore, 0, userView(2));
  await waitFor('both replays', () => fromStore.ids.length === live.ids.length && fromMemory.ids.length > 0);
  assert.ok(source.pagesRead > 0, 'the store was read: the ring holds only the newest 50');
  const expected = source.rows.filter((row) => (row.value as { user: number }).user === 2).map((row) => row.id);
  assert.equal(live.ids, expected);
  assert.equal(fromStore.ids, expected);
  assert.equal(fromMemory.ids, expected.filter((id) => id > 100));
  await hub.close();
});

test('a filtered client that the last batches left out is still reset when the store restarts below it', async () => {
  const source = new MemorySource();
  const hub = await startedHub(source);
  const client = new RecordingClient();
  hub.attach(client, 0, userView(1));
  await waitFor('a live client', () => hub.stats().catchingUp === 0);
  source.write(1, 2, 2, 2);
  assert.equal(client.ids, [1]);
  // A backup with the first two rows is restored: the client's cursor (4, though its view sent only 1) is ahead.
  source.rows.length = 2;
  source.sink.restart({ events: source.rows.slice(), lastId: 2, floor: -Infinity });
  assert.equal(client.controls, [['reset', { reason: 'cursor-ahead', id: 2, lastEventId: 4, lastId: 2 }]]);
  source.write(1);
  assert.equal(client.ids, [1, 3], 'the first row written after the restore');
  await hub.close();
});

/** Heartbeats as fake clients see them: in what order, and how many in one synchronous run of the hub's code. */
class BeatLog {
  readonly order: BeatingClient[] = [];
  /** The most heartbeats sent in one event-loop turn, and how many turns sent any. */
  mostInOneTurn = 0;
  turns = 0;
  private inThisTurn = 0;
  onBeat: (client: BeatingClient) => void = () => {};

  record(client: BeatingClient): void {
    // A microtask runs as soon as the hub's current callback returns: it closes the count of that turn.
    if (this.inThisTurn++ === 0) {
      queueMicrotask(() => {
        this.mostInOneTurn = Math.max(this.mostInOneTurn, this.inThisTurn);
        this.turns++;
        this.inThisTurn = 0;
      });
    }
    this.order.push(client);
    this.onBeat(client);
  }
}

class BeatingClient extends RecordingClient {
  beats = 0;
  constructor(private readonly log: BeatLog) {
    super();
  }
  override sendHeartbeat(): void {
    this.beats++;
    this.log.record(this);
  }
}

/** `count` live clients recording their heartbeats. */
async function liveClients(hub: Hub, log: BeatLog, count: number): Promise<BeatingClient[]> {
  const clients = Array.from({ length: count }, () => new BeatingClient(log));
  for (const client of clients) hub.attach(client);
  await waitFor(`${count} live clients`, () => hub.clientCount === count && hub.stats().catchingUp === 0);
  return clients;
}

test('heartbeats reach every one of 10,000 clients each interval, no more than a slice per event-loop turn', async () => {
  const source = new MemorySource();
  // Long enough for the 79 slices of a sweep to be spread over half of it.
  const hub = await startedHub(source, { heartbeatMs: 400 });
  const log = new BeatLog();
  const clients = await liveClients(hub, log, 10000);
  await waitFor('two sweeps', () => clients.every((client) => client.beats >= 2));
  const first = new Set(log.order.slice(0, clients.length));
  assert.is(first.size, clients.length, 'every client had its heartbeat before any had a second');
  assert.ok(log.mostInOneTurn <= HEARTBEAT_SLICE, `at most ${HEARTBEAT_SLICE} in one turn, got ${log.mostInOneTurn}`);
  assert.ok(log.turns >= 2 * Math.ceil(clients.length / HEARTBEAT_SLICE), `${log.turns} turns`);
  await hub.close();
});

test('a client that leaves during a sweep gets nothing after; one that joins gets the next sweep', async () => {
  const source = new MemorySource();
  const hub = await startedHub(source, { heartbeatMs: 50 });
  const log = new BeatLog();
  const clients = await liveClients(hub, log, 3 * HEARTBEAT_SLICE);
  const leaving = clients[clients.length - 1];
  const joining = new BeatingClient(log);
  log.onBeat = () => {
    log.onBeat = () => {};
    // Before the next slice: the sweep has begun and not reached the last client.
    setImmediate(() => {
      leaving.close('client-left');
      hub.detach(leaving);
      hub.attach(joining);
    });
  };
  await waitFor('two sweeps', () => clients[0].beats >= 2 && joining.beats >= 1);
  assert.is(leaving.beats, 0);
  assert.ok(log.order.indexOf(joining) >= clients.length - 1, 'the joining client was not in the sweep under way');
  await hub.close();
});

test('the slow-client check of the sweep reaches catching-up clients beyond the first slice', async () => {
  const source = new MemorySource();
  source.write(...Array.from({ length: 3 * OPTIONS.pageRows }, (_, i) => i));
  const hub = await startedHub(source, { heartbeatMs: 50, slowClientTimeoutMs: 1 });
  const log = new BeatLog();
  await liveClients(hub, log, 2 * HEARTBEAT_SLICE);
  // Sent the first rows, never drained: stalled in the catch-up, after the live clients in the sweep.
  const stuck = Array.from({ length: 3 }, () => Object.assign(new BeatingClient(log), { whenDrained() {} }));
  for (const client of stuck) hub.attach(client, 0);
  await waitFor('the stalled clients closed', () => stuck.every((client) => client.closedWith === 'too-slow'));
  assert.is(hub.clientCount, 2 * HEARTBEAT_SLICE);
  await hub.close();
});

test('close() stops a sweep under way', async () => {
  const source = new MemorySource();
  const hub = await startedHub(source, { heartbeatMs: 20 });
  const log = new BeatLog();
  await liveClients(hub, log, 4 * HEARTBEAT_SLICE);
  let closing: Promise<void> | undefined;
  let sent = 0;
  log.onBeat = () => {
    if (closing) return;
    sent = log.order.length;
    closing = hub.close();
  };
  await waitFor('a heartbeat', () => closing !== undefined);
  await closing;
  await sleep(100);
  assert.is(log.order.length, sent, 'no heartbeat after close(), not even in the rest of its slice');
});

test.run();
