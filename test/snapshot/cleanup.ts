// Test set-up for snapshot tests, and after a failed test: clone namespaces the manager could not remove (named after the test's VM side, so nothing
// else can match), with whatever still runs in them killed by pid first.
import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { listCloneNetns } from '../../src/net/clone.js';
import type { NetConfig } from '../../src/net/config.js';
import { run } from '../../src/util/exec.js';
import { QemuDriver } from '../../src/vmm/qemu/driver.js';
import { createTestController, type TestController } from '../support/controller.js';
import { makeTestGuestImage, type TestGuestImage } from './guest-image.js';

export async function removeLeftoverClones(cfg: NetConfig): Promise<string[]> {
  const left = await listCloneNetns(cfg);
  for (const ns of left) {
    if (!ns.startsWith('hgt-')) throw new Error(`refusing to remove ${ns}: not a test namespace`);
    const pids = (await run('ip', ['netns', 'pids', ns], { allowFailure: true, timeoutMs: 10_000 })).stdout.split(/\s+/).filter(Boolean).map(Number);
    for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
    await run('ip', ['netns', 'del', ns], { allowFailure: true, timeoutMs: 10_000 });
  }
  return left;
}

/**
 * In a describe(): before its tests, a test controller on `cidr` booting a copy of the desktop image with the test
 * hooks and the guest agent; after them, everything removed — and a clone namespace the manager left is a failure.
 */
export function snapshotTestController(cidr: string): { readonly t: TestController; readonly img: TestGuestImage } {
  const ctx = {} as { t: TestController; img: TestGuestImage };
  before(async () => {
    ctx.img = await makeTestGuestImage();
    ctx.t = await createTestController({ net: { cidr }, manager: { images: ctx.img.source, drivers: { qemu: new QemuDriver({ guestAgent: true }) } } });
  });
  after(async () => {
    try {
      await ctx.t?.destroy();
    } finally {
      ctx.img?.remove();
    }
    // Clone namespaces are not part of the test network: the manager removes them, and a leak fails here.
    if (ctx.t) assert.deepEqual(await removeLeftoverClones(ctx.t.net.cfg), [], 'no clone namespace left behind');
  });
  return ctx;
}
