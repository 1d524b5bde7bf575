// The reconciler (src/vm/reconcile.ts) over a real SQLite store and FAKE drivers and network: what it adopts,
// fails, rolls back and reclaims at controller start.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { VmRecord } from '../../src/domain/vm.js';
import { Store } from '../../src/store/store.js';
import type { UndoStack } from '../../src/util/steps.js';
import { reconcile, type ReconcilePorts } from '../../src/vm/reconcile.js';
import type { VmmDriver, VmmHandle } from '../../src/vmm/driver.js';
import type { MachineSpec } from '../../src/vmm/types.js';
import { fakeNetwork } from '../support/fake-network.js';

function setup(): { store: Store; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-reconcile-'));
  const store = new Store(join(dir, 'state.db'));
  return { store, cleanup: () => { store.close(); rmSync(dir, { recursive: true, force: true }); } };
}

const spec = (id: string): MachineSpec => ({ id, kernelPath: '/k', rootfsPath: `/run/${id}/rootfs.ext4`, bootArgs: '', vcpus: 1, memMiB: 512, consoleLogPath: `/run/${id}/console.log`, runDir: `/run/${id}` });

/** A VM row walked to `path`'s last state, with a network from the pool. */
function vmIn(store: Store, net: ReturnType<typeof fakeNetwork>, id: string, path: VmRecord['state'][]): void {
  store.createVm({ id, name: id, state: 'creating', imageId: 'img', profile: 'desktop', vmm: 'qemu', vcpus: 1, memMiB: 512, ttlS: null, expiresAt: null, runDir: `/run/${id}` }, { maxVms: 64, plan: net.poolPlan(id) });
  for (const s of path) store.setState(id, s, s === 'booting' ? { spec: spec(id) } : {});
}

function handle(id: string, stopped: string[]): VmmHandle {
  return {
    kind: 'qemu', pid: 1000, spec: spec(id), pause: async () => {}, resume: async () => {}, status: async () => 'running',
    stop: async () => { stopped.push(id); return { code: 0, signal: null, by: 'hangar', at: '' }; }, exited: new Promise(() => {}),
    saveState: async () => { throw new Error('no'); }, afterResume: async () => null,
  };
}

test('adopts what runs, fails what died, rolls back half-created VMs, reclaims orphans', async () => {
  const { store, cleanup } = setup();
  try {
    const net = fakeNetwork();
    vmIn(store, net, 'vm-alive', ['booting', 'ready']);
    vmIn(store, net, 'vm-dead', ['booting', 'ready']);
    vmIn(store, net, 'vm-booted-away', ['booting']);
    vmIn(store, net, 'vm-half', []);
    vmIn(store, net, 'vm-stopped', ['booting', 'ready', 'stopping', 'stopped']);
    const running = new Set(['vm-alive', 'vm-booted-away']);
    const stopped: string[] = [];
    const driver: VmmDriver = {
      kind: 'qemu', stateFiles: [], probe: async () => ({ kind: 'qemu', available: true, reason: '' }), start: async () => { throw new Error('no'); },
      adopt: async (s) => (running.has(s.id) ? handle(s.id, stopped) : null), restoreRefusal: async () => null, restore: async () => { throw new Error('no'); },
    };
    const adopted: { id: string; undo: string[] }[] = [];
    const removed: string[] = [];
    const alive = store.mustGetVm('vm-alive').net!;
    net.host = { taps: [alive.tap, 'hgtap9'], netns: ['hgc-stale'] };
    const ports: ReconcilePorts = {
      store, drivers: { qemu: driver }, network: net,
      adopt: (vm, _h, undo: UndoStack) => adopted.push({ id: vm.id, undo: undo.names }),
      liveNets: () => adopted.map((a) => store.mustGetVm(a.id).net!),
      consoleTail: async (vm) => (vm.id === 'vm-booted-away' ? 'HANGAR-INIT\nHANGAR-READY\n' : ''),
      listRunDirs: async () => ['vm-alive', 'vm-dead', 'vm-gone-long-ago'],
      removeRunDir: async (v) => { removed.push('id' in v ? v.id : v.runDir); },
      log: () => {},
    };
    const r = await reconcile(ports);
    assert.deepEqual(r.adopted.sort(), ['vm-alive', 'vm-booted-away']);
    assert.deepEqual(r.failed, ['vm-dead']);
    assert.deepEqual(r.rolledBack, ['vm-half']);
    assert.equal(store.getVm('vm-half'), null, 'a half-created VM is gone');
    assert.equal(store.mustGetVm('vm-dead').state, 'failed');
    assert.equal(store.mustGetVm('vm-dead').lastError?.code, 'VMM_CRASHED');
    assert.equal(store.mustGetVm('vm-booted-away').state, 'ready', 'it became ready while the controller was away');
    assert.equal(store.mustGetVm('vm-stopped').state, 'stopped', 'a stopped VM is left alone');
    assert.deepEqual(adopted.find((a) => a.id === 'vm-alive')?.undo, [`tap ${alive.tap}`], 'an adopted VM keeps the undo of its network');
    assert.deepEqual(r.orphanTaps, ['hgtap9']);
    assert.deepEqual(r.orphanCloneNetns, ['hgc-stale']);
    assert.ok(net.log.includes('remove orphan hgtap9') && !net.log.includes(`remove orphan ${alive.tap}`), 'the live VM\'s TAP stays');
    assert.deepEqual(r.orphanDirs, ['vm-gone-long-ago']);
    assert.ok(removed.includes('vm-gone-long-ago') && !removed.includes('vm-alive'));
    assert.equal(store.events({ since: 0 }).at(-1)?.type, 'controller.reconciled');
  } finally {
    cleanup();
  }
});
