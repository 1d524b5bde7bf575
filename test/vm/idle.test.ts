// The idler (src/api/workers.ts) over the idleness clock (src/vm/activity.ts): each VM idles out after its own
// timeout (or the default), with its own action; 0 never idles; activity and holds keep a VM awake.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { idleRules, idler, type IdleAction } from '../../src/api/workers.js';
import type { Store, VmRecord } from '../../src/store/store.js';
import { Activity } from '../../src/vm/activity.js';

test('idle rules: own timeout and action over the defaults; 0 (own or default) never idles', () => {
  const vms = [{ id: 'a' }, { id: 'b' }, { id: 'c' }, { id: 'd' }];
  const own = new Map<string, { timeoutS: number | null; action: IdleAction | null }>([['a', { timeoutS: 5, action: 'pause' }], ['b', { timeoutS: 0, action: null }], ['c', { timeoutS: null, action: 'pause' }]]);
  assert.deepEqual([...idleRules(vms, { defaultS: 60, defaultAction: 'hibernate' }, own)], [['a', { afterS: 5, action: 'pause' }], ['c', { afterS: 60, action: 'pause' }], ['d', { afterS: 60, action: 'hibernate' }]]);
  assert.deepEqual([...idleRules(vms, { defaultS: 0, defaultAction: 'hibernate' }, own)], [['a', { afterS: 5, action: 'pause' }]], 'default 0: only VMs with their own timeout idle');
});

test('the idler pauses or hibernates each VM after its own timeout; a touch or a hold keeps it awake', async () => {
  let now = 1_000_000;
  const act = new Activity(() => now);
  const vms = ['vm-p', 'vm-h', 'vm-never', 'vm-held'].map((id) => ({ id, state: 'ready' }) as VmRecord);
  const done: string[] = [];
  const manager = {
    idleVms: (afterS: number, t = now) => vms.filter((v) => v.state === 'ready' && act.idle(v.id, afterS, t)),
    hibernate: async (id: string) => { done.push(`hibernate ${id}`); vms.find((v) => v.id === id)!.state = 'stopped'; return vms[0]!; },
    action: async (id: string) => { done.push(`pause ${id}`); vms.find((v) => v.id === id)!.state = 'paused'; return vms[0]!; },
  };
  const events: string[] = [];
  const store = { appendEvent: (_: string, type: string) => { events.push(type); } } as unknown as Store;
  const own = new Map<string, { timeoutS: number | null; action: IdleAction | null }>([['vm-p', { timeoutS: 5, action: 'pause' }], ['vm-never', { timeoutS: 0, action: null }]]);
  const loop = idler(manager, store, { defaultS: 30, defaultAction: 'hibernate', own: () => own }, 1000, () => now);
  const release = act.hold('vm-held');
  for (const v of vms) act.touch(v.id);
  now += 6_000;
  act.touch('vm-h');
  await loop.tick();
  assert.deepEqual(done, ['pause vm-p'], 'its own 5 s; the others are under the 30 s default');
  now += 31_000;
  await loop.tick();
  assert.deepEqual(done, ['pause vm-p', 'hibernate vm-h'], 'the default 30 s and action; 0 never; a held VM never');
  release();
  now += 31_000;
  await loop.tick();
  assert.deepEqual(done.at(-1), 'hibernate vm-held', 'released, it idles out like the others');
  assert.ok(!done.some((d) => d.includes('vm-never')));
  assert.deepEqual(events, ['vm.idle', 'vm.idle', 'vm.idle']);
});
