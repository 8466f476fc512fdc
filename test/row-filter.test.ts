import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCodes, SseError } from '../src/errors.js';
import { checkRowFilterTargets, parseRowFilters, rowFilterFor, type RowFilterResult } from '../src/access/row-filter.js';

/** The filter as `column=value` strings, as they would appear in a query string before encoding. */
function filterOf(flags: string[], table: string, claims: Record<string, unknown>): string[] | string {
  const result = rowFilterFor(parseRowFilters(flags), table, claims);
  return result.ok ? [...result.params].map(([column, value]) => `${column}=${value}`) : `missing ${result.missingClaim}`;
}

function parseError(flag: string): string {
  try {
    parseRowFilters(['user_id=eq.{sub}', flag]);
  } catch (error) {
    assert.instance(error, SseError);
    assert.is((error as SseError).code, ErrorCodes.BAD_OPTION);
    const { message } = error as SseError;
    assert.not.match(message, /[\r\n]/, 'one line');
    return message;
  }
  assert.unreachable(`no error for ${flag}`);
  return '';
}

/** PostgREST's reading of an `in.(...)` list: commas split, double quotes group, a backslash escapes the next character. */
function readList(value: string): string[] {
  assert.ok(value.startsWith('in.(') && value.endsWith(')'), value);
  const body = value.slice(4, -1);
  if (body === '') return [];
  const items: string[] = [];
  let item = '';
  let quoted = false;
  for (let i = 0; i < body.length; i++) {
    const char = body[i] as string;
    if (quoted && char === '\\') item += body[++i];
    else if (char === '"') quoted = !quoted;
    else if (char === ',' && !quoted) {
      items.push(item);
      item = '';
    } else item += char;
  }
  items.push(item);
  return items;
}

test('parses scoped and unscoped templates, claims and literals', () => {
  const templates = parseRowFilters(['user_id=eq.{sub}', 'notes.team=in.{teams}', 'org_id=eq.{org.id}', 'deleted=is.false', 'level=in.(1,2)']);
  assert.equal(templates.map((t) => [t.table, t.column, t.operator, t.value]), [
    [undefined, 'user_id', 'eq', { claim: 'sub' }],
    ['notes', 'team', 'in', { claim: 'teams' }],
    [undefined, 'org_id', 'eq', { claim: 'org.id' }],
    [undefined, 'deleted', 'is', { literal: 'false' }],
    [undefined, 'level', 'in', { literal: '(1,2)' }],
  ]);
  assert.is(templates[1]?.source, 'notes.team=in.{teams}');
  assert.equal(parseRowFilters([]), []);
});

test('a bad template stops the start with one line that quotes it', () => {
  assert.is(parseError('user_id'), "--row-filter 'user_id': expected [table.]column=operator.value, e.g. user_id=eq.{sub}");
  assert.match(parseError('user_id=42'), /expected \[table\.\]column=operator\.value/);
  assert.match(parseError('=eq.{sub}'), /expected/);
  assert.match(parseError('a.b.c=eq.1'), /expected/);
  assert.match(parseError('user id=eq.1'), /expected/);
  assert.is(parseError('user_id=like.{sub}'), "--row-filter 'user_id=like.{sub}': unknown operator like (use eq, neq, gt, gte, lt, lte, in, is)");
  assert.match(parseError('user_id=eq.user-{sub}'), /a \{claim\} must be the whole value/);
  assert.match(parseError('user_id=eq.{sub'), /a \{claim\} must be the whole value/);
  assert.match(parseError('team=in.({teams})'), /a \{claim\} must be the whole value/);
  assert.match(parseError('user_id=eq.{}'), /\{\} is not a claim name/);
  assert.match(parseError('user_id=eq.{org..id}'), /\{org\.\.id\} is not a claim name/);
  assert.match(parseError('user_id=eq.{.id}'), /is not a claim name/);
  assert.match(parseError('deleted=is.{flag}'), /is takes null, true or false, not a claim/);
  assert.match(parseError('deleted=is.maybe'), /is takes null, true or false/);
  assert.match(parseError('team=in.a,b'), /in takes a list, in\.\(a,b\), or a claim, in\.\{teams\}/);
  assert.is(parseError('select=eq.{sub}'), "--row-filter 'select=eq.{sub}': select is a reserved query parameter, not a column this filter could use");
  assert.match(parseError('notes.token=eq.{sub}'), /token is a reserved query parameter/);
  assert.is(parseError('user_id=eq.{sub}\nx'), "--row-filter 'user_id=eq.{sub}\\nx': contains a control character");
});

