import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isHangarError } from '../../src/errors.js';
import { DEFAULT_PROXY_PORT, normaliseNetConfig, type NetConfigInput } from '../../src/net/config.js';
import { DEFAULT_POLICY } from '../../src/net/egress/policy.js';

const base: NetConfigInput = { mode: 'netns', netns: 'hangar-vms', bridge: 'hgbr0', cidr: '10.77.0.0/24' };

function rejects(input: NetConfigInput, field: string | RegExp): void {
  assert.throws(() => normaliseNetConfig(input), (e: unknown) => {
    assert.ok(isHangarError(e, 'NET_INVALID_CONFIG'), String(e));
    if (typeof field === 'string') assert.equal(e.details.field, field);
    else assert.match(e.message, field);
    return true;
  });
}

test('netns mode: defaults filled in (gateway = first host, link-local host link, tap prefix)', () => {
  const c = normaliseNetConfig(base);
  assert.deepEqual(c, {
    mode: 'netns', netns: 'hangar-vms', bridge: 'hgbr0', cidr: '10.77.0.0/24', network: '10.77.0.0', prefix: 24,
    netmask: '255.255.255.0', broadcast: '10.77.0.255', gateway: '10.77.0.1', reserved: [], nat: false, tapPrefix: 'hgtap',
    hostLink: { cidr: '169.254.77.0/30', prefix: 30, hostIfname: 'hgveth-h', nsIfname: 'hgveth-n', hostAddress: '169.254.77.1', nsAddress: '169.254.77.2' },
    egress: { uplink: null, resolvers: [], default: DEFAULT_POLICY, proxyPort: DEFAULT_PROXY_PORT },
  });
});

test('egress: uplink, resolvers and the default policy are checked with the field named', () => {
  const c = normaliseNetConfig({ ...base, egress: { uplink: 'eth1', resolvers: ['192.0.2.53'], default: { egress: { mode: 'allowlist', allow: ['*.example.com'] } } } });
  assert.equal(c.egress.uplink, 'eth1');
  assert.equal(c.egress.default.egress.mode, 'allowlist');
  assert.deepEqual(c.egress.default.egress.allow, ['*.example.com']);
  rejects({ ...base, egress: { uplink: 'bad/name' } }, 'egress.uplink');
  rejects({ ...base, egress: { resolvers: ['dns.example'] } }, 'egress.resolvers');
  rejects({ ...base, egress: { default: { egress: { mode: 'everything' as never } } } }, 'egress.default');
  rejects({ ...base, egress: { proxyPort: 70000 } }, 'egress.proxyPort');
});

test('bridge mode keeps no namespace fields; reserved are de-duplicated and sorted', () => {
  const c = normaliseNetConfig({ mode: 'bridge', bridge: 'hgbr0', cidr: '10.77.0.0/24', gateway: '10.77.0.254', reserved: ['10.77.0.9', '10.77.0.3', '10.77.0.9'] });
  assert.equal(c.netns, undefined);
  assert.equal(c.hostLink, undefined);
  assert.equal(c.gateway, '10.77.0.254');
  assert.deepEqual(c.reserved, ['10.77.0.3', '10.77.0.9']);
});

test('bad CIDR, gateway, reserved and names are refused with the field named', () => {
  rejects({ ...base, cidr: '10.77.0.1/24' }, 'cidr');
  rejects({ ...base, cidr: '10.77.0.0/31' }, 'cidr');
  rejects({ ...base, cidr: 'fe80::/64' }, 'cidr');
  rejects({ ...base, gateway: '10.78.0.1' }, 'gateway');
  rejects({ ...base, gateway: '10.77.0.0' }, 'gateway');
  rejects({ ...base, gateway: '10.77.0.255' }, 'gateway');
  rejects({ ...base, gateway: 'gw' }, 'gateway');
  rejects({ ...base, reserved: ['10.77.1.5'] }, 'reserved[0]');
  rejects({ ...base, bridge: 'a-bridge-name-too-long' }, 'bridge');
  rejects({ ...base, bridge: 'br/0' }, 'bridge');
  rejects({ ...base, netns: undefined }, 'netns');
  rejects({ ...base, netns: '../etc' }, 'netns');
  rejects({ ...base, hostNetns: 'hangar-vms' }, 'netns');
  rejects({ ...base, tapPrefix: 'muchtoolong' }, 'tapPrefix');
  rejects({ ...base, hostLink: { cidr: '10.77.0.0/30' } }, /overlaps/);
  rejects({ ...base, hostLink: { cidr: '169.254.1.0/31' } }, 'hostLink.cidr');
  rejects({ mode: 'bridge', bridge: 'hgbr0', cidr: '10.77.0.0/24', netns: 'x' }, 'netns');
  rejects({ ...base, mode: 'nat' as 'bridge' }, 'mode');
});

test('NAT is refused: not implemented, never on', () => {
  rejects({ ...base, nat: true }, 'nat');
  assert.equal(normaliseNetConfig({ ...base, nat: false }).nat, false);
});
