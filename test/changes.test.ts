import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { changeToJson } from '../src/source/change-log.js';
import { readChanges, runTrack } from './helpers/change-log.js';
import { assertHolds, byKey, createTodosDatabase, json, lastSeq, pythonChanges, rawFrames, tableByKey, TableCopy, type ChangeData } from './helpers/change-stream.js';
import { healthz } from './helpers/chaos.js';
import { cleanUpEverything, removeDirectory } from './helpers/cleanup.js';
import { databaseFingerprint } from './helpers/fingerprint.js';
import { PausableSseSocket } from './helpers/integration.js';
import { scrape } from './helpers/prom-text.js';
import { python, sqlite, tempDirectory } from './helpers/database.js';
import { runCli, startServer, type ServerProcess } from './helpers/server-process.js';
import { freePort, range, SseStream } from './helpers/sse-stream.js';
import { sleep, waitFor, withTimeout } from './helpers/wait.js';
import { WsRecorder } from './helpers/ws-recorder.js';

/** What the writes of `writeEveryKind` log, in order: seq 1..8, as the issue writes each change. */
const EVERY_KIND = [
  { op: 'insert', table: 'todos', pk: { id: 1 }, row: { id: 1, title: 'milk', done: 0 } },
  { op: 'insert', table: 'todos', pk: { id: 2 }, row: { id: 2, title: 'eggs', done: 0 } },
  { op: 'update', table: 'todos', pk: { id: 1 }, row: { id: 1, title: 'milk', done: 1 }, old: { id: 1, title: 'milk', done: 0 } },
  { op: 'delete', table: 'todos', pk: { id: 2 }, old: { id: 2, title: 'eggs', done: 0 } },
  { op: 'insert', table: 'notes', pk: { rowid: 1 }, row: { body: 'hello' } },
  { op: 'update', table: 'notes', pk: { rowid: 1 }, row: { body: 'bye' }, old: { body: 'hello' } },
  { op: 'insert', table: 'todos', pk: { id: 3 }, row: { id: 3, title: 'from python', done: 0 } },
  { op: 'delete', table: 'notes', pk: { rowid: 1 }, old: { body: 'bye' } },
].map((change) => json(change));

/** Inserts, an update and a delete from the sqlite3 shell, then more of each from python3: 8 changes. */
async function writeEveryKind(path: string): Promise<void> {
  sqlite(
    path,
    `INSERT INTO todos(id, title) VALUES (1, 'milk'), (2, 'eggs');
     UPDATE todos SET done = 1 WHERE id = 1;
     DELETE FROM todos WHERE id = 2;
     INSERT INTO notes(body) VALUES ('hello');`,
  );
  await python(
    path,
    `
con = sqlite3.connect(db, timeout=30, isolation_level=None)
con.execute("UPDATE notes SET body = 'bye'")
con.execute("INSERT INTO todos(id, title) VALUES (3, 'from python')")
con.execute("DELETE FROM notes")
con.close()
`,
  );
}

/** The change stream's data as the log holds it (encoded as the server encodes a change), by seq. */
function loggedData(path: string): Map<number, string> {
  return new Map(readChanges(path).map(({ seq, ...change }) => [seq, changeToJson(change)]));
}

async function stopAll(server: ServerProcess | undefined, closers: { close?: () => void; terminate?: () => void }[], dir: string): Promise<void> {
  for (const closer of closers) (closer.close ?? closer.terminate)?.call(closer);
  await server?.stop('SIGKILL');
  removeDirectory(dir);
  // Whatever this test started and did not stop itself (a writer still running after a failure).
  cleanUpEverything();
}

test('track todos and notes, then --changes: inserts, updates and deletes from the sqlite3 shell and python3 arrive one event each, id = seq, whole rows, no event line; WebSocket sends {"type":"change","id":SEQ,"change":...}', async () => {
  const dir = tempDirectory();
  let server: ServerProcess | undefined;
  const closers: { close?: () => void; terminate?: () => void }[] = [];
  try {
    const path = createTodosDatabase(dir);
    const lines = await runTrack('track', ['--db', path, '--table', 'todos', '--table', 'notes']);
    assert.is(lines.length, 2, lines.join('\n'));
    server = await startServer(['--db', path, '--changes']);
    assert.match(server.output(), /changes of notes, todos/);
    const stream = new SseStream(`${server.url}/events`, {}, true);
    const ws = new WsRecorder(`ws://127.0.0.1:${server.port}/ws`);
    closers.push(stream, ws);
    await stream.waitForResponse();
    assert.is(stream.response!.statusCode, 200);
    await ws.waitForOpen();

    await writeEveryKind(path);
    await stream.waitForRows(8);
    await waitFor(`8 ws messages (have ${ws.raw.length})`, () => ws.raw.length >= 8, 10000);

    assert.equal(stream.ids(), range(1, 8), 'one event per changed row, id = the change sequence number');
    assert.equal(
      stream.events.map((event) => event.data),
      EVERY_KIND,
      'op, table, pk, row, old exactly: no row on a delete, no old on an insert, whole rows',
    );
    const frames = rawFrames(stream.raw);
    assert.equal(
      frames.map((frame) => frame.fields.join(',')),
      EVERY_KIND.map(() => 'id,data'),
      'each change is an id line and one data line: no event line without --event',
    );
    assert.equal(
      ws.raw,
      EVERY_KIND.map((data, i) => `{"type":"change","id":${i + 1},"change":${data}}`),
      'WebSocket: the same change objects',
    );
    assert.equal([...loggedData(path).values()], EVERY_KIND, 'the events are the log, row for row');
  } finally {
    await stopAll(server, closers, dir);
  }
});

