// The pool planner (src/pool/plan.ts): the refill policy within size, parallelism and the memory budget, the claim
// order, the create body's validation, and machine-ids.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isHangarError } from '../../src/errors.js';
import { machineIdFrom, normalizePool, pickMember, poolForTemplate, refillCount, toPoolView, type PoolMember, type PoolView, type RefillInput } from '../../src/pool/plan.js';

const base: RefillInput = { size: 3, ready: 0, filling: 0, parallel: { max: 1, inFlight: 0 }, budget: { maxMiB: null, usedMiB: 0, memberMiB: 512 } };

test('refill: what the pool lacks, at most the free parallel slots, within the memory budget', () => {
  assert.deepEqual(refillCount(base), { start: 1, heldBy: 'parallel' });
  assert.deepEqual(refillCount({ ...base, parallel: { max: 4, inFlight: 0 } }), { start: 3, heldBy: null });
  assert.deepEqual(refillCount({ ...base, ready: 2, filling: 1, parallel: { max: 4, inFlight: 1 } }), { start: 0, heldBy: null });
  assert.deepEqual(refillCount({ ...base, ready: 1, parallel: { max: 4, inFlight: 0 } }), { start: 2, heldBy: null });
  assert.deepEqual(refillCount({ ...base, parallel: { max: 1, inFlight: 1 } }), { start: 0, heldBy: 'parallel' });
  // 1,500 MiB of budget with 1,024 used: no room for a 512 MiB member.
  assert.deepEqual(refillCount({ ...base, parallel: { max: 4, inFlight: 0 }, budget: { maxMiB: 1500, usedMiB: 1024, memberMiB: 512 } }), { start: 0, heldBy: 'budget' });
  assert.deepEqual(refillCount({ ...base, parallel: { max: 4, inFlight: 0 }, budget: { maxMiB: 2048, usedMiB: 1024, memberMiB: 512 } }), { start: 2, heldBy: 'budget' });
  assert.deepEqual(refillCount({ ...base, size: 0 }), { start: 0, heldBy: null });
});

test('a claim takes the longest-waiting ready member, never a filling one', () => {
  const m = (vmId: string, state: PoolMember['state'], since: string): PoolMember => ({ vmId, pool: 'p', state, since });
  assert.equal(pickMember([m('vm-3', 'filling', '2026-01-01T00:00:00Z'), m('vm-2', 'ready', '2026-01-01T00:00:02Z'), m('vm-1', 'ready', '2026-01-01T00:00:01Z')])?.vmId, 'vm-1');
  assert.equal(pickMember([m('vm-3', 'filling', '2026-01-01T00:00:00Z')]), null);
  assert.equal(pickMember([]), null);
});

test('a pool body: a name, a size, exactly one template', () => {
  assert.deepEqual(normalizePool({ name: 'desk', size: 2, profile: 'desktop' }), { name: 'desk', size: 2, template: { profile: 'desktop' } });
  assert.deepEqual(normalizePool({ name: 'd2', size: 0, snapshot: 'snap-0123abcd' }), { name: 'd2', size: 0, template: { snapshot: 'snap-0123abcd' } });
  for (const bad of [{ name: 'Desk', size: 1, profile: 'desktop' }, { name: 'd', size: -1, profile: 'desktop' }, { name: 'd', size: 65, profile: 'desktop' }, { name: 'd', size: 1 },
    { name: 'd', size: 1, profile: 'desktop', snapshot: 'snap-0123abcd' }, { name: 'd', size: 1.5, profile: 'desktop' }, { name: 'd', size: 1, profile: '../x' }]) {
    assert.throws(() => normalizePool(bad), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT'), JSON.stringify(bad));
  }
});

test('machine-ids are 32 hex digits from the bytes given; the view counts members by state', () => {
  assert.equal(machineIdFrom(new Uint8Array(16).fill(0xab)), 'ab'.repeat(16));
  assert.throws(() => machineIdFrom(new Uint8Array(8)));
  const v = toPoolView({ name: 'p', template: { profile: 'desktop' }, snapshotId: 's', size: 3, createdAt: 't', claims: 4, misses: 1, refillMs: 900 },
    [{ vmId: 'a', pool: 'p', state: 'ready', since: '1' }, { vmId: 'b', pool: 'p', state: 'filling', since: '2' }, { vmId: 'c', pool: 'q', state: 'ready', since: '3' }]);
  assert.deepEqual([v.ready, v.filling, v.claims, v.misses, v.refillMs], [1, 1, 4, 1, 900]);
});

test('a create claims from the pool of its template that has a ready member, else boots', () => {
  const view = (name: string, template: PoolView['template'], ready: number): PoolView => ({ name, template, snapshot: null, size: 2, ready, filling: 0, claims: 0, misses: 0, refillMs: null, createdAt: '' });
  const pools = [view('empty-desk', { profile: 'desktop' }, 0), view('desk', { profile: 'desktop' }, 1), view('snap', { snapshot: 'snap-0123abcd' }, 2), view('web', { profile: 'browser' }, 0)];
  assert.equal(poolForTemplate(pools, {}), 'desk', 'the default profile is desktop; an empty pool is skipped');
  assert.equal(poolForTemplate(pools, { profile: 'desktop' }), 'desk');
  assert.equal(poolForTemplate(pools, { fromSnapshot: 'snap-0123abcd' }), 'snap');
  assert.equal(poolForTemplate(pools, { fromSnapshot: 'snap-ffffffff' }), null);
  assert.equal(poolForTemplate(pools, { profile: 'browser' }), null, 'no ready member: boot');
});
