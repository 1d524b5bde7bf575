// Tenants, API keys, snapshot owners and the audit log in the state database (the store's part of src/tenancy/).
// Constructed by the Store over its own handle (the handle never leaves src/store/). Keys are kept as hashes only;
// the audit table refuses UPDATE and DELETE by triggers (migration 5): it is append-only, with no pruning path.
import { HangarError } from '../errors.js';
import {
  DEFAULT_TENANT, NO_QUOTAS, quotaBreach, quotaError, type Principal, type Quotas, type Scope, type Usage,
} from '../tenancy/keys.js';
import type { Db } from './db.js';

export interface TenantRecord {
  id: string;
  createdAt: string;
  quotas: Quotas;
}

export interface KeyRecord {
  id: string;
  tenant: string;
  name: string | null;
  scope: Scope;
  source: 'api' | 'token-file';
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
}

export interface AuditEntry {
  seq: number;
  at: string;
  keyId: string | null;
  tenant: string | null;
  method: string;
  route: string;
  action: string;
  resource: string | null;
  status: number;
  code: string | null;
  requestId: string | null;
}

export interface AuditQuery {
  tenant?: string;
  key?: string;
  resource?: string;
  /** ISO time: entries at or after it. */
  since?: string;
  limit?: number;
}

interface TenantRow { id: string; created_at: string; max_vms: number | null; max_vcpus: number | null; max_mem_mib: number | null; max_disk_mib: number | null; max_viewers: number | null }
interface KeyRow { id: string; tenant_id: string; name: string | null; scope: Scope; source: KeyRecord['source']; created_at: string; expires_at: string | null; revoked_at: string | null }
interface AuditRow { seq: number; at: string; key_id: string | null; tenant_id: string | null; method: string; route: string; action: string; resource: string | null; status: number; code: string | null; request_id: string | null }

const now = (): string => new Date().toISOString();
const toTenant = (r: TenantRow): TenantRecord => ({
  id: r.id, createdAt: r.created_at,
  quotas: { vms: r.max_vms, vcpus: r.max_vcpus, memMiB: r.max_mem_mib, diskMiB: r.max_disk_mib, viewers: r.max_viewers },
});
const toKey = (r: KeyRow): KeyRecord => ({
  id: r.id, tenant: r.tenant_id, name: r.name, scope: r.scope, source: r.source, createdAt: r.created_at, expiresAt: r.expires_at, revokedAt: r.revoked_at,
});
const QUOTA_COLS: Record<keyof Quotas, string> = { vms: 'max_vms', vcpus: 'max_vcpus', memMiB: 'max_mem_mib', diskMiB: 'max_disk_mib', viewers: 'max_viewers' };

export class TenancyStore {
  constructor(private readonly db: Db, private readonly onWrite: () => void = () => undefined) {}

  // ---- tenants
  createTenant(id: string, quotas: Partial<Quotas> = {}): TenantRecord {
    const q = { ...NO_QUOTAS, ...quotas };
    try {
      this.db.prepare('INSERT INTO tenants (id, created_at, max_vms, max_vcpus, max_mem_mib, max_disk_mib, max_viewers) VALUES (?, ?, ?, ?, ?, ?, ?)')
        .run(id, now(), q.vms, q.vcpus, q.memMiB, q.diskMiB, q.viewers);
    } catch (e) {
      if (String((e as Error).message).includes('UNIQUE')) throw new HangarError('TENANT_EXISTS', `a tenant ${id} exists`, { tenant: id });
      throw new HangarError('STORE_ERROR', (e as Error).message, {}, { cause: e });
    }
    return this.mustGetTenant(id);
  }

  getTenant(id: string): TenantRecord | null {
    const r = this.db.prepare('SELECT * FROM tenants WHERE id = ?').get(id) as TenantRow | undefined;
    return r ? toTenant(r) : null;
  }

  mustGetTenant(id: string): TenantRecord {
    const t = this.getTenant(id);
    if (!t) throw new HangarError('TENANT_NOT_FOUND', `no tenant ${id}`, { tenant: id });
    return t;
  }

  listTenants(): TenantRecord[] {
    return (this.db.prepare('SELECT * FROM tenants ORDER BY id').all() as TenantRow[]).map(toTenant);
  }