test('a table altered since it was tracked: the server warns at start, naming the new column and the command that refreshes its triggers', async () => {
  const dir = tempDirectory();
  let server: ServerProcess | undefined;
  try {
    const path = createTodosDatabase(dir);
    await runTrack('track', ['--db', path, '--table', 'todos', '--table', 'notes']);
    sqlite(path, 'ALTER TABLE todos ADD COLUMN due TEXT;');
    server = await startServer(['--db', path, '--changes']);
    await waitFor('the warning', () => /warning: table todos has columns its change triggers do not log \(due\): run npx sqlite-sse track --db .* --table todos again/.test(server!.output()), 5000);
    assert.not.match(server.output(), /table notes has columns/, 'notes did not change');
    await server.stop();
    await runTrack('track', ['--db', path, '--table', 'todos']);
    server = await startServer(['--db', path, '--changes']);
    await sleep(300);
    assert.not.match(server.output(), /do not log/, 'after track again, no warning');
  } finally {
    await stopAll(server, [], dir);
  }
});

test('--changes --table todos narrows the stream to todos (ids keep their seq) and --event names the events', async () => {
  const dir = tempDirectory();
  let server: ServerProcess | undefined;
  const closers: { close?: () => void; terminate?: () => void }[] = [];
  try {
    const path = createTodosDatabase(dir);
    await runTrack('track', ['--db', path, '--table', 'todos', '--table', 'notes']);
    server = await startServer(['--db', path, '--changes', '--table', 'todos', '--event', 'change']);
    const stream = new SseStream(`${server.url}/events`, {}, true);
    const ws = new WsRecorder(`ws://127.0.0.1:${server.port}/ws`);
    closers.push(stream, ws);
    await stream.waitForResponse();
    await ws.waitForOpen();

    await writeEveryKind(path);
    const todos = [1, 2, 3, 4, 7];
    await waitFor('the todos changes', () => stream.events.length >= todos.length && ws.raw.length >= todos.length, 10000);
    // A later change proves nothing else was on its way: notes' changes are not sent.
    sqlite(path, `INSERT INTO notes(body) VALUES ('not sent'); UPDATE todos SET title = 'last' WHERE id = 3;`);
    await waitFor('the last todo change', () => stream.events.length >= todos.length + 1 && ws.raw.length >= todos.length + 1, 10000);

    const expected = [...todos.map((seq) => EVERY_KIND[seq - 1]), json({ op: 'update', table: 'todos', pk: { id: 3 }, row: { id: 3, title: 'last', done: 0 }, old: { id: 3, title: 'from python', done: 0 } })];
    assert.equal(stream.events.map((event) => event.event), expected.map(() => 'change'));
    assert.equal(stream.events.map((event) => Number(event.id)), [...todos, 10], "only todos' changes, each with its own seq");
    assert.equal(stream.events.map((event) => event.data), expected);
    assert.equal(rawFrames(stream.raw).map((frame) => frame.fields.join(',')), expected.map(() => 'id,event,data'));
    assert.equal(ws.messages.map((message) => message.id), [...todos, 10]);
  } finally {
    await stopAll(server, closers, dir);
  }
});

test('resume with Last-Event-ID and ?lastEventId=: every change after the cursor exactly once and in order, from the log and from memory, while a writer keeps writing', async () => {
  const dir = tempDirectory();
  let server: ServerProcess | undefined;
  const closers: { close?: () => void; terminate?: () => void }[] = [];
  try {
    const path = createTodosDatabase(dir);
    await runTrack('track', ['--db', path, '--table', 'todos', '--table', 'notes']);
    sqlite(
      path,
      `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
       INSERT INTO todos(id, title) SELECT i, 'todo-' || i FROM n;
       UPDATE todos SET done = 1 WHERE id % 2 = 0;`,
    );
    assert.is(lastSeq(path), 300);
    // 20 changes in memory, the log read 16 at a time: a cursor of 5 is served from the log in many pages.
    server = await startServer(['--db', path, '--changes', '--history-rows', '20', '--page-rows', '16']);
    const writer = pythonChanges(path, 400, 1);
    await waitFor('the writer under way', () => lastSeq(path) > 350, 20000);
    const fromLog = new SseStream(`${server.url}/events`, { 'Last-Event-ID': '5' });
    const memoryCursor = lastSeq(path) - 3;
    const fromMemory = new SseStream(`${server.url}/events?lastEventId=${memoryCursor}`);
    const wsFromLog = new WsRecorder(`ws://127.0.0.1:${server.port}/ws?lastEventId=5`);
    closers.push(fromLog, fromMemory, wsFromLog);
    await withTimeout(writer, 60000, 'writer');
    const last = lastSeq(path);
    assert.is(last, 700);
    await fromLog.waitForRows(last - 5, 20000);
    await fromMemory.waitForRows(last - memoryCursor, 20000);
    await waitFor(`ws changes (have ${wsFromLog.messages.length})`, () => wsFromLog.messages.length >= last - 5, 20000);

    const logged = loggedData(path);
    assert.equal(fromLog.ids(), range(6, last), 'Last-Event-ID 5: every later change once, in order');
    assert.equal(fromMemory.ids(), range(memoryCursor + 1, last), '?lastEventId=: every later change once, in order');
    assert.equal(wsFromLog.messages.map((message) => message.id), range(6, last), 'WebSocket ?lastEventId=5: the same');
    assert.equal(fromLog.events.map((event) => event.data), range(6, last).map((seq) => logged.get(seq)), 'the changes as logged');
    assert.equal(fromMemory.events.map((event) => event.data), range(memoryCursor + 1, last).map((seq) => logged.get(seq)));

    // A client that applies them by pk, from a snapshot taken at seq 5 (the table then), holds the tables now.
    const copy = new TableCopy();
    for (let id = 1; id <= 5; id++) copy.apply({ op: 'insert', table: 'todos', pk: { id }, row: { id, title: `todo-${id}`, done: 0 } } as ChangeData);
    copy.applyEvents(fromLog.events);
    assertHolds(copy, path, 'todos', ['id']);
    assertHolds(copy, path, 'notes', []);
  } finally {
    await stopAll(server, closers, dir);
  }
});

