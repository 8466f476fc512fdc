import { EventSource } from 'eventsource';
import { test } from 'uvu';
import type * as BrowserClient from '../public/sqlite-sse-client.js';
import * as assert from 'uvu/assert';
import { runTrack } from './helpers/change-log.js';
import { sqlite, tempDirectory } from './helpers/database.js';
import { applyByPk, heldIds, idsAndData, selectIds, type ChangeMessage } from './helpers/filtered-streams.js';
import { LiveFixture } from './helpers/live-fixture.js';
import { httpGet, scrape } from './helpers/prom-text.js';
import { range } from './helpers/sse-stream.js';
import { freePort } from './helpers/sse-stream.js';
import { es256KeyPair, publicJwk, SECRET, serveKeySet, signToken, unsignedToken } from './helpers/tokens.js';
import { waitFor } from './helpers/wait.js';

const TODOS = 'CREATE TABLE todos(id INTEGER PRIMARY KEY, user_id INTEGER, title TEXT);';

/** Insert `count` todos spread over the users 42, 7 and 8 (id 1: user 42, id 2: user 7, id 3: user 8, ...). */
function insertTodos(db: string, count: number, prefix = 'todo'): void {
  sqlite(
    db,
    `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${count})
     INSERT INTO todos(user_id, title) SELECT CASE i % 3 WHEN 1 THEN 42 WHEN 2 THEN 7 ELSE 8 END, '${prefix}-' || i FROM n;`,
  );
}

/** A temp dir for key files, removed at exit. */
const tempDirectoryFor = (): string => tempDirectory();

/** public/sqlite-sse-client.js as a page imports it (this file runs from dist/test). */
const browserClient = async (): Promise<typeof BrowserClient> => import(new URL('../../public/sqlite-sse-client.js', import.meta.url).href);

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

test('--jwt-secret: a valid token in the header, the cookie or ?token= streams; missing, malformed, expired, wrongly signed and alg none get 401, each reason counted', async () => {
  await LiveFixture.run(async (fixture) => {
    await fixture.start(['--jwt-secret', SECRET, '--metrics', '--protect', 'events,ws']);
    fixture.seed(3);
    const token = await signToken({ sub: 'u1' });
    for (const [path, headers] of [
      ['/events?lastEventId=0', bearer(token)],
      ['/events?lastEventId=0', { Cookie: `sse_token=${token}` }],
      [`/events?lastEventId=0&token=${token}`, {}],
    ] as const) {
      const stream = fixture.sse(path, headers);
      await stream.waitForRows(3);
      assert.equal(stream.ids(), [1, 2, 3], `${path} ${JSON.stringify(headers)}`);
    }
    const ws = fixture.ws('/ws?lastEventId=0', { headers: bearer(token) });
    await ws.waitForRows(3);

    const refusals: [string, string | undefined][] = [
      ['token-missing', undefined],
      ['token-malformed', 'not-a-jwt'],
      ['token-expired', await signToken({ sub: 'u1' }, { expiresIn: -3600 })],
      ['token-bad-signature', await signToken({ sub: 'u1' }, { key: SECRET + '-but-another-one' })],
      ['token-bad-signature', unsignedToken({ sub: 'u1' })],
    ];
    for (const [reason, bad] of refusals) {
      const headers = bad === undefined ? {} : bearer(bad);
      const answer = await httpGet(`${fixture.server.url}/events`, headers);
      assert.is(answer.status, 401, `${reason}: ${answer.body}`);
      assert.is(answer.body.trim().split('\n').length, 1, 'one line');
      assert.match(String(answer.headers['www-authenticate']), bad === undefined ? /^Bearer realm="sqlite-sse"$/ : /error="invalid_token"/);
      const refused = fixture.ws('/ws', { headers });
      assert.is((await refused.waitForRefusal()).status, 401, `ws ${reason}`);
    }
    const metrics = await scrape(fixture.server.url);
    for (const reason of ['token-missing', 'token-malformed', 'token-expired']) {
      assert.is(metrics.value('sqlite_sse_connections_refused_total', { transport: 'sse', reason }), 1, `sse ${reason}`);
      assert.is(metrics.value('sqlite_sse_connections_refused_total', { transport: 'ws', reason }), 1, `ws ${reason}`);
    }
    assert.is(metrics.value('sqlite_sse_connections_refused_total', { reason: 'token-bad-signature' }), 4, 'wrong secret and alg none, on both transports');
  });
});

