// Deleting a golden snapshot (src/snapshot/service.ts): refused while VMs depend on it, naming them; with force,
// the dependants are first made independent (convert) or destroyed; nothing changes on a refusal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { VmRecord } from '../../src/domain/vm.js';
import { isHangarError } from '../../src/errors.js';
import { SNAPSHOT_DISK, SNAPSHOT_SCHEMA, type SnapshotManifest } from '../../src/snapshot/manifest.js';
import { dependsOn, SnapshotService, type SnapshotSubject } from '../../src/snapshot/service.js';
import { SnapshotStore } from '../../src/snapshot/store.js';
import { hashFile } from '../../src/util/files.js';
import type { MachineSpec } from '../../src/vmm/types.js';

async function setup(): Promise<{ dir: string; store: SnapshotStore; id: string; snapDir: string; cleanup: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-snapsvc-'));
  const store = new SnapshotStore(join(dir, 'snapshots'));
  const id = 'snap-00c0ffee';
  const staging = await store.stage(id);
  for (const f of ['state.bin', SNAPSHOT_DISK, 'vmlinux']) writeFileSync(join(staging, f), f);
  const files = { 'state.bin': await hashFile(join(staging, 'state.bin')), [SNAPSHOT_DISK]: await hashFile(join(staging, SNAPSHOT_DISK)) };
  const m: SnapshotManifest = {
    schema: SNAPSHOT_SCHEMA, id, created: '2026-12-01T00:00:00.000Z', source: { kind: 'vm', vmId: 'vm-src', vmName: 'src' },
    image: { id: 'desktop-abc', profile: 'desktop', rootfsSha256: null, kernelSha256: null }, vmm: { kind: 'qemu', version: '7.2' },
    machine: { vcpus: 1, memMiB: 512, kernelPath: join(store.dir, id, 'vmlinux'), bootArgs: 'console=ttyS0' },
    guestNet: { ip: '10.0.0.2', mac: '02:48:0a:00:00:02', tap: 'hgtap0', gateway: '10.0.0.1', netmask: '255.255.255.0', prefix: 24, gatewayMac: null },
    files, durationsMs: { pause: 1, state: 1, disk: 1, total: 3 },
  };
  await store.publish(staging, m);
  return { dir, store, id, snapDir: join(store.dir, id), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

function clone(id: string, runDir: string, kernelPath: string, over: Partial<VmRecord> = {}): VmRecord {
  const spec: MachineSpec = { id, kernelPath, rootfsPath: join(runDir, 'rootfs.ext4'), bootArgs: '', vcpus: 1, memMiB: 512, consoleLogPath: join(runDir, 'console.log'), runDir };
  return {
    id, name: `c-${id}`, state: 'ready', imageId: 'desktop-abc', profile: 'desktop', vmm: 'qemu', vcpus: 1, memMiB: 512, ttlS: null,
    createdAt: '', updatedAt: '', expiresAt: null, pid: 1, runDir, spec, net: null, bootMs: 1, lastError: null, exit: null, snapshotId: 'snap-00c0ffee', hibernation: null, ...over,
  };
}

function subject(vms: VmRecord[], log: string[]): SnapshotSubject {
  return {
    get: (ref) => vms.find((v) => v.id === ref)!,
    list: () => vms,
    create: () => Promise.reject(new Error('not here')),
    destroy: async (ref) => { log.push(`destroy ${ref}`); vms.splice(vms.findIndex((v) => v.id === ref), 1); },
    captureVm: () => Promise.reject(new Error('not here')),
    updateSpec: (id, spec) => { log.push(`spec ${id} ${spec.kernelPath}`); vms.find((v) => v.id === id)!.spec = spec; },
  };
}

test('SNAPSHOT_IN_USE names every VM that depends on the snapshot, and nothing changes', async () => {
  const s = await setup();
  try {
    const runA = join(s.dir, 'vms', 'vm-a');
    const vms = [
      clone('vm-a', runA, join(s.snapDir, 'vmlinux')),
      clone('vm-b', join(s.dir, 'vms', 'vm-b'), join(s.snapDir, 'vmlinux'), { state: 'stopped', hibernation: { dir: '/h', files: {}, vmmVersion: '7.2', at: 'x', saveMs: 1 } }),
      clone('vm-c', join(s.dir, 'vms', 'vm-c'), '/images/desktop/vmlinux', { state: 'stopped' }), // cold-started since: independent
      clone('vm-d', join(s.dir, 'vms', 'vm-d'), '/k', { snapshotId: null }),
    ];
    const log: string[] = [];
    const svc = new SnapshotService(subject(vms, log), s.store, { resolve: () => Promise.reject(new Error('no')) });
    assert.deepEqual((await svc.dependants(s.id)).map((v) => v.id), ['vm-a', 'vm-b']);
    await assert.rejects(svc.remove(s.id), (e: unknown) => isHangarError(e, 'SNAPSHOT_IN_USE')
      && e.message.includes('vm-a') && e.message.includes('vm-b') && e.message.includes('hibernated') && !e.message.includes('vm-c'));
    assert.ok(existsSync(s.snapDir), 'the snapshot is still there');
    assert.deepEqual(log, []);
  } finally {
    s.cleanup();
  }
});

test('force=convert gives each dependant its own kernel first; force=destroy destroys them; then the snapshot goes', async () => {
  const s = await setup();
  try {
    const runA = join(s.dir, 'vms', 'vm-a');
    mkdirSync(runA, { recursive: true });
    const vms = [clone('vm-a', runA, join(s.snapDir, 'vmlinux'))];
    const log: string[] = [];
    const events: string[] = [];
    const svc = new SnapshotService(subject(vms, log), s.store, { resolve: () => Promise.reject(new Error('no')) }, { appendEvent: (_v, type) => events.push(type) });
    const r = await svc.remove(s.id, 'convert');
    assert.deepEqual(r, { converted: ['vm-a'], destroyed: [] });
    assert.deepEqual(log, [`spec vm-a ${join(runA, 'vmlinux')}`]);
    assert.equal(readFileSync(join(runA, 'vmlinux'), 'utf8'), 'vmlinux', 'the kernel is the VM\'s own now');
    assert.ok(!existsSync(s.snapDir));
    assert.equal(dependsOn(vms[0]!, s.id, s.snapDir), false);
    assert.deepEqual(events, ['snapshot.deleted']);

    const t = await setup();
    try {
      const vms2 = [clone('vm-x', join(t.dir, 'vms', 'vm-x'), join(t.snapDir, 'vmlinux'))];
      const log2: string[] = [];
      const r2 = await new SnapshotService(subject(vms2, log2), t.store, { resolve: () => Promise.reject(new Error('no')) }).remove(t.id, 'destroy');
      assert.deepEqual(r2, { converted: [], destroyed: ['vm-x'] });
      assert.deepEqual(log2, ['destroy vm-x']);
      assert.ok(!existsSync(t.snapDir));
    } finally {
      t.cleanup();
    }
  } finally {
    s.cleanup();
  }
});

test('a golden snapshot of a VM with a volume attached is refused (SNAPSHOT_VOLUME_ATTACHED): nothing is captured or staged', async () => {
  const s = await setup();
  try {
    const log: string[] = [];
    const vm = clone('vm-v', join(s.dir, 'vms', 'vm-v'), '/images/desktop/vmlinux', { snapshotId: null });
    vm.spec = { ...vm.spec!, volumes: [null, { file: '/state/volumes/vol-1.ext4', readOnly: false }] };
    const sub = { ...subject([vm], log), captureVm: () => { log.push('capture'); return Promise.reject(new Error('not here')); } };
    const svc = new SnapshotService(sub, s.store, { resolve: () => Promise.reject(new Error('no image')) });
    await assert.rejects(svc.create({ vm: 'vm-v' }), (e: unknown) => isHangarError(e, 'SNAPSHOT_VOLUME_ATTACHED') && (e.details as { files: string[] }).files[0] === '/state/volumes/vol-1.ext4');
    assert.deepEqual(log, [], 'nothing captured');
    assert.deepEqual((await s.store.list()).map((x) => x.manifest.id), [s.id], 'no new snapshot');
    // Detached (its slots empty again): the snapshot is taken (here the fake capture fails after the check).
    vm.spec = { ...vm.spec, volumes: [null, null] };
    await assert.rejects(svc.create({ vm: 'vm-v' }), /not here/);
    assert.deepEqual(log, ['capture']);
  } finally {
    s.cleanup();
  }
});
