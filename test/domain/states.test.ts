import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ACTION_FROM, ACTIONS, VM_STATES, canTransition, checkAction, type VmAction } from '../../src/domain/states.js';
import { isHangarError } from '../../src/errors.js';

test('destroyed is terminal and every state can reach destroyed or stopped', () => {
  for (const s of VM_STATES) assert.equal(canTransition('destroyed', s), false);
  const reach = (from: string, seen = new Set<string>()): Set<string> => {
    seen.add(from);
    for (const s of VM_STATES) if (canTransition(from as never, s) && !seen.has(s)) reach(s, seen);
    return seen;
  };
  for (const s of VM_STATES.filter((s) => s !== 'destroyed')) assert.ok(reach(s).has('destroyed'), `${s} can reach destroyed`);
});

test('actions outside their states are refused with a message naming the state', () => {
  for (const [action, allowed] of Object.entries(ACTION_FROM)) {
    for (const s of VM_STATES) {
      const ok = allowed.includes(s);
      const done = (ACTIONS[action as VmAction].done as readonly string[]).includes(s);
      if (ok) assert.equal(checkAction('v', s, action as VmAction), 'run');
      else if (done) assert.equal(checkAction('v', s, action as VmAction), 'done', `${action} in ${s} is already done`);
      else assert.throws(() => checkAction('v', s, action as VmAction), (e: unknown) => isHangarError(e, 'VM_INVALID_STATE') && e.message.includes(`state ${s}`));
    }
  }
});
