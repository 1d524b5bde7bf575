// The nft planner: what each VM's chain says, in which order, and that every script is one idempotent transaction.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { baseScript, dnsAddScript, vmRemoveScript, vmScript, type EgressEnv } from '../../../src/net/egress/plan.js';
import { normalisePolicy } from '../../../src/net/egress/policy.js';

const env: EgressEnv = {
  bridge: 'hgbr0', tapPrefix: 'hgtap', cidr: '10.242.0.0/24', hostLink: { nsIfname: 'hgveth-n', cidr: '169.254.77.0/30' },
  extraBlocked: ['169.254.128.0/17'], uplink: 'eth1', proxyPort: 15001,
};
const rules = (script: string, chain: string): string[] => script.split('\n').filter((l) => l.startsWith(`add rule inet hangar ${chain} `)).map((l) => l.slice(`add rule inet hangar ${chain} `.length));

test('base: the host link opens connections to VMs, VM traffic goes to its own chain, the rest from or to a VM is dropped', () => {
  const s = baseScript(env);
  const fwd = rules(s, 'forward');
  const i = (r: string): number => fwd.findIndex((x) => x === r);
  assert.ok(i('ct state established,related accept') >= 0);
  assert.ok(i('iifname "hgveth-n" ip daddr 10.242.0.0/24 accept') > i('ct state established,related accept'));
  assert.ok(i('iifname "hgbr0" ip saddr vmap @from_vm') > i('iifname "hgveth-n" ip daddr 10.242.0.0/24 accept'));
  assert.ok(i('iifname "hgbr0" counter name denied_unknown drop') > i('iifname "hgbr0" ip saddr vmap @from_vm'));
  assert.ok(i('oifname "hgbr0" counter name denied_inbound drop') > 0);
  assert.ok(i('iifname "hgtap*" ip saddr vmap @from_vm') > 0, 'clone veths too');
  const inp = rules(s, 'input');
  assert.ok(inp.includes('iifname "hgbr0" meta l4proto { tcp, udp } th dport 53 accept'));
  assert.ok(inp.includes('iifname "hgbr0" counter name denied_input drop'));
  assert.ok(inp.includes('iifname "eth1" counter name denied_input drop'));
  assert.deepEqual(rules(s, 'postrouting'), ['oifname "eth1" ip saddr 10.242.0.0/24 masquerade']);
  const blocked = /add element inet hangar blocked \{ (.*) \}/.exec(s)![1]!.split(', ');
  for (const c of ['10.0.0.0/8', '169.254.0.0/16', '192.168.0.0/16', '172.16.0.0/12', '224.0.0.0/4', '10.242.0.0/24', '169.254.77.0/30', '169.254.128.0/17']) assert.ok(blocked.includes(c), c);
  assert.equal(rules(baseScript({ ...env, uplink: null }), 'postrouting').length, 0, 'no uplink: no NAT');
});

test('a VM chain: limit, deny, allow CIDRs, group, blocked ranges, then its mode', () => {
  const p = normalisePolicy({ egress: { mode: 'allowlist', allow: ['allowed.test', '192.168.5.0/24'], deny: ['203.0.113.66'] }, group: 'g1', limits: { connections: 50 } });
  const s = vmScript(env, { ip: '10.242.0.3', policy: p, flushDns: true });
  assert.deepEqual(rules(s, 'vm_10_242_0_3'), [
    'ct state new add @conns_10_242_0_3 { ip saddr ct count over 50 } counter name denied_10_242_0_3 drop',
    'ip daddr @deny_10_242_0_3 counter name denied_10_242_0_3 drop',
    'ip daddr @allow_10_242_0_3 accept',
    'ip daddr @grp_g1 ip daddr != 10.242.0.3 accept',
    'ip daddr @blocked counter name denied_10_242_0_3 drop',
    'ip daddr @dns_10_242_0_3 accept',
    'counter name denied_10_242_0_3 drop',
  ]);
  assert.ok(s.includes('add element inet hangar allow_10_242_0_3 { 192.168.5.0/24 }'), 'an allow CIDR may name a private range');
  assert.ok(s.includes('flush set inet hangar dns_10_242_0_3'));
  assert.ok(s.includes('add element inet hangar from_vm { 10.242.0.3 : jump vm_10_242_0_3 }'));
  assert.ok(!vmScript(env, { ip: '10.242.0.3', policy: p, flushDns: false }).includes('flush set inet hangar dns_'));
  const none = rules(vmScript(env, { ip: '10.242.0.4', policy: normalisePolicy({}), flushDns: true }), 'vm_10_242_0_4');
  assert.deepEqual(none, ['ip daddr @blocked counter name denied_10_242_0_4 drop', 'counter name denied_10_242_0_4 drop'], 'none: nothing accepted');
  const net = rules(vmScript(env, { ip: '10.242.0.5', policy: normalisePolicy({ egress: { mode: 'internet' } }), flushDns: true }), 'vm_10_242_0_5');
  assert.deepEqual(net, ['ip daddr @blocked counter name denied_10_242_0_5 drop', 'accept']);
});

