/**
 * The baseline: what the classic PHP example does, reimplemented in Node so it can hold many clients.
 * Every connection runs its own `SELECT * FROM messages WHERE id > ?` on its own timer and streams what it finds.
 * Kinder to the baseline than PHP: one shared database connection (PHP opens one per tab), streams never close
 * every 10 s (so no row is lost on reconnect), JSON from JSON.stringify, one write per poll.
 *
 *   node dist/bench/polling-baseline.js --db PATH --table messages --port 0 --interval-ms 100
 *
 * Prints `listening on http://HOST:PORT (db PATH, table NAME, last id N)`, like the server under test.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';

const { values } = parseArgs({
  options: {
    db: { type: 'string' },
    table: { type: 'string', default: 'messages' },
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '0' },
    'interval-ms': { type: 'string', default: '5000' },
  },
});
if (!values.db) {
  console.error('error: --db PATH is required');
  process.exit(1);
}
const table = '"' + values.table!.replace(/"/g, '""') + '"';
const intervalMs = Number(values['interval-ms']);
const db = new Database(values.db, { readonly: true, fileMustExist: true, timeout: 0 });
const after = db.prepare(`SELECT * FROM ${table} WHERE id > ? ORDER BY id`);
const maxId = db.prepare(`SELECT COALESCE(MAX(id), 0) FROM ${table}`).pluck();
let clients = 0;

function events(request: IncomingMessage, response: ServerResponse): void {
  const url = new URL(request.url ?? '/', 'http://x');
  const header = request.headers['last-event-id'];
  const cursorText = (typeof header === 'string' ? header : undefined) ?? url.searchParams.get('lastEventId');
  let cursor = cursorText !== null && cursorText !== undefined && /^\d+$/.test(cursorText) ? Number(cursorText) : (maxId.get() as number);
  response.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache', Connection: 'keep-alive' });
  response.write('retry: 2000\n\n');
  clients++;
  // The PHP loop: query, echo what was found, flush, sleep.
  const poll = () => {
    let rows: Record<string, unknown>[];
    try {
      rows = after.all(cursor) as Record<string, unknown>[];
    } catch {
      return; // busy: try at the next tick, as a PHP loop would after its sleep
    }
    if (rows.length === 0) return;
    let out = '';
    for (const row of rows) out += `id: ${row.id}\ndata: ${JSON.stringify(row)}\n\n`;
    cursor = Number(rows[rows.length - 1].id);
    response.write(out);
  };
  const timer = setInterval(poll, intervalMs);
  response.on('close', () => {
    clearInterval(timer);
    clients--;
  });
  response.on('error', () => undefined);
}

const server = createServer({ noDelay: true }, (request, response) => {
  const path = (request.url ?? '/').split('?')[0];
  if (path === '/events') return events(request, response);
  if (path === '/healthz') {
    response.writeHead(200, { 'Content-Type': 'application/json' });
    response.end(JSON.stringify({ ok: true, clients, lastId: maxId.get() }) + '\n');
    return;
  }
  response.writeHead(404);
  response.end();
});
server.listen(Number(values.port), values.host, () => {
  const { port } = server.address() as AddressInfo;
  console.log(`listening on http://${values.host}:${port} (db ${values.db}, table ${values.table}, last id ${maxId.get()})`);
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    server.closeAllConnections();
    server.close();
    db.close();
    process.exit(0);
  });
}
