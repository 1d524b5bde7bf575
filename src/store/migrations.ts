// Numbered migrations. Append only: a released migration is never edited; PRAGMA user_version records the last
// one applied.

/** What a migration's `run` may do with the database (structural: this file imports nothing from db.ts). */
export interface MigrationDb {
  exec(sql: string): unknown;
  prepare(sql: string): { all(...params: unknown[]): unknown[]; get(...params: unknown[]): unknown };
}

export interface Migration {
  version: number;
  name: string;
  sql: string;
  /** Runs after `sql`, in the same transaction, for steps that depend on the schema as it is (a table rebuild). */
  run?: (db: MigrationDb) => void;
}

/**
 * Rebuilds `vms` so that a VM's name is unique within its tenant (UNIQUE(tenant_id, name)) instead of across the
 * host, adding tenant_id (existing rows: the default tenant) and disk_mib. SQLite cannot drop a column constraint,
 * so the table is copied (the 12-step way: the migration runner turns foreign keys off around migrations). The new
 * table is derived from the current CREATE statement, so columns an earlier migration added are kept, and the
 * table's own indexes and triggers are recreated.
 */
function tenantScopedVms(db: MigrationDb): void {
  const table = db.prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'vms'").get() as { sql: string };
  const extras = (db.prepare("SELECT sql FROM sqlite_master WHERE type IN ('index', 'trigger') AND tbl_name = 'vms' AND sql IS NOT NULL").all() as { sql: string }[]).map((r) => r.sql);
  const unique = /\bname(\s+)TEXT NOT NULL UNIQUE/;
  if (!unique.test(table.sql)) throw new Error('migration 5: vms.name is not declared TEXT NOT NULL UNIQUE');
  const body = table.sql.replace(unique, 'name$1TEXT NOT NULL').replace(/^CREATE TABLE\s+"?vms"?/, 'CREATE TABLE vms_v5').replace(/\)\s*$/, '');
  db.exec(`${body},
        tenant_id   TEXT NOT NULL DEFAULT 'default' REFERENCES tenants(id),
        disk_mib    INTEGER,            -- the VM's disk as created (the disk quota counts it)
        UNIQUE (tenant_id, name)
      )`);
  db.exec(`INSERT INTO vms_v5 SELECT *, 'default', NULL FROM vms;
    DROP TABLE vms;
    ALTER TABLE vms_v5 RENAME TO vms;
    CREATE INDEX vms_tenant ON vms(tenant_id);`);
  for (const sql of extras) db.exec(sql);
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
  {
    version: 5,
    name: 'tenants, API keys, snapshot owners, tenant columns, audit log',
    sql: `
      CREATE TABLE tenants (
        id            TEXT PRIMARY KEY,
        created_at    TEXT NOT NULL,
        max_vms       INTEGER,          -- quotas; NULL: no limit
        max_vcpus     INTEGER,
        max_mem_mib   INTEGER,
        max_disk_mib  INTEGER,
        max_viewers   INTEGER
      );
      INSERT INTO tenants (id, created_at) VALUES ('default', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
      CREATE TABLE api_keys (
        id          TEXT PRIMARY KEY,   -- key-0123abcd: what the audit log and the API name
        tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        name        TEXT,
        scope       TEXT NOT NULL CHECK (scope IN ('admin', 'write', 'read', 'viewer')),
        hash        BLOB NOT NULL UNIQUE, -- sha256 of the key; the key itself is never stored
        source      TEXT NOT NULL DEFAULT 'api' CHECK (source IN ('api', 'token-file')),
        created_at  TEXT NOT NULL,
        expires_at  TEXT,
        revoked_at  TEXT
      );
      CREATE UNIQUE INDEX api_keys_token_file ON api_keys(source) WHERE source = 'token-file';
      CREATE TABLE snapshots (
        id          TEXT PRIMARY KEY,   -- the snapshot directory's id; a directory without a row is the default tenant's
        tenant_id   TEXT NOT NULL REFERENCES tenants(id),
        created_at  TEXT NOT NULL
      );
      ALTER TABLE events ADD COLUMN tenant_id TEXT; -- NULL: a host event, shown to admin keys only
      UPDATE events SET tenant_id = 'default' WHERE vm_id IS NOT NULL;
      CREATE INDEX events_tenant ON events(tenant_id, seq);
      CREATE TABLE audit (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        at          TEXT NOT NULL,
        key_id      TEXT,               -- the key's id, never the key
        tenant_id   TEXT,
        method      TEXT NOT NULL,
        route       TEXT NOT NULL,
        action      TEXT NOT NULL,
        resource    TEXT,
        status      INTEGER NOT NULL,
        code        TEXT,
        request_id  TEXT
      );
      CREATE INDEX audit_key ON audit(key_id, seq);
      CREATE INDEX audit_tenant ON audit(tenant_id, seq);
      CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
      CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    `,
    run: tenantScopedVms,
  },
  {
    version: 6,
    name: 'warm pools: their templates and counters, and which VM waits in which pool',
    sql: `
      CREATE TABLE pools (
        name          TEXT PRIMARY KEY,
        template      TEXT NOT NULL,    -- JSON: {"snapshot": id} or {"profile": name}
        snapshot_id   TEXT,             -- the golden snapshot members are cloned from (a profile's: made by the pool)
        size          INTEGER NOT NULL,
        created_at    TEXT NOT NULL,
        claims        INTEGER NOT NULL DEFAULT 0,
        misses        INTEGER NOT NULL DEFAULT 0,
        refill_ms     INTEGER           -- the last member's create→paused-and-ready time
      );
      CREATE TABLE pool_vms (
        vm_id         TEXT PRIMARY KEY REFERENCES vms(id) ON DELETE CASCADE,
        pool          TEXT NOT NULL REFERENCES pools(name) ON DELETE CASCADE,
        state         TEXT NOT NULL CHECK (state IN ('filling', 'ready')),
        since         TEXT NOT NULL
      );
      CREATE INDEX pool_vms_pool ON pool_vms(pool, state, since);
      -- Members wait in a tenant of their own (no quotas; never listed as anyone's VM) until a claim moves them.
      INSERT INTO tenants (id, created_at) VALUES ('hangar-pool', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
    `,
  },
  {
    version: 7,
    name: 'volumes, their attachments, per-VM idle settings',
    // A volume is a sparse ext4 file in the state dir (src/volume/); an attachment puts it in one of a VM's volume
    // slots and mounts it at a guest path. Attachments die with their VM (cascade); volumes outlive it.
    sql: `
      CREATE TABLE volumes (
        id          TEXT PRIMARY KEY,   -- vol-0123abcd
        tenant_id   TEXT NOT NULL REFERENCES tenants(id),
        name        TEXT NOT NULL,
        size_mib    INTEGER NOT NULL,
        file        TEXT NOT NULL,      -- the ext4 image on the host
        source      TEXT,               -- the volume it is a snapshot of
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        UNIQUE (tenant_id, name)
      );
      CREATE TABLE volume_attachments (
        volume_id   TEXT NOT NULL REFERENCES volumes(id),
        vm_id       TEXT NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
        slot        INTEGER NOT NULL,
        path        TEXT NOT NULL,      -- the mount point in the guest
        read_only   INTEGER NOT NULL DEFAULT 0,
        created_at  TEXT NOT NULL,
        UNIQUE (vm_id, slot),
        UNIQUE (vm_id, path)
      );
      -- One VM at a time per volume (read-only is the guest's mount; QEMU cannot share a read-write device's file).
      CREATE UNIQUE INDEX volume_one_vm ON volume_attachments(volume_id);
      CREATE TABLE vm_idle (
        vm_id       TEXT PRIMARY KEY REFERENCES vms(id) ON DELETE CASCADE,
        timeout_s   INTEGER,            -- NULL: the config's default; 0: never idle
        action      TEXT CHECK (action IN ('hibernate', 'pause'))  -- NULL: the config's default
      );
    `,
  },
  {
    version: 8,
    name: 'E2B sandbox fields (src/e2b/persist.ts)',
    // One row per VM the E2B API created or adopted: its fields (metadata, envs, envd access token, timeout) as JSON.
    sql: `
      CREATE TABLE e2b_sandboxes (
        vm_id   TEXT PRIMARY KEY REFERENCES vms(id) ON DELETE CASCADE,
        fields  TEXT NOT NULL
      );
    `,
  },
];
