// Numbered migrations. Append only: a released migration is never edited; PRAGMA user_version records the last
// one applied.

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'vms, allocations, events',
    sql: `
      CREATE TABLE vms (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        state       TEXT NOT NULL,
        image_id    TEXT NOT NULL,
        profile     TEXT NOT NULL,
        vmm         TEXT NOT NULL,
        vcpus       INTEGER NOT NULL,
        mem_mib     INTEGER NOT NULL,
        ttl_s       INTEGER,
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        expires_at  TEXT,
        pid         INTEGER,
        run_dir     TEXT NOT NULL,
        spec        TEXT NOT NULL,      -- JSON MachineSpec as last started
        net         TEXT,               -- JSON per-VM network plan
        boot_ms     INTEGER,
        last_error  TEXT,               -- JSON {code,message,details}
        exit        TEXT                -- JSON ProcessExit
      );
      CREATE TABLE allocations (
        vm_id  TEXT NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
        kind   TEXT NOT NULL CHECK (kind IN ('ip', 'mac', 'tap')),
        value  TEXT NOT NULL,
        UNIQUE (kind, value)            -- the database itself refuses a double allocation
      );
      CREATE INDEX allocations_vm ON allocations(vm_id);
      CREATE TABLE events (
        seq     INTEGER PRIMARY KEY AUTOINCREMENT,
        at      TEXT NOT NULL,
        vm_id   TEXT,
        type    TEXT NOT NULL,
        data    TEXT NOT NULL DEFAULT '{}'
      );
      CREATE INDEX events_vm ON events(vm_id);
    `,
  },
  {
    version: 2,
    name: 'clones and hibernation',
    sql: `
      ALTER TABLE vms ADD COLUMN snapshot_id TEXT;   -- the golden snapshot a clone was restored from
      ALTER TABLE vms ADD COLUMN hibernation TEXT;   -- JSON: the saved state of a hibernated VM (see src/snapshot/)
    `,
  },
  {
    version: 3,
    name: 'viewer nonces',
    // Viewer tokens are signed over this per-VM value: it dies with the row, and rotating it revokes every token.
    sql: `
      ALTER TABLE vms ADD COLUMN viewer_nonce BLOB;
      UPDATE vms SET viewer_nonce = randomblob(16) WHERE viewer_nonce IS NULL;
    `,
  },
  {
    version: 4,
    name: 'network policy',
    // JSON NetworkPolicy (src/net/egress/policy.ts): egress, group, limits. NULL: the config's default.
    sql: `
      ALTER TABLE vms ADD COLUMN net_policy TEXT;
    `,
  },
];
