// The state database's file modes and durability (src/store/db.ts): state.db and its -wal/-shm are 0600 whatever
// the umask, and every connection runs WAL with synchronous=FULL (a committed VM row survives a power loss).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { DB_FILE_MODE, openDb } from '../../src/store/db.js';

const mode = (p: string): number => statSync(p).mode & 0o777;

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-db-'));
  const old = process.umask(0o022); // the default umask of a shell: SQLite alone would make 0644 files
  try {
    fn(dir);
  } finally {
    process.umask(old);
    rmSync(dir, { recursive: true, force: true });
  }
}

test('pragmas: WAL journal and synchronous=FULL (2), foreign keys on', () => {
  withDir((dir) => {
    const db = openDb(join(dir, 'state.db'));
    try {
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
      assert.equal(db.pragma('synchronous', { simple: true }), 2, 'FULL: each commit fsyncs the WAL');
      assert.equal(db.pragma('foreign_keys', { simple: true }), 1);
    } finally {
      db.close();
    }
  });
});

test('state.db, state.db-wal and state.db-shm are 0600 under a 0022 umask', () => {
  withDir((dir) => {
    const path = join(dir, 'state.db');
    const db = openDb(path);
    try {
      db.exec('CREATE TABLE IF NOT EXISTS t (x INTEGER); INSERT INTO t VALUES (1)');
      for (const f of [path, `${path}-wal`, `${path}-shm`]) {
        assert.ok(existsSync(f), `${f} exists while the database is open`);
        assert.equal(mode(f), DB_FILE_MODE, f);
      }
    } finally {
      db.close();
    }
  });
});

test('a database left 0644 by an older Hangar (with its -wal) is made 0600 when opened', () => {
  withDir((dir) => {
    const path = join(dir, 'state.db');
    const old = new Database(path);
    old.pragma('journal_mode = WAL');
    old.exec('CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1)');
    // Keep the WAL around: a second connection that stays open stops the checkpoint-on-close from deleting it.
    const holder = new Database(path);
    holder.prepare('SELECT 1').get();
    old.close();
    for (const f of [path, `${path}-wal`, `${path}-shm`]) if (existsSync(f)) chmodSync(f, 0o644);
    writeFileSync(`${path}-wal`, '', { flag: 'a' });
    const db = openDb(path, []);
    try {
      for (const f of [path, `${path}-wal`, `${path}-shm`]) assert.equal(mode(f), DB_FILE_MODE, f);
    } finally {
      db.close();
      holder.close();
    }
  });
});
