// Where netd listens, and the command that starts it: the host's namespace (bridge mode) gets netd on the
// gateway address only (beside the host's own DNS), Hangar's VM namespace on any address.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normaliseNetConfig } from '../../../src/net/config.js';
import { netdListenHost } from '../../../src/net/netd/client.js';
import { netdCommand } from '../../../src/net/netd/relay.js';

test('bridge mode: netd listens on the gateway; netns mode: on any address of its own namespace', () => {
  const bridge = normaliseNetConfig({ mode: 'bridge', bridge: 'hgbr0', cidr: '10.242.0.0/24' });
  assert.equal(netdListenHost(bridge), '10.242.0.1');
  const netns = normaliseNetConfig({ mode: 'netns', bridge: 'hgbr0', cidr: '10.242.0.0/24', netns: 'hangar' });
  assert.equal(netdListenHost(netns), '0.0.0.0');
});

test('the relay socket is bound where netd listens; the root namespace runs it without ip netns exec', () => {
  const root = netdCommand(undefined, '/usr/bin/node', '/x/main.js', '{}', 15001, '10.242.0.1');
  assert.equal(root[0], 'perl');
  assert.match(root[2]!, /pack_sockaddr_in\(15001, inet_aton\("10\.242\.0\.1"\)\)/);
  const ns = netdCommand('hangar', '/usr/bin/node', '/x/main.js', '{}', 15001);
  assert.deepEqual(ns.slice(0, 4), ['ip', 'netns', 'exec', 'hangar']);
  assert.match(ns[6]!, /inet_aton\("0\.0\.0\.0"\)/);
  assert.throws(() => netdCommand(undefined, 'n', 's', '{}', 1, '1.2.3.4"; system("x'), /not an IPv4 address/);
});