  /** Changes the given quotas (null lifts one). A quota below today's usage refuses only what comes next. */
  setQuotas(id: string, quotas: Partial<Quotas>): TenantRecord {
    this.mustGetTenant(id);
    for (const [k, v] of Object.entries(quotas) as [keyof Quotas, number | null | undefined][]) {
      if (v !== undefined) this.db.prepare(`UPDATE tenants SET ${QUOTA_COLS[k]} = ? WHERE id = ?`).run(v, id);
    }
    return this.mustGetTenant(id);
  }

  /** Removes a tenant and its keys; the default tenant, and one that still owns VMs or snapshots, are refused. */
  removeTenant(id: string): void {
    this.db.transaction(() => {
      this.mustGetTenant(id);
      if (id === DEFAULT_TENANT) throw new HangarError('TENANT_IN_USE', 'the default tenant cannot be removed', { tenant: id });
      const u = this.usage(id);
      const snaps = (this.db.prepare('SELECT COUNT(*) AS n FROM snapshots WHERE tenant_id = ?').get(id) as { n: number }).n;
      if (u.vms > 0 || snaps > 0) throw new HangarError('TENANT_IN_USE', `tenant ${id} still owns ${u.vms} VM(s) and ${snaps} snapshot(s)`, { tenant: id, vms: u.vms, snapshots: snaps });
      this.db.prepare('DELETE FROM tenants WHERE id = ?').run(id); // its keys go with it (ON DELETE CASCADE)
    })();
  }

  usage(tenant: string): Usage {
    const r = this.db.prepare('SELECT COUNT(*) AS vms, COALESCE(SUM(vcpus), 0) AS vcpus, COALESCE(SUM(mem_mib), 0) AS mem, COALESCE(SUM(disk_mib), 0) AS disk FROM vms WHERE tenant_id = ?')
      .get(tenant) as { vms: number; vcpus: number; mem: number; disk: number };
    return { vms: r.vms, vcpus: r.vcpus, memMiB: r.mem, diskMiB: r.disk };
  }

  /**
   * Refuses one more VM of `tenant` that passes a quota (QUOTA_EXCEEDED naming it). Call it inside the transaction
   * that inserts the VM: usage and insert are then one atomic step for any number of concurrent creates.
   */
  assertQuota(tenant: string, add: Omit<Usage, 'vms'>): void {
    const t = this.mustGetTenant(tenant);
    const breach = quotaBreach(t.quotas, this.usage(tenant), add);
    if (breach) throw quotaError(tenant, breach);
  }

  vmsByState(tenant: string): Record<string, number> {
    const rows = this.db.prepare('SELECT state, COUNT(*) AS n FROM vms WHERE tenant_id = ? GROUP BY state').all(tenant) as { state: string; n: number }[];
    return Object.fromEntries(rows.map((r) => [r.state, r.n]));
  }

  // ---- VMs and snapshots, by owner
  /**
   * The VM `ref` (id or name) names for `p`: a tenant key sees its tenant's VMs only (null for any other, exactly
   * as for a missing one); an admin key sees every VM, a name resolving in its own tenant first.
   */
  findVm(ref: string, p: Principal, admin: boolean): { id: string; tenant: string } | null {
    const r = this.db.prepare(`SELECT id, tenant_id AS tenant FROM vms WHERE (id = @ref OR name = @ref) AND (@all = 1 OR tenant_id = @tenant)
      ORDER BY (id = @ref) DESC, (tenant_id = @tenant) DESC, created_at LIMIT 1`).get({ ref, tenant: p.tenant, all: admin ? 1 : 0 }) as { id: string; tenant: string } | undefined;
    return r ?? null;
  }

  /** The tenant of a snapshot (a snapshot directory without a row — taken before tenants existed — is the default tenant's). */
  snapshotOwner(id: string): string {
    const r = this.db.prepare('SELECT tenant_id AS t FROM snapshots WHERE id = ?').get(id) as { t: string } | undefined;
    return r?.t ?? DEFAULT_TENANT;
  }

  setSnapshotOwner(id: string, tenant: string): void {
    this.db.prepare('INSERT OR REPLACE INTO snapshots (id, tenant_id, created_at) VALUES (?, ?, ?)').run(id, tenant, now());
  }

  forgetSnapshot(id: string): void {
    this.db.prepare('DELETE FROM snapshots WHERE id = ?').run(id);
  }

