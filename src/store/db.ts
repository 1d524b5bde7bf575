// Durable state in SQLite (better-sqlite3 v12: synchronous, so a transaction is a plain function call and the
// allocation check-and-insert cannot interleave with another request). The file and its -wal/-shm are 0600 (SQLite
// gives the -wal and -shm the mode of the database file); commits are durable (WAL, synchronous=FULL).
import Database from 'better-sqlite3';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { HangarError } from '../errors.js';
import { MIGRATIONS, type Migration } from './migrations.js';

export type Db = Database.Database;

export const DB_FILE_MODE = 0o600;

/**
 * The pragmas every connection gets. WAL with synchronous=FULL: each commit fsyncs the WAL, so a VM row written
 * before a power loss is there after it (NORMAL may lose the last commits; reconcile would then take a VM's run
 * directory, disk included, for an orphan). Lifecycle writes are a few per VM action, so one fsync each is cheap.
 */
export const DB_PRAGMAS = ['journal_mode = WAL', 'foreign_keys = ON', 'busy_timeout = 5000', 'synchronous = FULL'] as const;

/** Creates the database file 0600 before SQLite does (its -wal/-shm copy that mode) and fixes existing ones. */
function restrictDbFiles(path: string): void {
  closeSync(openSync(path, 'a', DB_FILE_MODE));
  for (const f of [path, `${path}-wal`, `${path}-shm`]) if (existsSync(f)) chmodSync(f, DB_FILE_MODE);
}

export function openDb(path: string, migrations: readonly Migration[] = MIGRATIONS): Db {
  let db: Db;
  try {
    if (path !== ':memory:') {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      restrictDbFiles(path);
    }
    db = new Database(path);
  } catch (e) {
    throw new HangarError('STORE_ERROR', `cannot open state database ${path}: ${(e as Error).message}`, { path }, { cause: e });
  }
  for (const p of DB_PRAGMAS) db.pragma(p);
  migrate(db, migrations);
  return db;
}

export function migrate(db: Db, migrations: readonly Migration[] = MIGRATIONS): number[] {
  const current = db.pragma('user_version', { simple: true }) as number;
  const newest = Math.max(0, ...migrations.map((m) => m.version));
  if (current > newest) {
    throw new HangarError('STORE_ERROR', `state database is at schema ${current}, newer than this Hangar (${newest})`, { current, newest });
  }
  const applied: number[] = [];
  const pending = [...migrations].sort((a, b) => a.version - b.version).filter((m) => m.version > current);
  if (pending.length === 0) return applied;
  // Foreign keys off while migrating (a table rebuild must not cascade), checked before they are back on.
  const fks = db.pragma('foreign_keys', { simple: true }) as number;
  db.pragma('foreign_keys = OFF');
  try {
    for (const m of pending) {
      db.transaction(() => {
        db.exec(m.sql);
        m.run?.(db);
        const broken = db.pragma('foreign_key_check') as unknown[];
        if (broken.length) throw new HangarError('STORE_ERROR', `migration ${m.version} leaves ${broken.length} broken foreign key(s)`, { version: m.version });
        db.pragma(`user_version = ${m.version}`);
      })();
      applied.push(m.version);
    }
  } finally {
    if (fks) db.pragma('foreign_keys = ON');
  }
  return applied;
}
