import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { EncodedEvent } from '../src/hub/encoded-event.js';
import { fetchHistoryPage, serveHistory } from '../src/http/history-endpoint.js';
import { decodePosition, encodePosition, fetchSnapshotPage, serveSnapshot } from '../src/http/snapshot-endpoint.js';
import type { PageResult, SnapshotPosition, SnapshotResult, Source } from '../src/source/source.js';

/** A store of events 1..100 (the JSON holds quotes, a newline and non-ASCII, to check bytes survive the trip). */
function fakeSource(answer?: PageResult): Source & { reads: number[][] } {
  const events = Array.from({ length: 100 }, (_, i) => EncodedEvent.row(i + 1, { id: BigInt(i + 1), message: `say "hi"\nto ${i + 1} — ✓` }, 'msg'));
  const reads: number[][] = [];
  return {
    name: 'fake',
    reads,
    start: async () => ({ events: [], lastId: 100, floor: 100 }),
    readPage: (after, upTo, maxEvents) => {
      reads.push([after, upTo, maxEvents]);
      if (answer) return answer;
      const page = events.filter((event) => event.id > after && event.id <= upTo).slice(0, maxEvents);
      return { events: page, end: page.length < maxEvents ? upTo : page[page.length - 1].id };
    },
    holds: () => true,
    health: () => ({ ok: true }),
    close: async () => {},
  };
}

const test = suite<{ server?: Server; url: string; source: ReturnType<typeof fakeSource> }>('history endpoint', { url: '', source: fakeSource() });

async function serve(context: { server?: Server; url: string; source: ReturnType<typeof fakeSource> }, answer?: PageResult): Promise<void> {
  context.source = fakeSource(answer);
  const source = context.source;
  // Mounted as the integrator would: only at /history.
  context.server = createServer((request, response) => {
    if (request.url?.split('?')[0] === '/history') void serveHistory(request, response, source, { lastId: () => 100, maxLimit: 40 });
    else response.writeHead(404).end();
  });
  await new Promise<void>((resolve) => context.server!.listen(0, '127.0.0.1', resolve));
  context.url = `http://127.0.0.1:${(context.server.address() as AddressInfo).port}`;
}

test.after.each(async (context) => {
  await new Promise((resolve) => context.server?.close(resolve));
  context.server = undefined;
});

test('a page with an explicit end is cacheable, and the edge rebuilds the origin\'s SSE bytes from it', async (context) => {
  await serve(context);
  const response = await fetch(`${context.url}/history?after=10&upTo=20&limit=5`);
  assert.is(response.status, 200);
  assert.is(response.headers.get('cache-control'), 'public, max-age=3600');
  assert.is(response.headers.get('content-type'), 'application/json');
  const body = (await response.json()) as { events: { id: number; k: string; d: string }[]; end: number };
  assert.equal(body.events.map((event) => event.id), [11, 12, 13, 14, 15]);
  assert.is(body.end, 15);
  assert.is(body.events[0].k, 'row');
  assert.is(body.events[0].d, '{"id":11,"message":"say \\"hi\\"\\nto 11 — ✓"}');

  const page = await fetchHistoryPage(context.url, 10, 20, 5, 'msg');
  assert.ok('events' in page);
  const [origin] = (context.source.readPage(10, 20, 1, 1e6) as { events: EncodedEvent[] }).events;
  assert.is(page.events[0].sse.toString(), origin.sse.toString());
  assert.is(page.end, 15);
});

test('without an end, or with one past the last id, the page may still grow: not cacheable', async (context) => {
  await serve(context);
  for (const query of ['after=90', 'after=90&upTo=500']) {
    const response = await fetch(`${context.url}/history?${query}`);
    assert.is(response.headers.get('cache-control'), 'no-store', query);
    const body = (await response.json()) as { events: unknown[]; end: number };
    assert.is(body.events.length, 10, query);
    assert.is(body.end, 100, query);
  }
});

test('limit is bounded by the server: a client cannot ask for the whole table in one request', async (context) => {
  await serve(context);
  const body = (await (await fetch(`${context.url}/history?after=0&upTo=100&limit=100000`)).json()) as { events: unknown[]; end: number };
  assert.is(body.events.length, 40);
  assert.is(body.end, 40);
  assert.equal(context.source.reads, [[0, 100, 40]]);
});