test('GET /events?table=todos&snapshot=1: the rows without id lines, snapshot-end with id S, then the changes after S; applied by pk they hold the table; reconnecting with Last-Event-ID continues with changes only', async () => {
  const dir = tempDirectory();
  let server: ServerProcess | undefined;
  const closers: { close?: () => void; terminate?: () => void }[] = [];
  try {
    const path = createTodosDatabase(dir);
    await runTrack('track', ['--db', path, '--table', 'todos', '--table', 'notes']);
    sqlite(
      path,
      `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50)
       INSERT INTO todos(id, title) SELECT i, 'todo-' || i FROM n;
       UPDATE todos SET done = 1 WHERE id % 5 = 0;
       DELETE FROM todos WHERE id % 7 = 0;
       INSERT INTO notes(body) VALUES ('a note');`,
    );
    const seq = lastSeq(path);
    const before = tableByKey(path, 'todos', ['id']);
    server = await startServer(['--db', path, '--changes', '--page-rows', '8']);
    const url = `${server.url}/events?table=todos&snapshot=1`;
    const stream = new SseStream(url, {}, true);
    closers.push(stream);
    await waitFor('snapshot-end', () => stream.events.some((event) => event.event === 'snapshot-end'), 10000);

    const end = stream.events.findIndex((event) => event.event === 'snapshot-end');
    assert.is(end, before.size, 'one snapshot event per row, then snapshot-end');
    assert.equal(
      stream.events.slice(0, end).map((event) => event.data),
      [...before.values()].map((row) => json({ op: 'snapshot', table: 'todos', pk: { id: row.id }, row })),
      'each row as {"op":"snapshot","table","pk","row"}, in key order',
    );
    assert.equal(stream.events[end], { id: String(seq), event: 'snapshot-end', data: json({ table: 'todos', rows: before.size, seq }) });
    const frames = rawFrames(stream.raw);
    assert.equal(frames.slice(0, end).map((frame) => frame.fields.join(',')), [...before.keys()].map(() => 'data'), 'snapshot rows have no id line and no event line');
    assert.equal(frames[end].fields.join(','), 'id,event,data');

    // Changes after S: of todos only (notes are not asked for).
    sqlite(
      path,
      `UPDATE todos SET title = 'edited' WHERE id = 3;
       DELETE FROM todos WHERE id = 4;
       INSERT INTO notes(body) VALUES ('not for this client');
       INSERT INTO todos(title) VALUES ('new');
       UPDATE todos SET id = 100 WHERE id = 1;`,
    );
    await python(path, `con = sqlite3.connect(db, isolation_level=None)\ncon.execute("UPDATE todos SET done = 1 WHERE id < 20")\ncon.close()`);
    const todosSeq = lastSeq(path, 'todos');
    await waitFor('the changes after the snapshot', () => Number(stream.events.at(-1)!.id) === todosSeq, 10000);
    const changes = stream.events.slice(end + 1);
    assert.ok(changes.every((event) => event.event === 'message' && Number(event.id) > seq), 'only changes after S');
    assert.ok(changes.every((event) => (JSON.parse(event.data) as ChangeData).table === 'todos'), 'only todos');
    assert.equal(changes.map((event) => Number(event.id)), [...loggedData(path).keys()].filter((id) => id > seq && readChanges(path)[id - 1].table === 'todos'));
    const copy = new TableCopy();
    copy.applyEvents(stream.events);
    assertHolds(copy, path, 'todos', ['id'], 'snapshot plus changes, applied by pk, is the table');
    assert.is(copy.lastId, todosSeq);
    stream.close();

    // The browser reconnects to the same URL with Last-Event-ID: changes only, no second snapshot.
    sqlite(path, `DELETE FROM todos WHERE id = 100; INSERT INTO todos(id, title) VALUES (200, 'while away');`);
    const again = new SseStream(url, { 'Last-Event-ID': String(copy.lastId) }, true);
    closers.push(again);
    sqlite(path, `UPDATE todos SET title = 'back' WHERE id = 200;`);
    const finalSeq = lastSeq(path, 'todos');
    await waitFor('the changes since the cursor', () => Number(again.events.at(-1)?.id) === finalSeq, 10000);
    assert.ok(again.events.every((event) => event.event === 'message' && (JSON.parse(event.data) as ChangeData).op !== 'snapshot'), 'no snapshot, no snapshot-end');
    assert.equal(again.ids(), range(copy.lastId + 1, finalSeq));
    copy.applyEvents(again.events);
    assertHolds(copy, path, 'todos', ['id']);
  } finally {
    await stopAll(server, closers, dir);
  }
});

