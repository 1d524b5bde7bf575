// Firecracker's saved state: PATCH /vm Paused, PUT /snapshot/create (vmstate + memory); a fresh process loads them
// with PUT /snapshot/load as its first call after the logger. The snapshot records the drive path as the VMM saw
// it, and the VMM reopens that path. Unjailed that is the VM's own run directory, so only the same VM can come
// back (hibernation). Jailed, every VMM sees its disk at /rootfs.ext4 inside its own chroot, and the state files
// are staged there too: any number of clones restore from one snapshot, each writing its own disk.
import { join } from 'node:path';
import { HangarError } from '../../errors.js';
import { hashFile } from '../../util/files.js';
import type { SavedState, VmmRunState } from '../driver.js';
import type { InstanceInfo } from './api-types.js';

export const FC_VMSTATE_FILE = 'vmstate';
export const FC_MEMORY_FILE = 'memory';
export const FC_STATE_FILES = [FC_VMSTATE_FILE, FC_MEMORY_FILE] as const;

/** What saving needs of a running Firecracker (FirecrackerHandle is one). */
export interface FirecrackerStateSource {
  status(): Promise<VmmRunState>;
  pause(): Promise<void>;
  snapshotCreate(p: { snapshotPath: string; memFilePath: string }): Promise<void>;
  readonly api: { describe(): Promise<InstanceInfo> };
  readonly plan: { vmmPaths: { rootfsPath: string } };
}

export async function saveFirecrackerState(handle: FirecrackerStateSource, dir: string): Promise<SavedState> {
  const t0 = performance.now();
  if ((await handle.status()) !== 'paused') await handle.pause();
  const snapshotPath = join(dir, FC_VMSTATE_FILE);
  const memFilePath = join(dir, FC_MEMORY_FILE);
  await handle.snapshotCreate({ snapshotPath, memFilePath });
  const files = { [FC_VMSTATE_FILE]: await hashFile(snapshotPath), [FC_MEMORY_FILE]: await hashFile(memFilePath) };
  const info = await handle.api.describe();
  return { files, vmmVersion: info.vmm_version, diskPathInVmm: handle.plan.vmmPaths.rootfsPath, ms: Math.round(performance.now() - t0) };
}

/**
 * Why a VM whose VMM would see its disk at `wanted` cannot be restored from a snapshot that reopens it at
 * `recorded`, or null (an unjailed clone, whose run directory differs from the snapshot's VM). Pure.
 */
export function diskPathRefusal(recorded: string | undefined, wanted: string): HangarError | null {
  if (!recorded || recorded === wanted) return null;
  return new HangarError('SNAPSHOT_FAILED', `the Firecracker snapshot reopens its disk at ${recorded}, but this VM's disk is at ${wanted}: clones of a Firecracker VM need the jailer (each clone sees its disk at /rootfs.ext4 in its own chroot)`, {
    recorded, wanted,
  });
}
