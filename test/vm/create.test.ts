// Creating a VM refuses what cannot work before anything exists (src/vm/create.ts): a VMM whose probe says it cannot
// run on this host (VMM_NOT_AVAILABLE, as `/v1/host` reports it) leaves no record, address or directory.
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
import { FirecrackerDriver } from '../../src/vmm/firecracker/driver.js';

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