test('snapshot while writers keep inserting, updating and deleting: every client that applies snapshot then changes by pk ends holding exactly the table', async () => {
  const dir = tempDirectory();
  let server: ServerProcess | undefined;
  const closers: { close?: () => void; terminate?: () => void }[] = [];
  try {
    const path = createTodosDatabase(dir);
    await runTrack('track', ['--db', path, '--table', 'todos', '--table', 'notes']);
    sqlite(
      path,
      `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
       INSERT INTO todos(id, title) SELECT i, 'todo-' || i FROM n;
       WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
       INSERT INTO notes(body) SELECT 'note-' || i FROM n;`,
    );
    // Small pages: each snapshot takes many short reads, between which the writers commit.
    server = await startServer(['--db', path, '--changes', '--page-rows', '25']);
    // Two writers in separate processes: random updates, deletes and key changes over the whole table, and inserts.
    const churn = python(
      path,
      `
import random
random.seed(7)
con = sqlite3.connect(db, timeout=30, isolation_level=None)
for i in range(1500):
    k = random.randrange(6)
    n = random.randrange(1, 3200)
    if k == 0: con.execute("DELETE FROM todos WHERE id = ?", (n,))
    elif k == 1: con.execute("UPDATE OR IGNORE todos SET id = ? WHERE id = ?", (n + 10000 + i, random.randrange(1, 3000)))
    elif k == 2: con.execute("UPDATE notes SET body = body || '~' WHERE rowid = ?", (random.randrange(1, 500),))
    elif k == 3: con.execute("DELETE FROM notes WHERE rowid = ?", (random.randrange(1, 500),))
    else: con.execute("UPDATE todos SET title = ?, done = 1 - done WHERE id BETWEEN ? AND ?", ("t%d" % i, n, n + 3))
    if i % 3 == 0: time.sleep(0.002)
con.close()
`,
    );
    const inserts = pythonChanges(path, 600, 3);
    const streams: SseStream[] = [];
    for (const query of ['table=todos&snapshot=1', 'snapshot=1', 'table=notes&snapshot=1']) {
      await waitFor('more changes', () => lastSeq(path) > 3500 + streams.length * 200, 20000);
      const stream = new SseStream(`${server.url}/events?${query}`);
      streams.push(stream);
      closers.push(stream);
    }
    await withTimeout(Promise.all([churn, inserts]), 90000, 'writers');
    const last = lastSeq(path);
    const [todosOnly, both, notesOnly] = streams;
    await waitFor('every client up to the last change', () => todosOnly.ids().at(-1) === lastSeq(path, 'todos') && both.ids().at(-1) === last && notesOnly.ids().at(-1) === lastSeq(path, 'notes'), 30000);

    const todos = tableByKey(path, 'todos', ['id']);
    const notes = tableByKey(path, 'notes', []);
    const clients: [string, SseStream, string[]][] = [['todos', todosOnly, ['todos']], ['both', both, ['notes', 'todos']], ['notes', notesOnly, ['notes']]];
    for (const [name, stream, tables] of clients) {
      const ends = stream.events.filter((event) => event.event === 'snapshot-end').map((event) => JSON.parse(event.data) as { table: string; seq: number });
      assert.equal(ends.map((end) => end.table).sort(), [...tables], `${name}: one snapshot-end per table`);
      assert.ok(ends[0].seq > 3500, `${name}: the snapshot was taken while the writers wrote`);
      const copy = new TableCopy();
      copy.applyEvents(stream.events);
      if (tables.includes('todos')) assert.equal(byKey(copy.table('todos')), byKey(todos), `${name}: todos by pk equals the table`);
      if (tables.includes('notes')) assert.equal(byKey(copy.table('notes')), byKey(notes), `${name}: notes by pk equals the table`);
      assert.equal([...copy.tables.keys()].sort(), [...tables]);
      const ids = stream.events.filter((event) => event.event === 'message' && (JSON.parse(event.data) as ChangeData).op !== 'snapshot').map((event) => Number(event.id));
      assert.ok(ids.every((id, i) => i === 0 || id > ids[i - 1]), `${name}: changes in order, none twice`);
    }
  } finally {
    await stopAll(server, closers, dir);
  }
});

/** Expects `events` to start with a history-gone reset for `cursor`, then a snapshot of `tables`; returns the snapshot's seq. */
function assertResetThenSnapshot(events: SseStream['events'], cursor: number, oldestSeq: number, tables: string[], label: string): number {
  assert.equal(events[0], { id: undefined, event: 'reset', data: json({ reason: 'history-gone', lastEventId: cursor, oldestSeq }) }, `${label}: the reset first`);
  const ends = events.filter((event) => event.event === 'snapshot-end');
  assert.equal(ends.map((event) => (JSON.parse(event.data) as { table: string }).table), tables, `${label}: a fresh snapshot of the subscribed tables`);
  const last = ends.at(-1)!;
  const seq = (JSON.parse(last.data) as { seq: number }).seq;
  assert.is(last.id, String(seq), `${label}: the last snapshot-end carries id S`);
  return seq;
}

test('history gone: track --keep 10, 100 changes, a cursor older than the log gets a history-gone reset, a fresh snapshot and the changes after it', async () => {
  const dir = tempDirectory();
  let server: ServerProcess | undefined;
  const closers: { close?: () => void; terminate?: () => void }[] = [];
  try {
    const path = createTodosDatabase(dir);
    await runTrack('track', ['--db', path, '--table', 'todos', '--table', 'notes', '--keep', '10']);
    // 100 changes, one statement each, as a writer would make them.
    sqlite(path, range(1, 100).map((i) => (i % 2 ? `INSERT INTO todos(title) VALUES ('t${i}');` : `INSERT INTO notes(body) VALUES ('n${i}');`)).join('\n'));
    assert.equal(readChanges(path).map((change) => change.seq), range(91, 100), 'the log keeps the newest 10');

    server = await startServer(['--db', path, '--changes']);
    const header = new SseStream(`${server.url}/events`, { 'Last-Event-ID': '5' });
    const query = new SseStream(`${server.url}/events?table=todos&lastEventId=0`);
    const ws = new WsRecorder(`ws://127.0.0.1:${server.port}/ws?lastEventId=5`);
    closers.push(header, query, ws);
    await waitFor('the snapshots', () => header.events.filter((event) => event.event === 'snapshot-end').length === 2 && query.events.some((event) => event.event === 'snapshot-end'), 10000);
    assert.is(assertResetThenSnapshot(header.events, 5, 91, ['notes', 'todos'], 'Last-Event-ID 5'), 100);
    assert.is(assertResetThenSnapshot(query.events, 0, 91, ['todos'], 'table=todos&lastEventId=0'), 100);
    await waitFor('ws reset and snapshot-end', () => ws.messages.some((message) => message.type === 'snapshot-end'), 10000);
    assert.is(ws.raw[0], json({ type: 'reset', reason: 'history-gone', lastEventId: 5, oldestSeq: 91 }), 'WebSocket: the same reset');

    // Fewer changes than --keep: the reader cannot fall behind the trimming (that case has its own test below).
    await pythonChanges(path, 8, 0);
    const last = lastSeq(path);
    await waitFor('the changes after the snapshot', () => Number(header.events.at(-1)!.id) === last && Number(query.events.at(-1)!.id) === lastSeq(path, 'todos'), 10000);
    const changes = header.events.slice(header.events.findIndex((event) => event.id === '100') + 1);
    assert.equal(changes.map((event) => Number(event.id)), range(101, last), 'every change after the snapshot, once, in order');
    for (const [stream, tables] of [[header, ['notes', 'todos']], [query, ['todos']]] as const) {
      const copy = new TableCopy();
      copy.applyEvents(stream.events);
      for (const table of tables) assert.equal(byKey(copy.table(table)), byKey(tableByKey(path, table, table === 'todos' ? ['id'] : [])), `${table}: never left with a gap`);
    }
  } finally {
    await stopAll(server, closers, dir);
  }
});

