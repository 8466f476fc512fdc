/**
 * Loaded into the server under test with `node --import dist/bench/step-hook.js cli.js ...` by the filter-replay
 * bench: it wraps `TableSource.prototype.readPage` (one catch-up step: one read of the table) and prints one line per
 * step on stderr, `bench-step {"after":A,"upTo":U,"end":E,"rows":R,"ms":M,"filtered":true}`: the ids the step covered
 * (after, end], the rows it returned, and how long the synchronous read held the event loop. The server itself is
 * unchanged; ESM modules are shared, so the class the hook patches is the one the server uses.
 *
 * BENCH_TABLE_SOURCE: URL of the server's table-source.js (default: this checkout's dist/src/table-source.js).
 */
import { performance } from 'node:perf_hooks';

interface PageLike {
  events?: unknown[];
  end?: number;
}

const url = process.env.BENCH_TABLE_SOURCE ?? new URL('../src/table-source.js', import.meta.url).href;
const module = (await import(url)) as { TableSource: { prototype: { readPage: (...args: unknown[]) => unknown } } };
const prototype = module.TableSource.prototype;
const readPage = prototype.readPage;

prototype.readPage = function (this: unknown, ...args: unknown[]) {
  const started = performance.now();
  const result = readPage.apply(this, args) as PageLike;
  const ms = performance.now() - started;
  const [after, upTo, , , filter] = args as [number, number, number, number, unknown];
  const line = { after, upTo, end: result?.end, rows: result?.events?.length, ms: Math.round(ms * 1000) / 1000, filtered: filter !== undefined };
  process.stderr.write(`bench-step ${JSON.stringify(line)}\n`);
  return result;
};
