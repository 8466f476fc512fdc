/**
 * Latency statistics. A load process records millions of latencies, so it keeps a histogram with buckets 1 % wide
 * (percentiles within 1 %), which is small enough to send to the orchestrator and merge.
 */

/** Nearest-rank percentile of values sorted ascending (`p` from 0 to 100). NaN for an empty list. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  if (p <= 0) return sorted[0];
  if (p >= 100) return sorted[sorted.length - 1];
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.max(0, rank - 1)];
}

/** Sorts a copy and returns p50, p99, max, mean and count. */
export function summarize(values: readonly number[]): { count: number; p50: number; p99: number; max: number; mean: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const mean = sorted.length ? sorted.reduce((sum, v) => sum + v, 0) / sorted.length : NaN;
  return { count: sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: percentile(sorted, 100), mean };
}

/** Relative width of a bucket: a percentile read from the histogram is within this fraction of the exact one. */
const GROWTH = 1.01;
const LOG_GROWTH = Math.log(GROWTH);
/** The smallest value told apart (ms); smaller values share bucket 0. */
const MIN_MS = 0.001;
/** Values up to about 10^6 s fit; larger ones go to the last bucket. */
const BUCKETS = 2500;

export interface HistogramData {
  counts: number[];
  count: number;
  min: number;
  max: number;
  sum: number;
  negative: number;
}

/** A log-bucketed histogram of milliseconds. Exact count, min, max and mean; percentiles within 1 %. */
export class Histogram {
  private readonly counts = new Uint32Array(BUCKETS);
  count = 0;
  min = Infinity;
  max = -Infinity;
  sum = 0;
  /** Values below zero (clock skew between processes): recorded as 0 and counted here. */
  negative = 0;

  record(ms: number): void {
    if (ms < 0) {
      this.negative++;
      ms = 0;
    }
    this.counts[bucketOf(ms)]++;
    this.count++;
    this.sum += ms;
    if (ms < this.min) this.min = ms;
    if (ms > this.max) this.max = ms;
  }

  /** The value at percentile `p` (0..100): the upper bound of its bucket, clamped to the exact min and max. */
  percentile(p: number): number {
    if (this.count === 0) return NaN;
    if (p >= 100) return this.max;
    if (p <= 0) return this.min;
    const rank = Math.ceil((p / 100) * this.count);
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i];
      if (seen >= rank) return Math.min(this.max, Math.max(this.min, upperBound(i)));
    }
    return this.max;
  }

  get mean(): number {
    return this.count ? this.sum / this.count : NaN;
  }

  merge(other: Histogram | HistogramData): void {
    const counts = other instanceof Histogram ? other.counts : other.counts;
    for (let i = 0; i < BUCKETS; i++) this.counts[i] += counts[i] ?? 0;
    this.count += other.count;
    this.sum += other.sum;
    this.negative += other.negative;
    if (other.count > 0) {
      this.min = Math.min(this.min, other.min);
      this.max = Math.max(this.max, other.max);
    }
  }

  /** A plain object for IPC (JSON); only the buckets in use are non-zero. */
  toJSON(): HistogramData {
    return { counts: Array.from(this.counts), count: this.count, min: this.min, max: this.max, sum: this.sum, negative: this.negative };
  }

  static from(data: HistogramData): Histogram {
    const histogram = new Histogram();
    histogram.merge(data);
    return histogram;
  }
}

function bucketOf(ms: number): number {
  if (ms <= MIN_MS) return 0;
  return Math.min(BUCKETS - 1, 1 + Math.floor(Math.log(ms / MIN_MS) / LOG_GROWTH));
}

function upperBound(bucket: number): number {
  return bucket === 0 ? MIN_MS : MIN_MS * GROWTH ** bucket;
}

/** Formats milliseconds for a table: 3 significant digits, switching to seconds past 10 s. */
export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return '–';
  if (ms >= 10000) return (ms / 1000).toFixed(1) + ' s';
  if (ms >= 100) return ms.toFixed(0) + ' ms';
  if (ms >= 10) return ms.toFixed(1) + ' ms';
  return ms.toFixed(2) + ' ms';
}
