// Golden snapshots: taken of a running VM (`{ vm }`), or of a VM Hangar boots from an image only for that
// (`{ image }`, destroyed afterwards). A snapshot directory is self-contained: the VMM state, the disk at the same
// instant, the kernel (hard-linked), and the manifest. Clones are created through the VM layer
// (POST /v1/vms { fromSnapshot }). A snapshot that VMs still depend on is not deleted unless the caller says what
// becomes of them (force: convert them to independent VMs, or destroy them).
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { HangarError, isHangarError } from '../errors.js';
import type { VmRecord } from '../domain/vm.js';
import { linkOrCopy, removeTree } from '../image/store.js';
import type { FileInfo } from '../util/files.js';
import { normalizeCreate, type CreateVmRequest } from '../vm/input.js';
import type { ImageSource, VmOwner } from '../vm/service.js';
import { SNAPSHOT_SCHEMA, type SnapshotManifest } from './manifest.js';
import type { SnapshotStore, StoredSnapshot } from './store.js';

export const SNAPSHOT_KERNEL = 'vmlinux';

/** What a capture gives a snapshot (the VM layer's captureVm). */
export interface Capture {
  vm: VmRecord;
  guestNet: SnapshotManifest['guestNet'];
  machine: SnapshotManifest['machine'];
  vmm: SnapshotManifest['vmm'];
  files: Record<string, FileInfo>;
  diskPathInVmm?: string;
  durationsMs: SnapshotManifest['durationsMs'];
}

/** What the snapshot service needs of the VM layer: a narrow port, so neither imports the other's internals. */
export interface SnapshotSubject {
  get(ref: string): VmRecord;
  list(): VmRecord[];
  create(req: CreateVmRequest, owner?: VmOwner): Promise<{ vm: VmRecord; ready: Promise<VmRecord> }>;
  destroy(ref: string): Promise<void>;
  captureVm(ref: string, dir: string): Promise<Capture>;
  /** Records the VM's new machine spec (a converted clone's kernel path). */
  updateSpec(id: string, spec: NonNullable<VmRecord['spec']>): void;
}

export interface SnapshotEvents {
  appendEvent(vmId: string | null, type: string, data?: Record<string, unknown>): unknown;
}

export interface CreateSnapshotRequest {
  /** A ready VM (id or name): its state now, and it runs on. */
  vm?: string;
  /** An image (id, prefix or profile): Hangar boots a VM from it, snapshots it once ready, and destroys it. */
  image?: string;
}

/** What happens to the VMs that depend on a snapshot being deleted. */
export type RemoveForce = 'convert' | 'destroy';

export function normalizeSnapshotRequest(body: unknown): { vm: string } | { image: string } {
  const b = (body ?? {}) as Record<string, unknown>;
  const has = (k: string): boolean => b[k] !== undefined;
  if (has('vm') === has('image')) throw new HangarError('INVALID_ARGUMENT', 'give exactly one of vm (a running VM) or image (boot one for the snapshot)', { field: 'vm' });
  const key = has('vm') ? 'vm' : 'image';
  const v = b[key];
  if (typeof v !== 'string' || !/^[a-z0-9][a-z0-9._-]{0,127}$/.test(v)) throw new HangarError('INVALID_ARGUMENT', `${key} must be an id or a name`, { field: key });
  return key === 'vm' ? { vm: v } : { image: v };
}

/** Whether a VM still needs a file of the snapshot in `dir` (its kernel, for a restore or a cold start). Pure. */
export function dependsOn(vm: VmRecord, snapshotId: string, dir: string): boolean {
  if (vm.snapshotId !== snapshotId) return false;
  // Not booted yet: its first boot restores from the snapshot.
  if (!vm.spec) return true;
  return vm.spec.kernelPath.startsWith(`${dir}/`) || vm.state === 'creating' || vm.state === 'booting';
}

export class SnapshotService {
  constructor(
    private readonly vms: SnapshotSubject,
    readonly store: SnapshotStore,
    private readonly images: Pick<ImageSource, 'resolve'>,
    private readonly events?: SnapshotEvents,
  ) {}

  list(): Promise<StoredSnapshot[]> {
    return this.store.list();
  }

  get(id: string): Promise<StoredSnapshot> {
    return this.store.get(id);
  }

  /** The VMs that still depend on the snapshot's files. */
  async dependants(id: string): Promise<VmRecord[]> {
    const dir = join(this.store.dir, id);
    return this.vms.list().filter((vm) => dependsOn(vm, id, dir));
  }

