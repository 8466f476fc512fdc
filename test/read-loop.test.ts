import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ReadLoop, type PassOutcome } from '../src/source/read-loop.js';
import { sleep, waitFor } from './helpers/wait.js';

/** A loop whose passes answer from a script (then `nothing`), recording each pass. */
function scripted(outcomes: PassOutcome[]) {
  const passes: { first: boolean }[] = [];
  let settled = 0;
  const loop = new ReadLoop(
    (first) => {
      passes.push({ first });
      return outcomes.shift() ?? 'nothing';
    },
    () => settled++,
  );
  return { loop, passes, settled: () => settled };
}

test('doorbells rung before the read runs fold into one read', async () => {
  const { loop, passes } = scripted(['rows']);
  loop.ring();
  loop.ring();
  loop.ring();
  await sleep(0);
  await new Promise((resolve) => setImmediate(resolve));
  assert.is(passes.length, 1);
  assert.is(passes[0].first, true);
  loop.stop();
});

test('a full page reads again; the reads after it are not the first since the doorbell', async () => {
  const { loop, passes } = scripted(['more', 'more', 'rows']);
  loop.ring();
  await waitFor('three passes', () => passes.length >= 3, 1000, 1);
  assert.equal(
    passes.slice(0, 3).map((pass) => pass.first),
    [true, false, false],
  );
  loop.stop();
});

test('after a doorbell that found nothing it looks again 1, 2, 4 ... ms later, then settles and stops', async () => {
  const { loop, passes, settled } = scripted([]);
  loop.ring();
  await waitFor('the loop to settle', () => settled() === 1, 3000, 5);
  assert.is(passes.length, 11, 'the read, then ten looks');
  assert.ok(loop.idle);
  await sleep(100);
  assert.is(passes.length, 11, 'no timer runs once settled');
});

test('after a read with rows the looks start later, and a new doorbell starts over', async () => {
  const { loop, passes, settled } = scripted(['rows']);
  loop.ring();
  await waitFor('the loop to settle', () => settled() === 1, 3000, 5);
  assert.is(passes.length, 9, 'the read, then eight looks from 4 ms on');
  loop.ring();
  await waitFor('another settle', () => settled() === 2, 3000, 5);
  assert.is(passes[9].first, true);
  loop.stop();
});

test('a locked database is retried, and the retry still counts as the first read', async () => {
  const { loop, passes } = scripted(['busy', 'busy', 'rows']);
  loop.ring();
  await waitFor('three passes', () => passes.length >= 3, 1000, 1);
  assert.equal(
    passes.slice(0, 3).map((pass) => pass.first),
    [true, true, true],
  );
  assert.not.ok(loop.idle);
  loop.stop();
});

test('wait stops the looks until the next doorbell; stop() ends everything', async () => {
  const { loop, passes, settled } = scripted(['wait']);
  loop.ring();
  await waitFor('settled', () => settled() === 1, 1000, 1);
  assert.is(passes.length, 1);
  loop.stop();
  loop.ring();
  await sleep(20);
  assert.is(passes.length, 1);
});

test('takeLatency gives the time since the doorbell once', async () => {
  const { loop } = scripted(['rows']);
  assert.is(loop.takeLatency(), undefined);
  loop.ring();
  await sleep(5);
  const seconds = loop.takeLatency();
  assert.ok(seconds !== undefined && seconds >= 0.003, String(seconds));
  assert.is(loop.takeLatency(), undefined);
  loop.stop();
});

test.run();
