/**
 * The ceiling: the fan-out of the same SSE bytes with no SQLite and no HTTP server. Clients connect and send any
 * request; each gets a fixed response head and `retry:`, then every byte that arrives on the feed port (the bench
 * writer sends each committed row's frame there) is written, as one shared Buffer, to every client.
 *
 *   node dist/bench/raw-ceiling.js --port 0 --feed-port 0
 *
 * Prints `listening on http://HOST:PORT (feed HOST:FEEDPORT)`.
 */
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '0' },
    'feed-port': { type: 'string', default: '0' },
  },
});
const host = values.host!;
const HEAD = Buffer.from(
  'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-cache\r\nConnection: keep-alive\r\n\r\nretry: 2000\n\n',
);
const HEALTH_BODY = '{"ok":true}\n';
const HEALTH = Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${HEALTH_BODY.length}\r\n\r\n${HEALTH_BODY}`);
const clients = new Set<Socket>();

const server = createServer({ noDelay: true }, (socket) => {
  socket.on('error', () => undefined);
  socket.once('data', (request: Buffer) => {
    if (request.toString('latin1', 0, 12) === 'GET /healthz') {
      socket.end(HEALTH);
      return;
    }
    socket.write(HEAD);
    clients.add(socket);
    socket.once('close', () => clients.delete(socket));
  });
});

const feed = createServer((socket) => {
  socket.on('error', () => undefined);
  socket.on('data', (chunk: Buffer) => {
    for (const client of clients) client.write(chunk);
  });
});

server.listen(Number(values.port), host, () => {
  feed.listen(Number(values['feed-port']), host, () => {
    const { port } = server.address() as AddressInfo;
    const feedPort = (feed.address() as AddressInfo).port;
    console.log(`listening on http://${host}:${port} (feed ${host}:${feedPort})`);
  });
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    for (const client of clients) client.destroy();
    process.exit(0);
  });
}
