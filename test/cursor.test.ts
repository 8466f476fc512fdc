import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseCursor, requestCursor } from '../src/http/cursor.js';
import { SseError } from '../src/errors.js';

test('decimal integers from 0 to 2^53-1 are cursors', () => {
  assert.is(parseCursor('0', 'x'), 0);
  assert.is(parseCursor('42', 'x'), 42);
  assert.is(parseCursor('9007199254740991', 'x'), Number.MAX_SAFE_INTEGER);
});

test('absent and empty mean no cursor', () => {
  assert.is(parseCursor(undefined, 'x'), undefined);
  assert.is(parseCursor('', 'x'), undefined);
});

test('anything else is a bad cursor with a one-line reason', () => {
  for (const bad of ['-1', '+1', ' 1', '1 ', '1e3', '1.5', '0x10', 'abc', '9007199254740992', '99999999999999999999', '1\n2', '١']) {
    try {
      parseCursor(bad, 'Last-Event-ID');
      assert.unreachable(`accepted ${JSON.stringify(bad)}`);
    } catch (error) {
      assert.instance(error, SseError);
      assert.is((error as SseError).code, 'SSE_ERR_BAD_CURSOR');
      assert.not.match((error as Error).message, /\n/);
      assert.match((error as Error).message, /^Last-Event-ID /);
    }
  }
});

test('the header wins over the query parameter', () => {
  assert.is(requestCursor('5', new URLSearchParams('lastEventId=9')), 5);
  assert.is(requestCursor(undefined, new URLSearchParams('lastEventId=9')), 9);
  assert.is(requestCursor(undefined, new URLSearchParams('')), undefined);
});

test('a bad header is refused even when the query is good', () => {
  assert.throws(() => requestCursor('x', new URLSearchParams('lastEventId=9')), /Last-Event-ID/);
});

test('a repeated query parameter is refused', () => {
  assert.throws(() => requestCursor(undefined, new URLSearchParams('lastEventId=1&lastEventId=2')), /at most once/);
});

test.run();
