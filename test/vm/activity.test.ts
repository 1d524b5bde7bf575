// Idleness (src/vm/activity.ts): a VM with a viewer attached is never idle; activity restarts the clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Activity } from '../../src/vm/activity.js';

test('held VMs are never idle; releasing (once) restarts the clock; untouched VMs count from the start', () => {
  let now = 1_000_000;
  const a = new Activity(() => now);
  now += 60_000;
  assert.equal(a.idle('vm-a', 30), true, 'no activity since the controller started');
  const release = a.hold('vm-a');
  now += 3_600_000;
  assert.equal(a.idle('vm-a', 30), false, 'a viewer is attached');
  release();
  release();
  assert.equal(a.held('vm-a'), false, 'a second release changes nothing');
  assert.equal(a.idle('vm-a', 30), false, 'leaving is activity');
  now += 31_000;
  assert.equal(a.idle('vm-a', 30), true);
  a.touch('vm-a');
  assert.equal(a.idle('vm-a', 30), false);
});