  // ---- keys
  createKey(k: { id: string; tenant: string; scope: Scope; hash: Buffer; name?: string | null; expiresAt?: string | null }): KeyRecord {
    this.mustGetTenant(k.tenant);
    this.db.prepare('INSERT INTO api_keys (id, tenant_id, name, scope, hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(k.id, k.tenant, k.name ?? null, k.scope, k.hash, now(), k.expiresAt ?? null);
    this.onWrite();
    return this.mustGetKey(k.id);
  }

  getKey(id: string): KeyRecord | null {
    const r = this.db.prepare('SELECT id, tenant_id, name, scope, source, created_at, expires_at, revoked_at FROM api_keys WHERE id = ?').get(id) as KeyRow | undefined;
    return r ? toKey(r) : null;
  }

  mustGetKey(id: string): KeyRecord {
    const k = this.getKey(id);
    if (!k) throw new HangarError('KEY_NOT_FOUND', `no API key ${id}`, { key: id });
    return k;
  }

  /** The key stored under `hash`, whatever its state (the caller judges revoked and expired). */
  keyByHash(hash: Buffer): KeyRecord | null {
    const r = this.db.prepare('SELECT id, tenant_id, name, scope, source, created_at, expires_at, revoked_at FROM api_keys WHERE hash = ?').get(hash) as KeyRow | undefined;
    return r ? toKey(r) : null;
  }

  listKeys(tenant?: string): KeyRecord[] {
    const rows = (tenant
      ? this.db.prepare('SELECT id, tenant_id, name, scope, source, created_at, expires_at, revoked_at FROM api_keys WHERE tenant_id = ? ORDER BY created_at, id').all(tenant)
      : this.db.prepare('SELECT id, tenant_id, name, scope, source, created_at, expires_at, revoked_at FROM api_keys ORDER BY created_at, id').all()) as KeyRow[];
    return rows.map(toKey);
  }

  /** Revokes a key at once (the next request with it is refused); the row stays, for the audit log's key ids. */
  revokeKey(id: string): KeyRecord {
    const k = this.mustGetKey(id);
    if (!k.revokedAt) this.db.prepare('UPDATE api_keys SET revoked_at = ? WHERE id = ?').run(now(), id);
    this.onWrite();
    return this.mustGetKey(id);
  }

  /**
   * The admin key of the token file (/var/lib/hangar/token): created with the default tenant at the first start,
   * and following the file (a replaced file — a new token — replaces the hash and lifts a revocation; the same
   * token keeps its row as it is). So the single-user path and an upgraded state directory keep working.
   */
  syncTokenFileKey(hash: Buffer, newId: string): KeyRecord {
    return this.db.transaction(() => {
      const cur = this.db.prepare("SELECT id, hash FROM api_keys WHERE source = 'token-file'").get() as { id: string; hash: Buffer } | undefined;
      if (cur && Buffer.from(cur.hash).equals(hash)) return this.mustGetKey(cur.id);
      if (cur) this.db.prepare('UPDATE api_keys SET hash = ?, revoked_at = NULL WHERE id = ?').run(hash, cur.id);
      else {
        this.db.prepare("INSERT INTO api_keys (id, tenant_id, name, scope, hash, source, created_at) VALUES (?, ?, 'token file', 'admin', ?, 'token-file', ?)")
          .run(newId, DEFAULT_TENANT, hash, now());
      }
      this.onWrite();
      return this.mustGetKey(cur?.id ?? newId);
    })();
  }

  // ---- audit
  appendAudit(e: Omit<AuditEntry, 'seq' | 'at'>): void {
    this.db.prepare(`INSERT INTO audit (at, key_id, tenant_id, method, route, action, resource, status, code, request_id)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(now(), e.keyId, e.tenant, e.method, e.route, e.action, e.resource, e.status, e.code, e.requestId);
  }

  audit(q: AuditQuery = {}): AuditEntry[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (q.tenant !== undefined) { where.push('tenant_id = ?'); args.push(q.tenant); }
    if (q.key !== undefined) { where.push('key_id = ?'); args.push(q.key); }
    if (q.resource !== undefined) { where.push('resource = ?'); args.push(q.resource); }
    if (q.since !== undefined) { where.push('at >= ?'); args.push(q.since); }
    // The newest `limit` entries, oldest first.
    const rows = this.db.prepare(`SELECT * FROM (SELECT * FROM audit ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT ?) ORDER BY seq`)
      .all(...args, q.limit ?? 100) as AuditRow[];
    return rows.map((r) => ({
      seq: r.seq, at: r.at, keyId: r.key_id, tenant: r.tenant_id, method: r.method, route: r.route, action: r.action,
      resource: r.resource, status: r.status, code: r.code, requestId: r.request_id,
    }));
  }
}