test('--jwt-public-key with an ES256 key: its tokens stream; another key, and an HS256 token keyed with the public PEM, get 401', async () => {
  await LiveFixture.run(async (fixture) => {
    const { privateKey, publicKeyPath, publicPem } = es256KeyPair(fixture.directory);
    await fixture.start(['--jwt-public-key', publicKeyPath]);
    fixture.seed(2);
    const good = await signToken({ sub: 'u1' }, { key: privateKey, alg: 'ES256' });
    const stream = fixture.sse('/events?lastEventId=0', bearer(good));
    await stream.waitForRows(2);
    const ws = fixture.ws(`/ws?lastEventId=0&token=${good}`);
    await ws.waitForRows(2);
    const other = es256KeyPair(fixture.directory).privateKey;
    for (const bad of [await signToken({ sub: 'u1' }, { key: other, alg: 'ES256' }), await signToken({ sub: 'u1' }, { key: publicPem, alg: 'HS256' })]) {
      const answer = await httpGet(`${fixture.server.url}/events`, bearer(bad));
      assert.is(answer.status, 401, answer.body);
      assert.is((await fixture.ws('/ws', { headers: bearer(bad) }).waitForRefusal()).status, 401);
    }
  });
});

test('--jwks-url from a local server: a token whose kid is in the set streams; unknown kids and keys get 401 without hammering the provider', async () => {
  const key = es256KeyPair(tempDirectoryFor()).privateKey;
  const keySet = await serveKeySet([await publicJwk(key, 'k1')]);
  try {
    await LiveFixture.run(async (fixture) => {
      await fixture.start(['--jwks-url', keySet.url]);
      fixture.seed(2);
      const stream = fixture.sse('/events?lastEventId=0', bearer(await signToken({ sub: 'u' }, { key, alg: 'ES256', kid: 'k1' })));
      await stream.waitForRows(2);
      const ws = fixture.ws('/ws?lastEventId=0', { headers: bearer(await signToken({ sub: 'u' }, { key, alg: 'ES256', kid: 'k1' })) });
      await ws.waitForRows(2);
      const fetched = keySet.fetches;
      assert.ok(fetched >= 1, 'the set was fetched');
      const stranger = es256KeyPair(tempDirectoryFor()).privateKey;
      for (let i = 0; i < 5; i++) {
        const made = await signToken({ sub: 'u' }, { key: stranger, alg: 'ES256', kid: `made-up-${i}` });
        const answer = await httpGet(`${fixture.server.url}/events`, bearer(made));
        assert.is(answer.status, 401, answer.body);
      }
      const wrongKey = await signToken({ sub: 'u' }, { key: stranger, alg: 'ES256', kid: 'k1' });
      assert.is((await httpGet(`${fixture.server.url}/events`, bearer(wrongKey))).status, 401, 'the right kid, the wrong key');
      // Unknown kids make the server look again at most once per 30 s (docs/access.md), not once per token.
      assert.ok(keySet.fetches <= fetched + 1, `fetches: ${fetched} before, ${keySet.fetches} after five made-up kids`);
    });
  } finally {
    await keySet.close();
  }
});

test('--jwks-url that cannot be fetched: the server starts with a warning and answers 503 with Retry-After, not 401', async () => {
  const url = `http://127.0.0.1:${await freePort()}/jwks.json`;
  await LiveFixture.run(async (fixture) => {
    await fixture.start(['--jwks-url', url, '--metrics', '--protect', 'events,ws']);
    const key = es256KeyPair(fixture.directory).privateKey;
    const answer = await httpGet(`${fixture.server.url}/events`, bearer(await signToken({ sub: 'u' }, { key, alg: 'ES256', kid: 'k1' })));
    assert.is(answer.status, 503, answer.body);
    assert.is(answer.headers['retry-after'], '5');
    assert.match(fixture.server.output(), /cannot fetch/);
    const metrics = await scrape(fixture.server.url);
    assert.is(metrics.value('sqlite_sse_connections_refused_total', { reason: 'token-jwks-unavailable' }), 1);
  });
});

