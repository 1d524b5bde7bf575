// QemuDriver with a real QEMU, for what needs no desktop: probe, start failures, a guest that ends itself,
// a crash, a second start on a running VM, adopt of nothing. The kernel comes from a built image (skipped
// with the reason when there is none); the root disk is deliberately empty so the guest panics or hangs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isHangarError } from '../../../src/errors.js';
import { READY_MARKER } from '../../../src/guest-protocol.js';
import { which } from '../../../src/util/exec.js';
import { waitForMarker } from '../../../src/vmm/console.js';
import { QemuDriver, type QemuHandle } from '../../../src/vmm/qemu/driver.js';
import { qemuRunPaths } from '../../../src/vmm/qemu/paths.js';
import type { MachineSpec } from '../../../src/vmm/types.js';
import { findTestImage } from './test-image.js';
import { pidAlive } from '../../support/env.js';
import { describeHost, envWithoutAccelOverride, expectationFor, observeHost } from '../../support/hostfacts.js';

const QEMU = await which('qemu-system-x86_64');
const noQemu = QEMU ? false : 'qemu-system-x86_64 is not installed (scripts/install-deps.sh installs qemu-system-x86)';
const found = await findTestImage();
const noKernel = noQemu || ('reason' in found ? found.reason : false);

async function withWork(fn: (dir: string, spec: MachineSpec) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'hangar-drv-'));
  const rootfs = join(dir, 'empty.ext4');
  await writeFile(rootfs, Buffer.alloc(1024 * 1024)); // no filesystem: the kernel cannot mount root
  const spec: MachineSpec = {
    id: 'drv-test',
    kernelPath: 'image' in found ? found.image.kernel : '/nonexistent/vmlinux',
    rootfsPath: rootfs,
    bootArgs: 'console=ttyS0 reboot=k panic=1 pci=off root=/dev/vda rw',
    vcpus: 1,
    memMiB: 128,
    consoleLogPath: join(dir, 'console.log'),
    runDir: join(dir, 'run'),
  };
  try {
    await fn(dir, spec);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('probe names the binary, version and accelerator with its reason, as the host table says for this host', { skip: noQemu }, async (t) => {
  // What this host is, read by the test itself; what that kind must give, from the test's own table.
  const host = observeHost({ qemu: QEMU });
  const want = expectationFor(host).qemu;
  t.diagnostic(`this host: ${describeHost(host)}`);
  const p = await new QemuDriver({ env: envWithoutAccelOverride() }).probe();
  assert.equal(p.available, true, p.reason);
  assert.equal(p.binary, QEMU);
  assert.match(p.version ?? '', /^\d+\.\d+/);
  assert.equal(p.accel, want.accel, p.reason);
  assert.match(p.reason, want.reason);
  if (want.notReason) assert.doesNotMatch(p.reason, want.notReason);
  assert.equal((await new QemuDriver({ env: { ...envWithoutAccelOverride(), HANGAR_ACCEL: 'tcg' } }).probe()).accel, 'tcg', 'HANGAR_ACCEL=tcg wins everywhere');
  const missing = await new QemuDriver({ binary: '/nonexistent/qemu' }).probe();
  assert.equal(missing.available, false);
  assert.match(missing.reason, /--version failed|ENOENT|cannot run/);
});

test('a kernel QEMU cannot load is VMM_START_FAILED with QEMU\'s own words, and leaves nothing running', { skip: noQemu }, () => withWork(async (dir, spec) => {
  const bogus = join(dir, 'not-a-kernel');
  await writeFile(bogus, 'junk');
  await assert.rejects(new QemuDriver().start({ ...spec, kernelPath: bogus }), (e: unknown) => {
    assert.ok(isHangarError(e, 'VMM_START_FAILED'), String(e));
    assert.match(String(e.details.vmmLog), /kernel/i);
    assert.equal((e.details.exit as { code: number }).code, 1);
    return true;
  });
  assert.ok(!existsSync(qemuRunPaths(spec.runDir).pidFile));
  await assert.rejects(new QemuDriver().start({ ...spec, netns: 'hgt-no-such-ns' }), (e: unknown) =>
    isHangarError(e, 'VMM_START_FAILED') && /network namespace/i.test(String(e.details.vmmLog)));
}));

test('a guest that panics and reboots ends QEMU (-no-reboot): exit by guest, seen as VMM_CRASHED by the marker wait', { skip: noKernel, timeout: 120_000 }, () => withWork(async (_dir, spec) => {
  const h = (await new QemuDriver().start(spec)) as QemuHandle;
  await assert.rejects(waitForMarker(spec.consoleLogPath, READY_MARKER, { timeoutMs: 90_000, exited: h.exited }), (e: unknown) => {
    assert.ok(isHangarError(e, 'VMM_CRASHED'), String(e));
    assert.match(String(e.details.consoleTail), /Kernel panic|Restarting|VFS/);
    return true;
  });
  const exit = await h.exited;
  assert.equal(exit.by, 'guest');
  assert.equal(exit.code, 0);
  assert.equal(await h.status(), 'stopped');
  assert.ok(!existsSync(qemuRunPaths(spec.runDir).qmpSocket), 'socket gone');
}));

test('a killed QEMU is noticed within 2 s as an unknown exit; a second start on a running VM is refused; adopt of nothing is null', { skip: noKernel, timeout: 120_000 }, () => withWork(async (_dir, base) => {
  const spec = { ...base, bootArgs: base.bootArgs.replace('panic=1', 'panic=0') }; // panic and stay
  const driver = new QemuDriver();
  assert.equal(await driver.adopt(spec), null);
  const h = (await driver.start(spec)) as QemuHandle;
  await assert.rejects(driver.start(spec), (e: unknown) => isHangarError(e, 'CONFLICT'));
  assert.equal(await h.status(), 'running');
  const t0 = Date.now();
  process.kill(h.pid, 'SIGKILL');
  const exit = await h.exited;
  const took = Date.now() - t0;
  assert.ok(took < 2000, `noticed after ${took} ms`);
  assert.equal(exit.by, 'unknown');
  assert.equal(exit.signal, 'SIGKILL');
  assert.equal(await driver.adopt(spec), null, 'nothing to adopt after the crash');
}));

test('stop escalates past a guest that cannot react (panicked, Ctrl-Alt-Del unheard) to QMP quit; the exit is hangar\'s', { skip: noKernel, timeout: 120_000 }, () => withWork(async (_dir, base) => {
  const spec = { ...base, bootArgs: base.bootArgs.replace('panic=1', 'panic=0') };
  const h = (await new QemuDriver().start(spec)) as QemuHandle;
  await waitForMarker(spec.consoleLogPath, /Kernel panic|VFS: Unable/, { timeoutMs: 90_000, exited: h.exited });
  const t0 = Date.now();
  const exit = await h.stop({ graceMs: 1000 });
  const took = Date.now() - t0;
  assert.equal(exit.by, 'hangar');
  assert.equal(exit.code, 0, 'QEMU quit cleanly');
  assert.ok(!pidAlive(h.pid));
  assert.ok(took >= 1000 && took < 5000, `stop took ${took} ms`);
}));
