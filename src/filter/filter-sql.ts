import type { Condition, Filter } from './filter-parse.js';

/** A filter as SQL: `where` over quoted column names with `?` placeholders, `params` bound as TEXT, in order. */
export interface CompiledSql {
  where: string;
  params: string[];
}

/**
 * Compiles a filter to a WHERE condition (`1` when there is none). Values are always bound parameters, never
 * spliced into the SQL, and bound as TEXT, which is what `compilePredicate` assumes.
 */
export function compileSql(filter: Filter): CompiledSql {
  if (filter.conditions.length === 0) return { where: '1', params: [] };
  const params: string[] = [];
  const parts = filter.conditions.map((condition) => conditionSql(condition, params));
  return { where: parts.join(' AND '), params };
}

const COMPARISONS = { eq: '=', neq: '<>', gt: '>', gte: '>=', lt: '<', lte: '<=' } as const;

function conditionSql(condition: Condition, params: string[]): string {
  const column = quoteIdentifier(condition.column);
  const { op, values } = condition;
  if (op === 'is') {
    if (values[0] === 'null') return `${column} IS NULL`;
    // `x IS TRUE` would read a column named "true" instead of the keyword; CASE WHEN tests truth the same way.
    return values[0] === 'true' ? `(CASE WHEN ${column} THEN 1 ELSE 0 END)` : `(CASE WHEN ${column} THEN 0 WHEN ${column} IS NULL THEN 0 ELSE 1 END)`;
  }
  params.push(...values);
  if (op === 'in') return `${column} IN (${values.map(() => '?').join(', ')})`;
  return `${column} ${COMPARISONS[op]} ?`;
}

/** A column name as a SQL identifier: double quotes, inner quotes doubled. */
export const quoteIdentifier = (name: string): string => `"${name.replace(/"/g, '""')}"`;
