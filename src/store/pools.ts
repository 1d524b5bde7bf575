// Warm pools in the state database (migration 6): each pool's template, size and counters, and which VM waits in
// which pool. Members are ordinary VM rows in the pool tenant (POOL_TENANT); a claim moves one to the claimer's
// tenant under its new name, within that tenant's quotas, in one transaction — so two claims never get one VM and
// a claim over quota leaves the member where it was. Constructed by the Store over its own handle.
import { HangarError } from '../errors.js';
import { POOL_TENANT, type PoolMember, type PoolRecord, type PoolTemplate } from '../pool/plan.js';
import type { Db } from './db.js';
import type { TenancyStore } from './tenancy.js';

interface PoolRow { name: string; template: string; snapshot_id: string | null; size: number; created_at: string; claims: number; misses: number; refill_ms: number | null }
interface MemberRow { vm_id: string; pool: string; state: PoolMember['state']; since: string }

const now = (): string => new Date().toISOString();
const toPool = (r: PoolRow): PoolRecord => ({
  name: r.name, template: JSON.parse(r.template) as PoolTemplate, snapshotId: r.snapshot_id, size: r.size, createdAt: r.created_at,
  claims: r.claims, misses: r.misses, refillMs: r.refill_ms,
});
const toMember = (r: MemberRow): PoolMember => ({ vmId: r.vm_id, pool: r.pool, state: r.state, since: r.since });

export class PoolStore {
  constructor(private readonly db: Db, private readonly tenancy: TenancyStore, private readonly onWrite: () => void = () => undefined) {}

  create(p: { name: string; template: PoolTemplate; size: number; snapshotId: string | null }): PoolRecord {
    try {
      this.db.prepare('INSERT INTO pools (name, template, snapshot_id, size, created_at) VALUES (?, ?, ?, ?, ?)').run(p.name, JSON.stringify(p.template), p.snapshotId, p.size, now());
    } catch (e) {
      if (/UNIQUE constraint failed: pools\.name/.test(String((e as Error).message))) throw new HangarError('CONFLICT', `a pool named ${p.name} exists`, { name: p.name });
      throw new HangarError('STORE_ERROR', (e as Error).message, {}, { cause: e });
    }
    return this.must(p.name);
  }

  get(name: string): PoolRecord | null {
    const r = this.db.prepare('SELECT * FROM pools WHERE name = ?').get(name) as PoolRow | undefined;
    return r ? toPool(r) : null;
  }

  must(name: string): PoolRecord {
    const p = this.get(name);
    if (!p) throw new HangarError('POOL_NOT_FOUND', `no pool ${name}`, { name });
    return p;
  }

  list(): PoolRecord[] {
    return (this.db.prepare('SELECT * FROM pools ORDER BY name').all() as PoolRow[]).map(toPool);
  }

  setSnapshot(name: string, snapshotId: string): void {
    this.db.prepare('UPDATE pools SET snapshot_id = ? WHERE name = ?').run(snapshotId, name);
  }

  /** The pool row goes; its members' rows go with it (ON DELETE CASCADE), their VMs are the caller's to destroy. */
  remove(name: string): void {
    this.db.prepare('DELETE FROM pools WHERE name = ?').run(name);
  }

  members(pool?: string): PoolMember[] {
    const rows = pool === undefined
      ? this.db.prepare('SELECT * FROM pool_vms ORDER BY since, vm_id').all()
      : this.db.prepare('SELECT * FROM pool_vms WHERE pool = ? ORDER BY since, vm_id').all(pool);
    return (rows as MemberRow[]).map(toMember);
  }

  addMember(vmId: string, pool: string): void {
    this.db.prepare("INSERT INTO pool_vms (vm_id, pool, state, since) VALUES (?, ?, 'filling', ?)").run(vmId, pool, now());
  }

  markReady(vmId: string, refillMs: number): void {
    this.db.transaction(() => {
      const m = this.db.prepare("UPDATE pool_vms SET state = 'ready', since = ? WHERE vm_id = ? RETURNING pool").get(now(), vmId) as { pool: string } | undefined;
      if (m) this.db.prepare('UPDATE pools SET refill_ms = ? WHERE name = ?').run(refillMs, m.pool);
    })();
  }

  dropMember(vmId: string): void {
    this.db.prepare('DELETE FROM pool_vms WHERE vm_id = ?').run(vmId);
  }

  countMiss(pool: string): void {
    this.db.prepare('UPDATE pools SET misses = misses + 1 WHERE name = ?').run(pool);
  }

  /**
   * Takes ready member `vmId` out of its pool for `tenant` under `name`: quotas checked, the row moved and renamed,
   * the claim counted — all or nothing. POOL_EMPTY when another claim took it first.
   */
  claim(vmId: string, tenant: string, name: string): void {
    this.db.transaction(() => {
      const m = this.db.prepare("SELECT * FROM pool_vms WHERE vm_id = ? AND state = 'ready'").get(vmId) as MemberRow | undefined;
      if (!m) throw new HangarError('POOL_EMPTY', `VM ${vmId} is no longer waiting in a pool`, { vm: vmId });
      const vm = this.db.prepare('SELECT vcpus, mem_mib, disk_mib FROM vms WHERE id = ? AND tenant_id = ?').get(vmId, POOL_TENANT) as { vcpus: number; mem_mib: number; disk_mib: number | null } | undefined;
      if (!vm) throw new HangarError('POOL_EMPTY', `VM ${vmId} is not a pool member`, { vm: vmId });
      this.tenancy.assertQuota(tenant, { vcpus: vm.vcpus, memMiB: vm.mem_mib, diskMiB: vm.disk_mib ?? 0 });
      try {
        this.db.prepare('UPDATE vms SET tenant_id = ?, name = ?, updated_at = ? WHERE id = ?').run(tenant, name, now(), vmId);
      } catch (e) {
        if (/UNIQUE constraint failed: vms\.(tenant_id, vms\.)?name/.test(String((e as Error).message))) throw new HangarError('VM_NAME_TAKEN', `a VM named ${name} exists`, { name });
        throw new HangarError('STORE_ERROR', (e as Error).message, {}, { cause: e });
      }
      this.db.prepare('UPDATE events SET tenant_id = ? WHERE vm_id = ?').run(tenant, vmId);
      this.db.prepare('DELETE FROM pool_vms WHERE vm_id = ?').run(vmId);
      this.db.prepare('UPDATE pools SET claims = claims + 1 WHERE name = ?').run(m.pool);
      this.onWrite();
    })();
  }
}
