// The reconciler (src/vm/reconcile.ts) over a real SQLite store and FAKE drivers and network: what it adopts,
// fails, rolls back and reclaims at controller start; and its real VMM finder against a harmless child process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { VmRecord } from '../../src/domain/vm.js';
import { Store } from '../../src/store/store.js';
import type { UndoStack } from '../../src/util/steps.js';
import { findVmmIn, reconcile, stopVmmIn, type ReconcilePorts } from '../../src/vm/reconcile.js';
import { readProc } from '../../src/vmm/supervisor.js';
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
      stopRunDirVmm: async () => null,
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

/** Ports for the run-directory part only: no VMs, the given directories under ROOT, real removal. */
function dirPorts(store: Store, root: string, dirs: string[], stopRunDirVmm: ReconcilePorts['stopRunDirVmm'], removed: { push(d: string): void }): ReconcilePorts {
  return {
    store, drivers: {}, network: fakeNetwork(), adopt: () => {}, liveNets: () => [], consoleTail: async () => '',
    listRunDirs: async () => dirs,
    removeRunDir: async (v) => { const d = 'id' in v ? join(root, v.id) : v.runDir; removed.push(d); await rm(d, { recursive: true, force: true }); },
    stopRunDirVmm, log: () => {},
  };
}

test('an orphan run directory whose VMM still runs: the VMM is stopped before the directory goes', async () => {
  const { store, cleanup } = setup();
  const calls: string[] = [];
  try {
    const r = await reconcile(dirPorts(store, '/nowhere', ['vm-orphan', 'vm-empty'], async (v) => {
      const id = 'id' in v ? v.id : v.runDir;
      calls.push(`stop ${id}`);
      return id === 'vm-orphan' ? { pid: 4242, gone: true } : null;
    }, { push: (d) => { calls.push(`remove ${d}`); } }));
    assert.deepEqual(calls, ['stop vm-orphan', 'remove /nowhere/vm-orphan', 'stop vm-empty', 'remove /nowhere/vm-empty']);
    assert.deepEqual(r.orphanDirs, ['vm-orphan', 'vm-empty']);
    assert.deepEqual(r.stoppedVmms, [{ dir: 'vm-orphan', pid: 4242 }]);
  } finally {
    cleanup();
  }
});

test('a run directory whose VMM will not stop (or cannot be checked) is kept and reported, never removed', async () => {
  const { store, cleanup } = setup();
  try {
    const removed: string[] = [];
    const r = await reconcile(dirPorts(store, '/nowhere', ['vm-stuck', 'vm-unknown'], async (v) => {
      if ('id' in v && v.id === 'vm-unknown') throw new Error('EACCES');
      return { pid: 99, gone: false };
    }, removed));
    assert.deepEqual(removed, []);
    assert.deepEqual(r.orphanDirs, []);
    assert.deepEqual(r.keptDirs, [{ dir: 'vm-stuck', pid: 99 }, { dir: 'vm-unknown', pid: null }]);
  } finally {
    cleanup();
  }
});

test('a half-created VM whose run directory has a live VMM: stopped first, then rolled back', async () => {
  const { store, cleanup } = setup();
  try {
    const net = fakeNetwork();
    vmIn(store, net, 'vm-half', []);
    const order: string[] = [];
    const ports = dirPorts(store, '/nowhere', [], async () => { order.push('stop'); return { pid: 7, gone: true }; }, []);
    ports.removeRunDir = async () => { order.push('remove'); };
    const r = await reconcile(ports);
    assert.deepEqual(order, ['stop', 'remove']);
    assert.deepEqual(r.rolledBack, ['vm-half']);
    assert.deepEqual(r.stoppedVmms, [{ dir: 'vm-half', pid: 7 }]);
  } finally {
    cleanup();
  }
});

/** A harmless stand-in for a VMM: node idling, its argv naming a socket inside RUNDIR, its pid in RUNDIR/qemu.pid. */
async function fakeVmmIn(runDir: string, args: string[] = [`unix:${join(runDir, 'qmp.sock')},server=on`], script = 'setInterval(() => {}, 1000)'): Promise<{ pid: number; exited: Promise<void> }> {
  const child = spawn(process.execPath, ['-e', script, '--', ...args], { detached: true, stdio: 'ignore' });
  await new Promise<void>((res, rej) => { child.once('spawn', res); child.once('error', rej); });
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  writeFileSync(join(runDir, 'qemu.pid'), `${child.pid!}\n`);
  return { pid: child.pid!, exited };
}