test('a scalar claim fills eq (and the other comparisons) whole', () => {
  assert.equal(filterOf(['user_id=eq.{sub}'], 'notes', { sub: 42 }), ['user_id=eq.42']);
  assert.equal(filterOf(['user_id=eq.{sub}'], 'notes', { sub: 'auth0|a,b"(c)' }), ['user_id=eq.auth0|a,b"(c)']);
  assert.equal(filterOf(['level=lte.{level}', 'since=gt.{iat}'], 'notes', { level: 2.5, iat: 1700000000 }), ['level=lte.2.5', 'since=gt.1700000000']);
  assert.equal(filterOf(['admin=eq.{admin}', 'guest=neq.{guest}'], 'notes', { admin: true, guest: false }), ['admin=eq.1', 'guest=neq.0'], 'booleans as SQLite stores them');
  assert.equal(filterOf(['user_id=eq.{sub}'], 'notes', { sub: '' }), ['user_id=eq.']);
});

test('an array claim fills an in list, every item quoted and escaped so PostgREST reads back exactly the claim', () => {
  assert.equal(filterOf(['team=in.{teams}'], 'notes', { teams: ['a', 'b,c'] }), ['team=in.("a","b,c")']);
  const tricky = ['plain', 'com,ma', 'pa(re)n', 'quo"te', 'back\\slash', '\\"', '"', '\\', '', ' spaced ', 'ünï☃', 'in.(x)'];
  const result = rowFilterFor(parseRowFilters(['team=in.{teams}']), 'notes', { teams: tricky });
  assert.ok(result.ok);
  if (result.ok) assert.equal(readList(result.params.get('team') as string), tricky);
  assert.equal(filterOf(['team=in.{teams}'], 'notes', { teams: [1, 2, true] }), ['team=in.("1","2","1")']);
  assert.equal(filterOf(['team=in.{team}'], 'notes', { team: 'solo' }), ['team=in.("solo")'], 'a scalar is a list of one');
  assert.equal(filterOf(['team=in.{teams}'], 'notes', { teams: [] }), ['team=in.()'], 'no team: a list that matches nothing');
});

test('nested claims, and namespaced claims whose names hold dots', () => {
  assert.equal(filterOf(['org_id=eq.{org.id}'], 'notes', { org: { id: 7 } }), ['org_id=eq.7']);
  assert.equal(filterOf(['role=in.{realm_access.roles}'], 'notes', { realm_access: { roles: ['admin', 'user'] } }), ['role=in.("admin","user")']);
  const namespaced = { 'https://app.example/teams': ['red'], https: { 'app.example/teams': ['wrong'] } };
  assert.equal(filterOf(['team=in.{https://app.example/teams}'], 'notes', namespaced), ['team=in.("red")'], 'the exact name first');
  assert.equal(filterOf(['x=eq.{a.b.c}'], 'notes', { a: { 'b.c': 'yes' } }), ['x=eq.yes']);
  assert.equal(filterOf(['x=eq.{a.b.c}'], 'notes', { 'a.b': { c: 'yes' } }), ['x=eq.yes']);
  assert.equal(filterOf(['x=eq.{a.b.c}'], 'notes', { a: { b: {} }, 'a.b': { c: 'second' } }), ['x=eq.second'], 'a dead end is backtracked');
});

test('a claim that is absent, null, an object, or a list where one value is expected is reported, never skipped', () => {
  const flags = ['user_id=eq.{sub}', 'team=in.{teams}'];
  const claims = { sub: 'u1', teams: ['a'] };
  assert.equal(filterOf(flags, 'notes', claims), ['user_id=eq.u1', 'team=in.("a")']);
  assert.is(filterOf(flags, 'notes', { teams: ['a'] }), 'missing sub');
  assert.is(filterOf(flags, 'notes', { sub: null, teams: ['a'] }), 'missing sub');
  assert.is(filterOf(flags, 'notes', { sub: { id: 1 }, teams: ['a'] }), 'missing sub');
  assert.is(filterOf(flags, 'notes', { sub: ['u1', 'u2'], teams: ['a'] }), 'missing sub', 'a list in eq would be ambiguous');
  assert.is(filterOf(flags, 'notes', { sub: 'u1', teams: ['a', { b: 1 }] }), 'missing teams');
  assert.is(filterOf(flags, 'notes', { sub: 'u1', teams: ['a', null] }), 'missing teams');
  assert.is(filterOf(flags, 'notes', { sub: 'u1', teams: [['a']] }), 'missing teams');
  assert.is(filterOf(flags, 'notes', { sub: 'u1', teams: { a: 1 } }), 'missing teams');
  assert.is(filterOf(['x=eq.{org.id}'], 'notes', { org: 'acme' }), 'missing org.id');
  assert.is(filterOf(['x=eq.{constructor}'], 'notes', {}), 'missing constructor', 'only the token\'s own claims');
  assert.is(filterOf(['x=eq.{toString}'], 'notes', { sub: 'u1' }), 'missing toString');
  assert.is(filterOf(['x=eq.{__proto__}'], 'notes', JSON.parse('{"sub":"u1"}')), 'missing __proto__');
});

