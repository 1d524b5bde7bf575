// The tenancy store (src/store/tenancy.ts) and migration 5: rows of an upgraded database go to the default tenant
// with their allocations and events intact, VM names become unique per tenant, the audit table refuses UPDATE and
// DELETE, the token file's key follows the file, tenants in use are not removed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { migrate } from '../../src/store/db.js';
import { MIGRATIONS } from '../../src/store/migrations.js';
import { Store, type NewVm } from '../../src/store/store.js';
import { isHangarError } from '../../src/errors.js';
import { hashKey } from '../../src/tenancy/keys.js';

const vm = (id: string, name: string, tenantId?: string): NewVm => ({
  id, name, state: 'creating', imageId: 'img', profile: 'desktop', vmm: 'qemu', vcpus: 1, memMiB: 512, ttlS: null, expiresAt: null, runDir: '/r', ...(tenantId ? { tenantId } : {}),
});

function withStore(fn: (s: Store, path: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-tenancy-'));
  const s = new Store(join(dir, 'state.db'));
  try { fn(s, join(dir, 'state.db')); } finally { s.close(); rmSync(dir, { recursive: true, force: true }); }
}

test('migration 5 gives existing VMs, allocations and events to the default tenant and keeps them', () => {
  const db = new Database(':memory:');
  db.pragma('foreign_keys = ON');
  migrate(db, MIGRATIONS.filter((m) => m.version <= 4));
  db.prepare(`INSERT INTO vms (id, name, state, image_id, profile, vmm, vcpus, mem_mib, created_at, updated_at, run_dir, spec)
    VALUES ('vm-a', 'alice', 'ready', 'img', 'desktop', 'qemu', 2, 512, 't', 't', '/run', '{}')`).run();
  db.prepare("INSERT INTO allocations (vm_id, kind, value) VALUES ('vm-a', 'ip', '10.0.0.2')").run();
  db.prepare("INSERT INTO events (at, vm_id, type) VALUES ('t', 'vm-a', 'vm.created'), ('t', NULL, 'host.thing')").run();
  assert.deepEqual(migrate(db, MIGRATIONS.filter((m) => m.version <= 5)), [5]);
  assert.deepEqual(db.prepare('SELECT id, name, tenant_id, vcpus FROM vms').all(), [{ id: 'vm-a', name: 'alice', tenant_id: 'default', vcpus: 2 }]);
  assert.equal((db.prepare('SELECT COUNT(*) AS n FROM allocations').get() as { n: number }).n, 1, 'the rebuild did not cascade');
  assert.ok(Object.hasOwn(db.prepare('SELECT * FROM vms').get() as object, 'viewer_nonce') && Object.hasOwn(db.prepare('SELECT * FROM vms').get() as object, 'net_policy'), 'columns of earlier migrations kept');
  assert.deepEqual(db.prepare('SELECT type, tenant_id FROM events ORDER BY seq').all(), [{ type: 'vm.created', tenant_id: 'default' }, { type: 'host.thing', tenant_id: null }]);
  assert.equal(db.pragma('foreign_keys', { simple: true }), 1, 'foreign keys back on');
  // The foreign key of allocations still points at vms: deleting the VM cascades.
  db.prepare("DELETE FROM vms WHERE id = 'vm-a'").run();
  assert.equal((db.prepare('SELECT COUNT(*) AS n FROM allocations').get() as { n: number }).n, 0);
  db.close();
});

test('VM names are unique per tenant, not per host', () => {
  withStore((s) => {
    s.tenancy.createTenant('acme');
    s.insertVm(vm('vm-1', 'alice'));
    s.insertVm(vm('vm-2', 'alice', 'acme'));
    assert.throws(() => s.insertVm(vm('vm-3', 'alice', 'acme')), (e: unknown) => isHangarError(e, 'VM_NAME_TAKEN'));
    assert.equal(s.getVm('alice')!.id, 'vm-1', 'unscoped: the default tenant first');
    assert.deepEqual(s.listVms('acme').map((v) => v.id), ['vm-2']);
    const p = { keyId: 'k', tenant: 'acme', scope: 'write' as const };
    assert.equal(s.tenancy.findVm('alice', p, false)!.id, 'vm-2');
    assert.equal(s.tenancy.findVm('vm-1', p, false), null, "another tenant's VM is not found");
    assert.equal(s.tenancy.findVm('vm-1', p, true)!.id, 'vm-1', 'an admin sees it');
    assert.equal(s.events({ tenant: 'acme' }).every((e) => e.tenant === 'acme'), true);
    assert.ok(s.events({ tenant: 'acme' }).length >= 1);
  });
});

test('the audit table is append-only: UPDATE and DELETE are refused by the database', () => {
  withStore((s, path) => {
    s.tenancy.appendAudit({ keyId: 'key-00000001', tenant: 'default', method: 'POST', route: '/v1/vms', action: 'vms.create', resource: 'vm-1', status: 202, code: null, requestId: 'r' });
    const db = new Database(path);
    try {
      assert.throws(() => db.prepare("UPDATE audit SET status = 200").run(), /append-only/);
      assert.throws(() => db.prepare('DELETE FROM audit').run(), /append-only/);
      assert.equal((db.prepare('SELECT COUNT(*) AS n FROM audit').get() as { n: number }).n, 1);
    } finally {
      db.close();
    }
  });
});

test("the token file's key: created once as the default tenant's admin key, the same token keeps it, a new token rotates it", () => {
  withStore((s) => {
    const a = s.tenancy.syncTokenFileKey(hashKey('token-one'), 'key-00000001');
    assert.deepEqual([a.id, a.tenant, a.scope, a.source], ['key-00000001', 'default', 'admin', 'token-file']);
    assert.equal(s.tenancy.syncTokenFileKey(hashKey('token-one'), 'key-00000002').id, 'key-00000001');
    s.tenancy.revokeKey('key-00000001');
    assert.ok(s.tenancy.syncTokenFileKey(hashKey('token-one'), 'key-00000003').revokedAt, 'a revoked token file key stays revoked');
    const b = s.tenancy.syncTokenFileKey(hashKey('token-two'), 'key-00000004');
    assert.equal(b.id, 'key-00000001');
    assert.equal(b.revokedAt, null, 'a new token file is a new, valid key');
    assert.equal(s.tenancy.keyByHash(hashKey('token-one')), null, 'the old token no longer opens anything');
    assert.equal(s.tenancy.listKeys().length, 1);
  });
});

test('tenants: quotas set and read, the default and tenants in use are not removed, keys go with their tenant', () => {
  withStore((s) => {
    const t = s.tenancy.createTenant('acme', { vms: 3, memMiB: 4096 });
    assert.deepEqual(t.quotas, { vms: 3, vcpus: null, memMiB: 4096, diskMiB: null, viewers: null });
    assert.throws(() => s.tenancy.createTenant('acme'), (e: unknown) => isHangarError(e, 'TENANT_EXISTS'));
    assert.equal(s.tenancy.setQuotas('acme', { vms: null, viewers: 2 }).quotas.viewers, 2);
    s.tenancy.createKey({ id: 'key-0000000a', tenant: 'acme', scope: 'read', hash: hashKey('x') });
    s.insertVm(vm('vm-1', 'a', 'acme'));
    assert.throws(() => s.tenancy.removeTenant('acme'), (e: unknown) => isHangarError(e, 'TENANT_IN_USE'));
    assert.throws(() => s.tenancy.removeTenant('default'), (e: unknown) => isHangarError(e, 'TENANT_IN_USE'));
    s.deleteVm('vm-1');
    s.tenancy.removeTenant('acme');
    assert.equal(s.tenancy.getKey('key-0000000a'), null);
    assert.throws(() => s.tenancy.mustGetTenant('acme'), (e: unknown) => isHangarError(e, 'TENANT_NOT_FOUND'));
  });
});
