// POST /v1/vms { pool } over the fake API: a hit answers 201 with the claimed VM at once, a miss 202 with the clone
// being restored, and a claim that also asks for what the pool's template fixes is refused before any claim.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PoolClaims } from '../../src/api/routes.js';
import { createFakeApi, fakeAuth, fakeVm } from '../api/fake-api.js';

function pools(hit: boolean, calls: unknown[][]): PoolClaims {
  return {
    claim: async (pool, owner, opts) => {
      calls.push([pool, owner.tenant, opts]);
      const vm = fakeVm('vm-0000abcd', { name: opts.name ?? 'vm-0000abcd', state: hit ? 'ready' : 'booting' });
      return { vm, hit, ready: Promise.resolve({ ...vm, state: 'ready' }), identity: Promise.resolve({ synced: true, ms: 5 }) };
    },
  };
}

test('a claim: 201 with the ready VM on a hit, 202 on a miss; name and ttlSeconds pass through', async () => {
  for (const hit of [true, false]) {
    const calls: unknown[][] = [];
    const api = await createFakeApi({ pools: pools(hit, calls) });
    try {
      const r = await api.app.inject({ method: 'POST', url: '/v1/vms', headers: fakeAuth, payload: { pool: 'desk', name: 'alice', ttlSeconds: 600 } });
      assert.equal(r.statusCode, hit ? 201 : 202, r.body);
      assert.equal(r.json().name, 'alice');
      assert.deepEqual(calls, [['desk', 'default', { name: 'alice', ttlSeconds: 600 }]]);
      assert.equal(api.created().length, 0, 'not an ordinary create');
    } finally {
      await api.close();
    }
  }
});

test('a claim that also names an image, a profile, vCPUs or a snapshot is refused before any claim', async () => {
  const calls: unknown[][] = [];
  const api = await createFakeApi({ pools: pools(true, calls) });
  try {
    for (const extra of [{ profile: 'desktop' }, { vcpus: 2 }, { fromSnapshot: 'snap-0123abcd' }, { image: 'desktop' }]) {
      const r = await api.app.inject({ method: 'POST', url: '/v1/vms', headers: fakeAuth, payload: { pool: 'desk', ...extra } });
      assert.equal(r.statusCode, 400, JSON.stringify(extra));
      assert.equal(r.json().error.code, 'INVALID_ARGUMENT');
    }
    const bad = await api.app.inject({ method: 'POST', url: '/v1/vms', headers: fakeAuth, payload: { pool: 'Not A Pool' } });
    assert.equal(bad.statusCode, 400);
    assert.deepEqual(calls, []);
  } finally {
    await api.close();
  }
  const none = await createFakeApi();
  try {
    const r = await none.app.inject({ method: 'POST', url: '/v1/vms', headers: fakeAuth, payload: { pool: 'desk' } });
    assert.equal(r.statusCode, 404);
    assert.equal(r.json().error.code, 'POOL_NOT_FOUND');
  } finally {
    await none.close();
  }
});
