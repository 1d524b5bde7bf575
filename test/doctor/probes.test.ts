// The probes' parsers on real tool output (iproute2 6.1, iputils, iptables-nft 1.8.9, debugfs 1.47 on Debian 12).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classifyDialError, parseDebugfs, parseIpAddr, parseIptablesChain, parsePing } from '../../src/doctor/probes.js';
import { lsNames, statType } from '../../src/doctor/judges.js';

// `ip -n NS -d -j addr show`, trimmed to the fields the probe reads (captured from a test namespace with one VM).
const IP_ADDR = JSON.stringify([
  { ifindex: 1, ifname: 'lo', flags: ['LOOPBACK', 'UP', 'LOWER_UP'], operstate: 'UNKNOWN', address: '00:00:00:00:00:00', addr_info: [{ family: 'inet', local: '127.0.0.1', prefixlen: 8 }] },
  { ifindex: 2, ifname: 'hgbr0', flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'], operstate: 'UP', address: '22:7b:8c:5e:13:bb', linkinfo: { info_kind: 'bridge', info_data: { stp_state: 0, nf_call_iptables: 0 } }, addr_info: [{ family: 'inet', local: '10.213.0.1', prefixlen: 24 }, { family: 'inet6', local: 'fe80::1', prefixlen: 64 }] },
  { ifindex: 4, ifname: 'hgtap0', flags: ['BROADCAST', 'MULTICAST'], master: 'hgbr0', operstate: 'DOWN', address: '22:7b:8c:5e:13:bb', linkinfo: { info_kind: 'tun', info_slave_kind: 'bridge' } },
]);

test('ip -d -j addr show: flags, master, kind, IPv4 addresses and the bridge\'s nf_call_iptables', () => {
  const links = parseIpAddr(IP_ADDR);
  assert.deepEqual(links.map((l) => l.ifname), ['lo', 'hgbr0', 'hgtap0']);
  assert.deepEqual(links[1], { ifname: 'hgbr0', flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'], operstate: 'UP', kind: 'bridge', address: '22:7b:8c:5e:13:bb', addrs: ['10.213.0.1/24'], nfCallIptables: false });
  assert.equal(links[2]!.master, 'hgbr0');
  assert.equal(links[2]!.kind, 'tun');
  assert.deepEqual(parseIpAddr(''), []);
});

test('ping: a reply, silence, an unreachable network', () => {
  assert.equal(parsePing(0, 'PING 10.213.0.2 (10.213.0.2) 56(84) bytes of data.\n64 bytes from 10.213.0.2: icmp_seq=1 ttl=64 time=7.50 ms\n', '').outcome, 'reply');
  const lost = parsePing(1, 'PING 10.213.0.2 (10.213.0.2) 56(84) bytes of data.\n\n--- 10.213.0.2 ping statistics ---\n1 packets transmitted, 0 received, 100% packet loss, time 0ms\n', '');
  assert.deepEqual(lost, { outcome: 'no-reply', detail: '1 packets transmitted, 0 received, 100% packet loss, time 0ms' });
  assert.equal(parsePing(2, '', 'ping: connect: Network is unreachable\n').outcome, 'unreachable');
  assert.equal(parsePing(1, 'From 169.254.77.2 icmp_seq=1 Destination Host Unreachable\n1 packets transmitted, 0 received, +1 errors', '').outcome, 'unreachable');
});

test('dial errors: refused, unreachable, timeout, closed (direct and relay wording)', () => {
  assert.equal(classifyDialError('10.213.0.2:5900 from hgt-host-x: error connect ECONNREFUSED 10.213.0.2:5900'), 'refused');
  assert.equal(classifyDialError('10.213.0.2:5900: connect EHOSTUNREACH 10.213.0.2:5900'), 'unreachable');
  assert.equal(classifyDialError('10.213.0.2:5900 from hgt-host-x: no connection within 2000 ms'), 'timeout');
  assert.equal(classifyDialError('10.213.0.2:5900 did not answer within 2000 ms'), 'timeout');
  assert.equal(classifyDialError('10.213.0.2:5900 closed without a banner'), 'closed');
});

test('iptables -S FORWARD: policy and rules', () => {
  assert.deepEqual(parseIptablesChain('-P FORWARD DROP\n-A FORWARD -d 10.213.0.0/24 -j ACCEPT\n', 'FORWARD'), { policy: 'DROP', rules: ['-A FORWARD -d 10.213.0.0/24 -j ACCEPT'] });
  assert.deepEqual(parseIptablesChain('', 'FORWARD'), { policy: null, rules: [] });
});

test('debugfs -f: output split per request, errors kept with their path', () => {
  const d = parseDebugfs(
    'debugfs 1.47.0 (5-Feb-2023)\ndebugfs: stat /sbin/hangar-init\nInode: 2418   Type: regular    Mode:  0755   Flags: 0x80000\ndebugfs: ls -p /etc/hangar/init.d\n/192/040755/0/0/./4096/\n/191/040755/0/0/../4096/\n/200/100644/0/0/10-agent.sh/120/\ndebugfs: ls -p /etc/netplan\n',
    'debugfs 1.47.0 (5-Feb-2023)\n/etc/netplan: File not found by ext2_lookup \n',
  );
  assert.deepEqual(statType(d.out.get('stat /sbin/hangar-init')), { type: 'regular', mode: 0o755 });
  assert.deepEqual(lsNames(d.out.get('ls -p /etc/hangar/init.d')), ['10-agent.sh']);
  assert.deepEqual(lsNames(d.out.get('ls -p /etc/netplan')), []);
  assert.deepEqual(d.errors, ['/etc/netplan: File not found by ext2_lookup']);
});
