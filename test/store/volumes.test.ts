import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store, type NewVm } from '../../src/store/store.js';
import { isHangarError } from '../../src/errors.js';

function tmpStore(): { store: Store; path: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-volstore-'));
  const path = join(dir, 'state.db');
  const store = new Store(path);
  return { store, path, cleanup: () => { store.close(); rmSync(dir, { recursive: true, force: true }); } };
}

const vm = (id: string): NewVm => ({
  id, name: id, state: 'creating', imageId: 'img', profile: 'desktop', vmm: 'qemu', vcpus: 1, memMiB: 512, ttlS: null, expiresAt: null, runDir: `/run/${id}`, spec: null, net: null,
});
const vol = (id: string, name: string, tenant = 'default') => ({ id, tenant, name, sizeMiB: 64, file: `/s/${id}.ext4`, source: null });

test('volumes: names unique per tenant, another tenant\'s is not found, sizes summed per tenant', () => {
  const { store, cleanup } = tmpStore();
  try {
    store.tenancy.createTenant('acme');
    store.volumes.insert(vol('vol-00000001', 'data'));
    assert.throws(() => store.volumes.insert(vol('vol-00000002', 'data')), (e: unknown) => isHangarError(e, 'VOLUME_EXISTS'));
    store.volumes.insert(vol('vol-00000003', 'data', 'acme'));
    assert.equal(store.volumes.get('acme', 'data')!.id, 'vol-00000003');
    assert.equal(store.volumes.get('acme', 'vol-00000001'), null, 'another tenant\'s volume is not found by id');
    assert.throws(() => store.volumes.mustGet('acme', 'vol-00000001'), (e: unknown) => isHangarError(e, 'VOLUME_NOT_FOUND'));
    assert.equal(store.volumes.totalMiB('default'), 64);
    store.volumes.setSize('vol-00000001', 100);
    assert.equal(store.volumes.totalMiB('default'), 100);
  } finally {
    cleanup();
  }
});

test('one VM at a time (writer or read-only), slots and mount points per VM, released by destroy', () => {
  const { store, cleanup } = tmpStore();
  try {
    for (const id of ['vm-a', 'vm-b', 'vm-c']) store.insertVm(vm(id));
    store.volumes.insert(vol('vol-00000001', 'data'));
    store.volumes.insert(vol('vol-00000002', 'more'));
    store.volumes.insert(vol('vol-00000003', 'third'));
    const w = store.volumes.attach({ volumeId: 'vol-00000001', vmId: 'vm-a', path: '/data', readOnly: false }, 2);
    assert.equal(w.slot, 0);
    const refused = (f: () => unknown, code: 'VOLUME_IN_USE' | 'VOLUME_SLOTS_FULL') => assert.throws(f, (e: unknown) => isHangarError(e, code));
    refused(() => store.volumes.attach({ volumeId: 'vol-00000001', vmId: 'vm-b', path: '/data', readOnly: false }, 2), 'VOLUME_IN_USE');
    refused(() => store.volumes.attach({ volumeId: 'vol-00000001', vmId: 'vm-b', path: '/data', readOnly: true }, 2), 'VOLUME_IN_USE');
    refused(() => store.volumes.attach({ volumeId: 'vol-00000002', vmId: 'vm-a', path: '/data', readOnly: false }, 2), 'VOLUME_IN_USE');
    assert.equal(store.volumes.attach({ volumeId: 'vol-00000002', vmId: 'vm-a', path: '/more', readOnly: false }, 2).slot, 1);
    refused(() => store.volumes.attach({ volumeId: 'vol-00000003', vmId: 'vm-a', path: '/third', readOnly: false }, 2), 'VOLUME_SLOTS_FULL');
    // A read-only user holds the volume too (QEMU cannot share the file of a read-write device).
    store.volumes.attach({ volumeId: 'vol-00000003', vmId: 'vm-b', path: '/r', readOnly: true }, 2);
    refused(() => store.volumes.attach({ volumeId: 'vol-00000003', vmId: 'vm-c', path: '/r', readOnly: true }, 2), 'VOLUME_IN_USE');
    store.volumes.detach('vol-00000003', 'vm-b');
    // Attached volumes are not removed; a destroyed VM releases its volumes (cascade).
    refused(() => store.volumes.remove('vol-00000001'), 'VOLUME_IN_USE');
    store.deleteVm('vm-a');
    assert.deepEqual(store.volumes.attachmentsOf('vol-00000001'), []);
    store.volumes.attach({ volumeId: 'vol-00000001', vmId: 'vm-b', path: '/data', readOnly: false }, 2);
    assert.ok(store.volumes.detach('vol-00000001', 'vm-b'));
    store.volumes.remove('vol-00000001');
    assert.equal(store.volumes.get(undefined, 'vol-00000001'), null);
  } finally {
    cleanup();
  }
});

test('volumes and attachments survive a reopen (a controller restart); idle settings merge and reset', () => {
  const { store, path, cleanup } = tmpStore();
  try {
    store.insertVm(vm('vm-a'));
    store.volumes.insert(vol('vol-00000001', 'data'));
    store.volumes.attach({ volumeId: 'vol-00000001', vmId: 'vm-a', path: '/data', readOnly: false }, 2);
    assert.deepEqual(store.volumes.setIdle('vm-a', { timeoutS: 30 }), { timeoutS: 30, action: null });
    assert.deepEqual(store.volumes.setIdle('vm-a', { action: 'pause' }), { timeoutS: 30, action: 'pause' });
    const again = new Store(path);
    try {
      assert.equal(again.volumes.attachmentsOfVm('vm-a')[0]!.path, '/data');
      assert.deepEqual(again.volumes.idle('vm-a'), { timeoutS: 30, action: 'pause' });
      assert.deepEqual(again.volumes.setIdle('vm-a', { timeoutS: null }), { timeoutS: null, action: 'pause' });
      assert.deepEqual([...again.volumes.allIdle().keys()], ['vm-a']);
    } finally {
      again.close();
    }
    assert.deepEqual(store.volumes.idle('vm-none'), { timeoutS: null, action: null });
  } finally {
    cleanup();
  }
});