test('history gone while the server runs: a cursor older than both the memory and the trimmed log gets the reset, a snapshot and the changes', async () => {
  const dir = tempDirectory();
  let server: ServerProcess | undefined;
  const closers: { close?: () => void; terminate?: () => void }[] = [];
  try {
    const path = createTodosDatabase(dir);
    await runTrack('track', ['--db', path, '--table', 'todos', '--table', 'notes', '--keep', '10']);
    server = await startServer(['--db', path, '--changes', '--history-rows', '20']);
    await pythonChanges(path, 100, 0);
    await waitFor('the server to read every change', async () => (await healthz(server!.port)).lastId === 100, 10000);

    const stream = new SseStream(`${server.url}/events`, { 'Last-Event-ID': '50' });
    closers.push(stream);
    await waitFor('the snapshot', () => stream.events.filter((event) => event.event === 'snapshot-end').length === 2, 10000);
    assert.is(assertResetThenSnapshot(stream.events, 50, 91, ['notes', 'todos'], 'Last-Event-ID 50'), 100);
    sqlite(path, `UPDATE todos SET title = 'after' WHERE id = 1; DELETE FROM todos WHERE id = 2;`);
    await waitFor('the changes after it', () => stream.events.at(-1)!.id === '102', 10000);
    const copy = new TableCopy();
    copy.applyEvents(stream.events);
    assertHolds(copy, path, 'todos', ['id']);
    assertHolds(copy, path, 'notes', []);
  } finally {
    await stopAll(server, closers, dir);
  }
});

test('a cursor ahead of the change log keeps the cursor-ahead reset, then every change written afterwards', async () => {
  const dir = tempDirectory();
  let server: ServerProcess | undefined;
  const closers: { close?: () => void; terminate?: () => void }[] = [];
  try {
    const path = createTodosDatabase(dir);
    await runTrack('track', ['--db', path, '--table', 'todos', '--table', 'notes']);
    await writeEveryKind(path);
    server = await startServer(['--db', path, '--changes']);
    const stream = new SseStream(`${server.url}/events`, { 'Last-Event-ID': '999999' });
    closers.push(stream);
    await waitFor('the reset event', () => stream.events.length >= 1, 5000);
    assert.equal(stream.events[0], { id: '8', event: 'reset', data: json({ reason: 'cursor-ahead', lastEventId: 999999, lastId: 8 }) });
    sqlite(path, `INSERT INTO todos(title) VALUES ('next'); DELETE FROM todos WHERE id = 1;`);
    await stream.waitForRows(2);
    assert.equal(stream.ids(), [9, 10], 'no change after the reset is dropped');
    assert.is(stream.events.length, 3, 'one reset, then the changes, no snapshot');
  } finally {
    await stopAll(server, closers, dir);
  }
});

