import { removeDirectory } from './cleanup.js';
import { createMessagesDatabase, sqlite, tempDirectory } from './database.js';
import { httpGet } from './prom-text.js';
import { startServer, type ServerProcess } from './server-process.js';
import { SseStream } from './sse-stream.js';
import { sleep } from './wait.js';
import { WsRecorder, type WsRecorderOptions } from './ws-recorder.js';

/**
 * A fresh database, one real server process over it, and every SSE/WebSocket client a test opens on it.
 * `run` disposes of all of them (clients closed, server killed, temp dir removed) whether the test passes or throws.
 */
export class LiveFixture {
  readonly directory: string;
  readonly db: string;
  private current: ServerProcess | undefined;
  /** Servers started with `startAnother`, stopped at the end too. */
  private readonly others: ServerProcess[] = [];
  private readonly recorders: WsRecorder[] = [];
  private readonly streams: SseStream[] = [];

  private constructor(journalMode: string) {
    this.directory = tempDirectory();
    this.db = createMessagesDatabase(this.directory, journalMode);
  }

  static async run(body: (fixture: LiveFixture) => Promise<void>, journalMode = 'wal'): Promise<void> {
    const fixture = new LiveFixture(journalMode);
    try {
      await body(fixture);
    } finally {
      await fixture.dispose();
    }
  }

  /** Start the CLI over this database (`--db` is added). */
  async start(args: string[] = []): Promise<ServerProcess> {
    this.current = await startServer(['--db', this.db, ...args]);
    return this.current;
  }

  /**
   * Start one more server over the same database (`--db` is added), e.g. one with a tiny `--history-rows` whose
   * replays come from the database; `sse`/`ws` reach it with their `on` argument. Stopped by `run` as well.
   */
  async startAnother(args: string[] = []): Promise<ServerProcess> {
    const server = await startServer(['--db', this.db, ...args]);
    this.others.push(server);
    return server;
  }

  get server(): ServerProcess {
    if (!this.current) throw new Error('server not started');
    return this.current;
  }

  /** Insert `count` rows `seed-1`, `seed-2`, ... with the sqlite3 shell (one transaction). */
  seed(count: number, prefix = 'seed'): void {
    sqlite(
      this.db,
      `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${count}) INSERT INTO messages(message) SELECT '${prefix}-' || i FROM n;`,
    );
  }

  /** A WebSocket client on `pathAndQuery` (default `/ws`), closed at the end. */
  ws(pathAndQuery = '/ws', options: WsRecorderOptions = {}, on: ServerProcess = this.server): WsRecorder {
    const recorder = new WsRecorder(`ws://127.0.0.1:${on.port}${pathAndQuery}`, options);
    this.recorders.push(recorder);
    return recorder;
  }

  /** A raw SSE client on `pathAndQuery` (default `/events`), closed at the end; `keepRaw` keeps the bytes in `raw`. */
  sse(pathAndQuery = '/events', headers: Record<string, string> = {}, on: ServerProcess = this.server, keepRaw = false): SseStream {
    const stream = new SseStream(on.url + pathAndQuery, headers, keepRaw);
    this.streams.push(stream);
    return stream;
  }

  async health(): Promise<{ clients: number; lastId: number; ringOldestId: number | null; ringRows: number; ringBytes: number; [key: string]: unknown }> {
    const answer = await httpGet(this.server.url + '/healthz');
    return JSON.parse(answer.body);
  }

  /** Wait until the server counts exactly `count` open streams (closes are processed asynchronously). */
  async waitForClients(count: number, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const seen = (await this.health()).clients;
      if (seen === count) return;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${count} clients on /healthz (it says ${seen})`);
      await sleep(20);
    }
  }

  async dispose(): Promise<void> {
    for (const recorder of this.recorders.splice(0)) recorder.terminate();
    for (const stream of this.streams.splice(0)) stream.close();
    try {
      for (const server of this.others.splice(0)) await server.stop('SIGKILL');
      await this.current?.stop('SIGKILL');
    } finally {
      removeDirectory(this.directory);
    }
  }
}
