// Volumes, their attachments to VMs and the VMs' own idle settings in the state database (migration 7). Constructed
// by the Store over its own handle (the handle never leaves src/store/). One VM at a time per volume (its writer,
// or its one read-only user: see src/volume/plan.ts for why readers cannot share): checked in the inserting
// transaction and backed by a unique index, so two creates racing for one volume cannot both win.
import { HangarError } from '../errors.js';
import type { Db } from './db.js';

export interface VolumeRecord {
  id: string;
  tenant: string;
  name: string;
  sizeMiB: number;
  /** The ext4 image on the host. */
  file: string;
  /** The volume this one is a snapshot of (null: made empty). */
  source: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface AttachmentRecord {
  volumeId: string;
  vmId: string;
  slot: number;
  path: string;
  readOnly: boolean;
  createdAt: string;
}

export type IdleAction = 'hibernate' | 'pause';

/** A VM's own idle settings; a null field falls back to the config's default. timeoutS 0: never idle. */
export interface IdleSettings {
  timeoutS: number | null;
  action: IdleAction | null;
}

interface VolumeRow { id: string; tenant_id: string; name: string; size_mib: number; file: string; source: string | null; created_at: string; updated_at: string }
interface AttachRow { volume_id: string; vm_id: string; slot: number; path: string; read_only: number; created_at: string }

const now = (): string => new Date().toISOString();
const toVolume = (r: VolumeRow): VolumeRecord => ({
  id: r.id, tenant: r.tenant_id, name: r.name, sizeMiB: r.size_mib, file: r.file, source: r.source, createdAt: r.created_at, updatedAt: r.updated_at,
});
const toAttachment = (r: AttachRow): AttachmentRecord => ({
  volumeId: r.volume_id, vmId: r.vm_id, slot: r.slot, path: r.path, readOnly: r.read_only === 1, createdAt: r.created_at,
});

export class VolumeStore {
  constructor(private readonly db: Db, private readonly onWrite: () => void = () => undefined) {}

