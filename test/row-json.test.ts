import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rowToJson } from '../src/hub/row-json.js';

test('safe integers become numbers, larger ones strings', () => {
  const json = rowToJson({ a: 5n, b: 9007199254740991n, c: 9007199254740993n, d: -9223372036854775808n });
  assert.is(json, '{"a":5,"b":9007199254740991,"c":"9007199254740993","d":"-9223372036854775808"}');
});

test('BLOBs become base64, NULL null, REAL numbers', () => {
  assert.is(rowToJson({ b: Buffer.from([0, 1, 255]), n: null, r: 1.5 }), '{"b":"AAH/","n":null,"r":1.5}');
});

test('text of any kind stays one line and round-trips', () => {
  const text = 'quote " backslash \\ cr \r lf \n crlf \r\n nul \u0000 é 🎉 \u2028 data: x\n\nid: 999';
  const json = rowToJson({ message: text });
  assert.not.match(json, /[\r\n]/);
  assert.is(JSON.parse(json).message, text);
});

test.run();
