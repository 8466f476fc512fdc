import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { EncodedEvent } from '../src/encoded-event.js';
import { fetchHistoryPage, serveHistory } from '../src/history-endpoint.js';
import type { PageResult, Source } from '../src/source.js';

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
