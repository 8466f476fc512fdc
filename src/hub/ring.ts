/** What the ring holds: anything with an id and a size. */
export interface RingItem {
  readonly id: number;
  readonly bytes: number;
}

/**
 * The ring of recent rows, bounded by a count and by bytes.
 *
 * Invariant: it holds every row with `floor < id <= newest id pushed`, in id order.
 * A cursor at or after `floor` is served from memory; an older one must go to the database.
 */
export class Ring<T extends RingItem> {
  readonly maxRows: number;
  readonly maxBytes: number;
  private readonly items: (T | undefined)[];
  private head = 0;
  private count = 0;
  private byteCount = 0;
  private floorId: number;

  /** @param floor no row with an id at or below this is, or will be, in the ring. */
  constructor(maxRows: number, maxBytes: number, floor: number) {
    this.maxRows = maxRows;
    this.maxBytes = maxBytes;
    this.items = new Array(Math.max(maxRows, 1));
    this.floorId = floor;
  }

  get size(): number {
    return this.count;
  }

  get bytes(): number {
    return this.byteCount;
  }

  /** Every row with an id above this, up to the newest pushed, is in the ring. */
  get floor(): number {
    return this.floorId;
  }

  /** The oldest id held, or undefined when empty. */
  get oldestId(): number | undefined {
    return this.count === 0 ? undefined : this.items[this.head]!.id;
  }

  /** Append the next row (ids must grow), evicting the oldest past either bound. */
  push(item: T): void {
    if (this.maxRows === 0) {
      this.floorId = item.id;
      return;
    }
    if (this.count === this.maxRows) this.evictOldest();
    this.items[(this.head + this.count) % this.maxRows] = item;
    this.count++;
    this.byteCount += item.bytes;
    while (this.byteCount > this.maxBytes && this.count > 0) this.evictOldest();
  }

  /** Forget everything: from now on the ring holds rows after `floor`. */
  reset(floor: number): void {
    this.items.fill(undefined);
    this.head = 0;
    this.count = 0;
    this.byteCount = 0;
    this.floorId = floor;
  }

  /** Whether every row after `cursor` that has been pushed is still held. */
  covers(cursor: number): boolean {
    return cursor >= this.floorId;
  }

  /**
   * The rows with an id greater than `cursor`, oldest first, at most `maxRows` of them and,
   * past the first, no more than `maxBytes` in all.
   */
  after(cursor: number, maxRows = Infinity, maxBytes = Infinity): T[] {
    const out: T[] = [];
    let bytes = 0;
    for (let i = this.firstIndexAfter(cursor); i < this.count && out.length < maxRows; i++) {
      const item = this.items[(this.head + i) % this.maxRows]!;
      if (out.length > 0 && bytes + item.bytes > maxBytes) break;
      bytes += item.bytes;
      out.push(item);
    }
    return out;
  }

  /** The id before the newest `n` rows: a cursor from which a client gets exactly those rows. */
  cursorBeforeNewest(n: number, newestId: number): number {
    if (n <= 0 || this.count === 0) return newestId;
    if (n >= this.count) return this.floorId === -Infinity ? this.items[this.head]!.id - 1 : this.floorId;
    return this.items[(this.head + this.count - n - 1) % this.maxRows]!.id;
  }

  /** Binary search on the ordered ids: the first logical index whose id is greater than `cursor`. */
  private firstIndexAfter(cursor: number): number {
    let low = 0;
    let high = this.count;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.items[(this.head + mid) % this.maxRows]!.id <= cursor) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  private evictOldest(): void {
    const item = this.items[this.head]!;
    this.floorId = item.id;
    this.items[this.head] = undefined;
    this.byteCount -= item.bytes;
    this.head = (this.head + 1) % this.maxRows;
    this.count--;
  }
}