  // ---- volumes
  insert(v: Omit<VolumeRecord, 'createdAt' | 'updatedAt'>): VolumeRecord {
    const at = now();
    try {
      this.db.prepare('INSERT INTO volumes (id, tenant_id, name, size_mib, file, source, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
        .run(v.id, v.tenant, v.name, v.sizeMiB, v.file, v.source, at, at);
    } catch (e) {
      if ((e as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') throw new HangarError('VOLUME_EXISTS', `a volume named ${v.name} exists`, { name: v.name });
      throw e;
    }
    this.onWrite();
    return this.mustGet(v.tenant, v.id);
  }

  /** By id or by name, within a tenant (undefined: any tenant, admin view). */
  get(tenant: string | undefined, idOrName: string): VolumeRecord | null {
    const r = (tenant === undefined
      ? this.db.prepare("SELECT * FROM volumes WHERE id = ? OR name = ? ORDER BY (id = ?) DESC, (tenant_id = 'default') DESC LIMIT 1").get(idOrName, idOrName, idOrName)
      : this.db.prepare('SELECT * FROM volumes WHERE tenant_id = ? AND (id = ? OR name = ?) ORDER BY (id = ?) DESC LIMIT 1').get(tenant, idOrName, idOrName, idOrName)) as VolumeRow | undefined;
    return r ? toVolume(r) : null;
  }

  mustGet(tenant: string | undefined, idOrName: string): VolumeRecord {
    const v = this.get(tenant, idOrName);
    if (!v) throw new HangarError('VOLUME_NOT_FOUND', `no volume ${idOrName}`, { id: idOrName });
    return v;
  }

  list(tenant?: string): VolumeRecord[] {
    const rows = (tenant === undefined
      ? this.db.prepare('SELECT * FROM volumes ORDER BY created_at, id').all()
      : this.db.prepare('SELECT * FROM volumes WHERE tenant_id = ? ORDER BY created_at, id').all(tenant)) as VolumeRow[];
    return rows.map(toVolume);
  }

  /** MiB of every volume of a tenant (the disk quota counts them). */
  totalMiB(tenant: string): number {
    return (this.db.prepare('SELECT COALESCE(SUM(size_mib), 0) AS n FROM volumes WHERE tenant_id = ?').get(tenant) as { n: number }).n;
  }

  setSize(id: string, sizeMiB: number): void {
    this.db.prepare('UPDATE volumes SET size_mib = ?, updated_at = ? WHERE id = ?').run(sizeMiB, now(), id);
    this.onWrite();
  }

  /** Deletes a volume that has no attachment (VOLUME_IN_USE otherwise), in one transaction. */
  remove(id: string): void {
    this.db.transaction(() => {
      const a = this.attachmentsOf(id);
      if (a.length) throw new HangarError('VOLUME_IN_USE', `volume ${id} is attached to ${a.map((x) => x.vmId).join(', ')}: detach it or destroy the VM first`, { id, vms: a.map((x) => x.vmId) });
      this.db.prepare('DELETE FROM volumes WHERE id = ?').run(id);
    })();
    this.onWrite();
  }

  // ---- attachments
  attachmentsOf(volumeId: string): AttachmentRecord[] {
    return (this.db.prepare('SELECT * FROM volume_attachments WHERE volume_id = ? ORDER BY created_at').all(volumeId) as AttachRow[]).map(toAttachment);
  }

  attachmentsOfVm(vmId: string): AttachmentRecord[] {
    return (this.db.prepare('SELECT * FROM volume_attachments WHERE vm_id = ? ORDER BY slot').all(vmId) as AttachRow[]).map(toAttachment);
  }

  /**
   * Records an attachment after checking, in the same transaction, that the volume is in no VM, the VM's slots
   * (`slots` of them) and its mount points. Returns the record with the slot it took.
   */
  attach(a: { volumeId: string; vmId: string; path: string; readOnly: boolean }, slots: number): AttachmentRecord {
    const rec = this.db.transaction(() => {
      const others = this.attachmentsOf(a.volumeId);
      if (others.some((o) => o.vmId === a.vmId)) throw new HangarError('VOLUME_IN_USE', `volume ${a.volumeId} is already attached to ${a.vmId}`, { id: a.volumeId, vm: a.vmId });
      const holder = others[0];
      if (holder) throw new HangarError('VOLUME_IN_USE', `volume ${a.volumeId} is attached to ${holder.vmId}: one VM at a time`, { id: a.volumeId, vm: holder.vmId, readOnly: holder.readOnly });
      const mine = this.attachmentsOfVm(a.vmId);
      if (mine.some((m) => m.path === a.path)) throw new HangarError('VOLUME_IN_USE', `VM ${a.vmId} already has a volume at ${a.path}`, { vm: a.vmId, path: a.path });
      const slot = [...Array(slots).keys()].find((s) => !mine.some((m) => m.slot === s));
      if (slot === undefined) throw new HangarError('VOLUME_SLOTS_FULL', `VM ${a.vmId} has ${slots} volume slot(s), all taken`, { vm: a.vmId, slots });
      const at = now();
      this.db.prepare('INSERT INTO volume_attachments (volume_id, vm_id, slot, path, read_only, created_at) VALUES (?, ?, ?, ?, ?, ?)')
        .run(a.volumeId, a.vmId, slot, a.path, a.readOnly ? 1 : 0, at);
      return { ...a, slot, createdAt: at };
    })();
    this.onWrite();
    return rec;
  }

  detach(volumeId: string, vmId: string): boolean {
    const n = this.db.prepare('DELETE FROM volume_attachments WHERE volume_id = ? AND vm_id = ?').run(volumeId, vmId).changes;
    if (n) this.onWrite();
    return n > 0;
  }

  // ---- idle settings
  idle(vmId: string): IdleSettings {
    const r = this.db.prepare('SELECT timeout_s, action FROM vm_idle WHERE vm_id = ?').get(vmId) as { timeout_s: number | null; action: IdleAction | null } | undefined;
    return { timeoutS: r?.timeout_s ?? null, action: r?.action ?? null };
  }

  /** Every VM's own settings (VMs without a row use the defaults). */
  allIdle(): Map<string, IdleSettings> {
    const rows = this.db.prepare('SELECT vm_id, timeout_s, action FROM vm_idle').all() as { vm_id: string; timeout_s: number | null; action: IdleAction | null }[];
    return new Map(rows.map((r) => [r.vm_id, { timeoutS: r.timeout_s, action: r.action }]));
  }

  /** Merges `patch` into the VM's settings (null resets a field to the default). */
  setIdle(vmId: string, patch: Partial<IdleSettings>): IdleSettings {
    const cur = this.idle(vmId);
    const next: IdleSettings = { timeoutS: patch.timeoutS !== undefined ? patch.timeoutS : cur.timeoutS, action: patch.action !== undefined ? patch.action : cur.action };
    this.db.prepare('INSERT INTO vm_idle (vm_id, timeout_s, action) VALUES (?, ?, ?) ON CONFLICT (vm_id) DO UPDATE SET timeout_s = excluded.timeout_s, action = excluded.action')
      .run(vmId, next.timeoutS, next.action);
    this.onWrite();
    return next;
  }
}
