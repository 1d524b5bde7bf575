// The egress judge on synthetic facts: each cause named from its evidence, nothing on a healthy VM or a VM
// without egress.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { judgeEgress, type EgressFacts } from '../../src/doctor/egress.js';
import { normalisePolicy } from '../../src/net/egress/policy.js';

const healthy: EgressFacts = {
  vm: { id: 'vm-1', ip: '10.242.0.2', policy: normalisePolicy({ egress: { mode: 'allowlist', allow: ['allowed.test'] } }) },
  uplink: { name: 'eth1', exists: true, up: true, defaultRoute: true }, nat: true,
  netd: { resolvers: ['192.0.2.53'], upstreamFailures: 0, forwarded: 10 }, refusedNames: [], deniedPackets: 0, proxyFailure: null,
};
const codes = (x: EgressFacts): string[] => judgeEgress(x).findings.map((f) => f.code);

test('healthy, or egress none: no findings', () => {
  assert.deepEqual(codes(healthy), []);
  assert.deepEqual(codes({ ...healthy, vm: { ...healthy.vm, policy: normalisePolicy({}) }, uplink: { name: null, exists: false, up: false, defaultRoute: false } }), []);
});

test('no uplink, a down uplink, no NAT, netd down, dead resolvers', () => {
  assert.deepEqual(codes({ ...healthy, uplink: { name: null, exists: false, up: false, defaultRoute: false } }), ['DOC_EGRESS_NO_UPLINK']);
  assert.match(judgeEgress({ ...healthy, uplink: { ...healthy.uplink, up: false } }).findings[0]!.message, /eth1 is down/);
  const noFwd = judgeEgress({ ...healthy, notForwarding: ['net/ipv4/conf/hgbr0/forwarding'] }).findings;
  assert.deepEqual(noFwd.map((x) => x.code), ['DOC_EGRESS_NO_UPLINK'], 'forwarding off (bridge mode on a host that does not route)');
  assert.match(noFwd[0]!.message, /net\.ipv4\.conf\.hgbr0\.forwarding = 0/);
  assert.deepEqual(codes({ ...healthy, notForwarding: [] }), codes(healthy), 'forwarding on: nothing');
  assert.deepEqual(codes({ ...healthy, nat: false }), ['DOC_EGRESS_NO_NAT']);
  assert.deepEqual(codes({ ...healthy, netd: null }), ['DOC_EGRESS_NETD_DOWN']);
  assert.deepEqual(codes({ ...healthy, netd: { resolvers: ['192.0.2.53'], upstreamFailures: 3, forwarded: 0 } }), ['DOC_EGRESS_DNS_UPSTREAM']);
});

test('refused names, blocked destinations and a refusing proxy carry their evidence', () => {
  const x: EgressFacts = {
    ...healthy,
    vm: { ...healthy.vm, policy: normalisePolicy({ egress: { mode: 'internet', proxy: 'http://u:p@203.0.113.20:3128' } }) },
    refusedNames: [{ name: 'other.test', reason: 'denied', at: 't1' }], deniedPackets: 7,
    proxyFailure: { at: 't2', proxy: 'http://203.0.113.20:3128', error: 'proxy refused CONNECT 203.0.113.10:80: HTTP/1.1 407' },
  };
  const v = judgeEgress(x);
  assert.deepEqual(v.findings.map((f) => f.code), ['DOC_EGRESS_PROXY_REFUSED', 'DOC_EGRESS_DNS_REFUSED', 'DOC_EGRESS_BLOCKED']);
  assert.match(v.findings[0]!.message, /407/);
  assert.ok(v.findings[1]!.evidence.some((e) => e.text.includes('other.test')));
  assert.ok(!JSON.stringify(v).includes('u:p'), 'no credentials in the report');
});
