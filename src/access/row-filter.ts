import { ErrorCodes, SseError } from '../errors.js';

/** The filter operators a template may use: the ones a client may send (docs/filters.md). */
export type RowFilterOperator = 'eq' | 'neq' | 'gt' | 'gte' | 'lt' | 'lte' | 'in' | 'is';
const OPERATORS: readonly RowFilterOperator[] = ['eq', 'neq', 'gt', 'gte', 'lt', 'lte', 'in', 'is'];

/** Query parameters that are not column filters: a template on them would be skipped by the filter parser. */
const RESERVED = new Set(['lastEventId', 'token', 'table', 'select', 'snapshot']);

/**
 * One `--row-filter`: `[table.]column=operator.value`, where the value is a literal or one `{claim}` placeholder.
 * Without `table` it applies to every table served.
 */
export interface RowFilterTemplate {
  /** The flag's text, for messages. */
  readonly source: string;
  readonly table?: string;
  readonly column: string;
  readonly operator: RowFilterOperator;
  /** A fixed value (as a client would write it), or the claim whose value fills it (`org.id` for `{org.id}`). */
  readonly value: { readonly literal: string } | { readonly claim: string };
}

/** The templates' filter for one table and one token, or the claim it needed and could not use. */
export type RowFilterResult = { ok: true; params: URLSearchParams } | { ok: false; missingClaim: string };

const IDENTIFIER = '[A-Za-z_][A-Za-z0-9_]*';
const SHAPE = new RegExp(`^(?:(${IDENTIFIER})\\.)?(${IDENTIFIER})=([a-z]+)\\.(.*)$`, 's');
const PLACEHOLDER = /^\{([^{}]*)\}$/;

const badFilter = (flag: string, problem: string): SseError =>
  new SseError(ErrorCodes.BAD_OPTION, `--row-filter '${flag}': ${problem}`);

/**
 * Parses every `--row-filter` at start, so a typo stops the server instead of refusing every client.
 * Throws `SseError(BAD_OPTION)` with one line that quotes the flag.
 */
export function parseRowFilters(flags: readonly string[]): RowFilterTemplate[] {
  return flags.map(parseRowFilter);
}

function parseRowFilter(flag: string): RowFilterTemplate {
  // A control character would be a newline in an error line or a log: nothing legitimate has one.
  if (/[\u0000-\u001f\u007f]/.test(flag)) throw badFilter(JSON.stringify(flag).slice(1, -1), 'contains a control character');
  const match = SHAPE.exec(flag);
  if (!match) throw badFilter(flag, 'expected [table.]column=operator.value, e.g. user_id=eq.{sub}');
  const [, table, column, operatorText, valueText] = match as unknown as [string, string | undefined, string, string, string];
  if (RESERVED.has(column)) throw badFilter(flag, `${column} is a reserved query parameter, not a column this filter could use`);
  if (!(OPERATORS as readonly string[]).includes(operatorText)) {
    throw badFilter(flag, `unknown operator ${operatorText} (use ${OPERATORS.join(', ')})`);
  }
  const operator = operatorText as RowFilterOperator;
  const template = (value: RowFilterTemplate['value']): RowFilterTemplate =>
    Object.freeze(table === undefined ? { source: flag, column, operator, value } : { source: flag, table, column, operator, value });

  const placeholder = PLACEHOLDER.exec(valueText);
  if (placeholder) {
    const claim = placeholder[1] as string;
    if (claim === '' || claim.startsWith('.') || claim.endsWith('.') || claim.includes('..')) {
      throw badFilter(flag, `{${claim}} is not a claim name (e.g. {sub}, {org.id})`);
    }
    if (operator === 'is') throw badFilter(flag, 'is takes null, true or false, not a claim');
    return template({ claim });
  }
  if (/[{}]/.test(valueText)) throw badFilter(flag, 'a {claim} must be the whole value, e.g. eq.{sub} or in.{teams}');
  if (operator === 'is' && !['null', 'true', 'false'].includes(valueText)) throw badFilter(flag, 'is takes null, true or false');
  if (operator === 'in' && !/^\(.*\)$/s.test(valueText)) throw badFilter(flag, 'in takes a list, in.(a,b), or a claim, in.{teams}');
  return template({ literal: valueText });
}

