// Typed access to the state database. Rows are mapped to records here and nowhere else.
import { HangarError } from '../errors.js';
import type { VmState } from '../vm/states.js';
import { assertTransition } from '../vm/states.js';
import { openDb, type Db } from './db.js';

export interface VmRecord {
  id: string;
  name: string;
  state: VmState;
  imageId: string;
  profile: string;
  vmm: string;
  vcpus: number;
  memMiB: number;
  ttlS: number | null;
  createdAt: string;
  updatedAt: string;
  expiresAt: string | null;
  pid: number | null;
  runDir: string;
  spec: Record<string, unknown>;
  net: Record<string, unknown> | null;
  bootMs: number | null;
  lastError: { code: string; message: string; details?: unknown } | null;
  exit: Record<string, unknown> | null;
  /** The golden snapshot this VM was cloned from (null: booted from its image). */
  snapshotId: string | null;
  /** Set while the VM is hibernated (state 'stopped'): where its saved state is and when it was taken. */
  hibernation: Record<string, unknown> | null;
}

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
}

interface VmRow {
  id: string; name: string; state: string; image_id: string; profile: string; vmm: string; vcpus: number;
  mem_mib: number; ttl_s: number | null; created_at: string; updated_at: string; expires_at: string | null;
  pid: number | null; run_dir: string; spec: string; net: string | null; boot_ms: number | null;
  last_error: string | null; exit: string | null; snapshot_id: string | null; hibernation: string | null;
}

const parse = <T>(s: string | null): T | null => (s === null ? null : (JSON.parse(s) as T));

function toRecord(r: VmRow): VmRecord {
  return {
    id: r.id, name: r.name, state: r.state as VmState, imageId: r.image_id, profile: r.profile, vmm: r.vmm,
    vcpus: r.vcpus, memMiB: r.mem_mib, ttlS: r.ttl_s, createdAt: r.created_at, updatedAt: r.updated_at,
    expiresAt: r.expires_at, pid: r.pid, runDir: r.run_dir, spec: parse(r.spec) ?? {}, net: parse(r.net),
    bootMs: r.boot_ms, lastError: parse(r.last_error), exit: parse(r.exit), snapshotId: r.snapshot_id ?? null,
    hibernation: parse(r.hibernation ?? null),
  };
}

export type NewVm = Omit<VmRecord, 'createdAt' | 'updatedAt' | 'pid' | 'bootMs' | 'lastError' | 'exit' | 'snapshotId' | 'hibernation'> & { snapshotId?: string | null };
export type VmPatch = Partial<Pick<VmRecord, 'pid' | 'spec' | 'net' | 'bootMs' | 'lastError' | 'exit' | 'expiresAt' | 'hibernation'>>;

const now = (): string => new Date().toISOString();

export class Store {
  readonly db: Db;
  private listeners = new Set<(e: EventRecord) => void>();
  private writes = 0;

  /** Bumped by every write to VMs or allocations: readers cache derived views (e.g. the VM list) per version. */
  get version(): number {
    return this.writes;
  }

  constructor(path: string) {
    this.db = openDb(path);
  }

  close(): void {
    this.db.close();
  }

  // ---- VMs
  insertVm(vm: NewVm): VmRecord {
    this.writes++;
    const t = now();
    try {
      this.db.prepare(`INSERT INTO vms (id, name, state, image_id, profile, vmm, vcpus, mem_mib, ttl_s, created_at, updated_at,
        expires_at, run_dir, spec, net, snapshot_id) VALUES (@id, @name, @state, @imageId, @profile, @vmm, @vcpus, @memMiB, @ttlS, @t, @t,
        @expiresAt, @runDir, @spec, @net, @snapshotId)`).run({ ...vm, t, spec: JSON.stringify(vm.spec), net: vm.net ? JSON.stringify(vm.net) : null, snapshotId: vm.snapshotId ?? null });
    } catch (e) {
      if (String((e as Error).message).includes('UNIQUE constraint failed: vms.name')) {
        throw new HangarError('VM_NAME_TAKEN', `a VM named ${vm.name} exists`, { name: vm.name });
      }
      throw new HangarError('STORE_ERROR', (e as Error).message, {}, { cause: e });
    }
    this.appendEvent(vm.id, 'vm.created', { name: vm.name, state: vm.state });
    return this.getVm(vm.id)!;
  }

  getVm(idOrName: string): VmRecord | null {
    const r = this.db.prepare('SELECT * FROM vms WHERE id = ? OR name = ?').get(idOrName, idOrName) as VmRow | undefined;
    return r ? toRecord(r) : null;
  }

  mustGetVm(idOrName: string): VmRecord {
    const vm = this.getVm(idOrName);
    if (!vm) throw new HangarError('VM_NOT_FOUND', `no VM ${idOrName}`, { id: idOrName });
    return vm;
  }

  listVms(): VmRecord[] {
    return (this.db.prepare('SELECT * FROM vms ORDER BY created_at, id').all() as VmRow[]).map(toRecord);
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
    };
    const json = new Set(['spec', 'net', 'lastError', 'exit', 'hibernation']);
    for (const [k, v] of Object.entries(patch) as [keyof VmPatch, unknown][]) {
      if (v === undefined) continue;
      const value = json.has(k) && v !== null ? JSON.stringify(v) : v;
      this.db.prepare(`UPDATE vms SET ${cols[k]} = ?, updated_at = ? WHERE id = ?`).run(value, now(), id);
    }
  }

  /** Deletes the row and its allocations (cascade). Events stay: they are the history. */
  deleteVm(id: string): void {
    this.writes++;
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM vms WHERE id = ?').run(id);
      this.appendEvent(id, 'vm.destroyed', {});
    })();
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
  appendEvent(vmId: string | null, type: string, data: Record<string, unknown> = {}): EventRecord {
    const at = now();
    const info = this.db.prepare('INSERT INTO events (at, vm_id, type, data) VALUES (?, ?, ?, ?)').run(at, vmId, type, JSON.stringify(data));
    const e: EventRecord = { seq: Number(info.lastInsertRowid), at, vmId, type, data };
    for (const l of this.listeners) l(e);
    return e;
  }

  events(opts: { since?: number; vmId?: string; limit?: number } = {}): EventRecord[] {
    const rows = this.db.prepare(`SELECT * FROM events WHERE seq > ? ${opts.vmId ? 'AND vm_id = ?' : ''} ORDER BY seq LIMIT ?`)
      .all(...[opts.since ?? 0, ...(opts.vmId ? [opts.vmId] : []), opts.limit ?? 1000]) as { seq: number; at: string; vm_id: string | null; type: string; data: string }[];
    return rows.map((r) => ({ seq: r.seq, at: r.at, vmId: r.vm_id, type: r.type, data: JSON.parse(r.data) as Record<string, unknown> }));
  }

  /** Live events (for SSE/WebSocket streams); returns the unsubscribe. */
  onEvent(listener: (e: EventRecord) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
