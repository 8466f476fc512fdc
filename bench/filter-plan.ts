/**
 * Filtered fan-out in the bench (issue 11): which rows belong to which user, which filter each client asks for, and
 * which rows each client must therefore get. Everything here is arithmetic on ids, shared by the writer (which gives
 * each row its user) and the clients (which check what they receive), so neither has to tell the other anything.
 *
 * - Rows: the writer gives row `id` the user `(id - 1) mod users` (round robin from the first row; ids have no gaps,
 *   the writer is the only one).
 * - `none`: no filter, every client gets every row (the table still has the `user_id` column, so rows are the same
 *   size in every run).
 * - `own`: client i asks for `user_id=eq.(i mod users)`; with users = clients (the default) every row goes to exactly
 *   one client.
 * - `same`: every client asks for `user_id=eq.0`. With the default users = 1 every row is user 0's, so every client
 *   gets every row: the same deliveries as `none`, and the difference between the two runs is the filter's cost
 *   alone. With `--users N` they get one row in N.
 */

export const FILTER_KINDS = ['none', 'own', 'same'] as const;
export type FilterKind = (typeof FILTER_KINDS)[number];

/** The filter of one streaming run: its kind and how many users the rows are spread over. */
export interface FilterPlan {
  kind: FilterKind;
  users: number;
}

export const NO_FILTER: FilterPlan = { kind: 'none', users: 1 };

/** The rows a filtered client must get: those whose id gives `user` among `users`. */
export interface RowMatch {
  user: number;
  users: number;
}

/** The user of row `id`. */
export function userOfRow(id: number, users: number): number {
  return (((id - 1) % users) + users) % users;
}

/**
 * `--users` for a run of `clients` clients: the flag when given (0: not given), else the kind's default: `own` one
 * user per client, `same` one user (every row matches), `none` one user per client (as `own`, so both tables hold
 * the same rows).
 */
export function usersFor(kind: FilterKind, clients: number, flag: number): number {
  if (flag > 0) return flag;
  return kind === 'same' ? 1 : Math.max(1, clients);
}

/** The user client `index` filters on, or undefined for no filter. */
export function userOfClient(plan: FilterPlan, index: number): number | undefined {
  switch (plan.kind) {
    case 'none':
      return undefined;
    case 'own':
      return index % plan.users;
    case 'same':
      return 0;
  }
}

export function matchOf(plan: FilterPlan, index: number): RowMatch | undefined {
  const user = userOfClient(plan, index);
  return user === undefined ? undefined : { user, users: plan.users };
}

/** The query parameter of a user's filter (PostgREST syntax), to append to a stream path. */
export function filterQuery(user: number | undefined): string {
  return user === undefined ? '' : `&user_id=eq.${user}`;
}

/** The first id at or after `id` that `match` takes (every id without a match). */
export function nextMatching(id: number, match: RowMatch | undefined): number {
  if (!match) return id;
  const offset = (match.user - userOfRow(id, match.users) + match.users) % match.users;
  return id + offset;
}

/** How many ids from `from` to `to` (both included) `match` takes. */
export function matchingBetween(from: number, to: number, match: RowMatch | undefined): number {
  if (to < from) return 0;
  if (!match) return to - from + 1;
  const first = nextMatching(from, match);
  return first > to ? 0 : Math.floor((to - first) / match.users) + 1;
}

/** Rows `ids` firstId..lastId delivered to `clients` clients of `plan`: the sum over clients of the rows each takes. */
export function expectedDeliveries(plan: FilterPlan, clients: number, firstId: number, lastId: number): number {
  if (lastId < firstId || clients <= 0) return 0;
  if (plan.kind === 'none') return clients * (lastId - firstId + 1);
  if (plan.kind === 'same') return clients * matchingBetween(firstId, lastId, matchOf(plan, 0));
  // own: client i takes user i mod users; count clients per user once.
  let total = 0;
  const perUser = new Map<number, number>();
  for (let i = 0; i < clients; i++) {
    const user = i % plan.users;
    perUser.set(user, (perUser.get(user) ?? 0) + 1);
  }
  for (const [user, count] of perUser) total += count * matchingBetween(firstId, lastId, { user, users: plan.users });
  return total;
}

const USER_ID = '"user_id":';

/** The `user_id` of a row's JSON (found without parsing it), or undefined when it has none. */
export function userIdOf(json: string): number | undefined {
  const at = json.indexOf(USER_ID);
  if (at === -1) return undefined;
  const value = parseInt(json.slice(at + USER_ID.length, at + USER_ID.length + 24), 10);
  return Number.isFinite(value) ? value : undefined;
}

/** The same from a message's bytes (WebSocket frames). */
export function userIdOfBytes(message: Buffer): number | undefined {
  const at = message.indexOf(USER_ID);
  if (at === -1) return undefined;
  const value = parseInt(message.toString('latin1', at + USER_ID.length, at + USER_ID.length + 24), 10);
  return Number.isFinite(value) ? value : undefined;
}

/** A streaming run's filter as written in `--filter` (`own`, or `own@10000` for one client count only). */
export interface FilterSpec {
  kind: FilterKind;
  /** Run only at this client count (undefined: at every `--clients` count). */
  clients?: number;
}

/** The (clients, filter) pairs to run, by client count, then in the order the filters were given. */
export function filterRuns(clientCounts: readonly number[], specs: readonly FilterSpec[]): { clients: number; kind: FilterKind }[] {
  const runs: { clients: number; kind: FilterKind; order: number }[] = [];
  const seen = new Set<string>();
  specs.forEach((spec, order) => {
    for (const clients of spec.clients === undefined ? clientCounts : [spec.clients]) {
      const key = `${clients}|${spec.kind}`;
      if (seen.has(key)) continue;
      seen.add(key);
      runs.push({ clients, kind: spec.kind, order });
    }
  });
  runs.sort((a, b) => a.clients - b.clients || a.order - b.order);
  return runs.map(({ clients, kind }) => ({ clients, kind }));
}
