// Snapshot and hibernation routes through injection on the API harness (real store and manager, no VM booted):
// listing, validation and error codes; a VM's view says whether it is hibernated or a clone.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { idler } from '../../src/api/workers.js';
import type { VmRecord } from '../../src/store/store.js';
import { auth, createApiHarness, type ApiHarness } from '../support/api.js';

let h: ApiHarness;
before(async () => {
  h = await createApiHarness();
  h.insertVm('vm-stopped', 'stopped');
  h.insertVm('vm-ready', 'ready');
});
after(async () => { await h.close(); });

test('snapshot routes: an empty list, and stable codes for what cannot be done', async () => {
  const list = await h.app.inject({ method: 'GET', url: '/v1/snapshots', headers: auth });
  assert.equal(list.statusCode, 200);
  assert.deepEqual(list.json(), { snapshots: [] });
  const cases: [string, string, number, string, object?][] = [
    ['POST', '/v1/snapshots', 400, 'INVALID_ARGUMENT', {}],
    ['POST', '/v1/snapshots', 400, 'INVALID_ARGUMENT', { vm: 'a', image: 'b' }],
    ['POST', '/v1/snapshots', 400, 'UNKNOWN_FIELD', { vm: 'vm-ready', memory: 1 }],
    ['POST', '/v1/snapshots', 404, 'VM_NOT_FOUND', { vm: 'nope' }],
    ['POST', '/v1/snapshots', 409, 'VM_INVALID_STATE', { vm: 'vm-stopped' }],
    ['GET', '/v1/snapshots/snap-00000000', 404, 'SNAPSHOT_NOT_FOUND'],
    ['GET', '/v1/snapshots/..%2F..%2Fetc', 404, 'SNAPSHOT_NOT_FOUND'],
    ['DELETE', '/v1/snapshots/snap-00000000', 404, 'SNAPSHOT_NOT_FOUND'],
    ['POST', '/v1/vms/nope/hibernate', 404, 'VM_NOT_FOUND'],
    ['POST', '/v1/vms/vm-stopped/hibernate', 409, 'VM_INVALID_STATE'],
    ['POST', '/v1/vms/vm-ready/hibernate', 409, 'VM_INVALID_STATE'], // ready in the store, but no VMM behind it
    ['POST', '/v1/vms', 404, 'SNAPSHOT_NOT_FOUND', { fromSnapshot: 'snap-00000000' }],
  ];
  for (const [method, url, status, code, payload] of cases) {
    const res = await h.app.inject({ method: method as 'GET', url, headers: auth, ...(payload ? { payload } : {}) });
    assert.equal(res.statusCode, status, `${method} ${url} ${JSON.stringify(payload)}: ${res.body}`);
    assert.equal(res.json().error.code, code, `${method} ${url}`);
  }
  assert.equal(h.store.listVms().length, 2, 'nothing was created');
});

test('the VM view says hibernated and clone', async () => {
  const one = (await h.app.inject({ method: 'GET', url: '/v1/vms/vm-stopped', headers: auth })).json();
  assert.equal(one.hibernated, false);
  assert.equal(one.clone, null);
  h.store.patchVm('vm-stopped', { hibernation: { dir: '/x', files: {}, at: 'now', vmmVersion: '7.2', saveMs: 1 } });
  const list = (await h.app.inject({ method: 'GET', url: '/v1/vms', headers: auth })).json();
  assert.equal(list.vms.find((v: { id: string }) => v.id === 'vm-stopped').hibernated, true);
  // Resuming a hibernated VM restores it: here its state files do not exist, so it fails and says why.
  const res = await h.app.inject({ method: 'POST', url: '/v1/vms/vm-stopped/resume', headers: auth });
  assert.ok(res.statusCode >= 400, res.body);
  h.store.patchVm('vm-stopped', { hibernation: null });
});

test('the idler hibernates exactly the idle VMs and records a failure as an event', async () => {
  const done: string[] = [];
  const idle = [{ id: 'vm-a' }, { id: 'vm-b' }] as VmRecord[];
  const loop = idler({
    idleVms: (afterS, now) => { assert.ok(afterS === 0 || afterS === 600, String(afterS)); assert.equal(now, 42); return idle; },
    hibernate: async (id) => {
      if (id === 'vm-b') throw new Error('disk full');
      done.push(id);
      return idle[0]!;
    },
    action: async () => { throw new Error('no pause with the hibernate action'); },
  }, h.store, { defaultS: 600, defaultAction: 'hibernate', own: () => new Map() }, 1000, () => 42);
  await loop.tick();
  assert.deepEqual(done, ['vm-a']);
  assert.ok(h.store.events({ vmId: 'vm-b' }).some((e) => e.type === 'vm.hibernate_failed' && e.data.message === 'disk full'));
});
