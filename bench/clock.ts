import { performance } from 'node:perf_hooks';

/**
 * Wall-clock milliseconds with sub-millisecond precision, comparable across processes on one machine:
 * the writer stamps rows with it and the load clients subtract it from their receipt time.
 */
export function wallMs(): number {
  return performance.timeOrigin + performance.now();
}
