// A running guest written to disk: hibernation (the VM's own memory into its run directory, then its VMM stops)
// and a golden snapshot's capture (memory and disk from one paused instant, then the VM runs on). Both are called
// with the VM's lock held and its action already checked; what is per-VMM is on the handle (saveState).
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Hibernation, VmRecord } from '../domain/vm.js';
import { specOf } from '../domain/vm.js';
import type { GuestNetIdentity } from '../net/clone.js';
import { SNAPSHOT_DISK, type SnapshotManifest } from '../snapshot/manifest.js';
import type { StateStore } from '../store/store.js';
import { hashFile, type FileInfo } from '../util/files.js';
import type { BootFrom } from './boot.js';
import { copyDisk } from './disks.js';
import type { LiveVms } from './live.js';
import { guestIdentity, type VmNetwork } from './network.js';

/** What a capture returns: everything a snapshot manifest needs from the VM. */
export interface CapturedVm {
  vm: VmRecord;
  guestNet: GuestNetIdentity;
  machine: SnapshotManifest['machine'];
  vmm: SnapshotManifest['vmm'];
  files: Record<string, FileInfo>;
  diskPathInVmm?: string;
  durationsMs: SnapshotManifest['durationsMs'];
}

export interface SavedStateDeps {
  store: StateStore;
  live: LiveVms;
  network: VmNetwork;
  log(msg: string, data?: Record<string, unknown>): void;
  /**
   * Closes the host's own connections into the guest (viewers, computer use) while the guest still runs, so that
   * its servers see them end. Saved with them open, a restored guest would keep talking to peers that are gone: an
   * RFB server writing to one waits out its client timeout (x11vnc: 20 s) and answers no one meanwhile. Bounded.
   */
  quiesce?(id: string, why: 'hibernate' | 'snapshot'): Promise<void>;
}

async function quiesce(d: SavedStateDeps, id: string, why: 'hibernate' | 'snapshot'): Promise<void> {
  await d.quiesce?.(id, why).catch((e: unknown) => d.log('closing host connections before a save failed', { id, error: (e as Error).message }));
}

/**
 * Saves a ready (or paused) VM's memory and device state into its run directory and stops its VMM: the VM is
 * 'stopped' with `hibernation` set. Its disk stays where it is (it is part of the saved instant), its addresses
 * stay allocated. start/resume restores it; destroy deletes the state with the run directory.
 */
export async function hibernateVm(vm: VmRecord, d: SavedStateDeps): Promise<VmRecord> {
  const id = vm.id;
  const l = d.live.must(id);
  const dir = join(vm.runDir, 'hibernation');
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { mode: 0o700 });
  const t0 = performance.now();
  let quiesceMs = 0;
  if (vm.state === 'ready') {
    await quiesce(d, id, 'hibernate');
    quiesceMs = Math.round(performance.now() - t0);
    await l.handle.pause();
  }
  let saved;
  try {
    saved = await l.handle.saveState(dir);
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    if (vm.state === 'ready') await l.handle.resume().catch(() => undefined);
    throw e;
  }
  // From here the saved state and the disk describe one instant: the guest must not run on. Quit, no shutdown.
  d.store.setState(id, 'stopping');
  const exit = await d.live.stop(id, 0);
  await d.network.detach(vm.net).catch(() => undefined);
  const hibernation: Hibernation = {
    dir, files: saved.files, vmmVersion: saved.vmmVersion, at: new Date().toISOString(), saveMs: saved.ms,
    ...(saved.diskPathInVmm ? { diskPathInVmm: saved.diskPathInVmm } : {}),
    ...(saved.guestAgent !== undefined ? { guestAgent: saved.guestAgent } : {}),
  };
  const ms = Math.round(performance.now() - t0);
  d.log('vm hibernated', { id, ms, quiesceMs, bytes: Object.values(saved.files).reduce((a, f) => a + f.size, 0) });
  return d.store.setState(id, 'stopped', { pid: null, exit, hibernation }, { hibernated: true, ms });
}

/** Where a hibernated VM's restore starts from; the saved state is deleted once the guest runs on. */
export function hibernationBoot(vm: VmRecord, store: StateStore): BootFrom {
  const h = vm.hibernation!;
  return {
    kind: 'restore', stateDir: h.dir, diskFrom: null, what: `hibernation of ${h.at}`, hostname: vm.name,
    restore: {
      ...(h.diskPathInVmm ? { diskPathInVmm: h.diskPathInVmm } : {}),
      ...(h.guestAgent !== undefined ? { guestAgent: h.guestAgent } : {}),
    },
    consumed: async () => {
      store.patchVm(vm.id, { hibernation: null });
      await rm(h.dir, { recursive: true, force: true });
    },
  };
}

/**
 * A golden snapshot's capture: pauses a ready VM, writes its state into dir, copies its disk beside it while
 * still paused (memory and disk from one instant), and lets it run on. The VM's own guest identity (the
 * snapshot's, for a clone) is what clones of this snapshot will recreate.
 */
export async function captureVm(vm: VmRecord, dir: string, d: SavedStateDeps): Promise<CapturedVm> {
  const id = vm.id;
  const l = d.live.must(id);
  const spec = specOf(vm);
  const t0 = performance.now();
  await quiesce(d, id, 'snapshot');
  await l.handle.pause();
  d.store.setState(id, 'paused', {}, { reason: 'snapshot' });
  const tPaused = performance.now();
  let saved;
  let tState = tPaused;
  const disk = join(dir, SNAPSHOT_DISK);
  try {
    saved = await l.handle.saveState(dir, { shareMemory: true });
    tState = performance.now();
    await copyDisk(spec.rootfsPath, disk);
  } finally {
    await l.handle.resume().catch((e: unknown) => d.log('resume after snapshot failed', { id, error: (e as Error).message }));
    if (d.store.mustGetVm(id).state === 'paused') d.store.setState(id, 'ready', {}, { reason: 'snapshot' });
  }
  const tDisk = performance.now();
  return {
    vm: d.store.mustGetVm(id),
    guestNet: guestIdentity(vm.net!, vm.net!.clone ? null : await d.network.gatewayMac()),
    machine: {
      vcpus: spec.vcpus, memMiB: spec.memMiB, kernelPath: spec.kernelPath, bootArgs: spec.bootArgs,
      ...(saved.guestAgent !== undefined ? { guestAgent: saved.guestAgent } : {}),
    },
    vmm: { kind: vm.vmm, version: saved.vmmVersion },
    files: { ...saved.files, [SNAPSHOT_DISK]: await hashFile(disk) },
    ...(saved.diskPathInVmm ? { diskPathInVmm: saved.diskPathInVmm } : {}),
    durationsMs: { pause: Math.round(tPaused - t0), state: Math.round(tState - tPaused), disk: Math.round(tDisk - tState), total: Math.round(tDisk - t0) },
  };
}
