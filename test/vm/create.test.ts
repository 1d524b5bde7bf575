// Creating a VM refuses what cannot work before anything exists (src/vm/create.ts): a VMM whose probe says it cannot
// run on this host (VMM_NOT_AVAILABLE, as `/v1/host` reports it) leaves no record, address or directory; the VM
// limit holds under concurrent creates.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isHangarError } from '../../src/errors.js';
import type { ImageInfo } from '../../src/image/store.js';
import { HangarMetrics } from '../../src/metrics.js';
import { normaliseNetConfig } from '../../src/net/config.js';
import { Store } from '../../src/store/store.js';
import { normalizeCreate } from '../../src/vm/input.js';
import { VmManager } from '../../src/vm/manager.js';
import type { VmmDriver } from '../../src/vmm/driver.js';
import { FirecrackerDriver } from '../../src/vmm/firecracker/driver.js';
import { fakeNetwork } from '../support/fake-network.js';

test('a VMM that cannot run here is refused up front: no record, no address, no run directory', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-create-'));
  const store = new Store(join(dir, 'state.db'));
  try {
    const image = { id: 'desktop-0000', profile: 'desktop', kernelPath: '/k', rootfsPath: '/r' } as ImageInfo;
    const manager = new VmManager({
      store, stateDir: dir, defaultVmm: 'firecracker', metrics: new HangarMetrics(),
      net: normaliseNetConfig({ mode: 'netns', netns: 'hgt-unused', bridge: 'hgbr0', cidr: '10.215.0.0/29', hostNetns: 'hgt-unused-host' }),
      drivers: { firecracker: new FirecrackerDriver({ binary: '/nonexistent/firecracker' }) },
      images: { resolve: () => Promise.resolve(image), list: () => Promise.resolve([image]) },
    });
    await assert.rejects(manager.create(normalizeCreate({ name: 'nope' })),
      (e: unknown) => isHangarError(e, 'VMM_NOT_AVAILABLE') && e.message.includes('/nonexistent/firecracker'));
    await assert.rejects(manager.create(normalizeCreate({ vmm: 'qemu' })), (e: unknown) => isHangarError(e, 'VMM_NOT_AVAILABLE'), 'no such driver configured');
    assert.deepEqual(store.listVms(), []);
    assert.deepEqual(store.allocations(), []);
    assert.ok(!readdirSync(dir).includes('vms'));
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the VM limit holds under concurrent creates: the count is checked in the inserting transaction', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-create-'));
  const store = new Store(join(dir, 'state.db'));
  try {
    const image = { id: 'desktop-0000', profile: 'desktop', kernelPath: '/k', rootfsPath: '/r' } as ImageInfo;
    // A FAKE driver that is available and whose VMM never starts: every boot fails after its record exists.
    const driver: VmmDriver = {
      kind: 'qemu', stateFiles: [], probe: async () => ({ kind: 'qemu', available: true, reason: 'FAKE' }),
      start: async () => { throw new Error('FAKE: no VMM'); }, adopt: async () => null, restoreRefusal: async () => null,
      restore: async () => { throw new Error('FAKE'); },
    };
    const manager = new VmManager({
      store, stateDir: dir, defaultVmm: 'qemu', maxVms: 3, network: fakeNetwork(),
      disks: { exists: async () => true, copy: async () => () => {} },
      net: normaliseNetConfig({ mode: 'netns', netns: 'hgt-unused', bridge: 'hgbr0', cidr: '10.215.0.0/28', hostNetns: 'hgt-unused-host' }),
      drivers: { qemu: driver },
      // Each resolve yields to the event loop, as the real image store does: the old check-then-insert raced here.
      images: { resolve: () => new Promise((r) => setTimeout(() => r(image), 1)), list: () => Promise.resolve([image]) },
    });
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => manager.create(normalizeCreate({}))));
    const ok = results.filter((r) => r.status === 'fulfilled');
    assert.equal(ok.length, 3);
    assert.ok(results.filter((r) => r.status === 'rejected').every((r) => isHangarError((r as PromiseRejectedResult).reason, 'VM_LIMIT_REACHED')));
    await Promise.allSettled(ok.map((r) => (r as PromiseFulfilledResult<{ ready: Promise<unknown> }>).value.ready));
    assert.equal(store.listVms().length, 3);
    assert.equal(store.allocations('ip').length, 3, 'no address taken by a refused create');
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
