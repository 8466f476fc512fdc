import type { EncodedEvent } from './encoded-event.js';

/**
 * What one client sees of a stream: which events, in what form. Clients whose views have the same `key` form one
 * group in the hub, and each batch is transformed and encoded once per group, not once per client.
 */
export interface View {
  /** Equal for views that send the same events in the same form. */
  readonly key: string;
  /** The event as this view sends it (the same object when unchanged), or undefined when it does not send it. */
  apply(event: EncodedEvent): EncodedEvent | undefined;
  /**
   * An equality the events must meet to pass (from `eq` and `in` filters): the hub indexes groups by these terms, so
   * a batch reaches only the groups it concerns. Absent: the view is asked about every event.
   */
  readonly index?: ViewIndex;
  /** A condition the store can apply itself while catching a client up (the hub applies `apply` to what it returns). */
  readonly storeFilter?: StoreFilter;
}

export interface ViewIndex {
  /** Names what `termsOf` reads, e.g. a table and a column; views with the same field share one index. */
  readonly field: string;
  /** The terms an event must carry one of. */
  readonly terms: readonly string[];
  /**
   * The terms an event carries for `field` (a change carries its new and its old value); EVERY_TERM when no term can
   * be trusted for this event, so every group indexed on the field is asked.
   */
  termsOf(event: EncodedEvent): readonly string[];
}

/** A term that stands for all: the event is offered to every group indexed on the field. */
export const EVERY_TERM = '\u0000*';

/** A SQL condition with bound parameters, for stores that speak SQL. */
export interface StoreFilter {
  readonly where: string;
  readonly params: readonly unknown[];
}

/** The view of a client without filters or column selection: every event as it was encoded. */
export const EVERY_EVENT: View = Object.freeze({ key: '', apply: (event: EncodedEvent) => event });
