// Jailer mode with a FAKE jailer + FAKE Firecracker (test/support/fake-firecracker.ts): the driver stages the
// kernel (copy), the VM's disk (hard link) and the log inside <chroot-base>/firecracker/<id>/root, chowns them to
// the jail user, and speaks in-jail paths over the socket inside the chroot. The fake jailer really drops to that
// uid/gid, so the staging's permissions are exercised; it does not chroot, pivot_root or set cgroups.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
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