test('a 20,000-row snapshot with --page-rows 100 arrives whole and in order, not cut by --max-catchup-rows; a client that stops reading is sent only what its socket takes (bounded pages), and /healthz answers throughout', async () => {
  const dir = tempDirectory();
  let server: ServerProcess | undefined;
  const closers: { close?: () => void; terminate?: () => void }[] = [];
  try {
    const path = createTodosDatabase(dir);
    await runTrack('track', ['--db', path, '--table', 'todos']);
    const rows = 20000;
    // About 1 KB a row: 20 MB of snapshot, far more than a socket's buffers hold.
    sqlite(
      path,
      `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${rows})
       INSERT INTO todos(id, title) SELECT i, printf('%d-%s', i, hex(zeroblob(500))) FROM n;`,
    );
    const seq = lastSeq(path);
    // --max-catchup-rows bounds catch-up from the log, not a snapshot: the 20,000 rows are not cut at 100.
    server = await startServer(['--db', path, '--changes', '--page-rows', '100', '--metrics', '--max-catchup-rows', '100']);
    const snapshotBytes = rows * 1000;

    // A client that sends its request and then reads nothing.
    const paused = new PausableSseSocket(server.port, '/events?table=todos&snapshot=1', { paused: true });
    closers.push(paused);
    await paused.connected();
    await waitFor('the paused client counted as catching up', async () => (await healthz(server!.port)).catchingUp === 1, 10000);
    // Wait until the server has stopped writing to it (the socket is full), then see how much it wrote.
    let written = -1;
    await waitFor('the writes to the paused client to stop', async () => {
      const now = (await scrape(server!.url)).value('sqlite_sse_bytes_written_total', { transport: 'sse' }) ?? 0;
      const settled = now === written && now > 0;
      written = now;
      return settled;
    }, 20000, 500);
    assert.ok(written < snapshotBytes / 2, `a client that reads nothing was sent ${written} bytes of a ${snapshotBytes}-byte snapshot: pages wait for it to drain`);

    // A reading client meanwhile, and /healthz asked again and again while its snapshot arrives.
    const reading = new SseStream(`${server.url}/events?table=todos&snapshot=1`);
    closers.push(reading);
    const seenByHealth: number[] = [];
    while (!reading.events.some((event) => event.event === 'snapshot-end')) {
      const health = await healthz(server.port);
      assert.ok(health.ok, JSON.stringify(health));
      seenByHealth.push(reading.events.length);
      if (seenByHealth.length > 2000) throw new Error('the snapshot never ended');
    }
    assert.ok(seenByHealth.some((count) => count > 0 && count < rows), `/healthz answered while the snapshot was under way (rows received at each answer: ${seenByHealth.join(',')})`);

    paused.resume();
    await waitFor('the paused client to get its whole snapshot', () => paused.events.some((event) => event.event === 'snapshot-end'), 60000);
    for (const [name, events] of [['reading', reading.events], ['paused then resumed', paused.events]] as const) {
      const end = events.findIndex((event) => event.event === 'snapshot-end');
      assert.is(end, rows, `${name}: every row, then snapshot-end`);
      const ids = events.slice(0, end).map((event) => (JSON.parse(event.data) as ChangeData).pk.id);
      assert.equal(ids, range(1, rows), `${name}: each row once, in key order`);
      assert.equal(events[end], { id: String(seq), event: 'snapshot-end', data: json({ table: 'todos', rows, seq }) });
    }
    assert.is(new Set(reading.events.slice(0, rows).map((event) => event.data)).size, rows);
    assert.ok(reading.events.slice(0, rows).every((event, i) => event.data === json({ op: 'snapshot', table: 'todos', pk: { id: i + 1 }, row: { id: i + 1, title: `${i + 1}-${'0'.repeat(1000)}`, done: 0 } })));
  } finally {
    await stopAll(server, closers, dir);
  }
});

test('refusals: ?table=unknown gets 400 listing the tracked tables, filters without table= get 400, and --changes on a database without _sse_changes fails at start with one line telling to run track', async () => {
  const dir = tempDirectory();
  let server: ServerProcess | undefined;
  try {
    const path = createTodosDatabase(dir);
    const refused = await runCli(['--db', path, '--changes', '--port', '0']);
    assert.is.not(refused.code, 0);
    assert.is(refused.stdout, '');
    const lines = refused.stderr.trim().split('\n');
    assert.is(lines.length, 1, refused.stderr);
    assert.match(lines[0], '_sse_changes');
    assert.match(lines[0], `npx sqlite-sse track --db ${path} --table NAME`);

    await runTrack('track', ['--db', path, '--table', 'todos', '--table', 'notes']);
    server = await startServer(['--db', path, '--changes']);
    const unknown = await fetch(`${server.url}/events?table=unknown`);
    assert.is(unknown.status, 400);
    assert.is((await unknown.text()).trim(), 'table "unknown" is not tracked here (tables: notes, todos)');
    const ws = new WsRecorder(`ws://127.0.0.1:${server.port}/ws?table=unknown`);
    const refusal = await ws.waitForRefusal();
    assert.is(refusal.status, 400, 'the WebSocket upgrade is refused the same way');
    assert.match(refusal.body, '(tables: notes, todos)');
    const filterWithoutTable = await fetch(`${server.url}/events?done=eq.1`);
    assert.is(filterWithoutTable.status, 400);
    assert.match(await filterWithoutTable.text(), 'table=NAME');
    const badSnapshot = await fetch(`${server.url}/events?table=todos&snapshot=maybe`);
    assert.is(badSnapshot.status, 400);
    const health = await fetch(`${server.url}/healthz`);
    assert.is(health.status, 200, 'the server is still serving');
  } finally {
    await server?.stop('SIGKILL');
    removeDirectory(dir);
    cleanUpEverything();
  }
});

for (const journalMode of ['wal', 'delete']) {
  test(`read-only (${journalMode}): the change stream, its snapshots and catch-ups never change the bytes of the database or its journal`, async () => {
    const dir = tempDirectory();
    let server: ServerProcess | undefined;
    const streams: SseStream[] = [];
    try {
      const path = createTodosDatabase(dir, journalMode);
      await runTrack('track', ['--db', path, '--table', 'todos', '--table', 'notes', '--keep', '500']);
      const args = ['--db', path, '--changes', '--history-rows', '50', '--page-rows', '20'];
      // Started before the writer, as in readonly.test.ts: the files then are as the writer leaves them while a
      // reader is open (in WAL mode, SQLite itself creates the -wal file for a reader, which is not a write).
      server = await startServer(args);
      const live = new SseStream(`${server.url}/events`);
      streams.push(live);
      await pythonChanges(path, 1000, 0);
      await waitFor('the server to read every change', async () => (await healthz(server!.port)).lastId === 1000, 20000);
      // The server closes its idle connection about a second after the last commit.
      await sleep(1500);
      const before = databaseFingerprint(path);
      for (const query of ['', '?snapshot=1', '?table=todos&snapshot=1', '?lastEventId=0', '?lastEventId=700', '?lastEventId=990', '?lastEventId=5000', '?table=notes&lastEventId=800']) {
        streams.push(new SseStream(`${server.url}/events${query}`));
      }
      await waitFor('every client served', () => streams.every((stream) => stream.events.length > 0), 20000);
      await waitFor('the snapshots sent', () => streams[2].events.filter((event) => event.event === 'snapshot-end').length === 2, 20000);
      assert.is(await server.stop('SIGTERM'), 0, 'a clean exit');
      assert.is(databaseFingerprint(path), before, 'unchanged by the server, its clients and its shutdown');
    } finally {
      for (const stream of streams) stream.close();
      await server?.stop('SIGKILL');
      removeDirectory(dir);
      cleanUpEverything();
    }
  });
}

