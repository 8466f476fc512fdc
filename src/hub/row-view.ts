import { EncodedEvent } from './encoded-event.js';
import { compilePredicate, compileSql, eqIndexKeys, filterKey, project, rowIndexKey, type Filter } from '../filter/filter.js';
import { EVERY_TERM, type StoreFilter, type View, type ViewIndex } from './view.js';

/**
 * A client's view of a table's insert stream: the rows its filter (its own, ANDed with the access rule) accepts, with
 * the columns it selected. The same filter decides live rows, rows replayed from memory, and, compiled to SQL with
 * bound parameters, rows read from the table on catch-up (src/filter/filter-match.ts decides as SQLite does).
 */
export class RowView implements View {
  readonly key: string;
  readonly index?: ViewIndex;
  readonly storeFilter?: StoreFilter;
  private readonly accepts: (row: Record<string, unknown>) => boolean;
  private readonly select: readonly string[] | undefined;
  private readonly eventName: string | undefined;

  constructor(table: string, filter: Filter, eventName: string | undefined) {
    this.key = filterKey(filter);
    this.accepts = compilePredicate(filter);
    this.select = filter.select;
    this.eventName = eventName;
    if (filter.conditions.length > 0) this.storeFilter = compileSql(filter);
    this.index = equalityIndex(table, filter, (event) => [event.value]);
  }

  apply(event: EncodedEvent): EncodedEvent | undefined {
    if (!this.accepts(event.value)) return undefined;
    return this.select ? EncodedEvent.row(event.id, project(event.value, this.select), this.eventName) : event;
  }
}

/**
 * The index of a filter's most selective equality (`eq`, or the `in` with the fewest values), so the hub offers an
 * event only to the groups whose value it carries. `rowsOf` gives the rows of an event whose values count (a change
 * counts its new and its old row: a row that moves out must reach the groups it leaves).
 */
export function equalityIndex(
  table: string,
  filter: Filter,
  rowsOf: (event: EncodedEvent) => readonly (Readonly<Record<string, unknown>> | undefined)[],
): ViewIndex | undefined {
  const entries = eqIndexKeys(filter);
  if (entries.length === 0) return undefined;
  const entry = entries.reduce((best, next) => (next.keys.length < best.keys.length ? next : best));
  const affinity = filter.conditions.find((condition) => condition.column === entry.column)!.affinity;
  const column = entry.column;
  return {
    field: `${table.toLowerCase()}\u0000${column}`,
    terms: entry.keys,
    termsOf(event) {
      const terms: string[] = [];
      for (const row of rowsOf(event)) {
        if (row === undefined) continue;
        // No safe key for this value (see rowIndexKey): every group on this column is asked.
        terms.push(rowIndexKey(column, row[column], affinity) ?? EVERY_TERM);
      }
      return terms;
    },
  };
}