test("--row-filter 'user_id=eq.{sub}': each token sees only its rows live and on replay (memory and database), a wider filter does not widen it, a token without sub gets 403", async () => {
  await LiveFixture.run(async (fixture) => {
    sqlite(fixture.db, TODOS);
    const args = ['--table', 'todos', '--jwt-secret', SECRET, '--row-filter', 'user_id=eq.{sub}'];
    await fixture.start(args);
    const alice = await signToken({ sub: '42' });
    const bob = await signToken({ sub: '7' });
    const aliceLive = fixture.sse('/events', bearer(alice));
    const aliceWider = fixture.sse('/events?user_id=in.(7,42,8)', bearer(alice));
    const aliceAsksBob = fixture.sse('/events?user_id=eq.7', bearer(alice));
    const bobLive = fixture.ws('/ws', { headers: bearer(bob) });
    for (const stream of [aliceLive, aliceWider, aliceAsksBob]) assert.is((await stream.waitForResponse()).statusCode, 200);
    await bobLive.waitForOpen();
    insertTodos(fixture.db, 30);
    const aliceIds = selectIds(fixture.db, 'todos', 'user_id = 42');
    const bobIds = selectIds(fixture.db, 'todos', 'user_id = 7');
    await aliceLive.waitForRows(aliceIds.length);
    await aliceWider.waitForRows(aliceIds.length);
    await bobLive.waitForRows(bobIds.length);
    const cold = await fixture.startAnother([...args, '--history-rows', '2', '--page-rows', '4']);
    const replays = [fixture.sse('/events?lastEventId=0', bearer(alice)), fixture.sse('/events?lastEventId=0', bearer(alice), cold)];
    const bobReplay = fixture.ws('/ws?lastEventId=0', { headers: bearer(bob) }, cold);
    for (const stream of replays) await stream.waitForRows(aliceIds.length);
    await bobReplay.waitForRows(bobIds.length);
    // Rows of everybody after them mark the end: a later row of alice's arrives after every earlier one.
    insertTodos(fixture.db, 1, 'last');
    const last = aliceIds.length + 1;
    for (const stream of [aliceLive, aliceWider, ...replays]) await stream.waitForRows(last);

    const expected = [...aliceIds, 31];
    assert.equal(aliceLive.ids(), expected, 'alice live: her rows only');
    assert.ok(aliceLive.rows().every((row) => row.user_id === 42));
    assert.equal(aliceWider.ids(), expected, 'asking for more users does not widen the rule');
    for (const stream of replays) assert.equal(idsAndData(stream), idsAndData(aliceLive), 'her replay from 0 = her live rows');
    assert.equal(aliceAsksBob.ids(), [], "asking for bob's rows gives nothing");
    assert.equal(bobLive.ids(), bobIds, 'bob: his rows only');
    assert.equal(bobReplay.ids(), bobIds, 'bob replayed from the database: his rows only');

    const noSub = await signToken({ name: 'anonymous' });
    const answer = await httpGet(`${fixture.server.url}/events`, bearer(noSub));
    assert.is(answer.status, 403);
    assert.match(answer.body, /^missing claim sub: /);
    assert.is((await fixture.ws('/ws', { headers: bearer(noSub) }).waitForRefusal()).status, 403);
    assert.is((await httpGet(`${fixture.server.url}/events`)).status, 401, 'no token at all');
  });
});

