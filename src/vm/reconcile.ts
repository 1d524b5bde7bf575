// Run once at controller start: adopt VMMs still running, fail VMs whose VMM died while the controller was away,
// roll back half-created VMs, and reclaim what no VM owns (TAPs, clone namespaces, run directories). Every
// effect goes through `ReconcilePorts`, so the decisions are tested with fakes. A run directory is never removed
// while a VMM still runs from it (a VM whose record is gone): that VMM is found by identity and stopped first, and
// a directory whose VMM will not die is kept and reported. The real finder and stopper are at the end of the file.
import { readdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { READY_MARKER } from '../guest-protocol.js';
import type { VmState } from '../domain/states.js';
import type { VmNet, VmRecord } from '../domain/vm.js';
import type { StateStore } from '../store/store.js';
import { UndoStack } from '../util/steps.js';
import type { VmmDriver, VmmHandle } from '../vmm/driver.js';
import { readPidFile, readProc } from '../vmm/supervisor.js';
import type { VmmKind } from '../vmm/types.js';
import { describeNet, type VmNetwork } from './network.js';

export interface ReconcileReport {
  adopted: string[];
  failed: string[];
  rolledBack: string[];
  orphanTaps: string[];
  orphanDirs: string[];
  orphanCloneNetns: string[];
  /** VMMs that still ran from a run directory being removed, stopped before it went. */
  stoppedVmms: { dir: string; pid: number }[];
  /** Run directories kept because their VMM would not stop (or could not be checked). */
  keptDirs: { dir: string; pid: number | null }[];
}

/** A VMM found running from a run directory, and whether it is gone after being stopped. */
export interface RunDirVmm {
  pid: number;
  gone: boolean;
}

export interface ReconcilePorts {
  store: StateStore;
  drivers: Partial<Record<VmmKind, VmmDriver>>;
  network: VmNetwork;
  /** Takes an adopted VMM under watch, with the undo of its running resources (its network). */
  adopt(vm: VmRecord, handle: VmmHandle, undo: UndoStack): void;
  /** The live VMs' networks after adoption (what must not be reclaimed). */
  liveNets(): VmNet[];
  consoleTail(vm: VmRecord, lines: number): Promise<string>;
  listRunDirs(): Promise<string[]>;
  removeRunDir(vm: { runDir: string } | { id: string }): Promise<void>;
  /** Stops a VMM still running from this run directory (see stopVmmIn); null when none runs there. */
  stopRunDirVmm(vm: { runDir: string } | { id: string }): Promise<RunDirVmm | null>;
  log(msg: string, data?: Record<string, unknown>): void;
}

const RUNNING: readonly VmState[] = ['booting', 'ready', 'paused', 'stopping'];

export async function reconcile(p: ReconcilePorts): Promise<ReconcileReport> {
  const report: ReconcileReport = { adopted: [], failed: [], rolledBack: [], orphanTaps: [], orphanDirs: [], orphanCloneNetns: [], stoppedVmms: [], keptDirs: [] };
  for (const vm of p.store.listVms()) {
    if (vm.state === 'creating') {
      await reclaimRunDir(p, vm, vm.id, report);
      p.store.deleteVm(vm.id);
      report.rolledBack.push(vm.id);
      continue;
    }
    if (!RUNNING.includes(vm.state)) continue;
    const driver = p.drivers[vm.vmm];
    let handle: VmmHandle | null = null;
    try {
      handle = driver && vm.spec ? await driver.adopt(vm.spec) : null;
    } catch (e) {
      p.log('adopt failed', { id: vm.id, error: (e as Error).message });
    }
    if (handle && vm.state !== 'stopping') {
      const undo = new UndoStack();
      const net = vm.net;
      if (net) undo.push(describeNet(net), () => p.network.detach(net));
      p.adopt(vm, handle, undo);
      if (vm.state === 'booting') {
        // It may have become ready while we were away; otherwise it never will be watched again: fail it.
        const ready = (await p.consoleTail(vm, 2000)).includes(READY_MARKER);
        p.store.setState(vm.id, ready ? 'ready' : 'failed', ready ? {} : { lastError: { code: 'VM_BOOT_TIMEOUT', message: 'the controller restarted while the VM was booting' } });
      }
      p.store.patchVm(vm.id, { pid: handle.pid });
      report.adopted.push(vm.id);
    } else {
      if (handle) await handle.stop({ graceMs: 0 }).catch(() => undefined);
      await p.network.detach(vm.net).catch(() => undefined);
      const to: VmState = vm.state === 'stopping' ? 'stopped' : 'failed';
      p.store.setState(vm.id, to, to === 'failed' ? { pid: null, lastError: { code: 'VMM_CRASHED', message: 'the VMM was gone when the controller started' } } : { pid: null });
      report.failed.push(vm.id);
    }
  }
  const orphans = await p.network.orphans(p.liveNets());
  await p.network.removeOrphans(orphans);
  report.orphanTaps.push(...orphans.taps);
  report.orphanCloneNetns.push(...orphans.netns);
  const known = new Set(p.store.listVms().map((v) => v.id));
  for (const d of await p.listRunDirs()) {
    if (known.has(d)) continue;
    if (await reclaimRunDir(p, { id: d }, d, report)) report.orphanDirs.push(d);
  }
  p.store.appendEvent(null, 'controller.reconciled', { ...report });
  return report;
}

/** Removes a run directory once no VMM runs from it; false (and reported) when it has to stay. */
async function reclaimRunDir(p: ReconcilePorts, v: { runDir: string } | { id: string }, dir: string, report: ReconcileReport): Promise<boolean> {
  let vmm: RunDirVmm | null;
  try {
    vmm = await p.stopRunDirVmm(v);
  } catch (e) {
    p.log('run directory kept: cannot tell whether a VMM runs from it', { dir, error: (e as Error).message });
    report.keptDirs.push({ dir, pid: null });
    return false;
  }
  if (vmm && !vmm.gone) {
    p.log('run directory kept: its VMM did not stop', { dir, pid: vmm.pid });
    report.keptDirs.push({ dir, pid: vmm.pid });
    return false;
  }
  if (vmm) {
    p.log('stopped a VMM that ran from a run directory without a VM', { dir, pid: vmm.pid });
    report.stoppedVmms.push({ dir, pid: vmm.pid });
  }
  await p.removeRunDir(v);
  return true;
}

// ---- the real finder and stopper (ports of the manager)

/**
 * Does pid run from RUNDIR? Its command line must name a path inside the run directory (QEMU's QMP socket and
 * console, Firecracker's API socket) or, for a jailed Firecracker (which sees only its chroot), carry `--id=<id>`
 * with the directory's VM id. Zombies and gone processes do not count.
 */
export async function runsFrom(pid: number, runDir: string): Promise<boolean> {
  const info = await readProc(pid);
  if (!info || info.stat?.state === 'Z') return false;
  const inside = runDir.endsWith('/') ? runDir : `${runDir}/`;
  const idArg = `--id=${basename(runDir)}`;
  return info.argv.some((a) => a.includes(inside) || a === idArg);
}

/** Waits until pid is gone or a zombie (its exit done), at most ms. */
async function exitedWithin(pid: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const info = await readProc(pid);
    if (!info || info.stat?.state === 'Z' || info.stat?.state === 'X' || Date.now() > deadline) return;
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The pid of a VMM running from RUNDIR: named by a pidfile there (qemu.pid, firecracker.pid) and verified in /proc. */
export async function findVmmIn(runDir: string): Promise<number | null> {
  const names = (await readdir(runDir).catch(() => [] as string[])).filter((n) => n.endsWith('.pid')).sort();
  for (const name of names) {
    const pid = await readPidFile(join(runDir, name));
    if (pid !== null && pid !== process.pid && (await runsFrom(pid, runDir))) return pid;
  }
  return null;
}

/**
 * Stops the VMM running from RUNDIR, if any: SIGTERM, then SIGKILL after graceMs, the identity re-checked before
 * each signal (a pid that no longer runs from the directory is never signalled). Its process group is signalled
 * when it leads one (a VMM is spawned detached).
 */
export async function stopVmmIn(runDir: string, opts: { graceMs?: number; killWaitMs?: number } = {}): Promise<RunDirVmm | null> {
  const pid = await findVmmIn(runDir);
  if (pid === null) return null;
  for (const [sig, waitMs] of [['SIGTERM', opts.graceMs ?? 5000], ['SIGKILL', opts.killWaitMs ?? 5000]] as const) {
    const info = await readProc(pid);
    if (!(await runsFrom(pid, runDir))) return { pid, gone: true };
    try {
      process.kill(info?.stat?.pgrp === pid ? -pid : pid, sig);
    } catch {
      /* gone meanwhile: checked below */
    }
    const deadline = Date.now() + waitMs;
    while (Date.now() < deadline) {
      if (!(await runsFrom(pid, runDir))) {
        // An exiting process loses its command line before it is gone: wait out the exit itself (briefly).
        await exitedWithin(pid, 1000);
        return { pid, gone: true };
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return { pid, gone: !(await runsFrom(pid, runDir)) };
}
