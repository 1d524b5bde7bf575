// A VM's network policy at runtime: the new policy over the current one, applied to a live network before it is
// recorded; a stopped VM only has its record changed; bad input changes nothing. FAKE network (records calls).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isHangarError } from '../../src/errors.js';
import { normalisePolicy } from '../../src/net/egress/policy.js';
import { Store } from '../../src/store/store.js';
import { changeNetworkPolicy, currentPolicy } from '../../src/vm/network-policy.js';
import { fakeNetwork } from '../support/fake-network.js';

function setup(): { store: Store; log: string[]; net: ReturnType<typeof fakeNetwork>; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-netpol-'));
  const store = new Store(join(dir, 'state.db'));
  const log: string[] = [];
  const net = fakeNetwork(log);
  return { store, log, net, done: () => { store.close(); rmSync(dir, { recursive: true, force: true }); } };
}

test('a running VM: the policy is applied to its network, then recorded (and kept across reads)', async () => {
  const { store, log, net, done } = setup();
  try {
    const created = store.createVm({ id: 'vm-1', name: 'a', state: 'creating', imageId: 'img', profile: 'desktop', vmm: 'qemu', vcpus: 1, memMiB: 512, ttlS: null, expiresAt: null, runDir: '/run/a', netPolicy: normalisePolicy({ egress: { mode: 'allowlist', allow: ['allowed.test'] } }) }, { maxVms: 8, plan: net.poolPlan('vm-1') });
    store.setState('vm-1', 'booting');
    store.setState('vm-1', 'ready');
    assert.equal(currentPolicy(created, net).egress.mode, 'allowlist');
    const after = await changeNetworkPolicy({ store, network: net }, store.getVm('vm-1')!, { egress: { mode: 'internet' } });
    assert.deepEqual(log, ['policy tap hgtap0 internet']);
    assert.equal(after.netPolicy?.egress.mode, 'internet');
    assert.deepEqual(after.netPolicy?.egress.allow, ['allowed.test'], 'fields not given are kept');
    assert.equal(store.getVm('vm-1')!.netPolicy?.egress.mode, 'internet');
    await assert.rejects(changeNetworkPolicy({ store, network: net }, store.getVm('vm-1')!, { egress: { allow: ['not a name!'] } }), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT'));
    assert.equal(store.getVm('vm-1')!.netPolicy?.egress.mode, 'internet', 'bad input changed nothing');
    assert.equal(log.length, 1);
  } finally { done(); }
});

test('a stopped VM has only its record changed; no policy of its own means the config default', async () => {
  const { store, log, net, done } = setup();
  try {
    store.createVm({ id: 'vm-2', name: 'b', state: 'creating', imageId: 'img', profile: 'desktop', vmm: 'qemu', vcpus: 1, memMiB: 512, ttlS: null, expiresAt: null, runDir: '/run/b' }, { maxVms: 8, plan: net.poolPlan('vm-2') });
    store.setState('vm-2', 'failed');
    assert.deepEqual(currentPolicy(store.getVm('vm-2')!, net), net.config.egress.default);
    const after = await changeNetworkPolicy({ store, network: net }, store.getVm('vm-2')!, { group: 'team' });
    assert.deepEqual(log, []);
    assert.equal(after.netPolicy?.group, 'team');
  } finally { done(); }
});
