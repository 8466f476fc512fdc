import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import { openError } from '../source/table-reader.js';

const quoteIdentifier = (name: string): string => '"' + name.replace(/"/g, '""') + '"';

/**
 * Create the database file and/or the table with the demo schema, `(id integer primary key autoincrement,
 * message text)`, in WAL mode. The only time sqlite-sse writes to a database; it does nothing to an existing table.
 * Returns what it created, for the start-up line.
 */
export function createDemoTable(path: string, table: string): 'database' | 'table' | 'nothing' {
  const existed = existsSync(path);
  let db: Database.Database | undefined;
  try {
    db = new Database(path, { timeout: 5000 });
    const found = db.prepare(`SELECT 1 FROM sqlite_master WHERE name = ? COLLATE NOCASE AND type IN ('table', 'view')`).get(table);
    if (found) return 'nothing';
    // WAL lets the server read while writers commit, without SQLITE_BUSY.
    if (!existed) db.pragma('journal_mode = WAL');
    db.exec(`CREATE TABLE IF NOT EXISTS ${quoteIdentifier(table)} (id integer primary key autoincrement, message text)`);
    return existed ? 'table' : 'database';
  } catch (error) {
    throw openError(path, error);
  } finally {
    db?.close();
  }
}