test('a proxied VM: its allowed TCP is redirected to the relay, the rest returns to the filter; no proxy, no chain', () => {
  const p = normalisePolicy({ egress: { mode: 'internet', deny: ['203.0.113.66'], proxy: 'http://u:p@203.0.113.20:3128' } });
  const s = vmScript(env, { ip: '10.242.0.3', policy: p, flushDns: true });
  assert.deepEqual(rules(s, 'px_10_242_0_3'), [
    'ip daddr @deny_10_242_0_3 return',
    'ip daddr @blocked return',
    'meta l4proto tcp tproxy ip to :15001 meta mark set 18503 accept',
  ]);
  assert.ok(s.trimEnd().endsWith('add element inet hangar proxy_vm { 10.242.0.3 : jump px_10_242_0_3 }'));
  assert.ok(!s.includes('u:p'), 'the proxy\'s credentials are not in the ruleset');
  const plain = vmScript(env, { ip: '10.242.0.3', policy: normalisePolicy({ egress: { mode: 'internet' } }), flushDns: true });
  assert.equal(rules(plain, 'px_10_242_0_3').length, 0);
  assert.ok(plain.includes('delete chain inet hangar px_10_242_0_3'), 'a proxy removed at runtime takes its chain along');
});

test('a proxied VM forwards nothing itself (no UDP/QUIC, no ICMP, no unproxied TCP) but to its group\'s peers, which it reaches directly', () => {
  const proxy = 'http://u:p@203.0.113.20:3128';
  const f = rules(vmScript(env, { ip: '10.242.0.3', policy: normalisePolicy({ egress: { mode: 'internet', proxy } }), flushDns: true }), 'vm_10_242_0_3');
  assert.equal(f[0], 'counter name denied_10_242_0_3 drop', 'everything a proxied VM forwards is dropped first');
  const g = vmScript(env, { ip: '10.242.0.3', policy: normalisePolicy({ egress: { mode: 'internet', proxy }, group: 'g1' }), flushDns: true });
  assert.deepEqual(rules(g, 'vm_10_242_0_3').slice(0, 2), ['ip daddr @grp_g1 ip daddr != 10.242.0.3 accept', 'counter name denied_10_242_0_3 drop']);
  assert.equal(rules(g, 'px_10_242_0_3')[0], 'ip daddr @grp_g1 return', 'group peers are not sent through the proxy');
  const plain = rules(vmScript(env, { ip: '10.242.0.3', policy: normalisePolicy({ egress: { mode: 'internet' } }), flushDns: true }), 'vm_10_242_0_3');
  assert.deepEqual(plain, ['ip daddr @blocked counter name denied_10_242_0_3 drop', 'accept'], 'without a proxy, UDP goes out as the mode says');
  const noRelay = rules(vmScript({ ...env, proxyPort: null }, { ip: '10.242.0.3', policy: normalisePolicy({ egress: { mode: 'internet', proxy } }), flushDns: true }), 'vm_10_242_0_3');
  assert.equal(noRelay[0], 'counter name denied_10_242_0_3 drop', 'no relay: a proxied VM gets nothing rather than a way around its proxy');
});

