import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { json } from './helpers/change-stream.js';
import { cleanUpEverything, removeDirectory } from './helpers/cleanup.js';
import { createMessagesDatabase, python, sqlite, tempDirectory } from './helpers/database.js';
import { startServer, type ServerProcess } from './helpers/server-process.js';
import { range, SseStream } from './helpers/sse-stream.js';
import { waitFor } from './helpers/wait.js';
import { WsRecorder } from './helpers/ws-recorder.js';

/** The demo table `messages` with 5 rows and a second table `notes(id, body)` with 2, written by the sqlite3 shell. */
function createTwoTables(directory: string): string {
  const path = createMessagesDatabase(directory, 'wal');
  sqlite(
    path,
    `CREATE TABLE notes(id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT);
     INSERT INTO messages(message) VALUES ('m1'), ('m2'), ('m3'), ('m4'), ('m5');
     INSERT INTO notes(body) VALUES ('n1'), ('n2');`,
  );
  return path;
}

interface Health {
  ok: boolean;
  clients: number;
  lastId: number;
  tables?: Record<string, { ok: boolean; clients: number; lastId: number }>;
}

async function stopAll(server: ServerProcess | undefined, closers: { close?: () => void; terminate?: () => void }[], dir: string): Promise<void> {
  for (const closer of closers) (closer.close ?? closer.terminate)?.call(closer);
  await server?.stop('SIGKILL');
  removeDirectory(dir);
  // Whatever this test started and did not stop itself (a writer still running after a failure).
  cleanUpEverything();
}

test('--table messages --table notes: ?table=notes streams new notes with their own ids, the default is messages, resume works per table; the start-up line and /healthz name both', async () => {
  const dir = tempDirectory();
  let server: ServerProcess | undefined;
  const closers: { close?: () => void; terminate?: () => void }[] = [];
  try {
    const path = createTwoTables(dir);
    server = await startServer(['--db', path, '--table', 'messages', '--table', 'notes']);
    assert.match(server.output(), `listening on ${server.url} (db ${path}, table messages, last id 5; table notes, last id 2)`);

    const byDefault = new SseStream(`${server.url}/events`);
    const notes = new SseStream(`${server.url}/events?table=notes`);
    const notesFromStart = new SseStream(`${server.url}/events?table=notes&lastEventId=0`);
    const messagesResumed = new SseStream(`${server.url}/events?table=messages`, { 'Last-Event-ID': '3' });
    const notesWs = new WsRecorder(`ws://127.0.0.1:${server.port}/ws?table=notes&lastEventId=1`);
    closers.push(byDefault, notes, notesFromStart, messagesResumed, notesWs);
    for (const stream of [byDefault, notes, notesFromStart, messagesResumed]) assert.is((await stream.waitForResponse()).statusCode, 200);
    await notesWs.waitForOpen();
    // Clients without a cursor start with the newest rows in memory: wait for those before writing.
    await byDefault.waitForRows(5);
    await notes.waitForRows(2);

    const health = (await (await fetch(`${server.url}/healthz`)).json()) as Health;
    assert.is(health.ok, true);
    assert.is(health.clients, 5, 'every stream counted');
    assert.equal(Object.keys(health.tables ?? {}), ['messages', 'notes']);
    assert.is(health.tables!.messages.lastId, 5);
    assert.is(health.tables!.notes.lastId, 2);
    assert.is(health.tables!.notes.clients, 3);

    // Writers in separate processes: the sqlite3 shell on both tables, python3 on notes.
    sqlite(path, `INSERT INTO notes(body) VALUES ('n3'); INSERT INTO messages(message) VALUES ('m6'); INSERT INTO notes(body) VALUES ('n4');`);
    await python(path, `con = sqlite3.connect(db, isolation_level=None)\ncon.executemany("INSERT INTO notes(body) VALUES (?)", [("n5",), ("n6",)])\ncon.close()`);
    await notesFromStart.waitForRows(6);
    await byDefault.waitForRows(6);
    await messagesResumed.waitForRows(3);
    await notes.waitForRows(6);
    await notesWs.waitForRows(5);

    const noteRows = range(1, 6).map((id) => json({ id, body: `n${id}` }));
    assert.equal(notesFromStart.ids(), range(1, 6), "notes' own ids, from the start");
    assert.equal(notesFromStart.events.map((event) => event.data), noteRows, 'the rows of notes as written');
    assert.equal(notes.ids(), range(1, 6), 'without a cursor: the recent notes, then the new ones');
    assert.equal(notesWs.ids(), range(2, 6), 'WebSocket ?table=notes&lastEventId=1');
    assert.equal(notesWs.rows().map((message) => message.row), range(2, 6).map((id) => ({ id, body: `n${id}` })));
    assert.equal(byDefault.ids(), range(1, 6), 'no table=: the first --table');
    assert.equal(byDefault.events.map((event) => event.data), range(1, 6).map((id) => json({ id, message: `m${id}` })));
    assert.equal(messagesResumed.ids(), range(4, 6), 'Last-Event-ID on messages: its own ids');
    assert.ok(
      [byDefault, notes, notesFromStart, messagesResumed].every((stream) => stream.events.every((event) => event.event === 'message')),
      'no other events',
    );
    const after = (await (await fetch(`${server.url}/healthz`)).json()) as Health;
    assert.is(after.tables!.messages.lastId, 6);
    assert.is(after.tables!.notes.lastId, 6);
  } finally {
    await stopAll(server, closers, dir);
  }
});

