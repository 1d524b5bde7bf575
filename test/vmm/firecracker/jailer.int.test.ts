// Jailer mode with a FAKE jailer + FAKE Firecracker (test/support/fake-firecracker.ts): the driver stages the
// kernel (copy), the VM's disk (hard link) and the log inside <chroot-base>/firecracker/<id>/root, chowns them to
// the jail user, and speaks in-jail paths over the socket inside the chroot. The fake jailer really drops to that
// uid/gid, so the staging's permissions are exercised; it does not chroot, pivot_root or set cgroups. Snapshots of a
// jailed VM, and clones restored from one (each in its own jail), go through the same fakes: the fake VMM reopens
// the recorded disk path inside each jail on load, as Firecracker does.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { hashFile } from '../../../src/util/files.js';
import type { SavedState } from '../../../src/vmm/driver.js';
import { FC_MEMORY_FILE, FC_VMSTATE_FILE } from '../../../src/vmm/firecracker/snapshot.js';
import { FirecrackerDriver } from '../../../src/vmm/firecracker/driver.js';
import type { FirecrackerHandle } from '../../../src/vmm/firecracker/driver.js';
import type { MachineSpec } from '../../../src/vmm/types.js';
import { skipUnlessRoot, skipUnlessShared } from '../../support/env.js';
import { writeFakeFirecrackerBin } from '../../support/fake-firecracker.js';

const skip = skipUnlessRoot() || skipUnlessShared();
const NOBODY = 65534;
const root = mkdtempSync(join(tmpdir(), 'hangar-fc-jail-'));
chmodSync(root, 0o755); // the fake does not chroot, so the jail user must traverse the real path
after(() => rmSync(root, { recursive: true, force: true }));

test('jailer mode: files staged in the chroot for the jail user, in-jail API paths, jail removed after stop', { skip }, async () => {
  const runDir = join(root, 'jvm-1');
  mkdirSync(runDir);
  const kernel = join(root, 'vmlinux');
  writeFileSync(kernel, 'kernel bytes', { mode: 0o600 });
  const rootfs = join(runDir, 'rootfs.ext4');
  writeFileSync(rootfs, 'disk bytes', { mode: 0o600 });
  const chrootBase = join(root, 'jail');
  const driver = new FirecrackerDriver({
    binary: writeFakeFirecrackerBin(root),
    jailer: { binary: writeFakeFirecrackerBin(root, 'jailer'), uid: NOBODY, gid: NOBODY, chrootBaseDir: chrootBase },
    identityBinary: process.execPath,
    apiReadyTimeoutMs: 20_000,
  });
  const spec: MachineSpec = {
    id: 'jvm-1', kernelPath: kernel, rootfsPath: rootfs, bootArgs: 'console=ttyS0', vcpus: 1, memMiB: 128,
    consoleLogPath: join(runDir, 'console.log'), runDir,
  };
  const chroot = join(chrootBase, 'firecracker', 'jvm-1', 'root');
  const h = (await driver.start(spec)) as FirecrackerHandle;
  try {
    assert.equal(h.plan.apiSocket, join(chroot, 'firecracker.sock'));
    assert.equal(await h.status(), 'running');
    assert.match(readFileSync(`/proc/${h.pid}/status`, 'utf8'), new RegExp(`\\nUid:\\t${NOBODY}\\t`), 'the VMM runs as the jail user');
    const disk = statSync(join(chroot, 'rootfs.ext4'));
    assert.equal(disk.ino, statSync(rootfs).ino, 'the disk is hard-linked: the VM writes the real one');
    assert.equal(disk.uid, NOBODY);
    assert.equal(statSync(join(chroot, 'vmlinux')).uid, NOBODY);
    assert.match(readFileSync(join(chroot, 'firecracker.log'), 'utf8'), /InstanceStart/, 'the jail user could write the log');
    assert.match(readFileSync(spec.consoleLogPath, 'utf8'), /fake VMM/);
  } finally {
    await h.stop();
  }
  assert.equal(existsSync(join(chrootBase, 'firecracker', 'jvm-1')), false, 'jail removed');
  assert.equal(readFileSync(rootfs, 'utf8'), 'disk bytes', 'the VM disk itself survives');
});

