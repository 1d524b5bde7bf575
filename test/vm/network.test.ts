// The VM network port's pure parts (src/vm/network.ts): pool and clone plans, and what the VMM is given.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normaliseNetConfig } from '../../src/net/config.js';
import { guestIdentity, netAllocations, planCloneNet, planPoolNet, vmmNic } from '../../src/vm/network.js';

const cfg = normaliseNetConfig({ mode: 'netns', netns: 'hgt-n', bridge: 'hgbr9', cidr: '10.219.0.0/28', hostNetns: 'hgt-n-host' });

test('a pool plan takes the next free address, MAC and TAP, and records all three', () => {
  const first = planPoolNet(cfg, 'vm-a')([]);
  assert.equal(first.net.ip, '10.219.0.2');
  assert.deepEqual(first.allocations.map((a) => a.kind), ['ip', 'mac', 'tap']);
  const taken = first.allocations.map((a) => ({ ...a, vmId: 'vm-a' }));
  assert.equal(netAllocations(taken)[0]?.index, 0);
  const second = planPoolNet(cfg, 'vm-b')(taken);
  assert.notEqual(second.net.ip, first.net.ip);
  assert.notEqual(second.net.tap, first.net.tap);
  assert.deepEqual(vmmNic(cfg, first.net), { nic: { tap: first.net.tap, mac: first.net.mac }, netns: 'hgt-n' });
});

test('a clone keeps its snapshot\'s guest identity inside its own namespace, behind its own pool address', () => {
  const src = planPoolNet(cfg, 'vm-src')([]).net;
  const guest = guestIdentity(src, '02:00:00:00:00:01');
  const taken = planPoolNet(cfg, 'vm-src')([]).allocations.map((a) => ({ ...a, vmId: 'vm-src' }));
  const c = planCloneNet(cfg, 'vm-c', guest)(taken);
  assert.notEqual(c.net.ip, src.ip, 'the host reaches it at its own address');
  assert.equal(c.net.mac, src.mac, 'the guest keeps its MAC');
  assert.equal(c.net.bootIp.address, src.ip, 'and its address, inside its namespace');
  const nic = vmmNic(cfg, c.net);
  assert.equal(nic.netns, c.net.clone!.netns);
  assert.deepEqual(nic.nic, { tap: guest.tap, mac: guest.mac });
  assert.deepEqual(guestIdentity(c.net, null), c.net.clone!.guest, 'a clone of a clone recreates the same guest');
});