test('a WITHOUT ROWID table with a composite key: snapshot=1 and a history-gone reset both send its rows, and snapshot plus changes by pk equals the table', async () => {
  const dir = tempDirectory();
  let server: ServerProcess | undefined;
  const closers: { close?: () => void; terminate?: () => void }[] = [];
  try {
    const path = createTodosDatabase(dir);
    sqlite(path, `CREATE TABLE kv(bucket TEXT, n INTEGER, v, PRIMARY KEY (bucket, n)) WITHOUT ROWID;`);
    await runTrack('track', ['--db', path, '--table', 'kv', '--table', 'todos', '--keep', '10']);
    // 300 rows over three buckets (text keys out of insertion order), more than a page.
    sqlite(
      path,
      `WITH RECURSIVE i(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM i WHERE x < 300)
       INSERT INTO kv SELECT char(99 - x % 3), x, x * 1.5 FROM i;
       INSERT INTO todos(title) VALUES ('one');`,
    );
    const seq = lastSeq(path);
    server = await startServer(['--db', path, '--changes', '--page-rows', '32']);
    const snapshot = new SseStream(`${server.url}/events?table=kv&snapshot=1`);
    const gone = new SseStream(`${server.url}/events`, { 'Last-Event-ID': '5' });
    closers.push(snapshot, gone);
    await waitFor('the snapshots', () => snapshot.events.some((event) => event.event === 'snapshot-end') && gone.events.filter((event) => event.event === 'snapshot-end').length === 2, 10000);
    assert.equal(snapshot.events.at(-1), { id: String(seq), event: 'snapshot-end', data: json({ table: 'kv', rows: 300, seq }) });
    assert.is(assertResetThenSnapshot(gone.events, 5, seq - 9, ['kv', 'todos'], 'Last-Event-ID 5'), seq);
    // 8 changes, fewer than --keep: an update, deletes, a key change (logged as a delete and an insert), an insert.
    sqlite(path, `UPDATE kv SET v = 'x' WHERE n IN (7, 14); DELETE FROM kv WHERE bucket = 'a' AND n < 10; UPDATE kv SET n = n + 1000 WHERE n = 3; INSERT INTO kv VALUES ('z', 1, 'new');`);
    assert.is(lastSeq(path), seq + 8);
    const last = lastSeq(path);
    await waitFor('the changes', () => Number(snapshot.events.at(-1)!.id) === last && Number(gone.events.at(-1)!.id) === last, 10000);
    for (const stream of [snapshot, gone]) {
      const copy = new TableCopy();
      copy.applyEvents(stream.events);
      assertHolds(copy, path, 'kv', ['bucket', 'n']);
    }
  } finally {
    await stopAll(server, closers, dir);
  }
});

test('one transaction that changes more rows than track --keep: live clients get a history-gone reset and a fresh snapshot, never a silent gap', async () => {
  const dir = tempDirectory();
  let server: ServerProcess | undefined;
  const closers: { close?: () => void; terminate?: () => void }[] = [];
  try {
    const path = createTodosDatabase(dir);
    await runTrack('track', ['--db', path, '--table', 'todos', '--table', 'notes', '--keep', '10']);
    sqlite(path, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100) INSERT INTO todos(id, title) SELECT i, 'todo-' || i FROM n;`);
    server = await startServer(['--db', path, '--changes']);
    const all = new SseStream(`${server.url}/events?snapshot=1`);
    const todos = new SseStream(`${server.url}/events?table=todos&snapshot=1`);
    const ws = new WsRecorder(`ws://127.0.0.1:${server.port}/ws?table=todos&snapshot=1`);
    closers.push(all, todos, ws);
    await waitFor('the first snapshots', () => all.events.filter((event) => event.event === 'snapshot-end').length === 2 && todos.events.some((event) => event.event === 'snapshot-end'), 10000);
    await ws.waitForOpen();
    await waitFor('the ws snapshot', () => ws.messages.some((message) => message.type === 'snapshot-end'), 10000);
    assert.is(lastSeq(path), 100);

    // 50 deletes in one statement: the log keeps 10, so 40 are trimmed before any reader can see them.
    sqlite(path, `DELETE FROM todos WHERE id % 2 = 0;`);
    assert.is(lastSeq(path), 150);
    for (const [name, stream, tables] of [['all tables', all, 2], ['todos', todos, 1]] as const) {
      await waitFor(`${name}: the reset and the new snapshot`, () => stream.events.filter((event) => event.event === 'snapshot-end').length === 2 * tables, 10000);
      const reset = stream.events.find((event) => event.event === 'reset');
      assert.ok(reset, `${name}: told, not left with a gap`);
      assert.equal(JSON.parse(reset!.data), { reason: 'history-gone', lastEventId: 100, oldestSeq: 141 });
    }
    await waitFor('the ws reset and snapshot', () => ws.messages.filter((message) => message.type === 'snapshot-end').length === 2, 10000);
    assert.ok(ws.messages.some((message) => message.type === 'reset' && message.reason === 'history-gone'));

    sqlite(path, `UPDATE todos SET done = 1 WHERE id = 1; INSERT INTO notes(body) VALUES ('after');`);
    await waitFor('the changes after it', () => all.events.at(-1)!.id === '152' && todos.events.at(-1)!.id === '151', 10000);
    for (const stream of [all, todos]) {
      const copy = new TableCopy();
      copy.applyEvents(stream.events);
      assertHolds(copy, path, 'todos', ['id'], 'the odd todos left, as the table holds them');
    }
    assert.is(tableByKey(path, 'todos', ['id']).size, 50);
  } finally {
    await stopAll(server, closers, dir);
  }
});

