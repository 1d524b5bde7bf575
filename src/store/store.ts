// Typed access to the state database. Rows are mapped to records here and nowhere else: the JSON columns (spec,
// network, hibernation, …) pass through one codec each way, and every transaction is the store's own — no raw
// database handle leaves this file. `StateStore` is the narrow interface the rest of Hangar uses, so a second
// implementation (PostgreSQL, when Hangar spans hosts) has one list of operations to provide.
import { randomBytes } from 'node:crypto';
import { HangarError } from '../errors.js';
import { assertTransition, type VmState } from '../domain/states.js';
import type { LastError, NewVm, VmNet, VmPatch, VmRecord } from '../domain/vm.js';
import type { MachineSpec, ProcessExit, VmmKind } from '../vmm/types.js';
import type { NetworkPolicy } from '../net/egress/policy.js';
import { VIEWER_NONCE_BYTES, type Hibernation } from '../domain/vm.js';
import { openDb, type Db } from './db.js';
import { PoolStore } from './pools.js';
import { TenancyStore } from './tenancy.js';
import { VolumeStore } from './volumes.js';

export type { NewVm, VmPatch, VmRecord } from '../domain/vm.js';

export interface Allocation {
  vmId: string;
  kind: 'ip' | 'mac' | 'tap';
  value: string;
}

export interface EventRecord {
  seq: number;
  at: string;
  vmId: string | null;
  type: string;
  data: Record<string, unknown>;
  /** The tenant the event belongs to (its VM's); null for a host event, which only admin keys see. */
  tenant?: string | null;
}

interface VmRow {
  id: string; name: string; state: string; image_id: string; profile: string; vmm: string; vcpus: number;
  mem_mib: number; ttl_s: number | null; created_at: string; updated_at: string; expires_at: string | null;
  pid: number | null; run_dir: string; spec: string; net: string | null; boot_ms: number | null;
  last_error: string | null; exit: string | null; snapshot_id: string | null; hibernation: string | null;
  tenant_id: string; disk_mib: number | null;
  net_policy?: string | null;
}

/** The codec of one JSON column: what Hangar wrote is what it reads back (an empty object means "none yet"). */
function json<T extends object>(s: string | null): T | null {
  if (s === null) return null;
  const v = JSON.parse(s) as unknown;
  return v && typeof v === 'object' && Object.keys(v).length > 0 ? (v as T) : null;
}
const enc = (v: object | null | undefined): string | null => (v ? JSON.stringify(v) : null);

function toRecord(r: VmRow): VmRecord {
  return {
    id: r.id, name: r.name, state: r.state as VmState, imageId: r.image_id, profile: r.profile, vmm: r.vmm as VmmKind,
    vcpus: r.vcpus, memMiB: r.mem_mib, ttlS: r.ttl_s, createdAt: r.created_at, updatedAt: r.updated_at,
    expiresAt: r.expires_at, pid: r.pid, runDir: r.run_dir, spec: json<MachineSpec>(r.spec), net: json<VmNet>(r.net),
    bootMs: r.boot_ms, lastError: json<LastError>(r.last_error), exit: json<ProcessExit>(r.exit), snapshotId: r.snapshot_id ?? null,
    hibernation: json<Hibernation>(r.hibernation ?? null), tenantId: r.tenant_id, diskMiB: r.disk_mib ?? null, netPolicy: json<NetworkPolicy>(r.net_policy ?? null),
  };
}

/** How a new VM takes its addresses: sees every allocation, returns its network and the rows to record. */
export type NetPlanner = (taken: Allocation[]) => { net: VmNet; allocations: Omit<Allocation, 'vmId'>[] };