test('several tables: an unknown table gets 400 listing the tables served (SSE and WebSocket), snapshot=1 gets 400 in insert mode, and a cursor ahead is judged by its own table', async () => {
  const dir = tempDirectory();
  let server: ServerProcess | undefined;
  const closers: { close?: () => void; terminate?: () => void }[] = [];
  try {
    const path = createTwoTables(dir);
    server = await startServer(['--db', path, '--table', 'messages', '--table', 'notes']);

    const unknown = await fetch(`${server.url}/events?table=orders`);
    assert.is(unknown.status, 400);
    assert.is((await unknown.text()).trim(), 'table "orders" is not served (tables: messages, notes)');
    const ws = new WsRecorder(`ws://127.0.0.1:${server.port}/ws?table=orders`);
    closers.push(ws);
    const refusal = await ws.waitForRefusal();
    assert.is(refusal.status, 400);
    assert.match(refusal.body, '(tables: messages, notes)');

    const snapshot = await fetch(`${server.url}/events?table=notes&snapshot=1`);
    assert.is(snapshot.status, 400);
    assert.match(await snapshot.text(), '--changes');
    const twice = await fetch(`${server.url}/events?table=notes&table=messages`);
    assert.is(twice.status, 400);

    // Cursor 4 is within messages (5 rows) but ahead of notes (2 rows): notes says so with its own last id.
    const notes = new SseStream(`${server.url}/events?table=notes`, { 'Last-Event-ID': '4' });
    const messages = new SseStream(`${server.url}/events?table=messages`, { 'Last-Event-ID': '4' });
    closers.push(notes, messages);
    await waitFor('the reset', () => notes.events.length >= 1, 5000);
    assert.equal(notes.events[0], { id: '2', event: 'reset', data: json({ reason: 'cursor-ahead', lastEventId: 4, lastId: 2 }) });
    await messages.waitForRows(1);
    assert.equal(messages.ids(), [5]);
    sqlite(path, `INSERT INTO notes(body) VALUES ('n3');`);
    await notes.waitForRows(1);
    assert.equal(notes.ids(), [3]);
    assert.is((await fetch(`${server.url}/healthz`)).status, 200);
  } finally {
    await stopAll(server, closers, dir);
  }
});

test.run();