test('SIGKILL and restart while writers write: a client that reconnects with Last-Event-ID (SSE and WebSocket, URL with snapshot=1 unchanged) continues with the changes only and ends holding the table', async () => {
  const dir = tempDirectory();
  let server: ServerProcess | undefined;
  const closers: { close?: () => void; terminate?: () => void }[] = [];
  try {
    const path = createTodosDatabase(dir);
    await runTrack('track', ['--db', path, '--table', 'todos', '--table', 'notes']);
    sqlite(path, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) INSERT INTO todos(id, title) SELECT i, 'todo-' || i FROM n;`);
    const port = await freePort();
    const args = ['--db', path, '--changes', '--port', String(port), '--page-rows', '50'];
    server = await startServer(args);
    const query = 'table=todos&snapshot=1';
    const first = new SseStream(`${server.url}/events?${query}`);
    const ws = new WsRecorder(`ws://127.0.0.1:${port}/ws?${query}`);
    closers.push(first, ws);
    await waitFor('the snapshots', () => first.events.some((event) => event.event === 'snapshot-end') && ws.messages.some((message) => message.type === 'snapshot-end'), 10000);
    // WebSocket: snapshot rows as {"type":"change","change":{...}} without an id, then snapshot-end with the id.
    assert.equal(ws.raw[0], `{"type":"change","change":${json({ op: 'snapshot', table: 'todos', pk: { id: 1 }, row: { id: 1, title: 'todo-1', done: 0 } })}}`);
    assert.is(ws.raw[500], `{"type":"snapshot-end","id":500,"table":"todos","rows":500,"seq":500}`);

    const writer = pythonChanges(path, 600, 2);
    await waitFor('the writer under way', () => lastSeq(path) > 700, 20000);
    assert.is(await server.stop('SIGKILL'), 'SIGKILL');
    await waitFor('more changes while the server is down', () => lastSeq(path) > 800, 20000);
    server = await startServer(args);

    // What each client saw before the kill, applied by pk; it reconnects as a browser does, with its last id.
    const sseCopy = new TableCopy();
    sseCopy.applyEvents(first.events);
    const wsCopy = new TableCopy();
    for (const message of ws.messages as unknown as { type: string; id?: number; change?: ChangeData }[]) {
      if (message.change) wsCopy.apply(message.change);
      if (message.id !== undefined) wsCopy.lastId = message.id;
    }
    const again = new SseStream(`${server.url}/events?${query}`, { 'Last-Event-ID': String(sseCopy.lastId) });
    const wsAgain = new WsRecorder(`ws://127.0.0.1:${port}/ws?${query}&lastEventId=${wsCopy.lastId}`);
    closers.push(again, wsAgain);
    await withTimeout(writer, 60000, 'writer');
    const last = lastSeq(path, 'todos');
    await waitFor('both clients up to the last change', () => again.ids().at(-1) === last && wsAgain.messages.at(-1)?.id === last, 20000);

    assert.ok(again.events.every((event) => event.event === 'message' && (JSON.parse(event.data) as ChangeData).op !== 'snapshot'), 'changes only');
    assert.ok(wsAgain.messages.every((message) => message.type === 'change' && message.id > wsCopy.lastId), 'WebSocket: changes only');
    const todoSeqs = readChanges(path).filter((change) => change.table === 'todos').map((change) => change.seq);
    assert.equal(again.ids(), todoSeqs.filter((seq) => seq > sseCopy.lastId), 'every todos change after the cursor, once, in order');
    sseCopy.applyEvents(again.events);
    for (const message of wsAgain.messages as unknown as { change: ChangeData }[]) wsCopy.apply(message.change);
    const table = byKey(tableByKey(path, 'todos', ['id']));
    assert.equal(byKey(sseCopy.table('todos')), table);
    assert.equal(byKey(wsCopy.table('todos')), table);
  } finally {
    await stopAll(server, closers, dir);
  }
});

test('a tracked table dropped while the server runs: a snapshot of every table still completes (the dropped one with 0 rows) and the changes follow', async () => {
  const dir = tempDirectory();
  let server: ServerProcess | undefined;
  const closers: { close?: () => void; terminate?: () => void }[] = [];
  try {
    const path = createTodosDatabase(dir);
    await runTrack('track', ['--db', path, '--table', 'todos', '--table', 'notes']);
    sqlite(path, `INSERT INTO todos(title) VALUES ('a'), ('b'); INSERT INTO notes(body) VALUES ('n');`);
    server = await startServer(['--db', path, '--changes']);
    sqlite(path, `DROP TABLE notes;`);
    const stream = new SseStream(`${server.url}/events?snapshot=1`);
    closers.push(stream);
    await waitFor(`both snapshot-ends (${server.output().trim()})`, () => stream.events.filter((event) => event.event === 'snapshot-end').length === 2, 10000);
    const ends = stream.events.filter((event) => event.event === 'snapshot-end').map((event) => JSON.parse(event.data) as { table: string; rows: number });
    assert.equal(ends.map(({ table, rows }) => ({ table, rows })), [{ table: 'notes', rows: 0 }, { table: 'todos', rows: 2 }]);
    sqlite(path, `UPDATE todos SET done = 1 WHERE id = 2;`);
    await waitFor('the change after it', () => stream.events.at(-1)!.id === '4', 10000);
    const copy = new TableCopy();
    copy.applyEvents(stream.events);
    assertHolds(copy, path, 'todos', ['id']);
    assert.is(copy.table('notes').size, 0);
  } finally {
    await stopAll(server, closers, dir);
  }
});

test.run();
