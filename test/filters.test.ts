import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runTrack } from './helpers/change-log.js';
import { python, sqlite } from './helpers/database.js';
import { applyByPk, heldIds, idsAndData, selectIds, type ChangeMessage } from './helpers/filtered-streams.js';
import { LiveFixture } from './helpers/live-fixture.js';
import { httpGet, scrape } from './helpers/prom-text.js';
import type { ServerProcess } from './helpers/server-process.js';
import type { SseStream } from './helpers/sse-stream.js';
import { waitFor, withTimeout } from './helpers/wait.js';

const TODOS = 'CREATE TABLE todos(id INTEGER PRIMARY KEY, user_id INTEGER, status TEXT, title TEXT, body TEXT);';

test('GET /events and /ws with user_id=eq.42&status=in.(open,blocked)&select=id,title get only the matching rows, only id and title', async () => {
  await LiveFixture.run(async (fixture) => {
    sqlite(fixture.db, TODOS);
    await fixture.start(['--table', 'todos']);
    const query = 'user_id=eq.42&status=in.(open,blocked)&select=id,title';
    const sse = fixture.sse(`/events?${query}`);
    const ws = fixture.ws(`/ws?${query}`);
    const all = fixture.sse('/events');
    await sse.waitForResponse();
    await all.waitForResponse();
    await ws.waitForOpen();
    assert.is(sse.response!.statusCode, 200);
    await python(
      fixture.db,
      `
con = sqlite3.connect(db, timeout=30, isolation_level=None)
rows = []
for i in range(60):
    rows.append((i % 3 * 21, ["open", "blocked", "done", "Open"][i % 4], "title %d" % i, "body %d" % i))
for user, status, title, body in rows:
    con.execute("INSERT INTO todos(user_id, status, title, body) VALUES (?, ?, ?, ?)", (user, status, title, body))
con.close()
`,
    );
    await all.waitForRows(60);
    const expected = JSON.parse(sqlite(fixture.db, `.mode json\nSELECT id, title FROM todos WHERE user_id = '42' AND status IN ('open', 'blocked') ORDER BY id;`));
    assert.ok(expected.length > 5 && expected.length < 60, `a filter that selects some rows: ${expected.length}`);
    await sse.waitForRows(expected.length);
    await ws.waitForRows(expected.length);
    assert.equal(sse.rows(), expected, 'SSE: the matching rows, with id and title only');
    assert.equal(
      ws.rows().map((message) => message.row),
      expected,
      'WebSocket: the same rows and columns',
    );
    assert.equal(ws.ids(), expected.map((row: { id: number }) => row.id));
  });
});

test('a bad filter is refused with 400 and one line naming the parameter, on /events and before the /ws upgrade', async () => {
  await LiveFixture.run(async (fixture) => {
    sqlite(fixture.db, TODOS);
    await fixture.start(['--table', 'todos', '--metrics']);
    const cases: [string, string][] = [
      ['user_idd=eq.42', 'filter user_idd=eq.42: no column user_idd in todos (columns: id, user_id, status, title, body)'],
      ['user_id=foo.42', 'filter user_id=foo.42: unknown operator foo (use eq, neq, gt, gte, lt, lte, in, is; not. is not supported)'],
      ['status=in.open', 'filter status=in.open: an in list is written in.(a,b,...)'],
      ['status=in.(a,,b)', 'filter status=in.(a,,b): empty value in the in list (write "" for the empty string)'],
      ['status=in.(%22a)', 'filter status=in.("a): unterminated "quoted" value in the in list'],
      ['select=title,nope', 'select=title,nope: no column nope in todos (columns: id, user_id, status, title, body)'],
    ];
    for (const [query, message] of cases) {
      const answer = await httpGet(`${fixture.server.url}/events?${query}`);
      assert.is(answer.status, 400, `/events?${query}`);
      assert.is(answer.body.trim(), message, `/events?${query}`);
      assert.not.ok(answer.body.trim().includes('\n'), 'one line');
      const ws = fixture.ws(`/ws?${query}`);
      const refusal = await ws.waitForRefusal();
      assert.is(refusal.status, 400, `/ws?${query}`);
      assert.is(refusal.body.trim(), message, `/ws?${query}`);
      assert.not.ok(ws.opened, 'no upgrade');
    }
    const metrics = await scrape(fixture.server.url);
    for (const transport of ['sse', 'ws']) {
      assert.is(metrics.value('sqlite_sse_connections_refused_total', { transport, reason: 'bad-filter' }), cases.length, `${transport} refusals counted`);
    }
  });
});

/**
 * Mixed-type data, as SQLite lets it happen: a column's declared type changed after rows were written, so an INTEGER
 * column holds the text '42' and a TEXT column the integer 42, beside NULLs, REALs, BLOBs and integers beyond 2^53.
 * The writer (python3, a process of its own) flips the declared types with writable_schema, writes, and flips back.
 */
