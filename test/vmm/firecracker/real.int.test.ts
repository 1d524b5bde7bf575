// The real thing: boot HANGAR_TEST_IMAGE under a real Firecracker, wait for the guest's READY_MARKER on the serial
// console, pause, resume, stop. Runs only where FIRECRACKER_BIN names a binary and KVM works.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { copyFile } from 'node:fs/promises';
import { GUEST_INIT_PATH, READY_MARKER } from '../../../src/guest-protocol.js';
import { buildBootArgs } from '../../../src/kernel/bootargs.js';
import { FirecrackerDriver } from '../../../src/vmm/firecracker/driver.js';

const NO_BINARY = 'FIRECRACKER_BIN not set: no Firecracker binary on this host; the driver is verified against the API contract and a fake only';

async function skipReason(): Promise<string | false> {
  if (!process.env.FIRECRACKER_BIN) return NO_BINARY;
  const image = process.env.HANGAR_TEST_IMAGE;
  if (!image) return 'HANGAR_TEST_IMAGE not set: no image (directory with vmlinux and rootfs.ext4) to boot';
  if (!existsSync(join(image, 'vmlinux')) || !existsSync(join(image, 'rootfs.ext4'))) return `HANGAR_TEST_IMAGE=${image} lacks vmlinux or rootfs.ext4`;
  // A binary is not enough: on a host without usable KVM (none, unopenable, PVM) the probe says why, and so do we.
  const probe = await new FirecrackerDriver().probe();
  return probe.available ? false : `Firecracker cannot run on this host: ${probe.reason}`;
}

async function waitFor(path: string, marker: string, ms: number): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    if (existsSync(path) && readFileSync(path, 'utf8').includes(marker)) return Date.now() - t0;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${marker} not on the console within ${ms} ms:\n${existsSync(path) ? readFileSync(path, 'utf8').slice(-2000) : '(no console)'}`);
}

test('real Firecracker: boot to READY_MARKER, pause, resume, stop', { skip: await skipReason() }, async () => {
  const driver = new FirecrackerDriver();
  const probe = await driver.probe();
  assert.ok(probe.available, probe.reason);
  const image = process.env.HANGAR_TEST_IMAGE!;
  const runDir = mkdtempSync(join(tmpdir(), 'hangar-fc-real-'));
  // The VM writes its disk: work on a copy.
  const rootfs = join(runDir, 'rootfs.ext4');
  await copyFile(join(image, 'rootfs.ext4'), rootfs);
  const spec = {
    id: 'fc-real', kernelPath: join(image, 'vmlinux'), rootfsPath: rootfs, vcpus: 1, memMiB: 512, runDir,
    bootArgs: buildBootArgs({ vmm: 'firecracker', ...(probe.version ? { vmmVersion: probe.version.split('.').slice(0, 2).join('.') } : {}), init: GUEST_INIT_PATH }),
    consoleLogPath: join(runDir, 'console.log'),
  };
  const h = await driver.start(spec);
  try {
    const readyMs = await waitFor(spec.consoleLogPath, READY_MARKER, 60_000);
    console.log(`# real Firecracker ${probe.version}: ${READY_MARKER} after ${readyMs} ms`);
    await h.pause();
    assert.equal(await h.status(), 'paused');
    await h.resume();
    assert.equal(await h.status(), 'running');
  } finally {
    const exit = await h.stop();
    assert.equal(exit.by, 'hangar');
    rmSync(runDir, { recursive: true, force: true });
  }
});