test('bad parameters get 400 with a one-line reason; other methods 405', async (context) => {
  await serve(context);
  for (const query of ['', 'after=-1', 'after=1e3', 'after=5&upTo=x', 'after=5&limit=%201']) {
    const response = await fetch(`${context.url}/history?${query}`);
    assert.is(response.status, 400, query);
    assert.match(await response.text(), /^[^\n]+\n$/, query);
  }
  const post = await fetch(`${context.url}/history?after=1`, { method: 'POST' });
  assert.is(post.status, 405);
  assert.is(post.headers.get('allow'), 'GET, HEAD');
  assert.equal(context.source.reads, []);
});

test('a busy store answers 503 with Retry-After, which the edge turns into "ask again"', async (context) => {
  await serve(context, { retryMs: 2500 });
  const response = await fetch(`${context.url}/history?after=1&upTo=9`);
  assert.is(response.status, 503);
  assert.is(response.headers.get('retry-after'), '3');
  assert.equal(await fetchHistoryPage(context.url, 1, 9, 10), { retryMs: 3000 });
});

test('the edge\'s client rejects with a one-line reason when the origin answers an error', async (context) => {
  await serve(context);
  try {
    await fetchHistoryPage(`${context.url}/no-such-prefix/`, 1, 9, 10);
    assert.unreachable('a 404 must not pass as a page');
  } catch (error) {
    assert.match((error as Error).message, /answered 404/);
  }
});

test.run();

/**
 * A change source's snapshot of two tables: `todos` keyed by rowid (rows 1..25), and `kv`, WITHOUT ROWID, keyed by a
 * text and an integer (the positions carry a bigint and a BLOB-free pair). Records what it was asked.
 */
function snapshotSource(answer?: SnapshotResult): Source & { asked: unknown[][] } {
  const asked: unknown[][] = [];
  const todo = (id: number) => {
    const value = { op: 'snapshot', table: 'todos', pk: { id }, row: { id, title: `say "hi"\nto ${id} — ✓` } };
    return new EncodedEvent(77, 'snapshot', value, JSON.stringify(value), 'msg');
  };
  return {
    name: 'fake',
    asked,
    start: async () => ({ events: [], lastId: 77, floor: 77 }),
    readPage: () => ({ events: [], end: 0 }),
    snapshot: (table, after, maxRows) => {
      asked.push([table, after, maxRows]);
      if (answer) return answer;
      if (table === 'kv') return { events: [], next: undefined, seq: 77 };
      const from = typeof after === 'number' ? after + 1 : 1;
      const ids = Array.from({ length: Math.max(0, Math.min(maxRows, 26 - from)) }, (_, i) => from + i);
      const last = ids.at(-1);
      return { events: ids.map(todo), next: last === undefined || last === 25 ? undefined : last, seq: 77 };
    },
    holds: () => true,
    health: () => ({ ok: true }),
    close: async () => {},
  };
}

const snapshots = suite<{ server?: Server; url: string; source: ReturnType<typeof snapshotSource> }>('snapshot endpoint', { url: '', source: snapshotSource() });

async function serveSnapshots(context: { server?: Server; url: string; source: ReturnType<typeof snapshotSource> }, answer?: SnapshotResult): Promise<void> {
  context.source = snapshotSource(answer);
  const source = context.source;
  const tables = ['todos', 'kv'];
  context.server = createServer((request, response) => {
    if (request.url?.split('?')[0] !== '/snapshot') return void response.writeHead(404).end();
    void serveSnapshot(request, response, source, {
      findTable: (name) => tables.find((table) => table.toLowerCase() === name.toLowerCase()),
      keyShape: (table) => (table === 'kv' ? { withoutRowid: true, keyColumns: 2 } : { withoutRowid: false, keyColumns: 1 }),
      maxLimit: 10,
    });
  });
  await new Promise<void>((resolve) => context.server!.listen(0, '127.0.0.1', resolve));
  context.url = `http://127.0.0.1:${(context.server.address() as AddressInfo).port}`;
}

snapshots.after.each(async (context) => {
  if (context.server) await new Promise((resolve) => context.server!.close(resolve));
  context.server = undefined;
});

