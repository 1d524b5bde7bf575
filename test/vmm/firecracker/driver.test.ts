// The driver end to end against a FAKE Firecracker (test/support/fake-firecracker.ts) that the driver spawns as
// if it were `firecracker --api-sock`, under the real process supervisor. No Firecracker binary can run here; the
// fake enforces the published definitions' schemas and Firecracker's state rules, so these tests show the
// driver's conversation, supervision, console plumbing and cleanup — not a guest boot.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { isHangarError } from '../../../src/errors.js';
import { FirecrackerDriver } from '../../../src/vmm/firecracker/driver.js';
import type { FirecrackerDriverOptions, FirecrackerHandle } from '../../../src/vmm/firecracker/driver.js';
import { socketRequest } from '../../../src/vmm/firecracker/http.js';
import { machineConfigRequest } from '../../../src/vmm/firecracker/requests.js';
import { VERIFIED_API_VERSIONS } from '../../../src/vmm/firecracker/version.js';
import type { MachineSpec } from '../../../src/vmm/types.js';
import { skipUnlessShared } from '../../support/env.js';
import type { FakeTraceEntry } from '../../support/fake-firecracker.js';
import { fakeFirecrackerWorkspace } from '../../support/fake-firecracker.js';

const skip = skipUnlessShared();
const { root, fakeBin, kernel, handles } = fakeFirecrackerWorkspace('hangar-fc-drv-');

let n = 0;
function setup(version = '1.16.1', env: Record<string, string> = {}, extra: FirecrackerDriverOptions = {}): { driver: FirecrackerDriver; spec: MachineSpec; trace: () => FakeTraceEntry[] } {
  const id = `fcvm-${++n}`;
  const runDir = join(root, id);
  mkdirSync(runDir);
  const rootfs = join(runDir, 'rootfs.ext4');
  writeFileSync(rootfs, '');
  const tracePath = join(runDir, 'fake-trace.jsonl');
  const driver = new FirecrackerDriver({
    env: { ...process.env, FIRECRACKER_BIN: fakeBin, FAKE_FIRECRACKER_VERSION: version, FAKE_FIRECRACKER_TRACE: tracePath, ...env },
    identityBinary: process.execPath, // the fake is a node script
    termGraceMs: 1000,
    apiReadyTimeoutMs: 20_000, // the fake is a Node process: its start-up, not Firecracker's, on a busy 2-core host
    ...extra,
  });
  const spec: MachineSpec = {
    id, kernelPath: kernel, rootfsPath: rootfs, bootArgs: 'console=ttyS0 reboot=k panic=1 pci=off', vcpus: 2, memMiB: 256,
    net: { tap: `tap${n}`, mac: '02:fc:00:00:00:01' }, consoleLogPath: join(runDir, 'console.log'), runDir,
  };
  const trace = (): FakeTraceEntry[] => (existsSync(tracePath) ? readFileSync(tracePath, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as FakeTraceEntry) : []);
  return { driver, spec, trace };
}

async function start(driver: FirecrackerDriver, spec: MachineSpec, opts: Parameters<FirecrackerDriver['startFirecracker']>[1] = {}): Promise<FirecrackerHandle> {
  const h = await driver.startFirecracker(spec, opts);
  handles.push(h);
  return h;
}

const alive = (pid: number): boolean => {
  try { process.kill(pid, 0); return true; } catch { return false; }
};
/** Pids whose command line mentions `s` (a leaked VMM would). */
function processesMentioning(s: string): number[] {
  const pids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(s)) pids.push(Number(d));
    } catch { /* gone */ }
  }
  return pids;
}
const calls = (t: FakeTraceEntry[]): string[] => t.filter((e) => e.path !== '/').map((e) => `${e.method} ${e.path} ${e.status}`);