/**
 * The filter the templates impose on `table` for a token's claims, as the query parameters a client would send
 * (`user_id=eq.42`, `team=in.("a","b,c")`), in template order; a column may repeat, and every parameter is ANDed with
 * the client's own. Unscoped templates apply to every table. A claim that is absent, null, an object, or an array
 * where one value is expected (anything but `in`) makes the whole filter fail: the caller refuses the client (403).
 */
export function rowFilterFor(templates: readonly RowFilterTemplate[], table: string, claims: Record<string, unknown>): RowFilterResult {
  const params = new URLSearchParams();
  for (const template of templates) {
    if (!appliesTo(template, table)) continue;
    const { value, operator, column } = template;
    if ('literal' in value) {
      params.append(column, `${operator}.${value.literal}`);
      continue;
    }
    const filled = fill(operator, claimAt(claims, value.claim));
    if (filled === undefined) return { ok: false, missingClaim: value.claim };
    params.append(column, `${operator}.${filled}`);
  }
  return { ok: true, params };
}

/** SQLite's table names ignore ASCII case, so `Notes.` scopes the table `notes`: matching exactly would drop the rule. */
const appliesTo = (template: RowFilterTemplate, table: string): boolean =>
  template.table === undefined || template.table.toLowerCase() === table.toLowerCase();

/**
 * Checks at start that every template names a served table and a column of each table it applies to, so a typo
 * stops the server instead of leaving a table unguarded (a wrong scope) or refusing every client (a wrong column).
 * `tables` maps each served table to its column names. Throws `SseError(BAD_OPTION)`, one line quoting the flag.
 */
export function checkRowFilterTargets(templates: readonly RowFilterTemplate[], tables: Readonly<Record<string, readonly string[]>>): void {
  const names = Object.keys(tables);
  for (const template of templates) {
    const targets = names.filter((table) => appliesTo(template, table));
    if (targets.length === 0) throw badFilter(template.source, `no table ${template.table} is served (tables: ${names.join(', ')})`);
    for (const table of targets) {
      const columns = tables[table] as readonly string[];
      if (columns.includes(template.column)) continue;
      const scope = template.table === undefined && names.length > 1 ? `, or scope it to a table: TABLE.${template.column}=...` : '';
      throw badFilter(template.source, `table ${table} has no column ${template.column} (columns: ${columns.join(', ')})${scope}`);
    }
  }
}

/** The parameter's value after `operator.`, or undefined when the claim cannot fill it. */
function fill(operator: RowFilterOperator, claim: unknown): string | undefined {
  if (operator !== 'in') return scalarText(claim);
  const items = Array.isArray(claim) ? claim : [claim];
  const texts = items.map(scalarText);
  if (texts.some((text) => text === undefined)) return undefined;
  // Every item quoted, so a comma, parenthesis or quote inside a claim stays inside its item (PostgREST's list rules).
  return `(${texts.map((text) => `"${(text as string).replace(/[\\"]/g, '\\$&')}"`).join(',')})`;
}

/** A claim as the text a client would write: taken whole. Booleans as SQLite stores them (1, 0). */
function scalarText(claim: unknown): string | undefined {
  if (typeof claim === 'string') return claim;
  if (typeof claim === 'number') return Number.isFinite(claim) ? String(claim) : undefined;
  if (typeof claim === 'boolean') return claim ? '1' : '0';
  return undefined;
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * The claim at `path`: a claim named exactly so first (namespaced claims such as `https://example.com/teams` hold
 * dots), else a walk into nested objects (`org.id`). Own properties only, so `{constructor}` finds nothing.
 */
function claimAt(claims: unknown, path: string): unknown {
  if (!isRecord(claims)) return undefined;
  if (Object.hasOwn(claims, path)) return claims[path];
  for (let dot = path.indexOf('.'); dot !== -1; dot = path.indexOf('.', dot + 1)) {
    const head = path.slice(0, dot);
    if (!Object.hasOwn(claims, head)) continue;
    const found = claimAt(claims[head], path.slice(dot + 1));
    if (found !== undefined) return found;
  }
  return undefined;
}
