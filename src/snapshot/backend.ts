// What differs per VMM when a guest is saved to disk and brought back: which files hold its state, how they are
// written from a paused guest, how a fresh VMM process loads them, and what the guest is told afterwards. The VM
// manager and the snapshot service speak only this.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { HangarError } from '../errors.js';
import type { VmmDriver, VmmHandle } from '../vmm/driver.js';
import { FirecrackerDriver, FirecrackerHandle } from '../vmm/firecracker/driver.js';
import { apiVersionFor, hasField } from '../vmm/firecracker/version.js';
import { QemuDriver, QemuHandle } from '../vmm/qemu/driver.js';
import type { MachineSpec, VmmKind } from '../vmm/types.js';
import { sendResumeSync, type SyncResult } from './agent.js';
import { agentListening, restoreQemuState, saveQemuState } from './qemu.js';

export interface FileInfo {
  sha256: string;
  size: number;
}

export interface SavedState {
  /** File name (in the state directory) → hash and size. */
  files: Record<string, FileInfo>;
  /** The VMM's version, recorded so a restore on another version is explained, not attempted blindly. */
  vmmVersion: string;
  /** Firecracker reopens the disk at the path its snapshot recorded (as the VMM saw it). */
  diskPathInVmm?: string;
  /** QEMU: started with the agent channel and virtio-rng; a restore must have the same devices. */
  guestAgent?: boolean;
  ms: number;
}

export interface RestoreOptions {
  /** Verify the state files against these (golden snapshots); hibernation files are trusted by their size. */
  files?: Record<string, FileInfo>;
  diskPathInVmm?: string;
  guestAgent?: boolean;
}

export interface SnapshotBackend {
  readonly kind: VmmKind;
  /** File names this VMM's state consists of. */
  readonly stateFiles: readonly string[];
  /** Writes the state of a PAUSED guest into dir. The VMM stays alive (the caller resumes or stops it). */
  save(handle: VmmHandle, dir: string): Promise<SavedState>;
  /** Starts a VMM for spec from the state in dir; the guest is left paused (the caller resumes it). */
  restore(driver: VmmDriver, spec: MachineSpec, dir: string, opts?: RestoreOptions): Promise<{ handle: VmmHandle; ms: number }>;
  /** Right after resume: clock and entropy for the guest (null when this VMM does it itself). */
  afterResume(handle: VmmHandle): Promise<(SyncResult & { agent: boolean }) | null>;
}

function failed(message: string, details: Record<string, unknown> = {}): HangarError {
  return new HangarError('SNAPSHOT_FAILED', message, details);
}

export async function hashFile(path: string): Promise<FileInfo> {
  const h = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) {
    h.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { sha256: h.digest('hex'), size };
}

/** Every state file must exist with the size recorded (hashes are checked where the bytes are read anyway). */
export async function checkFiles(dir: string, files: Record<string, FileInfo>): Promise<void> {
  for (const [name, info] of Object.entries(files)) {
    const st = await stat(join(dir, name)).catch(() => null);
    if (!st || st.size !== info.size) {
      throw failed(`${join(dir, name)}: ${st ? `size ${st.size}, the manifest says ${info.size}` : 'missing'}`, { dir, file: name });
    }
  }
}

export const QEMU_STATE_FILE = 'state.bin';

export const qemuBackend: SnapshotBackend = {
  kind: 'qemu',
  stateFiles: [QEMU_STATE_FILE],
  async save(handle, dir) {
    if (!(handle instanceof QemuHandle)) throw failed('not a QEMU VM');
    const r = await saveQemuState(handle, join(dir, QEMU_STATE_FILE));
    return { files: { [QEMU_STATE_FILE]: { sha256: r.sha256, size: r.bytes } }, vmmVersion: (await handle.client()).version, guestAgent: handle.guestAgent, ms: r.ms };
  },
  async restore(driver, spec, dir, opts = {}) {
    if (!(driver instanceof QemuDriver)) throw failed('the QEMU state needs the QEMU driver');
    if (opts.files) await checkFiles(dir, opts.files);
    const sha256 = opts.files?.[QEMU_STATE_FILE]?.sha256;
    const r = await restoreQemuState(driver, spec, join(dir, QEMU_STATE_FILE), {
      ...(sha256 ? { sha256 } : {}), ...(opts.guestAgent !== undefined ? { guestAgent: opts.guestAgent } : {}),
    });
    return { handle: r.handle, ms: r.ms };
  },
  async afterResume(handle) {
    if (!(handle instanceof QemuHandle)) return null;
    if (!(await agentListening(handle))) return { sentAt: 0, guestTime: null, agent: false };
    return { ...(await sendResumeSync(handle.paths.agentSocket, { timeoutMs: 5000 })), agent: true };
  },
};

