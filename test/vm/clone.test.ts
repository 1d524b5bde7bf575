// Cloning from a Firecracker snapshot (src/vm/manager.ts createClone + firecrackerDiskRefusal): the snapshot reopens
// its disk at the path the VMM saw. Taken without the jailer, that is the source VM's run directory, which no clone
// has: refused before anything is recorded, allocated or written. With the jailer every VMM sees /rootfs.ext4 in
// its own chroot, so the paths line up (the clones themselves: test/vmm/firecracker/jailer.int.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isHangarError } from '../../src/errors.js';
import { HangarMetrics } from '../../src/metrics.js';
import { normaliseNetConfig } from '../../src/net/config.js';
import { hashFile } from '../../src/util/files.js';
import { SNAPSHOT_DISK, SNAPSHOT_SCHEMA, type SnapshotManifest } from '../../src/snapshot/manifest.js';
import { SnapshotStore } from '../../src/snapshot/store.js';
import { Store } from '../../src/store/store.js';
import { normalizeCreate } from '../../src/vm/input.js';
import { VmManager } from '../../src/vm/manager.js';
import { FirecrackerDriver } from '../../src/vmm/firecracker/driver.js';
import type { MachineSpec } from '../../src/vmm/types.js';

const spec = (id: string): MachineSpec => ({
  id, kernelPath: '/k', rootfsPath: `/var/lib/hangar/vms/${id}/rootfs.ext4`, bootArgs: '', vcpus: 1, memMiB: 256,
  consoleLogPath: `/var/lib/hangar/vms/${id}/console.log`, runDir: `/var/lib/hangar/vms/${id}`,
});

test('restoreRefusal: unjailed only the same VM lines up; jailed every VM does', async () => {
  const plain = new FirecrackerDriver({ binary: '/usr/bin/firecracker' });
  const jailed = new FirecrackerDriver({ binary: '/usr/bin/firecracker', jailer: { binary: '/usr/bin/jailer', uid: 123, gid: 123, chrootBaseDir: '/srv/jailer' } });
  assert.equal(await plain.restoreRefusal(spec('vm-a'), { diskPathInVmm: '/var/lib/hangar/vms/vm-a/rootfs.ext4' }), null, 'hibernation: the same VM');
  const refused = await plain.restoreRefusal(spec('vm-b'), { diskPathInVmm: '/var/lib/hangar/vms/vm-a/rootfs.ext4' });
  assert.ok(isHangarError(refused, 'SNAPSHOT_FAILED'));
  assert.deepEqual(refused.details, { recorded: '/var/lib/hangar/vms/vm-a/rootfs.ext4', wanted: '/var/lib/hangar/vms/vm-b/rootfs.ext4' });
  assert.match(refused.message, /need the jailer/);
  assert.equal(await jailed.restoreRefusal(spec('vm-b'), { diskPathInVmm: '/rootfs.ext4' }), null, 'a jailed snapshot fits any jailed clone');
  assert.ok(isHangarError(await jailed.restoreRefusal(spec('vm-b'), { diskPathInVmm: '/var/lib/hangar/vms/vm-a/rootfs.ext4' }), 'SNAPSHOT_FAILED'),
    'an unjailed snapshot does not fit a jailed clone either');
  assert.equal(await plain.restoreRefusal(spec('vm-b'), {}), null, 'QEMU-style snapshots record no path');
});

test('a clone the snapshot cannot serve is refused before any VM record, address or file exists', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-clone-'));
  const store = new Store(join(dir, 'state.db'));
  try {
    const snapshots = new SnapshotStore(join(dir, 'snapshots'));
    const id = 'snap-0123abcd';
    const staging = await snapshots.stage(id);
    for (const f of ['vmstate', 'memory', SNAPSHOT_DISK]) writeFileSync(join(staging, f), f);
    const files = Object.fromEntries(await Promise.all(['vmstate', 'memory', SNAPSHOT_DISK].map(async (f) => [f, await hashFile(join(staging, f))] as const)));
    const m: SnapshotManifest = {
      schema: SNAPSHOT_SCHEMA, id, created: '2026-11-27T00:00:00.000Z', source: { kind: 'vm', vmId: 'vm-src', vmName: 'src' },
      image: { id: 'desktop-abc', profile: 'desktop', rootfsSha256: null, kernelSha256: null },
      vmm: { kind: 'firecracker', version: '1.16.1' },
      machine: { vcpus: 1, memMiB: 256, kernelPath: join(staging, 'vmlinux'), bootArgs: 'console=ttyS0' },
      guestNet: { ip: '10.0.0.2', mac: '02:48:0a:00:00:02', tap: 'hgtap0', gateway: '10.0.0.1', netmask: '255.255.255.0', prefix: 24, gatewayMac: null },
      files, durationsMs: { pause: 1, state: 2, disk: 3, total: 6 },
      diskPathInVmm: join(dir, 'vms', 'vm-src', 'rootfs.ext4'),
    };
    await snapshots.publish(staging, m);
    const manager = new VmManager({
      store, stateDir: dir, snapshotsDir: snapshots.dir, defaultVmm: 'qemu', metrics: new HangarMetrics(),
      net: normaliseNetConfig({ mode: 'netns', netns: 'hgt-unused', bridge: 'hgbr0', cidr: '10.215.0.0/29', hostNetns: 'hgt-unused-host' }),
      drivers: { firecracker: new FirecrackerDriver({ binary: '/nonexistent/firecracker' }) },
      images: { resolve: () => Promise.reject(new Error('no images here')), list: () => Promise.resolve([]) },
    });
    await assert.rejects(manager.create(normalizeCreate({ fromSnapshot: id, name: 'copy' })),
      (e: unknown) => isHangarError(e, 'SNAPSHOT_FAILED') && /need the jailer/.test((e as Error).message));
    // Options the saved state fixes are refused by name, not silently dropped (and still nothing is created).
    for (const [input, field] of [[{ vcpus: 2 }, 'vcpus'], [{ memMiB: 1024 }, 'memMiB'], [{ profile: 'browser' }, 'profile']] as const) {
      await assert.rejects(manager.create(normalizeCreate({ fromSnapshot: id, name: 'copy', ...input })),
        (e: unknown) => isHangarError(e, 'SNAPSHOT_FIXED') && e.details.field === field && e.message.includes(id), field);
    }
    // The snapshot's own values are fine to repeat (the same request as without them), and a VMM the snapshot was
    // not taken on is refused.
    await assert.rejects(manager.create(normalizeCreate({ fromSnapshot: id, name: 'copy', vcpus: 1, memMiB: 256 })), (e: unknown) => isHangarError(e, 'SNAPSHOT_FAILED'));
    await assert.rejects(manager.create(normalizeCreate({ fromSnapshot: id, name: 'copy', vmm: 'qemu' })), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT') && e.details.field === 'vmm');
    assert.deepEqual(store.listVms(), [], 'no VM record');
    assert.deepEqual(store.allocations(), [], 'no address, MAC or TAP taken');
    assert.ok(!readdirSync(dir).includes('vms'), 'no run directory');
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