test('--row-filter on the change stream: snapshots, changes and moves of a row between users reach only its owner', async () => {
  await LiveFixture.run(async (fixture) => {
    sqlite(fixture.db, TODOS);
    await runTrack('track', ['--db', fixture.db, '--table', 'todos']);
    insertTodos(fixture.db, 9);
    await fixture.start(['--changes', '--jwt-secret', SECRET, '--row-filter', 'user_id=eq.{sub}']);
    const alice = await signToken({ sub: '42' });
    const bob = await signToken({ sub: '7' });
    const aliceStream = fixture.sse('/events?table=todos&snapshot=1', bearer(alice));
    const aliceWider = fixture.sse('/events?table=todos&snapshot=1&user_id=neq.0', bearer(alice));
    const bobStream = fixture.sse('/events?table=todos&snapshot=1', bearer(bob));
    // Without table=: every tracked table, each through the rule.
    const aliceAllTables = fixture.sse('/events?snapshot=1', bearer(alice));
    for (const stream of [aliceStream, aliceWider, bobStream, aliceAllTables]) {
      await waitFor('the snapshot', () => stream.events.some((event) => event.event === 'snapshot-end'), 10000);
    }
    const snapshotRows = (stream: typeof aliceStream) => stream.rows<ChangeMessage>().filter((event) => event.op === 'snapshot');
    assert.equal(heldIds(applyByPk(snapshotRows(aliceStream))), [1, 4, 7], "alice's snapshot: her rows");
    assert.equal(heldIds(applyByPk(snapshotRows(aliceWider))), [1, 4, 7], 'a wider filter: still her rows');
    assert.equal(heldIds(applyByPk(snapshotRows(bobStream))), [2, 5, 8], "bob's snapshot: his rows");
    const seq = Number(sqlite(fixture.db, 'SELECT max(seq) FROM _sse_changes;').trim());
    sqlite(
      fixture.db,
      `UPDATE todos SET user_id = 42, title = 'given to alice' WHERE id = 2;
       UPDATE todos SET user_id = 7, title = 'given to bob' WHERE id = 1;
       UPDATE todos SET title = 'bob renamed' WHERE id = 1;
       DELETE FROM todos WHERE id = 8;
       INSERT INTO todos(user_id, title) VALUES (8, 'nobody of these');
       INSERT INTO todos(user_id, title) VALUES (42, 'alice new');`,
    );
    const last = seq + 6;
    await waitFor('alice gets the last change', () => aliceStream.ids().includes(last), 10000);
    await waitFor('bob gets his last change', () => bobStream.ids().includes(seq + 4), 10000);
    const changes = (stream: typeof aliceStream) => stream.rows<ChangeMessage>().filter((event) => event.op !== 'snapshot');
    assert.equal(changes(aliceStream), [
      { op: 'update', move: 'in', table: 'todos', pk: { id: 2 }, row: { id: 2, user_id: 42, title: 'given to alice' } },
      { op: 'update', move: 'out', table: 'todos', pk: { id: 1 } },
      { op: 'insert', table: 'todos', pk: { id: 11 }, row: { id: 11, user_id: 42, title: 'alice new' } },
    ]);
    assert.equal(idsAndData(aliceWider), idsAndData(aliceStream), 'the wider filter sees the same');
    await waitFor('alice on every table gets the last change', () => aliceAllTables.ids().includes(last), 10000);
    assert.equal(idsAndData(aliceAllTables), idsAndData(aliceStream), 'every table: the same, through the rule');
    assert.equal(changes(bobStream), [
      { op: 'update', move: 'out', table: 'todos', pk: { id: 2 } },
      { op: 'update', move: 'in', table: 'todos', pk: { id: 1 }, row: { id: 1, user_id: 7, title: 'given to bob' } },
      { op: 'update', table: 'todos', pk: { id: 1 }, row: { id: 1, user_id: 7, title: 'bob renamed' }, old: { id: 1, user_id: 7, title: 'given to bob' } },
      { op: 'delete', table: 'todos', pk: { id: 8 }, old: { id: 8, user_id: 7, title: 'todo-8' } },
    ]);
    assert.equal(heldIds(applyByPk(aliceStream.rows<ChangeMessage>())), selectIds(fixture.db, 'todos', 'user_id = 42'), 'alice holds her rows');
    assert.equal(heldIds(applyByPk(bobStream.rows<ChangeMessage>())), selectIds(fixture.db, 'todos', 'user_id = 7'), 'bob holds his rows');
    // Replay from 0, from memory and from the database: every change that concerned her, and nothing else.
    const cold = await fixture.startAnother(['--changes', '--jwt-secret', SECRET, '--row-filter', 'user_id=eq.{sub}', '--history-rows', '2', '--page-rows', '3']);
    const replay = fixture.sse('/events?table=todos&lastEventId=0', bearer(alice));
    const coldReplay = fixture.sse('/events?table=todos&lastEventId=0', bearer(alice), cold);
    for (const stream of [replay, coldReplay]) await waitFor('the replay', () => stream.ids().includes(last), 10000);
    assert.equal(idsAndData(coldReplay), idsAndData(replay), 'replayed from the database = from memory');
    assert.equal(heldIds(applyByPk(replay.rows<ChangeMessage>())), selectIds(fixture.db, 'todos', 'user_id = 42'));
    assert.ok(replay.rows<ChangeMessage>().every((event) => event.move === 'out' || event.row?.user_id === 42 || event.old?.user_id === 42));
  });
});