/** What the rest of Hangar may do with its state. */
export interface StateStore {
  readonly version: number;
  createVm(vm: NewVm, opts: { maxVms: number; plan: NetPlanner }): VmRecord;
  getVm(idOrName: string): VmRecord | null;
  mustGetVm(idOrName: string): VmRecord;
  /** Every VM, or those of one tenant. */
  listVms(tenant?: string): VmRecord[];
  countByState(): Record<string, number>;
  setState(id: string, to: VmState, patch?: VmPatch, data?: Record<string, unknown>): VmRecord;
  patchVm(id: string, patch: VmPatch): void;
  deleteVm(id: string): void;
  /** The VM's viewer nonce, by id only (never by name); null when there is no such VM. */
  viewerNonce(id: string): Buffer | null;
  /** A new viewer nonce for the VM (by id only): every token signed over the old one is refused. Null: no such VM. */
  rotateViewerNonce(id: string): Buffer | null;
  allocations(kind?: Allocation['kind']): Allocation[];
  appendEvent(vmId: string | null, type: string, data?: Record<string, unknown>): EventRecord;
  /** Events after `since`; `tenant`: that tenant's only (a tenant key's stream). */
  events(opts?: { since?: number; vmId?: string; limit?: number; tenant?: string }): EventRecord[];
  lastEventSeq(): number;
  onEvent(listener: (e: EventRecord) => void): () => void;
  close(): void;
}

const now = (): string => new Date().toISOString();

export class Store implements StateStore {
  private readonly db: Db;
  private listeners = new Set<(e: EventRecord) => void>();
  private writes = 0;
  /** Tenants, API keys, snapshot owners, the audit log. */
  readonly tenancy: TenancyStore;
  /** Volumes, their attachments, the VMs' idle settings. */
  readonly volumes: VolumeStore;
  /** Warm pools and their members (src/pool/). */
  readonly pools: PoolStore;

  /** Bumped by every write to VMs or allocations: readers cache derived views (e.g. the VM list) per version. */
  get version(): number {
    return this.writes;
  }

  constructor(path: string) {
    this.db = openDb(path);
    this.tenancy = new TenancyStore(this.db, () => { this.writes++; });
    this.pools = new PoolStore(this.db, this.tenancy, () => { this.writes++; });
    this.volumes = new VolumeStore(this.db, () => { this.writes++; });
  }

  /** The database, for a layer that keeps its own table in it (src/e2b/persist.ts: migration 8). */
  get database(): Db {
    return this.db;
  }

  close(): void {
    this.db.close();
  }

  // ---- VMs
  /**
   * A new VM's row and its addresses in one transaction: the VM limit and the tenant's quotas are checked inside
   * it (concurrent creates cannot exceed them), and a taken name or an exhausted pool leaves nothing behind.
   */
  createVm(vm: NewVm, opts: { maxVms: number; plan: NetPlanner }): VmRecord {
    return this.db.transaction(() => {
      const n = (this.db.prepare('SELECT COUNT(*) AS n FROM vms').get() as { n: number }).n;
      if (n >= opts.maxVms) throw new HangarError('VM_LIMIT_REACHED', `this host runs at most ${opts.maxVms} VMs`, { max: opts.maxVms });
      this.tenancy.assertQuota(vm.tenantId ?? 'default', { vcpus: vm.vcpus, memMiB: vm.memMiB, diskMiB: vm.diskMiB ?? 0 });
      this.insertVm(vm);
      const net = this.allocate(vm.id, (taken) => {
        const p = opts.plan(taken);
        return { result: p.net, allocations: p.allocations };
      });
      this.patchVm(vm.id, { net });
      return this.mustGetVm(vm.id);
    })();
  }

  insertVm(vm: NewVm): VmRecord {
    this.writes++;
    const t = now();
    try {
      this.db.prepare(`INSERT INTO vms (id, name, state, image_id, profile, vmm, vcpus, mem_mib, ttl_s, created_at, updated_at,
        expires_at, run_dir, spec, net, snapshot_id, viewer_nonce, tenant_id, disk_mib, net_policy) VALUES (@id, @name, @state, @imageId, @profile, @vmm, @vcpus, @memMiB, @ttlS, @t, @t,
        @expiresAt, @runDir, @spec, @net, @snapshotId, @viewerNonce, @tenantId, @diskMiB, @netPolicy)`).run({
        ...vm, t, spec: enc(vm.spec) ?? '{}', net: enc(vm.net), snapshotId: vm.snapshotId ?? null, viewerNonce: randomBytes(VIEWER_NONCE_BYTES),
        tenantId: vm.tenantId ?? 'default', diskMiB: vm.diskMiB ?? null, netPolicy: enc(vm.netPolicy),
      });
    } catch (e) {
      if (/UNIQUE constraint failed: vms\.(tenant_id, vms\.)?name/.test(String((e as Error).message))) {
        throw new HangarError('VM_NAME_TAKEN', `a VM named ${vm.name} exists`, { name: vm.name });
      }
      throw new HangarError('STORE_ERROR', (e as Error).message, {}, { cause: e });
    }
    this.appendEvent(vm.id, 'vm.created', { name: vm.name, state: vm.state });
    return this.getVm(vm.id)!;
  }

