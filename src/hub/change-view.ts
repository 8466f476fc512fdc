import { changeToJson, type ChangeEvent } from '../source/change-log.js';
import { EncodedEvent } from './encoded-event.js';
import { compilePredicate, filterKey, project, type Filter } from '../filter/filter.js';
import { equalityIndex } from './row-view.js';
import type { View, ViewIndex } from './view.js';

/** What a client of the change stream sees of one table: every change, or those its filter (and access rule) accepts. */
export interface TableScope {
  table: string;
  /** Undefined: every change of the table, as encoded once for everybody. */
  filter?: Filter;
}

interface CompiledScope {
  accepts: (row: Record<string, unknown>) => boolean;
  select: readonly string[] | undefined;
}

/**
 * A client's view of the change stream: the changes of its tables, through its filter. A filter sees both rows of an
 * update, so a row that enters the filter arrives as `"move":"in"` with its new row (and no old one: the client was
 * not allowed to see it), and a row that leaves as `"move":"out"` with only its key (it may no longer see it). A
 * client that applies changes by `pk` holds exactly the rows of its tables that match its filter.
 */
export class ChangeView implements View {
  readonly key: string;
  readonly index?: ViewIndex;
  private readonly scopes = new Map<string, CompiledScope | undefined>();
  private readonly eventName: string | undefined;

  constructor(scopes: readonly TableScope[], eventName: string | undefined) {
    this.eventName = eventName;
    const keys: string[] = [];
    for (const { table, filter } of scopes) {
      const plain = !filter || (filter.conditions.length === 0 && !filter.select);
      this.scopes.set(table.toLowerCase(), plain ? undefined : { accepts: compilePredicate(filter), select: filter.select });
      keys.push(JSON.stringify([table.toLowerCase(), plain ? '' : filterKey(filter)]));
    }
    this.key = 'changes:' + keys.sort().join(',');
    const only = scopes.length === 1 ? scopes[0] : undefined;
    if (only?.filter) {
      const table = only.table.toLowerCase();
      this.index = equalityIndex(table, only.filter, (event) => {
        const change = event.value as unknown as ChangeEvent;
        return change.table.toLowerCase() === table ? [change.row, change.old] : [];
      });
    }
  }

  apply(event: EncodedEvent): EncodedEvent | undefined {
    const change = event.value as unknown as ChangeEvent;
    const table = change.table.toLowerCase();
    if (!this.scopes.has(table)) return undefined;
    const scope = this.scopes.get(table);
    if (!scope) return event;
    const { accepts, select } = scope;
    const isIn = change.row !== undefined && accepts(change.row);
    const wasIn = change.old !== undefined && accepts(change.old);
    const { op, pk } = change;
    switch (op) {
      case 'insert':
      case 'snapshot':
        if (!isIn) return undefined;
        return select ? this.encode(event, { op, table: change.table, pk, row: project(change.row!, select) }) : event;
      case 'delete':
        if (!wasIn) return undefined;
        return select ? this.encode(event, { op, table: change.table, pk, old: project(change.old!, select) }) : event;
      case 'update':
        if (isIn && wasIn) {
          return select ? this.encode(event, { op, table: change.table, pk, row: project(change.row!, select), old: project(change.old!, select) }) : event;
        }
        if (isIn) return this.encode(event, { op, move: 'in', table: change.table, pk, row: project(change.row!, select) });
        if (wasIn) return this.encode(event, { op, move: 'out', table: change.table, pk });
        return undefined;
    }
  }

  private encode(event: EncodedEvent, change: ChangeEvent): EncodedEvent {
    return new EncodedEvent(event.id, event.kind, change as unknown as Record<string, unknown>, changeToJson(change), this.eventName);
  }
}
