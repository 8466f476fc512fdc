import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';

/**
 * What a writer would change: the bytes and mtime of the database file and of its rollback journal or WAL.
 * (`-shm` is left out: it is shared memory that every reader, read-only ones included, writes read marks to.)
 */
export function databaseFingerprint(path: string): string {
  return ['', '-wal', '-journal']
    .map((suffix) => {
      const file = path + suffix;
      if (!existsSync(file)) return `${suffix || 'db'}: none`;
      const stats = statSync(file, { bigint: true });
      const hash = createHash('sha256').update(readFileSync(file)).digest('hex').slice(0, 16);
      return `${suffix || 'db'}: ${stats.size} bytes sha256 ${hash} mtime ${stats.mtimeNs}`;
    })
    .join('; ');
}