snapshots('pages of a table\'s rows with the origin\'s JSON text, the next position and seq; the edge rebuilds the origin\'s SSE bytes', async (context) => {
  await serveSnapshots(context);
  const response = await fetch(`${context.url}/snapshot?table=TODOS&limit=4`);
  assert.is(response.status, 200);
  assert.is(response.headers.get('cache-control'), 'no-store');
  assert.is(response.headers.get('content-type'), 'application/json');
  const body = (await response.json()) as { events: { d: string }[]; next: unknown; seq: number };
  assert.is(body.events.length, 4);
  assert.is(body.events[0].d, '{"op":"snapshot","table":"todos","pk":{"id":1},"row":{"id":1,"title":"say \\"hi\\"\\nto 1 — ✓"}}');
  assert.is(body.next, 4);
  assert.is(body.seq, 77);
  assert.equal(context.source.asked, [['todos', undefined, 4]], 'the served table\'s own name, whatever the case asked');

  // The edge's client walks every page and writes the very bytes the origin would.
  const rows: EncodedEvent[] = [];
  let after: SnapshotPosition | undefined;
  for (let pages = 0; pages < 10; pages++) {
    const page = await fetchSnapshotPage(context.url, 'todos', after, 10, 'msg');
    assert.ok('events' in page);
    assert.is(page.seq, 77);
    rows.push(...page.events);
    after = page.next;
    if (after === undefined) break;
  }
  assert.is(rows.length, 25);
  const origin = (snapshotSource().snapshot!('todos', undefined, 100, 1e6) as { events: EncodedEvent[] }).events;
  assert.equal(rows.map((row) => row.sse.toString()), origin.map((row) => row.sse.toString()));
  assert.not.match(rows[0].sse.toString(), /^id:/m, 'snapshot rows have no id');
  assert.equal(context.source.asked.slice(1).map(([, position, limit]) => [position, limit]), [[undefined, 10], [10, 10], [20, 10]], 'limit lowered to the server\'s bound; positions passed back');
});

snapshots('positions of a WITHOUT ROWID table survive the trip exactly: integers beyond 2^53, BLOBs, non-finite reals', async () => {
  const position = ['text', 9007199254740993n, Buffer.from([0, 255, 1]), 1.5, -Infinity, null];
  const wire = JSON.parse(JSON.stringify(encodePosition(position)));
  assert.equal(wire, ['text', { int: '9007199254740993' }, { blob: 'AP8B' }, 1.5, { real: '-Infinity' }, null]);
  assert.equal(decodePosition(JSON.stringify(wire), { withoutRowid: true, keyColumns: 6 }), position);
  assert.is(decodePosition('-12', { withoutRowid: false, keyColumns: 1 }), -12, 'a rowid may be negative');
});

snapshots('bad parameters get 400 with a one-line reason (never a read), a table not tracked too; other methods 405', async (context) => {
  await serveSnapshots(context);
  for (const query of ['', 'table=', 'table=secrets', 'table=todos&after=x', 'table=todos&after=1.5', 'table=todos&after=[1]', 'table=kv&after=1', 'table=kv&after=["a"]', 'table=kv&after=["a",{"x":"1"}]', 'table=todos&limit=-1']) {
    const response = await fetch(`${context.url}/snapshot?${query}`);
    assert.is(response.status, 400, query);
    assert.match(await response.text(), /^[^\n]+\n$/, query);
  }
  assert.is((await fetch(`${context.url}/snapshot?table=kv&after=["a",{"int":"3"}]`)).status, 200);
  assert.equal(context.source.asked, [['kv', ['a', 3n], 10]]);
  const post = await fetch(`${context.url}/snapshot?table=todos`, { method: 'POST' });
  assert.is(post.status, 405);
  assert.is(post.headers.get('allow'), 'GET, HEAD');
});

snapshots('a busy store answers 503 with Retry-After, which the edge turns into "ask again"; an error status rejects with its line', async (context) => {
  await serveSnapshots(context, { retryMs: 5 });
  const response = await fetch(`${context.url}/snapshot?table=todos`);
  assert.is(response.status, 503);
  assert.is(response.headers.get('retry-after'), '1');
  assert.equal(await fetchSnapshotPage(context.url, 'todos', undefined, 10), { retryMs: 1000 });
  try {
    await fetchSnapshotPage(context.url, 'nope', undefined, 10);
    assert.unreachable('a 400 must not pass as a page');
  } catch (error) {
    assert.match((error as Error).message, /answered 400 to \/snapshot\?table=nope: table "nope" is not tracked here/);
  }
});

snapshots.run();