const ITEMS = 'CREATE TABLE items(id INTEGER PRIMARY KEY, n INTEGER, t TEXT, r REAL, b)';
const FLIPPED = 'CREATE TABLE items(id INTEGER PRIMARY KEY, n TEXT, t INTEGER, r TEXT, b)';

function writeMixedRows(db: string, changes: boolean): Promise<string> {
  return python(
    db,
    `
def declare(sql):
    c = sqlite3.connect(db, timeout=30, isolation_level=None)
    version = c.execute("PRAGMA schema_version").fetchone()[0]
    c.execute("PRAGMA writable_schema=ON")
    c.execute("BEGIN IMMEDIATE")
    c.execute("UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'items'", (sql,))
    c.execute("PRAGMA schema_version=%d" % (version + 1))
    c.execute("COMMIT")
    c.close()

def write(rows):
    c = sqlite3.connect(db, timeout=30, isolation_level=None)
    for n, t, r, b in rows:
        c.execute("INSERT INTO items(n, t, r, b) VALUES (?, ?, ?, ?)", (n, t, r, b))
    c.close()

def run(statements):
    c = sqlite3.connect(db, timeout=30, isolation_level=None)
    for statement in statements:
        c.execute(statement)
    c.close()

write([
    (42, 42, 42, 42), ('42', '42', '42', '42'), (None, None, None, None), (42.0, 42.0, 42.5, 42.0),
    ('42abc', 'abc', 'x', b'\\x00'), (9007199254740993, 9007199254740993, 9007199254740992.0, 9007199254740993),
    (9223372036854775807, '9', -1, 'abc'), (' 42', ' 42', 0, ''), (0, '10', 0.5, 1), (-3, 'B', 1e300, 2.5),
])
declare(${JSON.stringify(FLIPPED)})
write([
    ('42', 42, '42', 42), (42, '42', 1.5, 'x'), ('9007199254740993', '9007199254740993', '2.0', None),
    ('abc', 7, 'abc', None), (42.5, 42.5, None, None), ('0.5', 0, 'true', '1'),
])
if ${changes ? 'True' : 'False'}:
    run(["UPDATE items SET n = '42' WHERE id IN (3, 9)", "UPDATE items SET t = 42 WHERE id = 5", "DELETE FROM items WHERE id = 11"])
declare(${JSON.stringify(ITEMS)})
write([(41, '41', 41.0, 41), ('9007199254740992', 'é', None, b'42')])
if ${changes ? 'True' : 'False'}:
    run([
        "UPDATE items SET n = 42 WHERE id % 4 = 2", "UPDATE items SET t = 'zz' WHERE n = 42 AND id % 2 = 0",
        "DELETE FROM items WHERE id % 5 = 0", "UPDATE items SET r = 2, b = NULL WHERE id IN (1, 2, 17)",
        "UPDATE items SET n = NULL, t = NULL WHERE id = 4", "DELETE FROM items WHERE id = 16",
    ])
`,
  );
}

/** Filters, and the same condition written in SQL (a string literal compares as a bound TEXT parameter does). */
const FILTERS: [string, string][] = [
  ['n=eq.42', "n = '42'"],
  ['t=eq.42', "t = '42'"],
  ['n=gt.10', "n > '10'"],
  ['t=lt.5', "t < '5'"],
  ['r=gte.2', "r >= '2'"],
  ['b=eq.42', "b = '42'"],
  ['b=lt.0', "b < '0'"],
  ['n=in.(42,abc,9007199254740993)', "n IN ('42', 'abc', '9007199254740993')"],
  ['n=eq.9007199254740993', "n = '9007199254740993'"],
  ['n=lt.9007199254740993', "n < '9007199254740993'"],
  ['t=neq.42', "t <> '42'"],
  ['n=is.null', 'n IS NULL'],
  ['t=is.true', 't IS TRUE'],
  ['r=is.false', 'r IS FALSE'],
  ['n=gte.42&t=lte.42', "n >= '42' AND t <= '42'"],
  ['t=gt.4&select=n,b', "t > '4'"],
  // Numbers written another way: the index of eq/in groups must find the rows SQLite's comparison finds.
  ['n=eq.42.0', "n = '42.0'"],
  ['n=eq.%2B42', "n = '+42'"],
  ['n=eq.%2042%20', "n = ' 42 '"],
  ['r=eq.42', "r = '42'"],
  ['t=eq.42.0', "t = '42.0'"],
  ['n=in.(4.2e1,x)', "n IN ('4.2e1', 'x')"],
  ['r=in.(42,1.5)', "r IN ('42', '1.5')"],
  ['n=eq.9007199254740992', "n = '9007199254740992'"],
];