test('--row-filter on the change stream: a cursor the trimmed change log no longer holds gets history-gone and a snapshot of only its own rows', async () => {
  await LiveFixture.run(async (fixture) => {
    sqlite(fixture.db, TODOS);
    await runTrack('track', ['--db', fixture.db, '--table', 'todos', '--keep', '4']);
    insertTodos(fixture.db, 12);
    sqlite(fixture.db, "UPDATE todos SET title = 'renamed' WHERE id IN (1, 2);");
    await fixture.start(['--changes', '--jwt-secret', SECRET, '--row-filter', 'user_id=eq.{sub}', '--page-rows', '2']);
    const alice = fixture.sse('/events?table=todos&lastEventId=1', bearer(await signToken({ sub: '42' })));
    await waitFor('the snapshot', () => alice.events.some((event) => event.event === 'snapshot-end'), 10000);
    const reset = alice.events.find((event) => event.event === 'reset');
    assert.ok(reset, 'a reset event before the snapshot');
    const oldestSeq = Number(sqlite(fixture.db, 'SELECT min(seq) FROM _sse_changes;').trim());
    assert.equal(JSON.parse(reset!.data), { reason: 'history-gone', lastEventId: 1, oldestSeq });
    const snapshot = alice.rows<ChangeMessage>();
    assert.ok(snapshot.every((event) => event.op === 'snapshot' && event.row?.user_id === 42), JSON.stringify(snapshot));
    assert.equal(heldIds(applyByPk(snapshot)), selectIds(fixture.db, 'todos', 'user_id = 42'));
    sqlite(fixture.db, "INSERT INTO todos(user_id, title) VALUES (7, 'not hers'), (42, 'hers');");
    await waitFor('her new row', () => alice.rows<ChangeMessage>().some((event) => event.row?.title === 'hers'), 10000);
    assert.equal(heldIds(applyByPk(alice.rows<ChangeMessage>())), selectIds(fixture.db, 'todos', 'user_id = 42'));
  });
});

test("--row-filter scoped to a table with a list claim, 'notes.team=in.{teams}': commas and quotes in a claim stay inside their item, other tables follow their own rule", async () => {
  await LiveFixture.run(async (fixture) => {
    sqlite(fixture.db, `${TODOS} CREATE TABLE notes(id INTEGER PRIMARY KEY, team TEXT, body TEXT);`);
    await fixture.start([
      '--table', 'todos', '--table', 'notes', '--jwt-secret', SECRET,
      '--row-filter', 'notes.team=in.{teams}', '--row-filter', 'todos.user_id=eq.{sub}',
    ]);
    const token = await signToken({ sub: '42', teams: ['red', 'blue, green', 'say "hi"'] });
    const notes = fixture.sse('/events?table=notes', bearer(token));
    const todos = fixture.sse('/events?table=todos', bearer(token));
    for (const stream of [notes, todos]) assert.is((await stream.waitForResponse()).statusCode, 200);
    sqlite(
      fixture.db,
      `INSERT INTO notes(team, body) VALUES ('red', 'a'), ('blue', 'b'), ('blue, green', 'c'), ('green', 'd'), ('say "hi"', 'e'), ('RED', 'f'), ('red', 'g');
       INSERT INTO todos(user_id, title) VALUES (42, 'mine'), (7, 'theirs'), (42, 'mine too');`,
    );
    await notes.waitForRows(4);
    await todos.waitForRows(2);
    insertTodos(fixture.db, 1, 'last'); // user 42: after it, nothing earlier is still on its way
    await todos.waitForRows(3);
    assert.equal(notes.ids(), [1, 3, 5, 7]);
    assert.equal(todos.ids(), [1, 3, 4]);
    const noTeams = await signToken({ sub: '42' });
    const answer = await httpGet(`${fixture.server.url}/events?table=notes`, bearer(noTeams));
    assert.is(answer.status, 403, answer.body);
    assert.match(answer.body, /^missing claim teams: /);
    assert.is((await fixture.sse('/events?table=todos', bearer(noTeams)).waitForResponse()).statusCode, 200, 'todos needs only sub');
  });
});