  /**
   * Deletes a snapshot. While VMs depend on it: SNAPSHOT_IN_USE naming them, and nothing changes — unless `force`
   * says what becomes of them first: 'convert' gives each its own copy of what it needs (the kernel, linked into its
   * run directory), 'destroy' destroys them.
   */
  async remove(id: string, force?: RemoveForce): Promise<{ converted: string[]; destroyed: string[] }> {
    await this.store.get(id).catch((e: unknown) => {
      if (isHangarError(e, 'SNAPSHOT_FAILED')) return null; // a broken snapshot can still be removed
      throw e;
    });
    const deps = await this.dependants(id);
    const out = { converted: [] as string[], destroyed: [] as string[] };
    if (deps.length && !force) {
      throw new HangarError('SNAPSHOT_IN_USE', `snapshot ${id} is used by ${deps.length} VM(s): ${deps.map((v) => `${v.name} (${v.id}, ${v.hibernation ? 'hibernated' : v.state})`).join(', ')}; delete them first, or force=convert to make them independent, or force=destroy to destroy them`, {
        id, vms: deps.map((v) => ({ id: v.id, name: v.name, state: v.state, hibernated: !!v.hibernation })),
      });
    }
    for (const vm of deps) {
      if (force === 'destroy') {
        await this.vms.destroy(vm.id);
        out.destroyed.push(vm.id);
      } else if (vm.spec && vm.state !== 'creating' && vm.state !== 'booting') {
        const kernel = join(vm.runDir, SNAPSHOT_KERNEL);
        await rm(kernel, { force: true });
        await linkOrCopy(vm.spec.kernelPath, kernel);
        this.vms.updateSpec(vm.id, { ...vm.spec, kernelPath: kernel });
        out.converted.push(vm.id);
      } else {
        throw new HangarError('SNAPSHOT_IN_USE', `VM ${vm.id} is still ${vm.state} from snapshot ${id}: wait until it is ready, then convert it`, { id, vm: vm.id, state: vm.state });
      }
    }
    await this.store.remove(id);
    this.events?.appendEvent(null, 'snapshot.deleted', { id, ...out });
    return out;
  }

  /** `owner`: the tenant of the VM booted for an `{ image }` snapshot (its quotas apply to it). */
  async create(req: { vm: string } | { image: string }, owner?: VmOwner): Promise<StoredSnapshot> {
    if ('vm' in req) return this.fromVm(req.vm, 'vm');
    // Only for the snapshot: booted through the VM layer like any VM, destroyed whatever happens.
    const image = await this.images.resolve(req.image);
    const { vm, ready } = await this.vms.create(normalizeCreate({ image: image.id, profile: image.profile }), owner);
    try {
      await ready;
      return await this.fromVm(vm.id, 'image');
    } finally {
      await this.vms.destroy(vm.id).catch((e: unknown) => {
        if (!isHangarError(e, 'VM_NOT_FOUND')) throw e;
      });
    }
  }

  private async fromVm(vmRef: string, kind: 'vm' | 'image'): Promise<StoredSnapshot> {
    const t0 = performance.now();
    const vm = this.vms.get(vmRef);
    // Refused, not made correct: every clone would restore a guest with the volume's ext4 mounted (its page cache and
    // journal state in the snapshot's RAM) over a slot holding another file or none, and two clones would write one
    // filesystem. A volume is given to each clone at create or claim instead.
    const attached = (vm.spec?.volumes ?? []).flatMap((v) => (v ? [v.file] : []));
    if (attached.length) {
      throw new HangarError('SNAPSHOT_VOLUME_ATTACHED', `VM ${vm.id} has ${attached.length === 1 ? 'a volume' : `${attached.length} volumes`} attached: detach before a golden snapshot (clones take volumes at create or claim)`, { id: vm.id, files: attached });
    }
    const image = await this.images.resolve(vm.imageId).catch(() => null);
    const id = this.store.newId();
    const staging = await this.store.stage(id);
    try {
      const cap = await this.vms.captureVm(vm.id, staging);
      // The kernel travels with the snapshot: a restore must not depend on the image still being there.
      await linkOrCopy(cap.machine.kernelPath, join(staging, SNAPSHOT_KERNEL));
      const manifest: SnapshotManifest = {
        schema: SNAPSHOT_SCHEMA,
        id,
        created: new Date().toISOString(),
        source: { kind, vmId: vm.id, vmName: vm.name },
        image: {
          id: vm.imageId, profile: vm.profile,
          rootfsSha256: image?.manifest.files['rootfs.ext4']?.sha256 ?? null,
          kernelSha256: image?.manifest.files.vmlinux?.sha256 ?? null,
        },
        vmm: cap.vmm,
        machine: { ...cap.machine, kernelPath: join(this.store.dir, id, SNAPSHOT_KERNEL) },
        guestNet: cap.guestNet,
        files: cap.files,
        ...(cap.diskPathInVmm ? { diskPathInVmm: cap.diskPathInVmm } : {}),
        durationsMs: { ...cap.durationsMs, total: Math.round(performance.now() - t0) },
      };
      const s = await this.store.publish(staging, manifest);
      this.events?.appendEvent(kind === 'vm' ? vm.id : null, 'snapshot.created', { id, source: manifest.source, vmm: manifest.vmm.kind, totalMs: manifest.durationsMs.total });
      return s;
    } catch (e) {
      await removeTree(staging).catch(() => undefined);
      throw e;
    }
  }
}
