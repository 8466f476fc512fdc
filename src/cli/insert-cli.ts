#!/usr/bin/env node
// `npm run insert -- "hello" ["more" ...] [--db PATH] [--table NAME]`: a writer of its own, in its own process,
// as any user's program would be. The server never writes; this script is the demo's writer.
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { createDemoTable } from './demo-database.js';

const { values, positionals } = parseArgs({
  options: { db: { type: 'string', default: './sse.db' }, table: { type: 'string', default: 'messages' }, help: { type: 'boolean' } },
  allowPositionals: true,
});
if (values.help || positionals.length === 0) {
  console.log('Usage: npm run insert -- "message" ["message" ...] [--db ./sse.db] [--table messages]');
  process.exit(values.help ? 0 : 1);
}
try {
  createDemoTable(values.db!, values.table!);
  const db = new Database(values.db!, { timeout: 5000 });
  const insert = db.prepare(`INSERT INTO "${values.table!.replace(/"/g, '""')}" (message) VALUES (?)`);
  const ids = db.transaction((messages: string[]) => messages.map((message) => Number(insert.run(message).lastInsertRowid)))(positionals);
  db.close();
  console.log(`inserted ${ids.length} row(s) into ${values.table} of ${values.db}: id ${ids.join(', ')}`);
} catch (error) {
  console.error(`error: ${(error as Error).message}`);
  process.exit(1);
}