test('a TAP\'s port chain drops and counts frames with another MAC or address; its removal takes the counter along', () => {
  const s = vmScript(env, { ip: '10.242.0.3', policy: normalisePolicy({}), flushDns: true, port: { kind: 'tap', ifname: 'hgtap3', mac: '02:00:00:00:00:03' } });
  const port = s.split('\n').filter((l) => l.startsWith('add rule bridge hangar port_10_242_0_3 ')).map((l) => l.slice('add rule bridge hangar port_10_242_0_3 '.length));
  assert.deepEqual(port, [
    'ether saddr != 02:00:00:00:00:03 counter name spoofed_10_242_0_3 drop',
    'ether type ip ip saddr != 10.242.0.3 counter name spoofed_10_242_0_3 drop',
    'ether type arp arp saddr ip != 10.242.0.3 counter name spoofed_10_242_0_3 drop',
    'ether type ip6 drop',
  ]);
  assert.ok(s.indexOf('add counter bridge hangar spoofed_10_242_0_3') < s.indexOf('add rule bridge hangar port_10_242_0_3'), 'the counter exists before a rule names it');
  const r = vmRemoveScript('10.242.0.3', null, 'hgtap3');
  assert.ok(r.indexOf('delete chain bridge hangar port_10_242_0_3') < r.indexOf('delete counter bridge hangar spoofed_10_242_0_3'));
});

test('bridge mode (the host\'s namespace): the uplink\'s input is left alone, netd\'s ports answer VM interfaces only, the relay is on the gateway', () => {
  const host: EgressEnv = { ...env, gateway: '10.242.0.1', cloneLinkCidr: '169.254.128.0/17', hostNamespace: true };
  const s = baseScript(host);
  const inp = rules(s, 'input');
  assert.ok(!inp.some((r) => r.startsWith('iifname "eth1"')), 'the host\'s own services on its uplink are not Hangar\'s to drop');
  assert.ok(inp.includes('iifname != "lo" ip daddr 10.242.0.1 meta l4proto { tcp, udp } th dport { 53, 15001 } counter name denied_input drop'));
  assert.ok(inp.indexOf('iifname "hgbr0" meta l4proto { tcp, udp } th dport 53 accept') < inp.findIndex((r) => r.startsWith('iifname != "lo"')), 'VMs first');
  assert.deepEqual(rules(s, 'postrouting'), ['oifname "eth1" ip saddr 10.242.0.0/24 masquerade'], 'NAT still');
  assert.deepEqual(rules(s, 'natpre'), ['iifname "hgtap*" ip daddr 169.254.128.0/17 meta l4proto { tcp, udp } th dport 53 dnat ip to 10.242.0.1'], 'a clone\'s DNS goes to the gateway');
  const p = normalisePolicy({ egress: { mode: 'internet', proxy: 'http://u:p@203.0.113.20:3128' } });
  assert.ok(rules(vmScript(host, { ip: '10.242.0.3', policy: p, flushDns: true }), 'px_10_242_0_3').includes('meta l4proto tcp tproxy ip to 10.242.0.1:15001 meta mark set 18503 accept'));
  const ns = baseScript({ ...host, hostNamespace: false });
  assert.ok(rules(ns, 'input').includes('iifname "eth1" counter name denied_input drop'), 'netns mode: Hangar\'s own namespace, the uplink takes replies only');
  assert.ok(!rules(ns, 'input').some((r) => r.startsWith('iifname != "lo"')));
  assert.ok(!ns.includes('natpre'), 'netns mode: netd listens on the link addresses itself, no NAT chain');
});

test('removal and DNS additions are idempotent transactions', () => {
  const r = vmRemoveScript('10.242.0.3', 'g1');
  for (const obj of ['chain inet hangar vm_10_242_0_3', 'set inet hangar dns_10_242_0_3', 'counter inet hangar denied_10_242_0_3']) {
    assert.ok(r.indexOf(`add ${obj}`) >= 0 && r.indexOf(`add ${obj}`) < r.indexOf(`delete ${obj}`), obj);
  }
  assert.ok(r.includes('delete element inet hangar grp_g1 { 10.242.0.3 }'));
  const d = dnsAddScript('10.242.0.3', [{ ip: '203.0.113.11', ttlS: 60 }, { ip: 'nonsense', ttlS: 5 }, { ip: '203.0.113.12', ttlS: 0 }]);
  assert.ok(d.includes('add element inet hangar dns_10_242_0_3 { 203.0.113.11 timeout 60s, 203.0.113.12 timeout 1s }'));
  assert.equal(dnsAddScript('10.242.0.3', []), '');
});
