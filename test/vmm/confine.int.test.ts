// Confined VMMs, real QEMU (TCG) in a test network: QEMU runs as the unprivileged VMM user under its seccomp
// sandbox, in its own cgroup with the VM's limits, and everything still works — boot, pause/resume, a golden
// snapshot and a clone of it, hibernation, adoption after a controller restart, stop/start, console trimming.
// The limits are effective: a VM capped at 0.3 cores uses at most that while TCG burns CPU booting, and a VM whose
// memory limit is below what it needs is killed inside its cgroup and failed with VMM_OUT_OF_MEMORY while the
// controller and the other VM carry on.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { toVmView } from '../../src/api/routes.js';
import { openVmCgroup, detectCgroups, type CgroupLayout } from '../../src/vmm/cgroup/host.js';
import { DEFAULT_RESOURCES } from '../../src/vmm/cgroup/plan.js';
import { findSetpriv, resolveVmmUser, RUN_DIR_MODE, type Confinement, type VmmUser } from '../../src/vmm/confine.js';
import { trimConsoleLog } from '../../src/vmm/console-trim.js';
import { QemuDriver } from '../../src/vmm/qemu/driver.js';
import { normalizeCreate } from '../../src/vm/input.js';
import type { VmManager } from '../../src/vm/manager.js';
import { pidAlive, skipUnlessRoot } from '../support/env.js';
import { createTestController, imageSkipReason, type TestController } from '../support/controller.js';
import { removeLeftoverClones } from '../snapshot/cleanup.js';
import { makeTestGuestImage, type TestGuestImage } from '../snapshot/guest-image.js';

const layout: CgroupLayout | null = (await detectCgroups()).layout;
const skip = skipUnlessRoot() || (await imageSkipReason()) || (layout ? false : 'no usable cgroups on this host');

