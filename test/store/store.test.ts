import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Store, type NewVm } from '../../src/store/store.js';
import { migrate } from '../../src/store/db.js';
import { MIGRATIONS } from '../../src/store/migrations.js';
import { isHangarError } from '../../src/errors.js';

function tmpStore(): { store: Store; path: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-store-'));
  const path = join(dir, 'state.db');
  const store = new Store(path);
  return { store, path, cleanup: () => { store.close(); rmSync(dir, { recursive: true, force: true }); } };
}

const vm = (id: string, name = id): NewVm => ({
  id, name, state: 'creating', imageId: 'img', profile: 'desktop', vmm: 'qemu', vcpus: 1, memMiB: 512, ttlS: null,
  expiresAt: null, runDir: `/run/${id}`, spec: null, net: null,
});

test('migrations are numbered, applied once, and a newer database is refused', () => {
  const db = new Database(':memory:');
  assert.deepEqual(migrate(db), MIGRATIONS.map((m) => m.version));
  assert.deepEqual(migrate(db), []);
  db.pragma('user_version = 999');
  assert.throws(() => migrate(db), (e: unknown) => isHangarError(e, 'STORE_ERROR'));
});

test('state survives reopening the database (restart)', () => {
  const { store, path, cleanup } = tmpStore();
  try {
    store.insertVm(vm('vm-a'));
    store.setState('vm-a', 'booting');
    store.close();
    const again = new Store(path);
    assert.equal(again.mustGetVm('vm-a').state, 'booting');
    again.close();
  } finally {
    cleanup();
  }
});

test('state changes follow the state machine and are recorded as events', () => {
  const { store, cleanup } = tmpStore();
  try {
    store.insertVm(vm('vm-a'));
    assert.throws(() => store.setState('vm-a', 'paused'), (e: unknown) => isHangarError(e, 'VM_INVALID_STATE'));
    store.setState('vm-a', 'booting');
    store.setState('vm-a', 'ready', { bootMs: 1234, pid: 42 });
    const r = store.mustGetVm('vm-a');
    assert.equal(r.state, 'ready');
    assert.equal(r.bootMs, 1234);
    assert.equal(r.pid, 42);
    const types = store.events({ vmId: 'vm-a' }).map((e) => `${e.type}:${String(e.data.to ?? '')}`);
    assert.deepEqual(types, ['vm.created:', 'vm.state:booting', 'vm.state:ready']);
  } finally {
    cleanup();
  }
});

test('names are unique with a stable error code', () => {
  const { store, cleanup } = tmpStore();
  try {
    store.insertVm(vm('vm-a', 'desk'));
    assert.throws(() => store.insertVm(vm('vm-b', 'desk')), (e: unknown) => isHangarError(e, 'VM_NAME_TAKEN'));
    assert.equal(store.getVm('desk')?.id, 'vm-a');
  } finally {
    cleanup();
  }
});

test('the database refuses a double allocation, and the transaction leaves nothing half-written', () => {
  const { store, cleanup } = tmpStore();
  try {
    store.insertVm(vm('vm-a'));
    store.insertVm(vm('vm-b'));
    store.allocate('vm-a', () => ({ result: null, allocations: [{ kind: 'ip', value: '10.0.0.2' }, { kind: 'tap', value: 'hg0' }] }));
    assert.throws(() => store.allocate('vm-b', () => ({ result: null, allocations: [{ kind: 'tap', value: 'hg1' }, { kind: 'ip', value: '10.0.0.2' }] })));
    assert.deepEqual(store.allocations().filter((a) => a.vmId === 'vm-b'), []);
    store.deleteVm('vm-a');
    assert.deepEqual(store.allocations(), [], 'allocations cascade with the VM row');
    assert.equal(store.events({ vmId: 'vm-a' }).at(-1)?.type, 'vm.destroyed');
  } finally {
    cleanup();
  }
});

test('live event listeners see appended events', () => {
  const { store, cleanup } = tmpStore();
  try {
    const seen: string[] = [];
    const off = store.onEvent((e) => seen.push(e.type));
    store.appendEvent(null, 'host.test');
    off();
    store.appendEvent(null, 'host.after');
    assert.deepEqual(seen, ['host.test']);
  } finally {
    cleanup();
  }
});

test('viewer nonces: one per VM at insert, by id only, rotated on demand, gone with the row', () => {
  const { store, cleanup } = tmpStore();
  try {
    store.insertVm(vm('vm-a', 'desk'));
    store.insertVm(vm('vm-b'));
    const a = store.viewerNonce('vm-a');
    assert.ok(a && a.length === 16);
    assert.notDeepEqual(store.viewerNonce('vm-b'), a, 'each VM its own nonce');
    assert.equal(store.viewerNonce('desk'), null, 'never by name');
    const rotated = store.rotateViewerNonce('vm-a');
    assert.ok(rotated && !rotated.equals(a));
    assert.deepEqual(store.viewerNonce('vm-a'), rotated);
    assert.equal(store.rotateViewerNonce('desk'), null);
    assert.equal(store.rotateViewerNonce('vm-x'), null);
    store.deleteVm('vm-a');
    assert.equal(store.viewerNonce('vm-a'), null);
    // A new VM under the same id does not inherit it.
    store.insertVm(vm('vm-a'));
    const again = store.viewerNonce('vm-a');
    assert.ok(again && !again.equals(a) && !again.equals(rotated));
    assert.equal(Object.keys(store.getVm('vm-a')!).includes('viewerNonce'), false, 'not part of the record (never in an API answer)');
  } finally {
    cleanup();
  }
});

test('migration 3 gives VMs that existed before it a random viewer nonce each', () => {
  const db = new Database(':memory:');
  migrate(db, MIGRATIONS.filter((m) => m.version < 3));
  const ins = db.prepare(`INSERT INTO vms (id, name, state, image_id, profile, vmm, vcpus, mem_mib, created_at, updated_at, run_dir, spec)
    VALUES (?, ?, 'ready', 'img', 'desktop', 'qemu', 1, 512, 't', 't', '/run', '{}')`);
  ins.run('vm-a', 'a');
  ins.run('vm-b', 'b');
  assert.deepEqual(migrate(db, MIGRATIONS.filter((m) => m.version <= 3)), [3]);
  const rows = db.prepare('SELECT viewer_nonce AS n FROM vms').all() as { n: Buffer }[];
  assert.equal(rows.length, 2);
  for (const r of rows) assert.equal(r.n.length, 16);
  assert.ok(!rows[0]!.n.equals(rows[1]!.n));
  db.close();
});

test('migration 4: existing VMs have no network policy of their own (the config default applies)', () => {
  const db = new Database(':memory:');
  migrate(db, MIGRATIONS.filter((m) => m.version < 4));
  db.prepare(`INSERT INTO vms (id, name, state, image_id, profile, vmm, vcpus, mem_mib, created_at, updated_at, run_dir, spec)
    VALUES ('vm-a', 'a', 'ready', 'img', 'desktop', 'qemu', 1, 512, 't', 't', '/run', '{}')`).run();
  assert.deepEqual(migrate(db, MIGRATIONS.filter((m) => m.version <= 4)), [4]);
  assert.deepEqual(db.prepare('SELECT net_policy AS p FROM vms').all(), [{ p: null }]);
  db.close();
});