for (const version of VERIFIED_API_VERSIONS) {
  test(`FAKE Firecracker ${version}: boot in order, console to consoleLogPath, pause/resume, stop by Ctrl-Alt-Del`, { skip }, async () => {
    const { driver, spec, trace } = setup(version);
    const t0 = performance.now();
    const h = await start(driver, spec);
    const startMs = performance.now() - t0;
    assert.equal(h.apiVersion, version);
    assert.deepEqual(calls(trace()), [
      'PUT /logger 204', 'PUT /machine-config 204', 'PUT /boot-source 204', 'PUT /drives/rootfs 204',
      'PUT /network-interfaces/eth0 204', 'PUT /entropy 204', 'PUT /vsock 204', 'PUT /actions 204',
    ]);
    const bodies = trace().filter((e) => e.path !== '/').map((e) => e.body);
    assert.deepEqual(bodies[1], { vcpu_count: 2, mem_size_mib: 256, smt: false, track_dirty_pages: false });
    assert.deepEqual(bodies[4], { iface_id: 'eth0', host_dev_name: spec.net!.tap, guest_mac: '02:fc:00:00:00:01' });
    assert.match(readFileSync(spec.consoleLogPath, 'utf8'), /fake VMM, no guest kernel runs[\s\S]*cmdline: console=ttyS0 reboot=k/);
    assert.match(readFileSync(join(spec.runDir, 'firecracker.log'), 'utf8'), /InstanceStart/, 'Firecracker log configured to runDir');
    assert.equal(readFileSync(join(spec.runDir, 'firecracker.pid'), 'utf8').trim(), String(h.pid));

    assert.equal(await h.status(), 'running');
    await h.pause();
    assert.equal(await h.status(), 'paused');
    await h.resume();
    assert.equal(await h.status(), 'running');

    const exit = await h.stop();
    assert.deepEqual([exit.code, exit.signal, exit.by], [0, null, 'hangar']);
    assert.equal(alive(h.pid), false);
    assert.deepEqual(processesMentioning(spec.runDir), []);
    assert.equal(existsSync(join(spec.runDir, 'firecracker.sock')), false, 'socket removed');
    assert.equal(existsSync(join(spec.runDir, 'firecracker.pid')), false, 'pidfile removed');
    assert.ok(trace().some((e) => e.method === 'PUT' && (e.body as { action_type?: string } | undefined)?.action_type === 'SendCtrlAltDel'));
    console.log(`# fake ${version}: spawn → API → configured → InstanceStart in ${startMs.toFixed(0)} ms`);
  });
}

test('FAKE Firecracker: preboot calls after start are refused by the driver before sending, and by the fake too', { skip }, async () => {
  const { driver, spec, trace } = setup();
  const h = await start(driver, spec);
  const before = trace().length;
  await assert.rejects(h.api.send(machineConfigRequest({ vcpus: 1, memMiB: 128 })), (e) => {
    assert.ok(isHangarError(e, 'VMM_NOT_ALLOWED_IN_STATE'));
    assert.match(e.message, /^put-machine-config not allowed in state Running/);
    return true;
  });
  await assert.rejects(h.snapshotCreate({ snapshotPath: join(spec.runDir, 's'), memFilePath: join(spec.runDir, 'm') }), /snapshot-create not allowed in state Running/);
  assert.equal(trace().length, before, 'nothing reached the socket');
  // The fake enforces the same rule on its side (what the real VMM would answer).
  const raw = await socketRequest(h.plan.apiSocket, 'PUT', '/boot-source', { kernel_image_path: kernel });
  assert.equal(raw.status, 400);
  assert.match((raw.body as { fault_message: string }).fault_message, /not supported after starting the microVM/);
  await h.stop();
});

test('FAKE Firecracker: snapshot create (Paused) then restore on a fresh process: logger, load, resume', { skip }, async () => {
  const { driver, spec, trace } = setup('1.13.1');
  const h = await start(driver, spec);
  await h.pause();
  const snap = { snapshotPath: join(spec.runDir, 'vm.snap'), memFilePath: join(spec.runDir, 'vm.mem') };
  await h.snapshotCreate(snap);
  assert.ok(existsSync(snap.snapshotPath) && existsSync(snap.memFilePath));
  const exit = await h.stop({ graceMs: 100 });
  assert.equal(exit.by, 'hangar');
  assert.equal(exit.signal, 'SIGTERM', 'paused: no Ctrl-Alt-Del, straight to SIGTERM');
  const first = calls(trace());
  assert.deepEqual(first.slice(-2), ['PATCH /vm 204', 'PUT /snapshot/create 204']);

  const r = await start(driver, spec, { restore: { ...snap, trackDirtyPages: true } });
  const second = calls(trace()).slice(first.length);
  assert.deepEqual(second, ['PUT /logger 204', 'PUT /snapshot/load 204'], 'nothing boot-specific precedes the load');
  const load = trace().filter((e) => e.path === '/snapshot/load').at(-1)!.body as Record<string, unknown>;
  assert.equal(load.track_dirty_pages, true, '1.13.1 gets the new field name');
  assert.equal(await r.status(), 'paused');
  await r.resume();
  assert.equal(await r.status(), 'running');
  await r.stop();
});