export const FC_VMSTATE_FILE = 'vmstate';
export const FC_MEMORY_FILE = 'memory';

/**
 * Firecracker: PATCH /vm Paused, PUT /snapshot/create (vmstate + memory); a fresh process loads them with
 * PUT /snapshot/load as its first call after the logger. The snapshot records the drive path as the VMM saw it,
 * and the VMM reopens that path. Unjailed that is the VM's own run directory, so only the same VM can come back
 * (hibernation). Jailed, every VMM sees its disk at /rootfs.ext4 inside its own chroot, and the state files are
 * staged there too: any number of clones restore from one snapshot, each writing its own disk.
 */
export const firecrackerBackend: SnapshotBackend = {
  kind: 'firecracker',
  stateFiles: [FC_VMSTATE_FILE, FC_MEMORY_FILE],
  async save(handle, dir) {
    if (!(handle instanceof FirecrackerHandle)) throw failed('not a Firecracker VM');
    const t0 = performance.now();
    if ((await handle.status()) !== 'paused') await handle.pause();
    const snapshotPath = join(dir, FC_VMSTATE_FILE);
    const memFilePath = join(dir, FC_MEMORY_FILE);
    await handle.snapshotCreate({ snapshotPath, memFilePath });
    const files = { [FC_VMSTATE_FILE]: await hashFile(snapshotPath), [FC_MEMORY_FILE]: await hashFile(memFilePath) };
    const info = await handle.api.describe();
    return { files, vmmVersion: info.vmm_version, diskPathInVmm: handle.plan.vmmPaths.rootfsPath, ms: Math.round(performance.now() - t0) };
  },
  async restore(driver, spec, dir, opts = {}) {
    if (!(driver instanceof FirecrackerDriver)) throw failed('the Firecracker state needs the Firecracker driver');
    if (opts.files) await checkFiles(dir, opts.files);
    const refused = await firecrackerDiskRefusal(driver, spec, opts.diskPathInVmm);
    if (refused) throw refused;
    const probe = await driver.probe();
    const t0 = performance.now();
    // The guest clock jumps forward by the time spent saved, where the VMM can do it (clock_realtime, 1.16.1+).
    const clockRealtime = probe.version ? hasField(apiVersionFor(probe.version), 'snapshot-load.clock_realtime') : false;
    const handle = await driver.startFirecracker(spec, {
      restore: { snapshotPath: join(dir, FC_VMSTATE_FILE), memFilePath: join(dir, FC_MEMORY_FILE), resume: false, ...(clockRealtime ? { clockRealtime: true } : {}) },
    });
    return { handle, ms: Math.round(performance.now() - t0) };
  },
  async afterResume() {
    return null;
  },
};

/**
 * Why `spec` cannot be restored from a Firecracker snapshot that reopens its disk at `recorded`, or null: the VMM
 * would see this VM's disk elsewhere (an unjailed clone, whose run directory differs from the snapshot's VM).
 */
export async function firecrackerDiskRefusal(driver: FirecrackerDriver, spec: MachineSpec, recorded: string | undefined): Promise<HangarError | null> {
  if (!recorded) return null;
  const wanted = (await driver.plan(spec)).vmmPaths.rootfsPath;
  if (recorded === wanted) return null;
  return failed(`the Firecracker snapshot reopens its disk at ${recorded}, but this VM's disk is at ${wanted}: clones of a Firecracker VM need the jailer (each clone sees its disk at /rootfs.ext4 in its own chroot)`, {
    recorded, wanted,
  });
}

export function backendFor(kind: VmmKind): SnapshotBackend {
  return kind === 'qemu' ? qemuBackend : firecrackerBackend;
}
