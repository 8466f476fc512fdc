import type { EncodedEvent } from './encoded-event.js';

/** A page of events read from the store for catching clients up: the events after `after`, and where it ends. */
export interface CatchUpPage {
  readonly events: readonly EncodedEvent[];
  /** The cursor after this page: the last event's id, or further when no event lies between it and the ring. */
  readonly end: number;
  readonly bytes: number;
}

/**
 * Recently read catch-up pages, keyed by the view and the cursor they start after, bounded by bytes.
 * Clients that fell behind during one burst stop at the same batch boundaries, so they ask for the same pages:
 * each page is read and serialized once for all of them instead of once per client.
 */
export class CatchUpCache {
  private readonly pages = new Map<string, CatchUpPage>();
  private byteCount = 0;

  constructor(private readonly maxBytes: number) {}

  get(after: string): CatchUpPage | undefined {
    const page = this.pages.get(after);
    if (page) {
      // Move to the back: the map's order is the eviction order.
      this.pages.delete(after);
      this.pages.set(after, page);
    }
    return page;
  }

  set(after: string, page: CatchUpPage): void {
    if (page.bytes > this.maxBytes) return;
    this.delete(after);
    this.pages.set(after, page);
    this.byteCount += page.bytes;
    for (const [key, oldest] of this.pages) {
      if (this.byteCount <= this.maxBytes) break;
      this.pages.delete(key);
      this.byteCount -= oldest.bytes;
    }
  }

  /** Forget every page (the database was replaced). */
  clear(): void {
    this.pages.clear();
    this.byteCount = 0;
  }

  get bytes(): number {
    return this.byteCount;
  }

  private delete(after: string): void {
    const page = this.pages.get(after);
    if (!page) return;
    this.pages.delete(after);
    this.byteCount -= page.bytes;
  }
}