test('a TABLE. template applies to its table only; an unscoped one to every table; all of them are kept, in order', () => {
  const flags = ['user_id=eq.{sub}', 'notes.team=in.{teams}', 'tasks.team=eq.{main_team}', 'notes.user_id=neq.0'];
  const claims = { sub: 'u1', teams: ['a'], main_team: 'a' };
  assert.equal(filterOf(flags, 'notes', claims), ['user_id=eq.u1', 'team=in.("a")', 'user_id=neq.0']);
  assert.equal(filterOf(flags, 'tasks', claims), ['user_id=eq.u1', 'team=eq.a']);
  assert.equal(filterOf(flags, 'messages', claims), ['user_id=eq.u1']);
  assert.equal(filterOf(flags, 'messages', { sub: 'u1' }), ['user_id=eq.u1'], 'another table\'s claim is not needed');
  assert.equal(filterOf([], 'notes', {}), [], 'no template: no filter');
});

test('a TABLE. scope matches the table whatever its case, as SQLite does, so the rule is never dropped', () => {
  assert.equal(filterOf(['Notes.team=eq.{team}'], 'notes', { team: 'a' }), ['team=eq.a']);
  assert.equal(filterOf(['notes.team=eq.{team}'], 'NOTES', { team: 'a' }), ['team=eq.a']);
});

test('checked against the served tables at start: an unknown table or column stops the server with one line', () => {
  const tables = { notes: ['id', 'user_id', 'team'], tasks: ['id', 'user_id'] };
  const check = (flags: string[]) => {
    try {
      checkRowFilterTargets(parseRowFilters(flags), tables);
      return 'ok';
    } catch (error) {
      assert.instance(error, SseError);
      assert.is((error as SseError).code, ErrorCodes.BAD_OPTION);
      return (error as SseError).message;
    }
  };
  assert.is(check(['user_id=eq.{sub}', 'notes.team=in.{teams}', 'TASKS.user_id=neq.0']), 'ok');
  assert.is(check(['note.team=in.{teams}']), "--row-filter 'note.team=in.{teams}': no table note is served (tables: notes, tasks)");
  assert.is(check(['notes.teams=in.{teams}']), "--row-filter 'notes.teams=in.{teams}': table notes has no column teams (columns: id, user_id, team)");
  assert.is(check(['team=in.{teams}']), "--row-filter 'team=in.{teams}': table tasks has no column team (columns: id, user_id), or scope it to a table: TABLE.team=...");
  assert.is(check(['User_id=eq.{sub}']), "--row-filter 'User_id=eq.{sub}': table notes has no column User_id (columns: id, user_id, team), or scope it to a table: TABLE.User_id=...");
});

test('literals pass through as a client would write them', () => {
  assert.equal(filterOf(['deleted=is.null', 'level=in.(1,"2,3")', 'status=neq.archived'], 'notes', {}), ['deleted=is.null', 'level=in.(1,"2,3")', 'status=neq.archived']);
});

test('the result is a fresh URLSearchParams each time, so a caller can append the client\'s own filter to it', () => {
  const templates = parseRowFilters(['user_id=eq.{sub}']);
  const first = rowFilterFor(templates, 'notes', { sub: 'u1' }) as Extract<RowFilterResult, { ok: true }>;
  first.params.append('user_id', 'eq.someone-else');
  const second = rowFilterFor(templates, 'notes', { sub: 'u1' }) as Extract<RowFilterResult, { ok: true }>;
  assert.equal(second.params.getAll('user_id'), ['eq.u1']);
  assert.equal(first.params.getAll('user_id'), ['eq.u1', 'eq.someone-else'], 'both kept: ANDed by the filter parser');
});

test.run();
