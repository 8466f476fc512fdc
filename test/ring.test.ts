import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Ring } from '../src/hub/ring.js';

const item = (id: number, bytes = 10) => ({ id, bytes });
const ids = (items: { id: number }[]) => items.map((i) => i.id);

test('keeps the newest rows within the row bound and moves the floor', () => {
  const ring = new Ring(3, 1000, 0);
  for (let id = 1; id <= 5; id++) ring.push(item(id));
  assert.equal(ids(ring.after(0)), [3, 4, 5]);
  assert.is(ring.floor, 2);
  assert.is(ring.oldestId, 3);
  assert.ok(ring.covers(2));
  assert.not.ok(ring.covers(1));
});

test('keeps the newest rows within the byte bound', () => {
  const ring = new Ring(100, 25, 0);
  for (let id = 1; id <= 5; id++) ring.push(item(id));
  assert.equal(ids(ring.after(0)), [4, 5]);
  assert.is(ring.bytes, 20);
  assert.is(ring.floor, 3);
});

test('after() finds the rows after a cursor, across gaps in the ids', () => {
  const ring = new Ring(10, 1000, 0);
  for (const id of [2, 5, 9, 10]) ring.push(item(id));
  assert.equal(ids(ring.after(5)), [9, 10]);
  assert.equal(ids(ring.after(6)), [9, 10]);
  assert.equal(ids(ring.after(10)), []);
  assert.equal(ids(ring.after(0, 2)), [2, 5]);
});

test('after() limits bytes but always returns at least one row', () => {
  const ring = new Ring(10, 1000, 0);
  for (let id = 1; id <= 4; id++) ring.push(item(id, 100));
  assert.equal(ids(ring.after(0, Infinity, 250)), [1, 2]);
  assert.equal(ids(ring.after(0, Infinity, 10)), [1]);
});

test('wraps around its storage', () => {
  const ring = new Ring(4, 1000, 0);
  for (let id = 1; id <= 11; id++) ring.push(item(id));
  assert.equal(ids(ring.after(0)), [8, 9, 10, 11]);
  assert.equal(ids(ring.after(9)), [10, 11]);
});

test('cursorBeforeNewest gives the cursor of the newest n rows', () => {
  const ring = new Ring(10, 1000, 0);
  for (let id = 1; id <= 5; id++) ring.push(item(id));
  assert.is(ring.cursorBeforeNewest(2, 5), 3);
  assert.is(ring.cursorBeforeNewest(0, 5), 5);
  assert.is(ring.cursorBeforeNewest(50, 5), 0);
  const whole = new Ring(10, 1000, -Infinity);
  whole.push(item(7));
  assert.is(whole.cursorBeforeNewest(5, 7), 6);
});

test('a ring of zero rows holds nothing and follows the newest id', () => {
  const ring = new Ring(0, 1000, 0);
  ring.push(item(1));
  ring.push(item(2));
  assert.is(ring.size, 0);
  assert.is(ring.floor, 2);
  assert.ok(ring.covers(2));
  assert.not.ok(ring.covers(1));
});

test('reset forgets everything', () => {
  const ring = new Ring(10, 1000, 0);
  ring.push(item(1));
  ring.reset(40);
  assert.is(ring.size, 0);
  assert.is(ring.bytes, 0);
  assert.is(ring.floor, 40);
});

test.run();
