import { rmSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';

/** Every child process and temp dir a test starts, so a failing test still leaves nothing behind. */
const children = new Set<ChildProcess>();
const directories = new Set<string>();

export function trackChild(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

export function trackDirectory(path: string): string {
  directories.add(path);
  return path;
}

export function removeDirectory(path: string): void {
  rmSync(path, { recursive: true, force: true });
  directories.delete(path);
}

/** Kill what is left and remove temp dirs; runs at exit too, in case a test threw before its own cleanup. */
export function cleanUpEverything(): void {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
  for (const path of directories) rmSync(path, { recursive: true, force: true });
  directories.clear();
}

process.once('exit', cleanUpEverything);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    cleanUpEverything();
    process.exit(130);
  });
}
