// netns mode: the driver runs the VMM inside the VM's network namespace (`ip netns exec`), where its TAP lives.
// Uses a FAKE Firecracker that, like the real one, opens the TAP named in PUT /network-interfaces (here: checks it
// exists in its own namespace). The namespace and TAP are created by this test and removed afterwards.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { isHangarError } from '../../../src/errors.js';
import { run } from '../../../src/util/exec.js';
import { FirecrackerDriver } from '../../../src/vmm/firecracker/driver.js';
import type { MachineSpec } from '../../../src/vmm/types.js';
import { skipUnlessRoot, skipUnlessShared } from '../../support/env.js';
import { writeFakeFirecrackerBin } from '../../support/fake-firecracker.js';

const skip = skipUnlessRoot() || skipUnlessShared();
const ns = `hgt-fc-${randomBytes(3).toString('hex')}`;
const root = mkdtempSync(join(tmpdir(), 'hangar-fc-ns-'));
const tap = 'hgtap0';

async function destroy(): Promise<void> {
  const r = await run('ip', ['netns', 'pids', ns], { allowFailure: true, timeoutMs: 10_000 });
  for (const pid of r.stdout.split(/\s+/).filter(Boolean).map(Number)) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
  await run('ip', ['netns', 'del', ns], { allowFailure: true, timeoutMs: 10_000 });
}

before(async () => {
  if (skip) return;
  await run('ip', ['netns', 'add', ns], { timeoutMs: 10_000 });
  await run('ip', ['-n', ns, 'tuntap', 'add', 'dev', tap, 'mode', 'tap'], { timeoutMs: 10_000 });
});
after(async () => {
  if (!skip) await destroy();
  rmSync(root, { recursive: true, force: true });
});

function setup(id: string, tapName: string): { driver: FirecrackerDriver; spec: MachineSpec } {
  const runDir = join(root, id);
  mkdirSync(runDir);
  writeFileSync(join(runDir, 'vmlinux'), '');
  writeFileSync(join(runDir, 'rootfs.ext4'), '');
  const driver = new FirecrackerDriver({
    env: { ...process.env, FIRECRACKER_BIN: writeFakeFirecrackerBin(runDir), FAKE_FIRECRACKER_CHECK_TAP: '1' },
    identityBinary: process.execPath,
    apiReadyTimeoutMs: 20_000, // the fake's Node start-up on a busy host
  });
  return {
    driver,
    spec: {
      id, kernelPath: join(runDir, 'vmlinux'), rootfsPath: join(runDir, 'rootfs.ext4'), bootArgs: 'console=ttyS0', vcpus: 1, memMiB: 128,
      net: { tap: tapName, mac: '02:fc:00:00:00:09' }, consoleLogPath: join(runDir, 'console.log'), runDir, netns: ns,
    },
  };
}

test('netns mode: the FAKE Firecracker runs inside the namespace and finds the TAP there', { skip }, async () => {
  const { driver, spec } = setup('nsvm-1', tap);
  const h = await driver.start(spec);
  try {
    // Same network namespace as the handle `ip netns add` created (nsfs inode).
    assert.equal(statSync(`/proc/${h.pid}/ns/net`).ino, statSync(`/var/run/netns/${ns}`).ino);
    assert.notEqual(statSync(`/proc/${h.pid}/ns/net`).ino, statSync('/proc/self/ns/net').ino);
    assert.equal(await h.status(), 'running');
  } finally {
    const exit = await h.stop();
    assert.equal(exit.by, 'hangar');
  }
  const left = await run('ip', ['netns', 'pids', ns], { timeoutMs: 10_000 });
  assert.equal(left.stdout.trim(), '', 'nothing left running in the namespace');
});

test('netns mode: a TAP missing from the namespace fails the start with the VMM\'s reason', { skip }, async () => {
  const { driver, spec } = setup('nsvm-2', 'hgtap-none');
  await assert.rejects(driver.start(spec), (e) => {
    assert.ok(isHangarError(e, 'VMM_START_FAILED'));
    assert.match(e.message, /put-network-interface: .*hgtap-none is not a TAP in this network namespace/);
    return true;
  });
  const left = await run('ip', ['netns', 'pids', ns], { timeoutMs: 10_000 });
  assert.equal(left.stdout.trim(), '');
});
