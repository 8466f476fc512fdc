/**
 * Loaded into the server under test with `node --import dist/bench/step-hook.js cli.js ...` by the filter-replay
 * bench: it wraps `TableSource.prototype.readPage` (one catch-up step: one read of the table) and prints one line per
 * step on stderr, `bench-step {"after":A,"upTo":U,"end":E,"rows":R,"ms":M,"boundMs":B,"filtered":true}`: the ids the
 * step covered (after, end], the rows it returned, how long the synchronous read held the event loop, and how much of
 * that went to finding where the step ends (`TableReader.idAfter`: the 10,000th id after the cursor). The server
 * itself is unchanged; ESM modules are shared, so the classes the hook patches are the ones the server uses.
 *
 * BENCH_TABLE_SOURCE: URL of the server's table-source.js (default: this checkout's dist/src/source/table-source.js); its
 * table-reader.js is next to it.
 */
import { performance } from 'node:perf_hooks';

interface PageLike {
  events?: unknown[];
  end?: number;
}

type Method = (...args: unknown[]) => unknown;
const url = process.env.BENCH_TABLE_SOURCE ?? new URL('../src/source/table-source.js', import.meta.url).href;
const source = (await import(url)) as { TableSource: { prototype: { readPage: Method } } };
const reader = (await import(new URL('./table-reader.js', url).href)) as { TableReader: { prototype: { idAfter: Method } } };
const round = (ms: number) => Math.round(ms * 1000) / 1000;

let boundMs = 0;
const idAfter = reader.TableReader.prototype.idAfter;
reader.TableReader.prototype.idAfter = function (this: unknown, ...args: unknown[]) {
  const started = performance.now();
  try {
    return idAfter.apply(this, args);
  } finally {
    boundMs += performance.now() - started;
  }
};

const prototype = source.TableSource.prototype;
const readPage = prototype.readPage;
prototype.readPage = function (this: unknown, ...args: unknown[]) {
  boundMs = 0;
  const started = performance.now();
  const result = readPage.apply(this, args) as PageLike;
  const ms = performance.now() - started;
  const [after, upTo, , , filter] = args as [number, number, number, number, unknown];
  const line = { after, upTo, end: result?.end, rows: result?.events?.length, ms: round(ms), boundMs: round(boundMs), filtered: filter !== undefined };
  process.stderr.write(`bench-step ${JSON.stringify(line)}\n`);
  return result;
};