  getVm(idOrName: string): VmRecord | null {
    // Names are unique per tenant: an id wins, then the default tenant's name (callers with a key resolve a name
    // in their tenant first: TenancyStore.findVm).
    const r = this.db.prepare("SELECT * FROM vms WHERE id = ? OR name = ? ORDER BY (id = ?) DESC, (tenant_id = 'default') DESC, created_at LIMIT 1")
      .get(idOrName, idOrName, idOrName) as VmRow | undefined;
    return r ? toRecord(r) : null;
  }

  mustGetVm(idOrName: string): VmRecord {
    const vm = this.getVm(idOrName);
    if (!vm) throw new HangarError('VM_NOT_FOUND', `no VM ${idOrName}`, { id: idOrName });
    return vm;
  }

  listVms(tenant?: string): VmRecord[] {
    const rows = tenant === undefined
      ? this.db.prepare('SELECT * FROM vms ORDER BY created_at, id').all()
      : this.db.prepare('SELECT * FROM vms WHERE tenant_id = ? ORDER BY created_at, id').all(tenant);
    return (rows as VmRow[]).map(toRecord);
  }

  countByState(): Record<string, number> {
    const rows = this.db.prepare('SELECT state, COUNT(*) AS n FROM vms GROUP BY state').all() as { state: string; n: number }[];
    return Object.fromEntries(rows.map((r) => [r.state, r.n]));
  }

  /** Compare-and-set state change, validated against the state machine, recorded as an event. */
  setState(id: string, to: VmState, patch: VmPatch = {}, data: Record<string, unknown> = {}): VmRecord {
    this.writes++;
    return this.db.transaction(() => {
      const cur = this.mustGetVm(id);
      assertTransition(id, cur.state, to);
      this.patchVm(id, patch);
      this.db.prepare('UPDATE vms SET state = ?, updated_at = ? WHERE id = ?').run(to, now(), id);
      this.appendEvent(id, 'vm.state', { from: cur.state, to, ...data });
      return this.mustGetVm(id);
    })();
  }

  patchVm(id: string, patch: VmPatch): void {
    this.writes++;
    const cols: Record<keyof VmPatch, string> = {
      pid: 'pid', spec: 'spec', net: 'net', bootMs: 'boot_ms', lastError: 'last_error', exit: 'exit', expiresAt: 'expires_at', hibernation: 'hibernation',
      netPolicy: 'net_policy',
    };
    const jsonCols = new Set(['spec', 'net', 'lastError', 'exit', 'hibernation', 'netPolicy']);
    for (const [k, v] of Object.entries(patch) as [keyof VmPatch, unknown][]) {
      if (v === undefined) continue;
      const value = jsonCols.has(k) ? (k === 'spec' ? enc(v as object | null) ?? '{}' : enc(v as object | null)) : v;
      this.db.prepare(`UPDATE vms SET ${cols[k]} = ?, updated_at = ? WHERE id = ?`).run(value, now(), id);
    }
  }

  /** Deletes the row and its allocations (cascade). Events stay: they are the history. */
  deleteVm(id: string): void {
    this.writes++;
    this.db.transaction(() => {
      const owner = this.db.prepare('SELECT tenant_id AS t FROM vms WHERE id = ?').get(id) as { t: string } | undefined;
      this.db.prepare('DELETE FROM vms WHERE id = ?').run(id);
      this.appendEvent(id, 'vm.destroyed', {}, owner?.t);
    })();
  }

