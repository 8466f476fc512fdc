/**
 * Per-client filters (PostgREST syntax), one definition compiled twice: to a predicate for live rows and to SQL for
 * catch-up, with SQLite's comparison rules in both. See docs/filters.md.
 */
export { affinityOf, type Affinity } from './sqlite-compare.js';
export { parseFilter, filterKey, RESERVED_PARAMETERS, MAX_FILTER_VALUES, type ColumnInfo, type Condition, type Filter, type Operator } from './filter-parse.js';
export { compilePredicate, eqIndexKeys, rowIndexKey, project, type EqIndexEntry, type Row } from './filter-match.js';
export { compileSql, quoteIdentifier, type CompiledSql } from './filter-sql.js';
