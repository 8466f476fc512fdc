import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CatchUpCache, type CatchUpPage } from '../src/hub/catch-up-cache.js';
import { EncodedEvent, EventBatch } from '../src/hub/encoded-event.js';

const page = (bytes: number, end: number): CatchUpPage => ({ events: [], end, bytes });

test('the cache serves a page by the cursor it starts after', () => {
  const cache = new CatchUpCache(1000);
  cache.set('10', page(100, 20));
  assert.is(cache.get('10')?.end, 20);
  assert.is(cache.get('11'), undefined);
  assert.is(cache.bytes, 100);
});

test('past its bytes it forgets the page used least recently', () => {
  const cache = new CatchUpCache(250);
  cache.set('1', page(100, 2));
  cache.set('2', page(100, 3));
  cache.get('1');
  cache.set('3', page(100, 4));
  assert.ok(cache.get('1'), 'used recently: kept');
  assert.is(cache.get('2'), undefined, 'least recently used: gone');
  assert.ok(cache.get('3'));
  assert.is(cache.bytes, 200);
});

test('a page larger than the whole cache is not kept; clear() forgets everything', () => {
  const cache = new CatchUpCache(50);
  cache.set('1', page(100, 2));
  assert.is(cache.get('1'), undefined);
  cache.set('2', page(10, 3));
  cache.clear();
  assert.is(cache.get('2'), undefined);
  assert.is(cache.bytes, 0);
});

test('a batch joins its frames once, as one HTTP chunk too, and can start after a cursor', () => {
  const rows = [1, 2, 3].map((id) => EncodedEvent.row(id, { id: BigInt(id), message: `m${id}` }, undefined));
  const batch = new EventBatch(rows);
  const joined = batch.sse.toString();
  assert.is(joined, rows.map((row) => row.sse.toString()).join(''));
  assert.is(batch.sse, batch.sse, 'joined once');
  assert.is(batch.sseChunk.toString(), `${Buffer.byteLength(joined).toString(16)}\r\n${joined}\r\n`);
  assert.equal(
    batch.after(1).events.map((row) => row.id),
    [2, 3],
  );
  let built = 0;
  const frame = (row: EncodedEvent) => {
    built++;
    return Buffer.from(`[${row.id}]`);
  };
  assert.is(batch.joined('test', frame).toString(), '[1][2][3]');
  batch.joined('test', frame);
  new EventBatch(rows).joined('test', frame);
  assert.is(built, 3, 'a row is framed once per transport, whatever the batches and clients');
});

test.run();
