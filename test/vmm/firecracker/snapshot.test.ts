// The Firecracker snapshot backend against the FAKE Firecracker (test/support/fake-firecracker.ts, spawned by the
// real driver as if it were the binary): no Firecracker can run here, so this shows the conversation — pause,
// snapshot/create, then a fresh process whose first call after the logger is snapshot/load (with clock_realtime
// where the API has it), resumed by Hangar — and the rules around it, not a guest.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { isHangarError } from '../../../src/errors.js';
import { FC_MEMORY_FILE, FC_VMSTATE_FILE } from '../../../src/vmm/firecracker/snapshot.js';
import { FirecrackerDriver } from '../../../src/vmm/firecracker/driver.js';
import type { MachineSpec } from '../../../src/vmm/types.js';
import { skipUnlessShared } from '../../support/env.js';
import { fakeFirecrackerWorkspace, type FakeTraceEntry } from '../../support/fake-firecracker.js';

const skip = skipUnlessShared();
const { root, fakeBin, kernel, handles } = fakeFirecrackerWorkspace('hangar-fc-snap-');

let n = 0;
function setup(version: string): { driver: FirecrackerDriver; spec: MachineSpec; trace: () => FakeTraceEntry[]; stateDir: string } {
  const id = `fcsnap-${++n}`;
  const runDir = join(root, id);
  mkdirSync(runDir);
  writeFileSync(join(runDir, 'rootfs.ext4'), '');
  const stateDir = join(runDir, 'hibernation');
  mkdirSync(stateDir);
  const tracePath = join(runDir, 'fake-trace.jsonl');
  const driver = new FirecrackerDriver({
    env: { ...process.env, FIRECRACKER_BIN: fakeBin, FAKE_FIRECRACKER_VERSION: version, FAKE_FIRECRACKER_TRACE: tracePath },
    identityBinary: process.execPath, termGraceMs: 1000, apiReadyTimeoutMs: 20_000,
  });
  const spec: MachineSpec = {
    id, kernelPath: kernel, rootfsPath: join(runDir, 'rootfs.ext4'), bootArgs: 'console=ttyS0 reboot=k panic=1 pci=off', vcpus: 1, memMiB: 256,
    net: { tap: `tap${n}`, mac: '02:fc:00:00:00:01' }, consoleLogPath: join(runDir, 'console.log'), runDir,
  };
  const trace = (): FakeTraceEntry[] => (existsSync(tracePath) ? readFileSync(tracePath, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as FakeTraceEntry) : []);
  return { driver, spec, trace, stateDir };
}

const calls = (t: FakeTraceEntry[]): string[] => t.map((e) => `${e.method} ${e.path} ${e.status}`);

test('FAKE Firecracker 1.16.1: save = pause + snapshot/create; restore = logger, snapshot/load (clock_realtime), then Hangar resumes', { skip }, async () => {
  const { driver, spec, trace, stateDir } = setup('1.16.1');
  const h = await driver.startFirecracker(spec);
  handles.push(h);
  const saved = await h.saveState(stateDir);
  assert.deepEqual(calls(trace()).filter((c) => !c.startsWith('GET ')).slice(-2), ['PATCH /vm 204', 'PUT /snapshot/create 204']);
  const patch = trace().find((e) => e.path === '/vm')!.body as Record<string, unknown>;
  assert.equal(patch.state, 'Paused');
  assert.deepEqual(Object.keys(saved.files).sort(), [FC_MEMORY_FILE, FC_VMSTATE_FILE].sort());
  assert.match(saved.files[FC_VMSTATE_FILE]!.sha256, /^[0-9a-f]{64}$/);
  assert.equal(saved.vmmVersion, '1.16.1');
  assert.equal(saved.diskPathInVmm, spec.rootfsPath);
  await h.stop({ graceMs: 100 });

  const before = trace().length;
  const r = { handle: await driver.restore(spec, stateDir, { files: saved.files, diskPathInVmm: saved.diskPathInVmm! }) };
  handles.push(r.handle);
  const second = trace().slice(before);
  assert.deepEqual(calls(second), ['GET / 200', 'PUT /logger 204', 'PUT /snapshot/load 204'], 'nothing boot-specific before the load');
  const load = second.at(-1)!.body as Record<string, unknown>;
  assert.equal(load.resume_vm, false, 'loaded paused: Hangar resumes after its checks');
  assert.equal(load.clock_realtime, true, 'the guest clock is advanced by the VMM (1.16.1)');
  assert.deepEqual(load.vsock_override, { uds_path: join(spec.runDir, 'vsock.sock') }, 'the vsock socket is this VM\'s own, not the recorded one (1.16.1)');
  assert.deepEqual(load.mem_backend, { backend_type: 'File', backend_path: join(stateDir, FC_MEMORY_FILE) });
  assert.equal(await r.handle.status(), 'paused');
  await r.handle.resume();
  assert.equal(await r.handle.status(), 'running');
  assert.equal(await r.handle.afterResume(), null);
  await r.handle.stop({ graceMs: 100 });
});

test('FAKE Firecracker 1.13.1: no clock_realtime in that API; a clone at another disk path is refused before any process', { skip }, async () => {
  const { driver, spec, trace, stateDir } = setup('1.13.1');
  const h = await driver.startFirecracker(spec);
  handles.push(h);
  const saved = await h.saveState(stateDir);
  await h.stop({ graceMs: 100 });
  const before = trace().length;
  // The snapshot reopens its disk where it was: another VM's run directory cannot receive it (unjailed).
  const other = { ...spec, id: 'fcsnap-other', runDir: join(root, 'other'), rootfsPath: join(root, 'other', 'rootfs.ext4') };
  await assert.rejects(driver.restore(other, stateDir, { files: saved.files, diskPathInVmm: saved.diskPathInVmm! }),
    (e: unknown) => isHangarError(e, 'SNAPSHOT_FAILED') && /clones of a Firecracker VM need the jailer/.test((e as Error).message));
  assert.equal(trace().length, before, 'refused before a process was started');
  // A truncated memory file is refused by its recorded size.
  writeFileSync(join(stateDir, FC_MEMORY_FILE), '');
  await assert.rejects(driver.restore(spec, stateDir, { files: saved.files }), (e: unknown) => isHangarError(e, 'SNAPSHOT_FAILED'));
  writeFileSync(join(stateDir, FC_MEMORY_FILE), readFileSync(join(stateDir, FC_VMSTATE_FILE)).length ? 'x' : '');
  const ok = await driver.restore(spec, stateDir, {});
  handles.push(ok);
  const load = trace().filter((e) => e.path === '/snapshot/load').at(-1)!.body as Record<string, unknown>;
  assert.equal('clock_realtime' in load, false);
  assert.equal('vsock_override' in load, false, 'not in the 1.13.1 API');
  await ok.stop({ graceMs: 100 });
});
