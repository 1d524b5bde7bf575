// Run once at controller start: adopt VMMs still running, fail VMs whose VMM died while the controller was away,
// roll back half-created VMs, and reclaim what no VM owns (TAPs, clone namespaces, run directories). Every
// effect goes through `ReconcilePorts`, so the decisions are tested with fakes.
import { READY_MARKER } from '../guest-protocol.js';
import type { VmState } from '../domain/states.js';
import type { VmNet, VmRecord } from '../domain/vm.js';
import type { StateStore } from '../store/store.js';
import { UndoStack } from '../util/steps.js';
import type { VmmDriver, VmmHandle } from '../vmm/driver.js';
import type { VmmKind } from '../vmm/types.js';
import { describeNet, type VmNetwork } from './network.js';

export interface ReconcileReport {
  adopted: string[];
  failed: string[];
  rolledBack: string[];
  orphanTaps: string[];
  orphanDirs: string[];
  orphanCloneNetns: string[];
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
  log(msg: string, data?: Record<string, unknown>): void;
}

const RUNNING: readonly VmState[] = ['booting', 'ready', 'paused', 'stopping'];

export async function reconcile(p: ReconcilePorts): Promise<ReconcileReport> {
  const report: ReconcileReport = { adopted: [], failed: [], rolledBack: [], orphanTaps: [], orphanDirs: [], orphanCloneNetns: [] };
  for (const vm of p.store.listVms()) {
    if (vm.state === 'creating') {
      await p.removeRunDir(vm);
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
    await p.removeRunDir({ id: d });
    report.orphanDirs.push(d);
  }
  p.store.appendEvent(null, 'controller.reconciled', { ...report });
  return report;
}