test('a token that expires ends the stream (SSE: event token-expired with data; WebSocket: close 4401); a fresh token and the last id resume exactly', async () => {
  await LiveFixture.run(async (fixture) => {
    await fixture.start(['--jwt-secret', SECRET]);
    fixture.seed(5);
    // Expires in 1 s; the server allows 5 s of clock difference, so the stream ends about 6 s from now.
    const short = await signToken({ sub: 'u1' }, { expiresIn: 1 });
    const sse = fixture.sse('/events?lastEventId=0', bearer(short), fixture.server, true);
    const ws = fixture.ws('/ws?lastEventId=0', { headers: bearer(short) });
    await sse.waitForRows(5);
    await ws.waitForRows(5);
    fixture.seed(5, 'before-expiry');
    await sse.waitForRows(10);
    const close = await ws.waitForClose(15000);
    assert.is(close.code, 4401);
    assert.is(close.reason, 'token expired: reconnect with a fresh token and lastEventId');
    await waitFor('the SSE response ends', () => sse.ended, 15000);
    const expired = sse.events.filter((event) => event.event === 'token-expired');
    assert.is(expired.length, 1, 'one token-expired event');
    assert.is(sse.events[sse.events.length - 1].event, 'token-expired', 'the last thing on the stream');
    const exp = JSON.parse(Buffer.from(short.split('.')[1], 'base64url').toString()).exp as number;
    assert.ok(sse.raw.endsWith(`event: token-expired\ndata: {"exp":${exp}}\n\n`), `a data line and no id: ${JSON.stringify(sse.raw.slice(-120))}`);
    assert.is(expired[0].id, '10', 'the cursor stays on the last row');

    // Rows written while the clients were away, then reconnecting with a fresh token and the last id.
    fixture.seed(5, 'while-away');
    const fresh = await signToken({ sub: 'u1' });
    const sseLast = sse.ids()[sse.ids().length - 1];
    const wsLast = ws.ids()[ws.ids().length - 1];
    const sseAgain = fixture.sse('/events', { ...bearer(fresh), 'Last-Event-ID': String(sseLast) });
    const wsAgain = fixture.ws(`/ws?lastEventId=${wsLast}`, { headers: bearer(fresh) });
    fixture.seed(5, 'after');
    await sseAgain.waitForRows(20 - sseLast);
    await wsAgain.waitForRows(20 - wsLast);
    assert.equal([...sse.ids(), ...sseAgain.ids()], range(1, 20), 'SSE: every row once, in order');
    assert.equal([...ws.ids(), ...wsAgain.ids()], range(1, 20), 'WebSocket: every row once, in order');
  });
});

test('the browser client with getToken: the token goes in ?token=, and after token-expired it reopens with a fresh one from its last row, every row once', async () => {
  // The client module as a page loads it, with the eventsource package standing in for the browser's EventSource.
  const globals = globalThis as { EventSource?: unknown };
  const before = globals.EventSource;
  const opened: URL[] = [];
  globals.EventSource = class RecordingEventSource extends EventSource {
    constructor(url: string | URL, init?: ConstructorParameters<typeof EventSource>[1]) {
      opened.push(new URL(url));
      super(url, init);
    }
  };
  const client = await browserClient();
  let subscription: ReturnType<typeof client.subscribe> | undefined;
  try {
    await LiveFixture.run(async (fixture) => {
      await fixture.start(['--jwt-secret', SECRET]);
      fixture.seed(3);
      const issued: string[] = [];
      const rows: number[] = [];
      let lastBeforeRenewal: number | undefined;
      subscription = client.subscribe(`${fixture.server.url}/events`, {
        lastEventId: 0,
        // The first token runs out in 1 s (the stream ends about 6 s from now, with the server's 5 s allowance).
        getToken: async () => {
          if (issued.length === 1) lastBeforeRenewal = rows[rows.length - 1];
          const token = await signToken({ sub: 'page' }, { expiresIn: issued.length === 0 ? 1 : 3600 });
          issued.push(token);
          return token;
        },
        onRow: (_row, id) => rows.push(id),
      });
      assert.is(subscription.mode, 'direct', 'a token belongs to its page: no shared connection');
      await waitFor('the first rows', () => rows.length === 3, 10000);
      fixture.seed(3, 'before-expiry');
      await waitFor('rows written before the expiry', () => rows.length === 6, 10000);
      await waitFor('a second token after token-expired', () => issued.length === 2, 15000);
      fixture.seed(4, 'after-expiry');
      await waitFor('every row', () => rows.length >= 10, 10000);
      assert.equal(rows, range(1, 10), 'every row once, in order, across the two connections');
      await fixture.waitForClients(1);
      assert.is(issued.length, 2);
      assert.equal(
        opened.map((url) => [url.pathname, url.searchParams.get('lastEventId'), url.searchParams.get('token')]),
        [
          ['/events', '0', issued[0]],
          ['/events', String(lastBeforeRenewal), issued[1]],
        ],
        'each connection with its own token; the second from the last row delivered',
      );
    });
  } finally {
    subscription?.close();
    globals.EventSource = before;
  }
});

test('the browser client refuses getToken with a shared mode, and a getToken that is not a function', async () => {
  const client = await browserClient();
  assert.throws(() => client.subscribe('http://127.0.0.1:1/events', { mode: 'shared-worker', getToken: async () => 't' }), /getToken works with mode direct/);
  assert.throws(() => client.subscribe('http://127.0.0.1:1/events', { getToken: 'abc' as never }), /getToken must be a function/);
});

test.run();
