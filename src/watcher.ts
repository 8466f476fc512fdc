import { EventEmitter } from 'node:events';
import { basename, dirname, resolve } from 'node:path';
import { watch, type FSWatcher } from 'chokidar';

type WatcherEvents = {
  /** Something happened to one of the database's files: a doorbell, not a count, and not a promise that a commit is visible. */
  doorbell: [file: string];
  error: [error: Error];
};

/**
 * Watches the directory that holds the database for events on `DB`, `DB-wal`, `DB-journal` and `DB-shm`.
 *
 * It listens to chokidar's `raw` events, which are fs.watch's own: chokidar's `change` events are throttled
 * to one per 50 ms per path and drop commits (DESIGN.md §3), and watching only the `.db` file misses WAL commits.
 */
export class DatabaseWatcher extends EventEmitter<WatcherEvents> {
  readonly directory: string;
  private readonly names: ReadonlySet<string>;
  private watcher: FSWatcher | undefined;
  private closing: Promise<void> | undefined;

  constructor(databasePath: string) {
    super();
    const absolute = resolve(databasePath);
    const name = basename(absolute);
    this.directory = dirname(absolute);
    this.names = new Set([name, name + '-wal', name + '-journal', name + '-shm']);
  }

  /** Resolves once the watch is in place: a commit after this rings the doorbell. */
  start(): Promise<void> {
    const watcher = watch(this.directory, {
      depth: 0,
      ignoreInitial: true,
      // Watch only the database's own files, not every file that shares its directory.
      ignored: (path) => path !== this.directory && !this.names.has(basename(path)),
    });
    this.watcher = watcher;
    watcher.on('raw', (_event, path, details) => this.onRaw(path, (details as { watchedPath?: string }).watchedPath));
    watcher.on('error', (error) => this.emit('error', error as Error));
    return new Promise((resolveReady) => watcher.once('ready', () => resolveReady()));
  }

  private onRaw(path: string | undefined, watchedPath: string | undefined): void {
    // A directory watcher reports the file name; a file watcher reports its own name or nothing.
    const name = basename(path || watchedPath || '');
    if (this.names.has(name)) this.emit('doorbell', name);
  }

  /** Stops watching. Idempotent: every call returns the same promise. */
  close(): Promise<void> {
    this.closing ??= this.watcher ? this.watcher.close() : Promise.resolve();
    return this.closing;
  }
}
