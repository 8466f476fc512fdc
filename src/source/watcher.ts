import { EventEmitter } from 'node:events';
import { watch as watchDirectory, type FSWatcher as NativeWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { watch as chokidarWatch, type FSWatcher as ChokidarWatcher } from 'chokidar';

/** Which notification layer rings the doorbell. */
export type WatcherBackend = 'native' | 'chokidar';

type WatcherEvents = {
  /** Something happened to one of the database's files: a doorbell, not a count, and not a promise that a commit is visible. */
  doorbell: [file: string];
  error: [error: Error];
};

/**
 * Watches the directory that holds the database for events on `DB`, `DB-wal`, `DB-journal` and `DB-shm`
 * (the `.db` file alone changes only at WAL checkpoints).
 *
 * `native` (the default) is `fs.watch` on the directory: one inotify watch, an event per write, nothing else.
 * `chokidar` listens to chokidar's `raw` events, which are the same fs.watch events; chokidar's own `change` events are
 * throttled to one per 50 ms per path and drop commits (DESIGN.md §3). Chokidar also re-reads the directory and
 * stats files on every event, which measured 886 ms of CPU per 1,000 WAL commits against 54 ms for `native`
 * (bench/RESULTS.md), so it is kept only as an option for file systems where it does better.
 */
export class DatabaseWatcher extends EventEmitter<WatcherEvents> {
  readonly directory: string;
  readonly backend: WatcherBackend;
  private readonly names: ReadonlySet<string>;
  private native: NativeWatcher | undefined;
  private chokidar: ChokidarWatcher | undefined;
  private closing: Promise<void> | undefined;

  constructor(databasePath: string, backend: WatcherBackend = 'native') {
    super();
    const absolute = resolve(databasePath);
    const name = basename(absolute);
    this.directory = dirname(absolute);
    this.backend = backend;
    this.names = new Set([name, name + '-wal', name + '-journal', name + '-shm']);
  }

  /** Resolves once the watch is in place: a commit after this rings the doorbell. */
  start(): Promise<void> {
    if (this.backend === 'native') {
      this.native = watchDirectory(this.directory, { persistent: true }, (_event, file) => this.onEvent(file ?? undefined));
      this.native.on('error', (error) => this.emit('error', error));
      return Promise.resolve();
    }
    const watcher = chokidarWatch(this.directory, {
      depth: 0,
      ignoreInitial: true,
      // Watch only the database's own files, not every file that shares its directory.
      ignored: (path) => path !== this.directory && !this.names.has(basename(path)),
    });
    this.chokidar = watcher;
    watcher.on('raw', (_event, path, details) => this.onEvent(path || (details as { watchedPath?: string }).watchedPath));
    watcher.on('error', (error) => this.emit('error', error as Error));
    return new Promise((resolveReady) => watcher.once('ready', () => resolveReady()));
  }

  private onEvent(path: string | undefined): void {
    // Some platforms give no file name: then any event in the directory rings.
    if (path === undefined) {
      this.emit('doorbell', '');
      return;
    }
    const name = basename(path);
    if (this.names.has(name)) this.emit('doorbell', name);
  }

  /** Stops watching. Idempotent: every call returns the same promise. */
  close(): Promise<void> {
    this.native?.close();
    this.closing ??= this.chokidar ? this.chokidar.close() : Promise.resolve();
    return this.closing;
  }
}