test('real finder: a live process named by the pidfile and naming the run dir is stopped before the directory is removed', async () => {
  const { store, cleanup } = setup();
  const root = mkdtempSync(join(tmpdir(), 'hangar-rundirs-'));
  const runDir = join(root, 'vm-orphan');
  mkdirSync(runDir);
  writeFileSync(join(runDir, 'rootfs.ext4'), 'disk');
  const vmm = await fakeVmmIn(runDir);
  try {
    assert.equal(await findVmmIn(runDir), vmm.pid);
    let aliveAtRemoval: boolean | null = null;
    const ports = dirPorts(store, root, ['vm-orphan'], (v) => stopVmmIn('id' in v ? join(root, v.id) : v.runDir, { graceMs: 2000 }), []);
    const remove = ports.removeRunDir;
    ports.removeRunDir = async (v) => {
      const info = await readProc(vmm.pid);
      aliveAtRemoval = info !== null && info.stat?.state !== 'Z';
      await remove(v);
    };
    const r = await reconcile(ports);
    await vmm.exited;
    assert.equal(aliveAtRemoval, false, 'the VMM was gone before its directory was removed');
    assert.deepEqual(r.stoppedVmms, [{ dir: 'vm-orphan', pid: vmm.pid }]);
    assert.deepEqual(r.orphanDirs, ['vm-orphan']);
    assert.equal(existsSync(runDir), false);
  } finally {
    try { process.kill(vmm.pid, 'SIGKILL'); } catch { /* already gone */ }
    cleanup();
    rmSync(root, { recursive: true, force: true });
  }
});

test('real finder: a pidfile naming a live process that does not run from the directory (a recycled pid) is not signalled', async () => {
  const root = mkdtempSync(join(tmpdir(), 'hangar-rundirs-'));
  const runDir = join(root, 'vm-a');
  const other = join(root, 'vm-ab');
  mkdirSync(runDir);
  mkdirSync(other);
  // Its argv names a sibling whose name extends this one: a prefix is not "inside".
  const stranger = await fakeVmmIn(other, [`unix:${join(other, 'qmp.sock')}`]);
  try {
    writeFileSync(join(runDir, 'qemu.pid'), `${stranger.pid}\n`);
    assert.equal(await findVmmIn(runDir), null);
    assert.equal(await stopVmmIn(runDir), null);
    assert.ok((await readProc(stranger.pid)) !== null, 'the stranger still runs');
    writeFileSync(join(runDir, 'qemu.pid'), `${process.pid}\n`);
    assert.equal(await findVmmIn(runDir), null, 'never ourselves');
  } finally {
    process.kill(stranger.pid, 'SIGKILL');
    await stranger.exited;
    rmSync(root, { recursive: true, force: true });
  }
});

test('real finder: a jailed Firecracker is recognised by --id=<the run directory\'s VM id>', async () => {
  const root = mkdtempSync(join(tmpdir(), 'hangar-rundirs-'));
  const runDir = join(root, 'vm-jailed');
  mkdirSync(runDir);
  const vmm = await fakeVmmIn(runDir, ['--id=vm-jailed', '--api-sock', '/firecracker.sock']);
  try {
    assert.equal(await findVmmIn(runDir), vmm.pid);
    assert.deepEqual(await stopVmmIn(runDir, { graceMs: 2000 }), { pid: vmm.pid, gone: true });
  } finally {
    try { process.kill(vmm.pid, 'SIGKILL'); } catch { /* already gone */ }
    rmSync(root, { recursive: true, force: true });
  }
});

test('real finder: a VMM that ignores SIGTERM gets SIGKILL after the grace time', async () => {
  const root = mkdtempSync(join(tmpdir(), 'hangar-rundirs-'));
  const runDir = join(root, 'vm-deaf');
  mkdirSync(runDir);
  const ready = join(runDir, 'handler-installed');
  const script = `process.on('SIGTERM', () => {}); require('fs').writeFileSync(${JSON.stringify(ready)}, ''); setInterval(() => {}, 1000)`;
  const vmm = await fakeVmmIn(runDir, [join(runDir, 'console.log')], script);
  try {
    // Wait until its SIGTERM handler is installed (a fixed sleep was too short on a loaded host).
    for (let i = 0; i < 200 && !existsSync(ready); i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(existsSync(ready), 'the fake VMM installed its SIGTERM handler');
    const t0 = Date.now();
    assert.deepEqual(await stopVmmIn(runDir, { graceMs: 300 }), { pid: vmm.pid, gone: true });
    assert.ok(Date.now() - t0 >= 300, 'SIGTERM was given its grace time');
  } finally {
    try { process.kill(vmm.pid, 'SIGKILL'); } catch { /* already gone */ }
    rmSync(root, { recursive: true, force: true });
  }
});
