import { SqliteSse, validateThenCreate } from '../sqlite-sse.js';
import type { SqliteSseOptions } from '../library-options.js';

/** An adapter's instance: one passed in (the caller closes it) or one it creates from options (it closes it). */
export interface AdapterInstance {
  /** Resolves once the database is open; rejects with the CLI's one-line SseError. */
  readonly ready: Promise<SqliteSse>;
  /** The instance once ready, else undefined. */
  current(): SqliteSse | undefined;
  /** Close the instance if the adapter created it; an instance passed in is left to its owner. Idempotent. */
  close(): Promise<void>;
}

/** Options are validated now (a typo throws where the adapter is called); the database opens in the background. */
export function adapterInstance(optionsOrInstance: SqliteSseOptions | SqliteSse): AdapterInstance {
  if (optionsOrInstance instanceof SqliteSse) {
    const live = optionsOrInstance;
    return { ready: Promise.resolve(live), current: () => live, close: () => Promise.resolve() };
  }
  let live: SqliteSse | undefined;
  const ready = validateThenCreate(optionsOrInstance)().then((created) => (live = created));
  // Requests and `ready` report a failure; nobody awaiting it must not crash the host with an unhandled rejection.
  ready.catch(() => {});
  let closing: Promise<void> | undefined;
  const close = () => (closing ??= ready.then((created) => created.close(), () => undefined));
  return { ready, current: () => live, close };
}
