// The pool store (src/store/pools.ts) and migration 6: pools and members persist, members wait in the pool tenant,
// a claim moves one to the claimer's tenant under its name within its quotas — all or nothing, and only once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isHangarError } from '../../src/errors.js';
import { POOL_TENANT } from '../../src/pool/plan.js';
import { Store, type NewVm } from '../../src/store/store.js';

const vm = (id: string, name: string, tenantId = POOL_TENANT): NewVm => ({
  id, name, state: 'creating', imageId: 'img', profile: 'desktop', vmm: 'qemu', vcpus: 1, memMiB: 512, ttlS: null, expiresAt: null, runDir: '/r', tenantId,
});

function withStore(fn: (s: Store, path: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-pools-'));
  const s = new Store(join(dir, 'state.db'));
  try { fn(s, join(dir, 'state.db')); } finally { s.close(); rmSync(dir, { recursive: true, force: true }); }
}

test('migration 6: the pool tenant exists; pools and members survive a reopen (a controller restart)', () => {
  withStore((s, path) => {
    assert.ok(s.tenancy.getTenant(POOL_TENANT));
    s.pools.create({ name: 'desk', template: { profile: 'desktop' }, size: 2, snapshotId: null });
    s.insertVm(vm('vm-00000001', 'pool-desk-1'));
    s.pools.addMember('vm-00000001', 'desk');
    s.pools.markReady('vm-00000001', 4200);
    const again = new Store(path);
    try {
      assert.deepEqual(again.pools.list().map((p) => [p.name, p.size, p.refillMs]), [['desk', 2, 4200]]);
      assert.deepEqual(again.pools.members('desk').map((m) => [m.vmId, m.state]), [['vm-00000001', 'ready']]);
    } finally { again.close(); }
  });
});

test('a claim moves the member to the claimer under its name and counts it; a second claim of it is POOL_EMPTY', () => {
  withStore((s) => {
    s.tenancy.createTenant('acme');
    s.pools.create({ name: 'desk', template: { snapshot: 'snap-00000001' }, size: 1, snapshotId: 'snap-00000001' });
    s.insertVm(vm('vm-00000002', 'pool-desk-2'));
    s.pools.addMember('vm-00000002', 'desk');
    assert.throws(() => s.pools.claim('vm-00000002', 'acme', 'mine'), (e: unknown) => isHangarError(e, 'POOL_EMPTY'), 'a filling member is not claimable');
    s.pools.markReady('vm-00000002', 1);
    s.pools.claim('vm-00000002', 'acme', 'mine');
    const got = s.mustGetVm('vm-00000002');
    assert.equal(got.tenantId, 'acme');
    assert.equal(got.name, 'mine');
    assert.equal(s.pools.members('desk').length, 0);
    assert.equal(s.pools.must('desk').claims, 1);
    assert.throws(() => s.pools.claim('vm-00000002', 'default', 'again'), (e: unknown) => isHangarError(e, 'POOL_EMPTY'));
  });
});

test("a claim over the claimer's quota, or under a name it has, leaves the member in its pool", () => {
  withStore((s) => {
    s.tenancy.createTenant('small', { memMiB: 256 });
    s.tenancy.createTenant('acme');
    s.insertVm(vm('vm-00000009', 'taken', 'acme'));
    s.pools.create({ name: 'desk', template: { snapshot: 'snap-00000001' }, size: 1, snapshotId: 'snap-00000001' });
    s.insertVm(vm('vm-00000003', 'pool-desk-3'));
    s.pools.addMember('vm-00000003', 'desk');
    s.pools.markReady('vm-00000003', 1);
    assert.throws(() => s.pools.claim('vm-00000003', 'small', 'x'), (e: unknown) => isHangarError(e, 'QUOTA_EXCEEDED'));
    assert.throws(() => s.pools.claim('vm-00000003', 'acme', 'taken'), (e: unknown) => isHangarError(e, 'VM_NAME_TAKEN'));
    assert.equal(s.mustGetVm('vm-00000003').tenantId, POOL_TENANT);
    assert.deepEqual(s.pools.members('desk').map((m) => m.state), ['ready']);
    assert.equal(s.pools.must('desk').claims, 0);
  });
});

test('removing a pool removes its member rows (the VMs are the service\'s to destroy); a deleted VM leaves its pool', () => {
  withStore((s) => {
    s.pools.create({ name: 'a', template: { profile: 'desktop' }, size: 1, snapshotId: null });
    s.insertVm(vm('vm-00000004', 'pool-a-4'));
    s.pools.addMember('vm-00000004', 'a');
    s.deleteVm('vm-00000004');
    assert.equal(s.pools.members('a').length, 0);
    s.insertVm(vm('vm-00000005', 'pool-a-5'));
    s.pools.addMember('vm-00000005', 'a');
    s.pools.remove('a');
    assert.equal(s.pools.members().length, 0);
    assert.throws(() => s.pools.must('a'), (e: unknown) => isHangarError(e, 'POOL_NOT_FOUND'));
    assert.throws(() => { s.pools.create({ name: 'b', template: { profile: 'desktop' }, size: 1, snapshotId: null }); s.pools.create({ name: 'b', template: { profile: 'desktop' }, size: 1, snapshotId: null }); }, (e: unknown) => isHangarError(e, 'CONFLICT'));
  });
});
