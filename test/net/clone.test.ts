// The clone network planner (pure): names, per-clone /30s, the two address rewrites, and what it refuses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isHangarError } from '../../src/errors.js';
import { cloneLink, cloneNatRules, cloneNetnsName, planCloneNetwork, type GuestNetIdentity } from '../../src/net/clone.js';
import { normaliseNetConfig } from '../../src/net/config.js';

const netns = normaliseNetConfig({ mode: 'netns', netns: 'hangar', bridge: 'hgbr0', cidr: '10.242.0.0/24', hostNetns: 'hangar-host' });
const bridge = normaliseNetConfig({ mode: 'bridge', bridge: 'hgbr0', cidr: '10.242.0.0/24', hostNetns: 'hgt-host-1' });
const guest: GuestNetIdentity = { ip: '10.242.0.2', mac: '02:48:0A:F2:00:02', tap: 'hgtap0', gateway: '10.242.0.1', netmask: '255.255.255.0', prefix: 24, gatewayMac: '0E:11:22:33:44:55' };

test('a clone lives in its own namespace beside the VM side, reached at its pool address', () => {
  const p = planCloneNetwork(netns, { index: 3, ip: '10.242.0.5', tap: 'hgtap3' }, guest);
  assert.equal(p.netns, 'hangar-c3');
  assert.equal(p.vmSideNetns, 'hangar', 'the VM namespace holds the veth end and the /32 route');
  assert.equal(p.hostIfname, 'hgtap3', 'the veth end carries the allocation name');
  assert.deepEqual(p.link, { cidr: '169.254.128.12/30', prefix: 30, hostAddress: '169.254.128.13', cloneAddress: '169.254.128.14' });
  assert.equal(p.address, '10.242.0.5');
  assert.equal(p.guest.mac, '02:48:0a:f2:00:02');
  assert.equal(p.guest.gatewayMac, '0e:11:22:33:44:55');
  const b = planCloneNetwork(bridge, { index: 0, ip: '10.242.0.9', tap: 'hgtap0' }, guest);
  assert.equal(b.netns, 'hgt-host-1-c0');
  assert.equal(b.vmSideNetns, 'hgt-host-1');
  assert.equal(cloneNetnsName(netns, 12), 'hangar-c12');
});

test('the rewrites exist only between the clone address and the guest address, on the clone side of the veth; the guest\'s DNS goes on to the VM side', () => {
  const p = planCloneNetwork(netns, { index: 1, ip: '10.242.0.7', tap: 'hgtap1' }, guest);
  const link = p.link.hostAddress;
  assert.deepEqual(cloneNatRules(p), [
    ['PREROUTING', '-i', guest.tap, '-d', `${guest.gateway}/32`, '-p', 'udp', '--dport', '53', '-j', 'DNAT', '--to-destination', link],
    ['PREROUTING', '-i', guest.tap, '-d', `${guest.gateway}/32`, '-p', 'tcp', '--dport', '53', '-j', 'DNAT', '--to-destination', link],
    ['PREROUTING', '-i', 'hgclone0', '-d', '10.242.0.7/32', '-j', 'DNAT', '--to-destination', '10.242.0.2'],
    ['POSTROUTING', '-o', 'hgclone0', '-s', '10.242.0.2/32', '-j', 'SNAT', '--to-source', '10.242.0.7'],
  ]);
});

test('refused: link pools that overlap the VM subnet, the host link or the guest subnet; a full link pool; bad identities', () => {
  const bad = (f: () => unknown, code = 'NET_INVALID_CONFIG'): void => assert.throws(f, (e: unknown) => isHangarError(e) && e.code === code);
  const a = { index: 0, ip: '10.242.0.5', tap: 'hgtap0' };
  bad(() => planCloneNetwork(netns, a, guest, '10.242.0.0/16'));
  bad(() => planCloneNetwork(netns, a, guest, '169.254.77.0/24'));
  bad(() => planCloneNetwork(netns, a, { ...guest, ip: '169.254.200.2', gateway: '169.254.200.1' }));
  bad(() => cloneLink('169.254.128.0/30', 1), 'NET_POOL_EXHAUSTED');
  assert.deepEqual(cloneLink('169.254.128.0/30', 0).hostAddress, '169.254.128.1');
  bad(() => planCloneNetwork(netns, a, { ...guest, tap: 'x;rm -rf' }));
  bad(() => planCloneNetwork(netns, a, { ...guest, mac: 'zz' }));
  bad(() => planCloneNetwork(netns, a, { ...guest, gateway: '10.242.0.300' }));
  bad(() => planCloneNetwork(netns, { ...a, tap: 'a-very-long-interface-name' }, guest));
});
