import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { assertFieldValue, encodeComment, encodeEvent, encodeRetry } from '../src/transport/sse-frame.js';
import { SseParser, type SseEvent } from './helpers/sse-stream.js';

function parse(frame: Buffer): SseEvent[] {
  const events: SseEvent[] = [];
  new SseParser((event) => events.push(event)).push(frame.toString('utf8'));
  return events;
}

test('an event is id, data and a blank line', () => {
  assert.is(encodeEvent('7', undefined, '{"a":1}').toString(), 'id: 7\ndata: {"a":1}\n\n');
});

test('an event name goes between id and data', () => {
  assert.is(encodeEvent('7', 'row', 'x').toString(), 'id: 7\nevent: row\ndata: x\n\n');
});

test('every kind of line break in a payload becomes its own data line', () => {
  const frame = encodeEvent('1', undefined, 'a\r\nb\rc\nd');
  assert.is(frame.toString(), 'id: 1\ndata: a\ndata: b\ndata: c\ndata: d\n\n');
  assert.equal(parse(frame), [{ id: '1', event: 'message', data: 'a\nb\nc\nd' }]);
});

test('SSE-looking text in a payload cannot add a field or end the event', () => {
  const events = parse(encodeEvent('5', undefined, 'x\n\nid: 999\ndata: evil'));
  assert.is(events.length, 1);
  assert.is(events[0].id, '5');
});

test('an empty payload is one empty data line', () => {
  assert.equal(parse(encodeEvent('3', undefined, '')), [{ id: '3', event: 'message', data: '' }]);
});

test('CR, LF and NUL are refused in id and event', () => {
  for (const bad of ['1\n', '1\r', '1\0', 'a\r\nb']) {
    assert.throws(() => encodeEvent(bad, undefined, 'x'), /id must not contain/);
    assert.throws(() => encodeEvent('1', bad, 'x'), /event must not contain/);
  }
  assert.throws(() => assertFieldValue('event', 'x\ny'));
});

test('retry and comment frames', () => {
  assert.is(encodeRetry(2000).toString(), 'retry: 2000\n\n');
  assert.is(encodeComment('heartbeat').toString(), ': heartbeat\n\n');
  assert.is(encodeComment('a\nb').toString(), ': a b\n\n');
});

test.run();
