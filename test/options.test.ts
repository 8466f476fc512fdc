import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { helpText, resolveOptions } from '../src/options.js';

test('defaults match the contract', () => {
  const options = resolveOptions({});
  assert.is(options.db, './sse.db');
  assert.is(options.table, 'messages');
  assert.is(options.host, '127.0.0.1');
  assert.is(options.port, 8000);
  assert.is(options.heartbeatMs, 15000);
  assert.is(options.event, undefined);
  assert.ok(Object.isFrozen(options));
});

test('flags are parsed with their units', () => {
  const options = resolveOptions({ port: '0', 'history-bytes': '512k', heartbeat: '0.5', retry: '100', 'history-rows': '0', create: true });
  assert.is(options.port, 0);
  assert.is(options.historyBytes, 512 * 1024);
  assert.is(options.heartbeatMs, 500);
  assert.is(options.retryMs, 100);
  assert.is(options.historyRows, 0);
  assert.is(options.create, true);
});

test('bad values name the flag and what it expects', () => {
  assert.throws(() => resolveOptions({ port: 'abc' }), /--port expects a whole number/);
  assert.throws(() => resolveOptions({ port: '70000' }), /--port expects a number from 0 to 65535/);
  assert.throws(() => resolveOptions({ 'history-bytes': '12 parsecs' }), /--history-bytes expects a size/);
  assert.throws(() => resolveOptions({ heartbeat: '0' }), /--heartbeat expects a number of seconds/);
  assert.throws(() => resolveOptions({ 'page-rows': '0' }), /--page-rows expects a whole number of at least 1/);
  assert.throws(() => resolveOptions({ event: 'a\nb' }), /--event must not contain CR, LF or NUL/);
  assert.throws(() => resolveOptions({ bogus: 'x' }), /unknown option --bogus/);
});

test('--help lists every flag with its default', () => {
  const help = helpText();
  for (const flag of ['--db', '--table', '--port', '--host', '--id-column', '--event', '--history-rows', '--history-bytes', '--heartbeat', '--retry', '--create']) {
    assert.match(help, new RegExp(`${flag}\\b.*default`));
  }
});

test.run();
