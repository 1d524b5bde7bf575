// Golden snapshots: taken of a running VM (`{ vm }`), or of a VM Hangar boots from an image only for that
// (`{ image }`, destroyed afterwards). A snapshot directory is self-contained: the VMM state, the disk at the same
// instant, the kernel (hard-linked), and the manifest. Clones are created through the VM manager
// (POST /v1/vms { fromSnapshot }).
import { join } from 'node:path';
import { HangarError, isHangarError } from '../errors.js';
import { linkOrCopy, removeTree } from '../image/store.js';
import type { ImageSource, VmManager } from '../vm/manager.js';
import { normalizeCreate } from '../vm/input.js';
import { SNAPSHOT_SCHEMA, type SnapshotManifest } from './manifest.js';
import type { SnapshotStore, StoredSnapshot } from './store.js';

export const SNAPSHOT_KERNEL = 'vmlinux';

export interface CreateSnapshotRequest {
  /** A ready VM (id or name): its state now, and it runs on. */
  vm?: string;
  /** An image (id, prefix or profile): Hangar boots a VM from it, snapshots it once ready, and destroys it. */
  image?: string;
}

export function normalizeSnapshotRequest(body: unknown): { vm: string } | { image: string } {
  const b = (body ?? {}) as Record<string, unknown>;
  const has = (k: string): boolean => b[k] !== undefined;
  if (has('vm') === has('image')) throw new HangarError('INVALID_ARGUMENT', 'give exactly one of vm (a running VM) or image (boot one for the snapshot)', { field: 'vm' });
  const key = has('vm') ? 'vm' : 'image';
  const v = b[key];
  if (typeof v !== 'string' || !/^[a-z0-9][a-z0-9._-]{0,127}$/.test(v)) throw new HangarError('INVALID_ARGUMENT', `${key} must be an id or a name`, { field: key });
  return key === 'vm' ? { vm: v } : { image: v };
}

export class SnapshotService {
  constructor(
    private readonly manager: VmManager,
    readonly store: SnapshotStore,
    private readonly images: ImageSource,
  ) {}

  list(): Promise<StoredSnapshot[]> {
    return this.store.list();
  }

  get(id: string): Promise<StoredSnapshot> {
    return this.store.get(id);
  }

  remove(id: string): Promise<void> {
    return this.store.remove(id);
  }

  async create(req: { vm: string } | { image: string }): Promise<StoredSnapshot> {
    if ('vm' in req) return this.fromVm(req.vm, 'vm');
    // Only for the snapshot: booted through the manager like any VM, destroyed whatever happens.
    const image = await this.images.resolve(req.image);
    const { vm, ready } = await this.manager.create(normalizeCreate({ image: image.id, profile: image.profile }));
    try {
      await ready;
      return await this.fromVm(vm.id, 'image');
    } finally {
      await this.manager.destroy(vm.id).catch((e: unknown) => {
        if (!isHangarError(e, 'VM_NOT_FOUND')) throw e;
      });
    }
  }

  private async fromVm(vmRef: string, kind: 'vm' | 'image'): Promise<StoredSnapshot> {
    const t0 = performance.now();
    const vm = this.manager.get(vmRef);
    const image = await this.images.resolve(vm.imageId).catch(() => null);
    const id = this.store.newId();
    const staging = await this.store.stage(id);
    try {
      const cap = await this.manager.captureVm(vm.id, staging);
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
      return await this.store.publish(staging, manifest);
    } catch (e) {
      await removeTree(staging).catch(() => undefined);
      throw e;
    }
  }
}