test('FAKE Firecracker: a refused boot step fails the start with the fault message and leaves nothing behind', { skip }, async () => {
  const { driver, spec } = setup();
  const bad = { ...spec, kernelPath: join(root, 'missing-vmlinux') };
  await assert.rejects(driver.startFirecracker(bad), (e) => {
    assert.ok(isHangarError(e, 'VMM_START_FAILED'), String(e));
    assert.match(e.message, /^Firecracker refused put-boot-source: Boot source error: The kernel file cannot be opened/);
    assert.equal(e.details.status, 400);
    return true;
  });
  assert.deepEqual(processesMentioning(spec.runDir), [], 'the fake process was ended');
  assert.equal(existsSync(join(spec.runDir, 'firecracker.sock')), false);
  assert.equal(existsSync(join(spec.runDir, 'firecracker.pid')), false);
});

test('FAKE Firecracker: a configured API version that contradicts the binary fails the start', { skip }, async () => {
  const { driver, spec } = setup('1.16.1', {}, { apiVersion: '1.9.1' });
  await assert.rejects(driver.startFirecracker(spec), /configured for Firecracker API 1\.9\.1 but the binary reports 1\.16\.1/);
  assert.equal(existsSync(join(spec.runDir, 'firecracker.pid')), false);
});

test('no binary: start fails with VMM_NOT_AVAILABLE before touching anything', async () => {
  const d = new FirecrackerDriver({ env: { PATH: '/nonexistent' } });
  const runDir = join(root, 'never');
  await assert.rejects(d.start({ id: 'x', kernelPath: '/k', rootfsPath: '/r', bootArgs: '', vcpus: 1, memMiB: 128, consoleLogPath: join(runDir, 'c'), runDir }),
    (e) => isHangarError(e, 'VMM_NOT_AVAILABLE'));
  assert.equal(existsSync(runDir), false);
});

test('FAKE Firecracker: adopt re-attaches through pidfile + socket; a second start is refused', { skip }, async () => {
  const { driver, spec } = setup();
  const h = await start(driver, spec);
  await assert.rejects(driver.start(spec), (e) => isHangarError(e, 'CONFLICT'));
  const other = new FirecrackerDriver({ env: { ...process.env, FIRECRACKER_BIN: fakeBin }, identityBinary: process.execPath, apiReadyTimeoutMs: 20_000 });
  const a = await other.adoptFirecracker(spec);
  assert.ok(a);
  assert.equal(a.pid, h.pid);
  assert.equal(a.apiVersion, '1.16.1');
  assert.equal(a.api.model.state, 'Running');
  await a.pause();
  assert.equal(await h.status(), 'paused', 'both handles see the same VMM');
  const exit = await a.stop();
  assert.equal(exit.by, 'hangar');
  assert.equal((await h.exited).signal, 'SIGTERM', 'the first handle sees the same end');
  assert.equal(alive(h.pid), false);
  assert.equal(await other.adopt(spec), null, 'gone: nothing to adopt');
});

test('FAKE Firecracker: adopt never takes a recycled pid that runs something else', { skip }, async () => {
  const { driver, spec } = setup();
  writeFileSync(join(spec.runDir, 'firecracker.pid'), `${process.pid}\n`);
  assert.equal(await driver.adopt(spec), null);
  assert.ok(alive(process.pid));
});

test('FAKE Firecracker: a guest-initiated exit is recorded as the guest\'s; an outside SIGKILL as unknown', { skip }, async () => {
  const a = setup();
  const h1 = await start(a.driver, a.spec);
  await h1.api.send({ kind: 'send-ctrl-alt-del' }); // as if the guest rebooted itself: Firecracker exits 0
  const e1 = await h1.exited;
  assert.deepEqual([e1.code, e1.by], [0, 'guest']);

  const b = setup();
  const h2 = await start(b.driver, b.spec);
  const t0 = Date.now();
  process.kill(h2.pid, 'SIGKILL');
  const e2 = await h2.exited;
  assert.deepEqual([e2.signal, e2.by], ['SIGKILL', 'unknown']);
  assert.ok(Date.now() - t0 < 2000, 'detected within 2 s');
  assert.equal(await h2.status(), 'stopped');
});

test('FAKE Firecracker: a guest that ignores Ctrl-Alt-Del is stopped by SIGTERM after the grace time', { skip }, async () => {
  const { driver, spec } = setup('1.9.1', { FAKE_FIRECRACKER_CTRL_ALT_DEL: 'ignore' });
  const h = await start(driver, spec);
  const t0 = performance.now();
  const exit = await h.stop({ graceMs: 200 });
  assert.deepEqual([exit.signal, exit.by], ['SIGTERM', 'hangar']);
  assert.deepEqual(h.process.signalsSent, ['SIGTERM']);
  assert.ok(performance.now() - t0 >= 200);
});