/** The columns of `row` that `filter`'s `select=` sends: the id and the listed ones, in table order; all without it. */
function columnsOf(row: Record<string, unknown> | undefined, filter: string): Record<string, unknown> | undefined {
  const select = new URLSearchParams(filter).get('select');
  if (!row || !select) return row;
  const wanted = new Set(['id', ...select.split(',')]);
  return Object.fromEntries(Object.entries(row).filter(([column]) => wanted.has(column)));
}

/** Clients that watch live (on `live`), and that replay from 0 from memory (`live`) and from the database (`cold`). */
async function liveAndReplays(fixture: LiveFixture, prefix: string, live: SseStream[], cold: ServerProcess, lastId: number) {
  const fromMemory = FILTERS.map(([filter]) => fixture.sse(`/events?${prefix}${filter}&lastEventId=0`));
  const fromDatabase = FILTERS.map(([filter]) => fixture.sse(`/events?${prefix}${filter}&lastEventId=0`, {}, cold));
  // A client without a filter marks the end: once it has the last id, every group was sent everything before it.
  const everything = [fixture.sse(`/events?lastEventId=0`), fixture.sse(`/events?lastEventId=0`, {}, cold)];
  for (const stream of everything) await waitFor(`the last id ${lastId}`, () => stream.ids().includes(lastId), 10000);
  return { fromMemory, fromDatabase, live };
}

test('insert stream, mixed-type data: live, replayed from memory and replayed from the database give the same rows, those SQLite selects', async () => {
  await LiveFixture.run(async (fixture) => {
    sqlite(fixture.db, `${ITEMS};`);
    await fixture.start(['--table', 'items']);
    const live = FILTERS.map(([filter]) => fixture.sse(`/events?${filter}`));
    const all = fixture.sse('/events');
    for (const stream of [...live, all]) await stream.waitForResponse();
    for (const stream of live) assert.is(stream.response!.statusCode, 200);
    await withTimeout(writeMixedRows(fixture.db, false), 30000, 'the writer');
    const lastId = Number(sqlite(fixture.db, 'SELECT max(id) FROM items;').trim());
    await waitFor(`the last id ${lastId} live`, () => all.ids().includes(lastId), 10000);
    // Replays from the database: a second server that keeps 2 rows in memory and reads 3 rows a page.
    const cold = await fixture.startAnother(['--table', 'items', '--history-rows', '2', '--page-rows', '3']);
    const { fromMemory, fromDatabase } = await liveAndReplays(fixture, '', live, cold, lastId);
    FILTERS.forEach(([filter, condition], i) => {
      const expected = selectIds(fixture.db, 'items', condition);
      assert.equal(live[i].ids(), expected, `${filter} live = SELECT id FROM items WHERE ${condition}`);
      const byId = new Map(all.rows().map((row) => [row.id, row]));
      assert.equal(live[i].rows(), live[i].rows().map((row) => columnsOf(byId.get(row.id), filter)), `${filter}: the rows as written, in the columns asked for`);
      assert.equal(idsAndData(fromMemory[i]), idsAndData(live[i]), `${filter}: replayed from memory = live`);
      assert.equal(idsAndData(fromDatabase[i]), idsAndData(live[i]), `${filter}: replayed from the database = live`);
    });
    assert.ok(
      FILTERS.every((_, i) => live[i].ids().length < all.ids().length),
      'each filter leaves some rows out',
    );
  });
});

