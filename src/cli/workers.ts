import cluster, { type Worker } from 'node:cluster';
import type { Logger } from '../logger.js';
import type { ServerOptions } from '../options.js';

/** What a worker tells the primary once it listens, or why it could not. */
export type WorkerMessage = { type: 'listening'; url: string; streams: string } | { type: 'failed'; message: string };

/** Sends a message to the primary; a no-op outside a cluster worker. */
export function tellPrimary(message: WorkerMessage): void {
  process.send?.(message);
}

/**
 * `--workers N`: N processes, each with its own hub, sharing one port (node:cluster hands out
 * connections). Each worker reads every row once; a client's stream lives in one worker.
 * The primary prints the one start-up line when all listen, restarts a worker that dies, and on SIGINT/SIGTERM
 * passes the signal on and exits 0 once they are gone.
 */
export function runPrimary(options: Readonly<ServerOptions>, logger: Logger, onListening: (message: Extract<WorkerMessage, { type: 'listening' }>) => void): void {
  let stopping = false;
  let listening = 0;
  const workers = new Set<Worker>();

  const fork = (): void => {
    const worker = cluster.fork();
    workers.add(worker);
    worker.on('message', (message: WorkerMessage) => {
      if (message.type === 'failed') {
        console.error(`error: ${message.message}`);
        stopAll(1);
      } else if (++listening === options.workers) {
        onListening(message);
      }
    });
    worker.on('exit', (code, signal) => {
      workers.delete(worker);
      if (stopping) {
        if (workers.size === 0) process.exit(exitCode);
        return;
      }
      logger.warn(`worker ${worker.process.pid} exited (${signal ?? code}); starting another`);
      listening--;
      setTimeout(fork, 500).unref();
    });
  };

  let exitCode = 0;
  const stopAll = (code: number): void => {
    if (stopping) return;
    stopping = true;
    exitCode = code;
    for (const worker of workers) worker.process.kill('SIGTERM');
    if (workers.size === 0) process.exit(code);
    setTimeout(() => process.exit(code), 1800).unref();
  };

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (stopping) process.exit(0);
      logger.info(`${signal}: stopping ${workers.size} worker(s)`);
      stopAll(0);
    });
  }
  for (let i = 0; i < options.workers; i++) fork();
}
