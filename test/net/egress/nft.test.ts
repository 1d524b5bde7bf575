// The nft executor's pure parts: which interfaces bridge mode turns forwarding on for in the host's namespace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bridgeForwardingKeys } from '../../../src/net/egress/nft.js';

const egress = { uplink: 'eth0.100', resolvers: [], default: { egress: { mode: 'none' as const, allow: [], deny: [], proxy: null }, group: null, limits: { bandwidthMbit: null, connections: null } }, proxyPort: 15001 };

test('bridge mode forwards on the bridge and the uplink only, never the host-wide switch', () => {
  const keys = bridgeForwardingKeys({ bridge: 'hgbr0', egress });
  assert.deepEqual(keys, ['net/ipv4/conf/hgbr0/forwarding', 'net/ipv4/conf/eth0.100/forwarding'], 'slash form keeps a VLAN name whole');
  assert.ok(!keys.some((k) => k.includes('/all/') || k.includes('ip_forward')));
  assert.deepEqual(bridgeForwardingKeys({ bridge: 'hgbr0', egress: { ...egress, uplink: null } }), ['net/ipv4/conf/hgbr0/forwarding'], 'no uplink: the bridge only');
});
