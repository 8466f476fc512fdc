import { performance } from 'node:perf_hooks';

/** What one read pass found, which decides when the next one runs. */
export type PassOutcome =
  /** A full page: read again on the next turn of the event loop. */
  | 'more'
  /** Rows, and the backlog is read: look again shortly, from the first settle delay. */
  | 'rows'
  /** No new row: look again a little later, until the settle delays run out. */
  | 'nothing'
  /** Another connection holds a lock: try again in 1, 2, 4 ... ms. */
  | 'busy'
  /** The database cannot be read now (missing, broken): wait for the next doorbell. */
  | 'wait';

/** After a doorbell, look again after these delays: a commit can become visible a little after its file event. */
const SETTLE_DELAYS_MS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];
/**
 * After a read that found rows, the commit that rang is visible: the looks that follow only guard against a second
 * commit whose event was folded into the first, so they start at 4 ms instead of 1 ms. At 100 commits/s this is one
 * empty read per commit instead of three (bench/RESULTS.md, strace: about 4 reads per commit, 1 with rows).
 */
const SETTLE_STEP_AFTER_ROWS = 2;
/** While another connection holds a lock, try again at most this long apart. */
const BUSY_RETRY_MAX_MS = 100;

/**
 * When to read: the watcher is a doorbell, this is the loop that answers it (DESIGN.md §3, rules 2-4).
 * Doorbells that ring before the read runs fold into it; a full page means one more read at once; after the
 * backlog, a few looks 1, 2, 4 ... 512 ms later close the visibility race and then it stops: no timer runs
 * while nothing is written. A lock is never waited on inside SQLite: the pass reports `busy` and runs again later.
 */
export class ReadLoop {
  private readonly pass: (firstAfterDoorbell: boolean) => PassOutcome;
  private readonly onSettled: () => void;
  private readonly runBound = () => this.run();
  private queued = false;
  private settleStep = 0;
  private firstAfterDoorbell = false;
  private settled = true;
  private busyStep = 0;
  private timer: NodeJS.Timeout | undefined;
  private rangAt = 0;
  private stopped = false;

  /**
   * @param pass reads once; told whether this is the first read since a doorbell
   * @param onSettled called when the loop goes quiet (the settle delays ran out, or the database must be waited for)
   */
  constructor(pass: (firstAfterDoorbell: boolean) => PassOutcome, onSettled: () => void) {
    this.pass = pass;
    this.onSettled = onSettled;
  }

  /** A file event: read soon. */
  ring(): void {
    if (this.stopped) return;
    if (this.rangAt === 0) this.rangAt = performance.now();
    this.settled = false;
    this.settleStep = 0;
    this.firstAfterDoorbell = true;
    clearTimeout(this.timer);
    if (!this.queued) {
      this.queued = true;
      setImmediate(this.runBound);
    }
  }

  /** No read is queued, settling or waiting out a lock. */
  get idle(): boolean {
    return this.settled && !this.queued && this.busyStep === 0;
  }

  /** Seconds from the doorbell to now, for the rows just read; undefined when no doorbell is pending. */
  takeLatency(): number | undefined {
    if (this.rangAt === 0) return undefined;
    const seconds = (performance.now() - this.rangAt) / 1000;
    this.rangAt = 0;
    return seconds;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private run(): void {
    this.queued = false;
    clearTimeout(this.timer);
    if (this.stopped) return;
    const first = this.firstAfterDoorbell;
    this.firstAfterDoorbell = false;
    const outcome = this.pass(first);
    if (outcome === 'busy') {
      // The retry is still the first read since the doorbell.
      this.firstAfterDoorbell ||= first;
      this.timer = setTimeout(this.runBound, Math.min(2 ** this.busyStep++, BUSY_RETRY_MAX_MS));
      return;
    }
    this.busyStep = 0;
    // A doorbell rang during the pass (the pass itself may ring it): its read is already queued.
    if (this.queued) return;
    if (outcome === 'more') {
      this.queued = true;
      setImmediate(this.runBound);
      return;
    }
    if (outcome === 'rows') this.settleStep = SETTLE_STEP_AFTER_ROWS;
    if (outcome !== 'wait' && this.settleStep < SETTLE_DELAYS_MS.length) {
      this.timer = setTimeout(this.runBound, SETTLE_DELAYS_MS[this.settleStep++]);
      return;
    }
    this.rangAt = 0;
    this.settled = true;
    this.onSettled();
  }
}