  viewerNonce(id: string): Buffer | null {
    const r = this.db.prepare('SELECT viewer_nonce AS n FROM vms WHERE id = ?').get(id) as { n: Buffer | null } | undefined;
    return r?.n ? Buffer.from(r.n) : null;
  }

  rotateViewerNonce(id: string): Buffer | null {
    const nonce = randomBytes(VIEWER_NONCE_BYTES);
    return this.db.prepare('UPDATE vms SET viewer_nonce = ? WHERE id = ?').run(nonce, id).changes === 1 ? nonce : null;
  }

  // ---- allocations
  allocations(kind?: Allocation['kind']): Allocation[] {
    const rows = (kind
      ? this.db.prepare('SELECT vm_id, kind, value FROM allocations WHERE kind = ?').all(kind)
      : this.db.prepare('SELECT vm_id, kind, value FROM allocations').all()) as { vm_id: string; kind: Allocation['kind']; value: string }[];
    return rows.map((r) => ({ vmId: r.vm_id, kind: r.kind, value: r.value }));
  }

  /**
   * Plans and records allocations atomically: `plan` sees every current allocation and returns the new ones; the
   * UNIQUE(kind, value) constraint is the last line against a double allocation.
   */
  allocate<T>(vmId: string, plan: (taken: Allocation[]) => { result: T; allocations: Omit<Allocation, 'vmId'>[] }): T {
    this.writes++;
    return this.db.transaction(() => {
      const { result, allocations } = plan(this.allocations());
      const ins = this.db.prepare('INSERT INTO allocations (vm_id, kind, value) VALUES (?, ?, ?)');
      for (const a of allocations) ins.run(vmId, a.kind, a.value);
      return result;
    })();
  }

  release(vmId: string): number {
    this.writes++;
    return this.db.prepare('DELETE FROM allocations WHERE vm_id = ?').run(vmId).changes;
  }

  // ---- events
  /** Records an event; its tenant is `tenant`, else its VM's (null: a host event). */
  appendEvent(vmId: string | null, type: string, data: Record<string, unknown> = {}, tenant?: string): EventRecord {
    const at = now();
    const owner = tenant ?? (vmId ? (this.db.prepare('SELECT tenant_id AS t FROM vms WHERE id = ?').get(vmId) as { t: string } | undefined)?.t : undefined) ?? null;
    const info = this.db.prepare('INSERT INTO events (at, vm_id, type, data, tenant_id) VALUES (?, ?, ?, ?, ?)').run(at, vmId, type, JSON.stringify(data), owner);
    const e: EventRecord = { seq: Number(info.lastInsertRowid), at, vmId, type, data, tenant: owner };
    for (const l of this.listeners) l(e);
    return e;
  }

  events(opts: { since?: number; vmId?: string; limit?: number; tenant?: string } = {}): EventRecord[] {
    const rows = this.db.prepare(`SELECT * FROM events WHERE seq > ? ${opts.vmId ? 'AND vm_id = ?' : ''} ${opts.tenant !== undefined ? 'AND tenant_id = ?' : ''} ORDER BY seq LIMIT ?`)
      .all(...[opts.since ?? 0, ...(opts.vmId ? [opts.vmId] : []), ...(opts.tenant !== undefined ? [opts.tenant] : []), opts.limit ?? 1000]) as { seq: number; at: string; vm_id: string | null; type: string; data: string; tenant_id: string | null }[];
    return rows.map((r) => ({ seq: r.seq, at: r.at, vmId: r.vm_id, type: r.type, data: JSON.parse(r.data) as Record<string, unknown>, tenant: r.tenant_id }));
  }

  /** The newest event's sequence number (0 when there is none): where a live-only stream starts. */
  lastEventSeq(): number {
    return (this.db.prepare('SELECT COALESCE(MAX(seq), 0) AS s FROM events').get() as { s: number }).s;
  }

  /** Live events (for SSE/WebSocket streams); returns the unsubscribe. */
  onEvent(listener: (e: EventRecord) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