test('jailer mode snapshots: written inside the jail and handed to root; two clones restore from one snapshot, each in its own chroot with its own disk', { skip }, async () => {
  const kernel = join(root, 'vmlinux-snap');
  writeFileSync(kernel, 'kernel bytes', { mode: 0o600 });
  const chrootBase = join(root, 'jail-snap');
  const trace = join(root, 'snap-trace.jsonl');
  writeFileSync(trace, '');
  chmodSync(trace, 0o666); // the fake VMM writes it as the jail user
  const driver = new FirecrackerDriver({
    binary: writeFakeFirecrackerBin(root),
    jailer: { binary: writeFakeFirecrackerBin(root, 'jailer'), uid: NOBODY, gid: NOBODY, chrootBaseDir: chrootBase },
    env: { ...process.env, FAKE_FIRECRACKER_TRACE: trace, FAKE_FIRECRACKER_VERSION: '1.16.1' },
    identityBinary: process.execPath,
    apiReadyTimeoutMs: 20_000,
  });
  const vm = (id: string): MachineSpec => {
    const runDir = join(root, id);
    mkdirSync(runDir);
    writeFileSync(join(runDir, 'rootfs.ext4'), `disk of ${id}`, { mode: 0o600 });
    return { id, kernelPath: kernel, rootfsPath: join(runDir, 'rootfs.ext4'), bootArgs: 'console=ttyS0', vcpus: 1, memMiB: 128, consoleLogPath: join(runDir, 'console.log'), runDir };
  };
  const chrootOf = (id: string): string => join(chrootBase, 'firecracker', id, 'root');
  const snapDir = join(root, 'golden');
  mkdirSync(snapDir);

  const source = vm('jsrc');
  const h = await driver.startFirecracker(source);
  let saved: SavedState;
  try {
    saved = await h.saveState(snapDir);
    assert.equal(saved.diskPathInVmm, '/rootfs.ext4', 'recorded as the jailed VMM sees it: the same path in every jail');
    for (const f of [FC_VMSTATE_FILE, FC_MEMORY_FILE]) {
      const st = statSync(join(snapDir, f));
      assert.deepEqual([st.uid, st.gid, st.mode & 0o777], [0, 0, 0o600], `${f} moved out of the jail and handed to root`);
      assert.equal(existsSync(join(chrootOf('jsrc'), f === FC_VMSTATE_FILE ? 'vmstate' : 'memory')), false, `no ${f} left in the jail`);
    }
  } finally {
    await h.stop();
  }

  const clones: FirecrackerHandle[] = [];
  try {
    for (const id of ['jclone-1', 'jclone-2']) {
      const spec = vm(id);
      const c = await driver.restore(spec, snapDir, { files: saved.files, diskPathInVmm: saved.diskPathInVmm! });
      clones.push(c);
      assert.equal(await c.status(), 'paused');
      await c.resume();
      assert.equal(await c.status(), 'running');
      assert.match(readFileSync(`/proc/${c.pid}/status`, 'utf8'), new RegExp(`\\nUid:\\t${NOBODY}\\t`), 'the clone runs as the jail user');
      const jail = chrootOf(id);
      assert.equal(statSync(join(jail, 'rootfs.ext4')).ino, statSync(spec.rootfsPath).ino, `${id} writes its own disk`);
      assert.equal(statSync(join(jail, 'memory')).ino, statSync(join(snapDir, FC_MEMORY_FILE)).ino, 'the golden memory is shared, not copied');
      assert.equal(existsSync(join(jail, 'vmlinux')), false, 'a load does not need the kernel in the jail');
    }
    const mem = statSync(join(snapDir, FC_MEMORY_FILE));
    assert.deepEqual([mem.uid, mem.gid, mem.mode & 0o777], [0, NOBODY, 0o640], 'clones may read the golden state, not change it');
    const loads = readFileSync(trace, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { path: string; status: number; body: Record<string, unknown> })
      .filter((e) => e.path === '/snapshot/load');
    assert.equal(loads.length, 2);
    for (const l of loads) {
      assert.equal(l.status, 204);
      assert.equal(l.body.snapshot_path, '/vmstate');
      assert.deepEqual(l.body.mem_backend, { backend_type: 'File', backend_path: '/memory' });
    }
  } finally {
    for (const c of clones) await c.stop();
  }
  for (const id of ['jclone-1', 'jclone-2']) assert.equal(existsSync(join(chrootBase, 'firecracker', id)), false, `${id}: jail removed`);
  assert.deepEqual(await hashFile(join(snapDir, FC_MEMORY_FILE)), saved.files[FC_MEMORY_FILE], 'the golden state is unchanged');
  assert.deepEqual(await hashFile(join(snapDir, FC_VMSTATE_FILE)), saved.files[FC_VMSTATE_FILE]);
});
