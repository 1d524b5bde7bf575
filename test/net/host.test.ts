// The host network's pure parts: the bridge's fixed MAC (a bridge without one takes its lowest port's and
// changes it whenever a TAP comes or goes, so guests and snapshots would keep a gateway MAC nobody answers).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bridgeMac } from '../../src/net/host.js';

test('the bridge MAC is locally administered unicast, from the gateway address, stable', () => {
  assert.equal(bridgeMac('10.242.0.1'), '02:68:67:f2:00:01');
  assert.equal(bridgeMac('10.242.0.1'), bridgeMac('10.242.0.1'));
  assert.notEqual(bridgeMac('10.213.0.1'), bridgeMac('10.242.0.1'));
  const first = parseInt(bridgeMac('192.168.7.254').split(':')[0]!, 16);
  assert.equal(first & 0b11, 0b10, 'locally administered, not multicast');
});