/** The fields of /proc/PID/status that say how confined a process is. */
function status(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const m = /^(\w+):\s*(.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

function assertConfined(pid: number, user: VmmUser): void {
  const s = status(pid);
  assert.deepEqual(s.Uid!.split(/\s+/).map(Number), [user.uid, user.uid, user.uid, user.uid], 'real, effective, saved and fs uid are the VMM user');
  assert.deepEqual(s.Gid!.split(/\s+/).map(Number), [user.gid, user.gid, user.gid, user.gid]);
  assert.equal(s.Seccomp, '2', 'QEMU runs under its seccomp filter');
  assert.equal(s.NoNewPrivs, '1');
  assert.equal(s.CapEff, '0000000000000000', 'no capabilities');
  assert.equal(s.CapBnd, '0000000000000000', 'none to regain');
}

/** The cgroup file's value for the VM (v1: the controller's hierarchy; v2: the one tree). */
function cgroupFile(id: string, controller: string, file: string): string {
  const cg = openVmCgroup(layout!, id);
  return readFileSync(join(cg.dirs.get(layout!.version === 2 ? '' : controller)!, file), 'utf8').trim();
}

function cgroupGone(id: string): boolean {
  return [...openVmCgroup(layout!, id).dirs.values()].every((d) => !existsSync(d));
}

describe('confined VMMs on QEMU (TCG)', { skip, concurrency: false }, () => {
  let t: TestController;
  let img: TestGuestImage;
  let user: VmmUser;
  let m: VmManager;
  let confId = '';

  before(async () => {
    user = await resolveVmmUser('hangar-vmm');
    const confine: Confinement = { user, setpriv: await findSetpriv(), cgroups: layout, resources: DEFAULT_RESOURCES };
    img = await makeTestGuestImage();
    const drivers = { qemu: new QemuDriver({ guestAgent: true, confine }) };
    t = await createTestController({ net: { cidr: '10.231.0.0/28' }, manager: { images: img.source, drivers } });
    // The TAPs are handed to the VMM user, as the controller does (NetConfig.tapOwner).
    t.net.cfg.tapOwner = { uid: user.uid, gid: user.gid };
    m = t.manager;
  });
  after(async () => {
    try {
      await t?.destroy();
    } finally {
      img?.remove();
    }
    if (t) assert.deepEqual(await removeLeftoverClones(t.net.cfg), [], 'no clone namespace left behind');
  });

  test('QEMU runs as the VMM user under seccomp, in its cgroup with the derived limits; pause/resume and console trimming work', async () => {
    const vm = await (await m.create(normalizeCreate({ name: 'confined' }))).ready;
    confId = vm.id;
    assert.equal(vm.state, 'ready');
    assertConfined(vm.pid!, user);
    // Its cgroup holds it, with cpu = its vCPUs, memory = guest memory + overhead, the default pids.
    const procs = cgroupFile(vm.id, 'memory', 'cgroup.procs').split('\n').map(Number);
    assert.ok(procs.includes(vm.pid!), 'the VMM is inside its cgroup');
    if (layout!.version === 1) {
      assert.equal(cgroupFile(vm.id, 'cpu', 'cpu.cfs_quota_us'), String(vm.vcpus * 100_000));
      assert.equal(cgroupFile(vm.id, 'memory', 'memory.limit_in_bytes'), String((vm.memMiB + DEFAULT_RESOURCES.overheadMiB) * 1024 * 1024));
    } else {
      assert.equal(cgroupFile(vm.id, 'cpu', 'cpu.max'), `${vm.vcpus * 100_000} 100000`);
      assert.equal(cgroupFile(vm.id, 'memory', 'memory.max'), String((vm.memMiB + DEFAULT_RESOURCES.overheadMiB) * 1024 * 1024));
    }
    assert.equal(cgroupFile(vm.id, 'pids', 'pids.max'), String(DEFAULT_RESOURCES.pids));
    // vm show and the metrics say so too.
    assert.deepEqual(toVmView(m.get(vm.id)).limits, {
      cgroupVersion: layout!.version, cgroup: `vm-${vm.id}`, cpuCores: vm.vcpus, memMiB: vm.memMiB + DEFAULT_RESOURCES.overheadMiB, swapMiB: 0, pids: DEFAULT_RESOURCES.pids, io: null,
    });
    assert.match(await t.metrics.render(), new RegExp(`^hangar_vm_limit_cpu_cores\\{vm="${vm.id}"\\} ${vm.vcpus}$`, 'm'));
    // What root prepared for it: the run directory (root's, its group, sticky), the disk and its console.
    const dir = statSync(vm.runDir);
    assert.equal(dir.uid, 0);
    assert.equal(dir.gid, user.gid);
    assert.equal(dir.mode & 0o7777, RUN_DIR_MODE);
    const con = statSync(join(vm.runDir, 'console.log'));
    assert.equal(con.uid, user.uid);
    assert.equal(con.mode & 0o777, 0o600, 'the console log stays private');
    assert.equal(statSync(join(vm.runDir, 'qmp.sock')).uid, user.uid, 'QEMU made its own sockets');

    assert.equal((await m.action(vm.id, 'pause')).state, 'paused');
    assert.equal((await m.action(vm.id, 'resume')).state, 'ready');

    // The controller trims the log in place: same file, same owner and mode, and QEMU keeps appending to it.
    const path = join(vm.runDir, 'console.log');
    const trimmed = await trimConsoleLog(path, Math.max(1024, Math.floor(statSync(path).size / 2)));
    assert.ok(trimmed, 'the log was over the cap and got trimmed');
    const after = statSync(path);
    assert.equal(after.uid, user.uid);
    assert.equal(after.mode & 0o777, 0o600);
    assert.equal(after.ino, con.ino);
  });

  test('a golden snapshot of it and a clone: the clone restores confined too; hibernation and resume', async () => {
    const snap = await m.snapshots.create({ vm: confId });
    const clone = await (await m.create(normalizeCreate({ fromSnapshot: snap.manifest.id, name: 'confined-clone' }))).ready;
    assert.equal(clone.state, 'ready');
    assertConfined(clone.pid!, user);
    assert.ok(cgroupFile(clone.id, 'pids', 'cgroup.procs').split('\n').map(Number).includes(clone.pid!));
    await m.destroy(clone.id);
    assert.ok(cgroupGone(clone.id), "a destroyed VM's cgroup is removed");
    await m.snapshots.remove(snap.manifest.id);

    const pid = m.get(confId).pid!;
    const hib = await m.action(confId, 'hibernate');
    assert.ok(hib.hibernation, 'saved to disk');
    assert.ok(!pidAlive(pid));
    assert.ok(cgroupGone(confId), 'no VMM, no cgroup');
    const back = await m.ensureRunning(confId);
    assert.equal(back.state, 'ready');
    assertConfined(back.pid!, user);
  });

  test('after a controller restart the confined VMM is adopted by identity, then stops and starts again', async () => {
    const pid = m.get(confId).pid!;
    await m.detachAll();
    m = t.restart();
    const report = await m.reconcile();
    assert.deepEqual(report.adopted, [confId]);
    assert.equal(m.get(confId).pid, pid);
    assert.equal((await m.action(confId, 'pause')).state, 'paused', 'the adopted VMM answers');
    assert.equal((await m.action(confId, 'resume')).state, 'ready');
    assert.equal((await m.action(confId, 'stop')).state, 'stopped');
    assert.ok(cgroupGone(confId), "the adopted VMM's cgroup goes with it");
    const started = await (await m.act(confId, 'start')).ready;
    assert.equal(started.state, 'ready');
    assertConfined(started.pid!, user);
  });

  test('cpu limit: a VM capped at 0.3 cores uses at most 10% more than that while TCG burns CPU booting', async () => {
    const { vm } = await m.create(normalizeCreate({ name: 'capped', resources: { cpuCores: 0.3 } }));
    const cg = openVmCgroup(layout!, vm.id);
    // Wait for its VMM (after the disk copy), then measure the cgroup's own CPU counter over a window of the boot.
    const deadline = Date.now() + 120_000;
    while ((await cg.pids()).length === 0) {
      assert.ok(Date.now() < deadline, 'the VMM started');
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(cgroupFile(vm.id, 'cpu', layout!.version === 1 ? 'cpu.cfs_quota_us' : 'cpu.max').split(' ')[0], '30000');
    await new Promise((r) => setTimeout(r, 1000));
    const u0 = await cg.usage();
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, 15_000));
    const u1 = await cg.usage();
    const wallUs = (performance.now() - t0) * 1000;
    const cores = (u1.cpuUsec - u0.cpuUsec) / wallUs;
    console.log(`# capped VM: ${cores.toFixed(3)} cores over ${(wallUs / 1e6).toFixed(1)} s (limit 0.3)`);
    assert.ok(cores <= 0.3 * 1.1, `${cores.toFixed(3)} cores is within 10% of the 0.3 limit`);
    assert.ok(cores >= 0.1, `${cores.toFixed(3)} cores: the VMM really was busy (the measurement means something)`);
    await m.destroy(vm.id);
    assert.ok(cgroupGone(vm.id));
  });

  test('memory limit: a VMM over its memory limit is killed inside its cgroup; the VM fails with VMM_OUT_OF_MEMORY, the rest carries on', async () => {
    const { vm, ready } = await m.create(normalizeCreate({ name: 'starved', resources: { memMiB: 96 } }));
    await assert.rejects(ready, (e: unknown) => (e as { code?: string }).code === 'VMM_OUT_OF_MEMORY');
    const failed = m.get(vm.id);
    assert.equal(failed.state, 'failed');
    assert.equal(failed.lastError?.code, 'VMM_OUT_OF_MEMORY');
    assert.match(failed.lastError!.message, /memory limit of 96 MiB/);
    console.log(`# starved VM: ${failed.lastError!.message}`);
    // The controller and the other VM are fine.
    assert.equal(m.get(confId).state, 'ready');
    assert.ok(pidAlive(m.get(confId).pid!));
    assert.ok(m.list().length >= 2);
    await m.destroy(vm.id);
    assert.ok(cgroupGone(vm.id));
    await m.destroy(confId);
    assert.ok(cgroupGone(confId));
  });
});
