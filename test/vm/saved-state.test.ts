// Hibernation and a snapshot's capture (src/vm/saved-state.ts) with the VMM, store and network faked: the host's
// own connections into the guest are closed while it still runs (quiesce before pause), a failing quiesce does not
// stop the save, and a VM that is already paused is not asked (its guest cannot answer a close).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { VmState } from '../../src/domain/states.js';
import type { VmNet, VmRecord } from '../../src/domain/vm.js';
import type { StateStore } from '../../src/store/store.js';
import { captureVm, hibernateVm, type SavedStateDeps } from '../../src/vm/saved-state.js';
import type { LiveVms } from '../../src/vm/live.js';
import type { VmmHandle } from '../../src/vmm/driver.js';
import { fakeNetwork } from '../support/fake-network.js';

function setup(state: VmState, quiesce: SavedStateDeps['quiesce'] | 'fail'): { deps: SavedStateDeps; vm: VmRecord; log: string[]; done(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-saved-'));
  const rootfs = join(dir, 'rootfs.ext4');
  writeFileSync(rootfs, 'disk');
  const log: string[] = [];
  const net = { ip: '10.0.0.2', tap: 'hgtap0', mac: '02:00:00:00:00:02', gateway: '10.0.0.1', netmask: '255.255.255.0', prefix: 24 } as VmNet;
  let vm = {
    id: 'vm-1', name: 'vm-1', state, runDir: dir, net, hibernation: null, vmm: 'qemu',
    spec: { id: 'vm-1', kernelPath: '/k', rootfsPath: rootfs, bootArgs: '', vcpus: 1, memMiB: 512, consoleLogPath: join(dir, 'c.log'), runDir: dir },
  } as Partial<VmRecord> as VmRecord;
  const handle = {
    pause: async () => { log.push('pause'); },
    resume: async () => { log.push('resume'); },
    saveState: async (to: string) => {
      log.push('save');
      writeFileSync(join(to, 'state.bin'), 'state');
      return { files: {}, vmmVersion: 'fake 1', ms: 1 };
    },
  } as Partial<VmmHandle> as VmmHandle;
  const live = {
    must: () => ({ handle, stopping: false, undo: [] as never }),
    stop: async () => { log.push('stop'); return null; },
  } as Partial<LiveVms> as LiveVms;
  const store = {
    setState: (_id: string, to: VmState) => { vm = { ...vm, state: to }; log.push(`state ${to}`); return vm; },
    mustGetVm: () => vm,
  } as Partial<StateStore> as StateStore;
  const deps: SavedStateDeps = {
    store, live, network: fakeNetwork(), log: (m) => { log.push(`log ${m}`); },
    ...(quiesce === 'fail' ? { quiesce: async () => { log.push('quiesce'); throw new Error('nope'); } } : quiesce ? { quiesce } : {}),
  };
  return { deps, vm, log, done: () => { rmSync(dir, { recursive: true, force: true }); } };
}

test('hibernation closes the host connections while the guest runs, before it pauses', async () => {
  const s = setup('ready', undefined);
  try {
    s.deps.quiesce = async (id, why) => { s.log.push(`quiesce ${id} ${why}`); };
    await hibernateVm(s.vm, s.deps);
    assert.deepEqual(s.log.filter((l) => /^(quiesce|pause|save|stop)/.test(l)), ['quiesce vm-1 hibernate', 'pause', 'save', 'stop']);
  } finally { s.done(); }
});

test('a failing quiesce is logged and the hibernation goes on; a paused VM is not asked', async () => {
  const s = setup('ready', 'fail');
  try {
    await hibernateVm(s.vm, s.deps);
    assert.deepEqual(s.log.slice(0, 3), ['quiesce', 'log closing host connections before a save failed', 'pause']);
  } finally { s.done(); }
  let asked = false;
  const p = setup('paused', async () => { asked = true; });
  try {
    await hibernateVm(p.vm, p.deps);
    assert.equal(asked, false);
  } finally { p.done(); }
});

test('a snapshot capture quiesces (why: snapshot) before it pauses, and the VM runs on', async () => {
  const seen: string[] = [];
  const s = setup('ready', async (_id, why) => { seen.push(why); s.log.push('quiesce'); });
  try {
    await captureVm(s.vm, mkdtempSync(join(s.vm.runDir, 'snap-')), s.deps);
    assert.deepEqual(seen, ['snapshot']);
    assert.deepEqual(s.log.filter((l) => /^(quiesce|pause|save|resume)$/.test(l)), ['quiesce', 'pause', 'save', 'resume']);
  } finally { s.done(); }
});