test('change stream, mixed-type data: live, replayed from memory and from the database give the same changes, and applied by pk they hold what SQLite selects', async () => {
  await LiveFixture.run(async (fixture) => {
    sqlite(fixture.db, `${ITEMS};`);
    await runTrack('track', ['--db', fixture.db, '--table', 'items']);
    await fixture.start(['--changes']);
    const live = FILTERS.map(([filter]) => fixture.sse(`/events?table=items&${filter}`));
    const liveWs = FILTERS.map(([filter]) => fixture.ws(`/ws?table=items&${filter}`));
    const all = fixture.sse('/events');
    for (const stream of [...live, all]) await stream.waitForResponse();
    for (const stream of live) assert.is(stream.response!.statusCode, 200);
    for (const ws of liveWs) await ws.waitForOpen();
    await withTimeout(writeMixedRows(fixture.db, true), 30000, 'the writer');
    const lastSeq = Number(sqlite(fixture.db, 'SELECT max(seq) FROM _sse_changes;').trim());
    await waitFor(`the last seq ${lastSeq} live`, () => all.ids().includes(lastSeq), 10000);
    const cold = await fixture.startAnother(['--changes', '--history-rows', '2', '--page-rows', '3']);
    const { fromMemory, fromDatabase } = await liveAndReplays(fixture, 'table=items&', live, cold, lastSeq);
    // Snapshots of the table as it is now, through the same filters (read with SQL, not from the change log).
    const snapshots = FILTERS.map(([filter]) => fixture.sse(`/events?table=items&snapshot=1&${filter}`, {}, cold));
    for (const stream of snapshots) await waitFor('snapshot-end', () => stream.events.some((event) => event.event === 'snapshot-end'), 10000);
    const table = applyByPk(all.rows<ChangeMessage>());
    assert.equal(heldIds(table), selectIds(fixture.db, 'items', '1'), 'the unfiltered client holds the table');
    let moves = 0;
    FILTERS.forEach(([filter, condition], i) => {
      assert.equal(idsAndData(fromMemory[i]), idsAndData(live[i]), `${filter}: replayed from memory = live`);
      assert.equal(idsAndData(fromDatabase[i]), idsAndData(live[i]), `${filter}: replayed from the database = live`);
      assert.equal(
        liveWs[i].changes().map(({ id, change }) => ({ id: String(id), data: change })),
        idsAndData(live[i]).map(({ id, data }) => ({ id, data: JSON.parse(data) })),
        `${filter}: the same changes over /ws`,
      );
      const snapshot = applyByPk(snapshots[i].rows<ChangeMessage>());
      assert.equal(heldIds(snapshot), selectIds(fixture.db, 'items', condition), `${filter}: snapshot = SELECT id FROM items WHERE ${condition}`);
      for (const [pk, row] of snapshot) assert.equal(row, columnsOf(table.get(pk), filter), `${filter}: snapshot row ${pk} as the table holds it`);
      const events = live[i].rows<ChangeMessage>();
      moves += events.filter((event) => event.move).length;
      const held = applyByPk(events);
      assert.equal(heldIds(held), selectIds(fixture.db, 'items', condition), `${filter}: applied by pk = SELECT id FROM items WHERE ${condition}`);
      for (const [pk, row] of held) assert.equal(row, columnsOf(table.get(pk), filter), `${filter}: row ${pk} as the table holds it`);
    });
    assert.ok(moves > 0, 'some updates moved rows across filters');
  });
});

test('change stream: an update into the filter arrives as move in without old, out of it as move out with only pk', async () => {
  await LiveFixture.run(async (fixture) => {
    sqlite(fixture.db, `${TODOS}`);
    await runTrack('track', ['--db', fixture.db, '--table', 'todos']);
    await fixture.start(['--changes']);
    const mine = fixture.sse('/events?table=todos&user_id=eq.42');
    const titles = fixture.sse('/events?table=todos&user_id=eq.42&select=title');
    const all = fixture.sse('/events');
    for (const stream of [mine, titles, all]) await stream.waitForResponse();
    sqlite(
      fixture.db,
      `INSERT INTO todos(id, user_id, status, title) VALUES (1, 7, 'open', 'theirs');
       UPDATE todos SET user_id = 42 WHERE id = 1;
       UPDATE todos SET title = 'mine now' WHERE id = 1;
       UPDATE todos SET user_id = 8, title = 'gone' WHERE id = 1;
       UPDATE todos SET title = 'not seen' WHERE id = 1;
       DELETE FROM todos WHERE id = 1;
       INSERT INTO todos(id, user_id, status, title) VALUES (2, 42, 'open', 'kept');`,
    );
    await all.waitForRows(7);
    const row = (title: string, user = 42) => ({ id: 1, user_id: user, status: 'open', title, body: null });
    assert.equal(mine.rows(), [
      { op: 'update', move: 'in', table: 'todos', pk: { id: 1 }, row: row('theirs') },
      { op: 'update', table: 'todos', pk: { id: 1 }, row: row('mine now'), old: row('theirs') },
      { op: 'update', move: 'out', table: 'todos', pk: { id: 1 } },
      { op: 'insert', table: 'todos', pk: { id: 2 }, row: { id: 2, user_id: 42, status: 'open', title: 'kept', body: null } },
    ]);
    assert.equal(mine.ids(), [2, 3, 4, 7], 'each change keeps its sequence number as id');
    assert.equal(titles.rows(), [
      { op: 'update', move: 'in', table: 'todos', pk: { id: 1 }, row: { id: 1, title: 'theirs' } },
      { op: 'update', table: 'todos', pk: { id: 1 }, row: { id: 1, title: 'mine now' }, old: { id: 1, title: 'theirs' } },
      { op: 'update', move: 'out', table: 'todos', pk: { id: 1 } },
      { op: 'insert', table: 'todos', pk: { id: 2 }, row: { id: 2, title: 'kept' } },
    ]);
    assert.equal(heldIds(applyByPk(mine.rows<ChangeMessage>())), selectIds(fixture.db, 'todos', "user_id = '42'"));
  });
});

test.run();
