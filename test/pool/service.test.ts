// The pool executor (src/pool/service.ts) over a real store and fake VMs: it fills a pool to its size one member at a
// time (paused once ready), a claim takes a ready member (identity, counted) and wakes the refill, an empty pool
// is a miss served by a plain clone, and a restart drops members it left half-made.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { VmRecord } from '../../src/domain/vm.js';
import { POOL_TENANT } from '../../src/pool/plan.js';
import { PoolService, type PoolSnapshots, type PoolVms } from '../../src/pool/service.js';
import type { StoredSnapshot } from '../../src/snapshot/store.js';
import { Store } from '../../src/store/store.js';

function fakeVms(store: Store, log: string[]): PoolVms {
  let n = 0;
  return {
    create: async (req, owner) => {
      const id = `vm-${String(++n).padStart(8, '0')}`;
      const vm = store.insertVm({ id, name: req.name ?? id, state: 'creating', imageId: 'img', profile: 'desktop', vmm: 'qemu', vcpus: 1, memMiB: 512, ttlS: null, expiresAt: null, runDir: '/r', tenantId: owner?.tenant ?? 'default', snapshotId: req.fromSnapshot ?? null });
      log.push(`create ${id} ${owner?.tenant} ${req.fromSnapshot}`);
      store.setState(id, 'booting');
      return { vm, ready: Promise.resolve(store.setState(id, 'ready')) };
    },
    find: (id) => store.getVm(id),
    action: async (id, a) => { log.push(`${a} ${id}`); return store.setState(id, a === 'pause' ? 'paused' : 'ready'); },
    destroy: async (id) => { log.push(`destroy ${id}`); store.deleteVm(id); },
    resync: async (id, host) => { log.push(`resync ${id} ${host}`); return { sentAt: 1, guestTime: 1, agent: true }; },
  };
}

const removed: string[] = [];
const snapshots: PoolSnapshots = {
  create: async () => ({ manifest: { id: 'snap-0000000a' } } as unknown as StoredSnapshot),
  get: async (id) => ({ manifest: { id } } as unknown as StoredSnapshot),
  remove: async (id, force) => { removed.push(`${id} ${force}`); },
};

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

function withService(fn: (s: Store, svc: PoolService, log: string[]) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-poolsvc-'));
  const store = new Store(join(dir, 'state.db'));
  const log: string[] = [];
  const svc = new PoolService(store.pools, fakeVms(store, log), snapshots, null, { memoryBudgetMiB: null, intervalMs: 50, backoffMs: 10 });
  return fn(store, svc, log).finally(async () => { await svc.stop(); store.close(); rmSync(dir, { recursive: true, force: true }); });
}

test('fills to size with paused members in the pool tenant; a claim takes one, gives it identity, and the pool refills', () => withService(async (store, svc, log) => {
  await svc.create({ name: 'desk', size: 2, snapshot: 'snap-00000001' });
  svc.start();
  await until(() => svc.get('desk').ready === 2);
  const members = store.pools.members('desk');
  for (const m of members) {
    const vm = store.mustGetVm(m.vmId);
    assert.equal(vm.state, 'paused');
    assert.equal(vm.tenantId, POOL_TENANT);
  }
  const r = await svc.claim('desk', { tenant: 'default' }, { name: 'mine' });
  assert.equal(r.hit, true);
  assert.equal(r.vm.id, members[0]!.vmId, 'the longest-waiting member');
  assert.equal(r.vm.name, 'mine');
  assert.equal(r.vm.tenantId, 'default');
  assert.equal(r.vm.state, 'ready');
  assert.ok(log.includes(`resync ${r.vm.id} mine`));
  assert.deepEqual(r.timings.map((t) => t.name.replace(/^vm-\d+: /, '')), ['take for default', 'resume', 'identity (hostname, clock, entropy; fresh agent session)']);
  assert.equal((await r.identity).synced, true);
  await until(() => svc.get('desk').ready === 2);
  assert.equal(svc.get('desk').claims, 1);
  assert.equal(store.pools.members('desk').some((m) => m.vmId === r.vm.id), false);
}));

test('an empty pool: a miss, counted, served by a plain clone of its snapshot in the claimer\'s tenant', () => withService(async (store, svc, log) => {
  await svc.create({ name: 'desk', size: 0, snapshot: 'snap-00000001' });
  const r = await svc.claim('desk', { tenant: 'default' }, { name: 'cold' });
  assert.equal(r.hit, false);
  assert.equal((await r.ready).tenantId, 'default');
  assert.ok(log.includes(`create ${r.vm.id} default snap-00000001`));
  assert.equal(svc.get('desk').misses, 1);
}));

test('at start, members left filling (or whose VM is not paused) are dropped and destroyed; ready ones stay', () => withService(async (store, svc, log) => {
  await svc.create({ name: 'desk', size: 0, snapshot: 'snap-00000001' });
  const mk = (id: string, state: 'paused' | 'ready'): VmRecord => {
    store.insertVm({ id, name: id, state: 'creating', imageId: 'img', profile: 'desktop', vmm: 'qemu', vcpus: 1, memMiB: 512, ttlS: null, expiresAt: null, runDir: '/r', tenantId: POOL_TENANT });
    store.setState(id, 'booting');
    store.setState(id, 'ready');
    return state === 'paused' ? store.setState(id, 'paused') : store.mustGetVm(id);
  };
  mk('vm-aaaaaaa1', 'paused');
  mk('vm-aaaaaaa2', 'ready');
  store.pools.addMember('vm-aaaaaaa1', 'desk');
  store.pools.markReady('vm-aaaaaaa1', 1);
  store.pools.addMember('vm-aaaaaaa2', 'desk');
  svc.start();
  await until(() => log.includes('destroy vm-aaaaaaa2'));
  assert.deepEqual(store.pools.members('desk').map((m) => m.vmId), ['vm-aaaaaaa1']);
}));

test('removing a pool destroys its waiting members', () => withService(async (store, svc, log) => {
  await svc.create({ name: 'desk', size: 1, snapshot: 'snap-00000001' });
  svc.start();
  await until(() => svc.get('desk').ready === 1);
  const id = store.pools.members('desk')[0]!.vmId;
  await svc.remove('desk');
  assert.ok(log.includes(`destroy ${id}`));
  assert.equal(svc.list().length, 0);
}));

test('a profile pool makes its snapshot; removing the pool converts the VMs claimed from it, never destroys them', () => withService(async (store, svc, log) => {
  await svc.create({ name: 'prof', size: 1, profile: 'desktop' });
  svc.start();
  await until(() => svc.get('prof').ready === 1);
  assert.equal(svc.get('prof').snapshot, 'snap-0000000a');
  const r = await svc.claim('prof', { tenant: 'default' }, { name: 'kept' });
  await until(() => svc.get('prof').ready === 1);
  await svc.remove('prof');
  assert.ok(removed.includes('snap-0000000a convert'));
  assert.ok(!log.includes(`destroy ${r.vm.id}`));
  assert.equal(store.mustGetVm(r.vm.id).name, 'kept');
}));
