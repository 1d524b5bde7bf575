import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isHangarError } from '../../src/errors.js';
import { normaliseNetConfig } from '../../src/net/config.js';
import { allocationOf, macForIp, maxTapIndex, planVmNetwork, poolCapacity, type NetAllocation } from '../../src/net/plan.js';

const cfg = normaliseNetConfig({ mode: 'netns', netns: 'hangar-vms', bridge: 'hgbr0', cidr: '10.77.0.0/22', reserved: ['10.77.0.2', '10.77.1.0'] });

function fill(n: number, c = cfg): NetAllocation[] {
  const allocs: NetAllocation[] = [];
  for (let i = 0; i < n; i++) allocs.push(allocationOf(planVmNetwork(c, allocs, `vm-${i}`)));
  return allocs;
}

test('first plan: gateway and reserved skipped, ip= pieces, namespace', () => {
  const p = planVmNetwork(cfg, [], 'a-very-long-user-chosen-vm-name-that-would-never-fit-in-ifnamsiz');
  assert.equal(p.ip, '10.77.0.3');
  assert.equal(p.tap, 'hgtap0');
  assert.equal(p.mac, '02:48:0a:4d:00:03');
  assert.equal(p.netns, 'hangar-vms');
  assert.deepEqual(p.bootIp, { address: '10.77.0.3', gateway: '10.77.0.1', netmask: '255.255.252.0' });
});

test('TAP, MAC and IP stay unique over a whole pool; TAP names fit in 15 characters', () => {
  const allocs = fill(poolCapacity(cfg));
  assert.equal(allocs.length, 1019); // 1022 hosts - gateway - two reserved
  for (const key of ['tap', 'mac', 'ip', 'index'] as const) assert.equal(new Set(allocs.map((a) => a[key])).size, allocs.length, key);
  for (const a of allocs) {
    assert.ok(a.tap.length <= 15, a.tap);
    assert.ok(!['10.77.0.0', '10.77.0.1', '10.77.0.2', '10.77.1.0', '10.77.3.255'].includes(a.ip), a.ip);
    const first = parseInt(a.mac.slice(0, 2), 16);
    assert.equal(first & 1, 0, 'unicast');
    assert.equal(first & 2, 2, 'locally administered');
  }
});

test('freed slots are reused (lowest first); an existing vm is a conflict', () => {
  const allocs = fill(5).filter((a) => a.vmId !== 'vm-1');
  const p = planVmNetwork(cfg, allocs, 'new');
  assert.equal(p.index, 1);
  assert.equal(p.ip, '10.77.0.4');
  assert.throws(() => planVmNetwork(cfg, allocs, 'vm-2'), (e: unknown) => isHangarError(e, 'CONFLICT'));
});

test('pool exhaustion is NET_POOL_EXHAUSTED with the numbers', () => {
  const small = normaliseNetConfig({ mode: 'bridge', bridge: 'hgbr0', cidr: '10.9.0.0/29', reserved: ['10.9.0.6'] });
  assert.equal(poolCapacity(small), 4); // .2 .3 .4 .5
  const allocs = fill(4, small);
  assert.deepEqual(allocs.map((a) => a.ip), ['10.9.0.2', '10.9.0.3', '10.9.0.4', '10.9.0.5']);
  assert.throws(() => planVmNetwork(small, allocs, 'one-too-many'), (e: unknown) => {
    assert.ok(isHangarError(e, 'NET_POOL_EXHAUSTED'));
    assert.equal(e.details.allocated, 4);
    assert.equal(e.details.capacity, 4);
    return true;
  });
});

test('TAP index space is bounded by the 15-character limit', () => {
  const long = normaliseNetConfig({ mode: 'bridge', bridge: 'hgbr0', cidr: '10.0.0.0/8', tapPrefix: 'hgtapxyz' });
  assert.equal(maxTapIndex(long), 9_999_999);
  const taken: NetAllocation[] = [{ vmId: 'x', index: 9_999_999, tap: 'hgtapxyz9999999', mac: macForIp('10.0.0.2'), ip: '10.0.0.2' }];
  assert.equal(planVmNetwork(long, taken, 'y').tap, 'hgtapxyz0');
});

test('an allocation from elsewhere holding a MAC blocks the matching IP too', () => {
  const allocs: NetAllocation[] = [{ vmId: 'old', index: 7, tap: 'hgtap7', mac: macForIp('10.77.0.3'), ip: '10.77.0.200' }];
  assert.equal(planVmNetwork(cfg, allocs, 'n').ip, '10.77.0.4');
});
