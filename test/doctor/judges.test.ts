// The doctor's judges on synthetic facts: each rule fires on its evidence and stays quiet on a healthy picture.
import { test } from 'node:test';
import type { MachineSpec } from '../../src/vmm/types.js';
import assert from 'node:assert/strict';
import { normaliseNetConfig } from '../../src/net/config.js';
import { planVmNetwork } from '../../src/net/plan.js';
import type { VmRecord } from '../../src/store/store.js';
import {
  judgeAccel, judgeBootArgs, judgeBridge, judgeDuplicates, judgeFsck, judgeHostLink, judgeIcmp, judgeInit, judgeLeftovers, judgeNeighbour,
  judgeNetfilter, judgeNetOverrides, judgeRpFilter, judgeTap, judgeTun, judgeCgroups, judgeVmmDrivers, judgeVmState, judgeVnc, vmView,
} from '../../src/doctor/judges.js';
import { parseDebugfs, type LinkFact, type NeighFact } from '../../src/doctor/probes.js';

const cfg = normaliseNetConfig({ mode: 'netns', netns: 'hgt-vms-x', hostNetns: 'hgt-host-x', bridge: 'hgbr0', cidr: '10.213.0.0/24' });
const codes = (v: { findings: { code: string }[] }): string[] => v.findings.map((f) => f.code);

function vm(id: string, index: number, state: VmRecord['state'] = 'ready', specEdit: (s: MachineSpec) => MachineSpec = (s) => s): VmRecord {
  const taken = Array.from({ length: index }, (_, i) => ({ vmId: `o${i}`, index: i, tap: `hgtap${i}`, mac: `02:48:0a:d5:00:0${i + 2}`, ip: `10.213.0.${i + 2}` }));
  const plan = planVmNetwork(cfg, taken, id);
  const spec = specEdit({
    id, kernelPath: '/k', rootfsPath: `/run/${id}/rootfs.ext4`, vcpus: 1, memMiB: 512, runDir: `/run/${id}`, consoleLogPath: `/run/${id}/console.log`,
    bootArgs: `console=ttyS0 reboot=k panic=1 pci=off root=/dev/vda rw init=/sbin/hangar-init ip=${plan.ip}::${plan.gateway}:${plan.netmask}:${id}:eth0:off`,
    net: { tap: plan.tap, mac: plan.mac },
  });
  return {
    id, name: id, state, imageId: 'img', profile: 'desktop', vmm: 'qemu', vcpus: 1, memMiB: 512, ttlS: null,
    createdAt: '2026-01-01T00:00:00.000Z', updatedAt: '2026-01-01T00:00:00.000Z', expiresAt: null, pid: 100 + index, runDir: `/run/${id}`,
    spec, net: plan, bootMs: 1000, lastError: null, exit: null, snapshotId: null, hibernation: null,
  };
}

const link = (ifname: string, extra: Partial<LinkFact> = {}): LinkFact => ({ ifname, flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'], addrs: [], ...extra });
const bridge = link('hgbr0', { kind: 'bridge', addrs: ['10.213.0.1/24'] });
const tap0 = link('hgtap0', { kind: 'tun', master: 'hgbr0' });

test('bridge: healthy, missing, down, without its gateway address', () => {
  assert.deepEqual(codes(judgeBridge(cfg, [bridge, tap0])), []);
  assert.deepEqual(codes(judgeBridge(cfg, [tap0])), ['DOC_BRIDGE_MISSING']);
  assert.deepEqual(codes(judgeBridge(cfg, [{ ...bridge, flags: ['BROADCAST'] }])), ['DOC_BRIDGE_DOWN']);
  const noGw = judgeBridge(cfg, [{ ...bridge, addrs: [] }]);
  assert.deepEqual(codes(noGw), ['DOC_BRIDGE_NO_GATEWAY']);
  assert.match(noGw.findings[0]!.fix, /ip -n hgt-vms-x addr replace 10\.213\.0\.1\/24 dev hgbr0/);
  assert.equal(judgeBridge(cfg, null).skipped !== undefined, true);
});

test('TAP: down, no carrier, not on the bridge, missing; not judged when the VM does not run', () => {
  const v = vmView(vm('vm-a', 0));
  assert.deepEqual(codes(judgeTap(cfg, v, [bridge, tap0])), []);
  assert.deepEqual(codes(judgeTap(cfg, v, [bridge, { ...tap0, flags: ['BROADCAST', 'MULTICAST'] }])), ['DOC_TAP_DOWN']);
  assert.deepEqual(codes(judgeTap(cfg, v, [bridge, { ...tap0, flags: ['UP', 'NO-CARRIER'] }])), ['DOC_TAP_NO_CARRIER']);
  const { master: _m, ...nomaster } = tap0;
  assert.deepEqual(codes(judgeTap(cfg, v, [bridge, nomaster])), ['DOC_TAP_NOT_ON_BRIDGE']);
  assert.deepEqual(codes(judgeTap(cfg, v, [bridge])), ['DOC_TAP_MISSING']);
  assert.ok(judgeTap(cfg, vmView(vm('vm-a', 0, 'failed')), [bridge]).skipped);
});

test('host link: veth ends, addresses and the route to the VM subnet', () => {
  const hostEnd = link('hgveth-h', { kind: 'veth', addrs: ['169.254.77.1/30'] });
  const nsEnd = link('hgveth-n', { kind: 'veth', addrs: ['169.254.77.2/30'] });
  const route = { dst: '10.213.0.0/24', gateway: '169.254.77.2', dev: 'hgveth-h' };
  assert.deepEqual(codes(judgeHostLink(cfg, { hostLinks: [hostEnd], nsLinks: [nsEnd], hostRoutes: [route] })), []);
  assert.deepEqual(codes(judgeHostLink(cfg, { hostLinks: [], nsLinks: [nsEnd], hostRoutes: [route] })), ['DOC_VETH_MISSING']);
  assert.deepEqual(codes(judgeHostLink(cfg, { hostLinks: [{ ...hostEnd, flags: [] }], nsLinks: [nsEnd], hostRoutes: [route] })), ['DOC_VETH_DOWN']);
  assert.deepEqual(codes(judgeHostLink(cfg, { hostLinks: [hostEnd], nsLinks: [{ ...nsEnd, addrs: [] }], hostRoutes: [route] })), ['DOC_VETH_ADDRESS']);
  assert.deepEqual(codes(judgeHostLink(cfg, { hostLinks: [hostEnd], nsLinks: [nsEnd], hostRoutes: [] })), ['DOC_HOST_ROUTE_MISSING']);
});

test('FORWARD chain: a DROP policy in the VM namespace breaks the routed path; br_netfilter widens it to bridged traffic', () => {
  const f = { sysctl: { 'net.bridge.bridge-nf-call-iptables': '1' }, brNetfilter: true, bridge, forward: { policy: 'DROP', rules: [] } };
  const v = judgeNetfilter(cfg, f);
  assert.deepEqual(codes(v), ['DOC_FORWARD_DROP']);
  assert.equal(v.findings[0]!.severity, 'error');
  assert.match(v.findings[0]!.message, /routed path.*and traffic bridged between VMs \(br_netfilter\)/);
  assert.ok(v.findings[0]!.evidence.some((e) => e.text === '-P FORWARD DROP'));
  assert.deepEqual(codes(judgeNetfilter(cfg, { ...f, forward: { policy: 'ACCEPT', rules: [] } })), []);
  // An ACCEPT for the VM subnet before the policy: only a warning (rules are not evaluated in full).
  assert.equal(judgeNetfilter(cfg, { ...f, forward: { policy: 'DROP', rules: ['-A FORWARD -d 10.213.0.0/24 -j ACCEPT'] } }).findings[0]!.severity, 'warning');
  // Bridge mode without br_netfilter: host ↔ VM is local delivery, FORWARD is not on the path.
  const bridgeCfg = normaliseNetConfig({ mode: 'bridge', bridge: 'hgbr0', cidr: '10.213.0.0/24', hostNetns: 'hgt-host-x' });
  assert.deepEqual(codes(judgeNetfilter(bridgeCfg, { ...f, brNetfilter: false })), []);
});

test('rp_filter: strict with a symmetric route is fine, with an asymmetric one it drops', () => {
  const vmSysctl = { 'net.ipv4.conf.all.rp_filter': '1' };
  const good = { vmSysctl, hostSysctl: {}, nsRouteToHost: { dst: '169.254.77.1', dev: 'hgveth-n' }, hostRouteToVms: { dst: '10.213.0.1', dev: 'hgveth-h' } };
  assert.deepEqual(codes(judgeRpFilter(cfg, good)), []);
  assert.deepEqual(codes(judgeRpFilter(cfg, { ...good, nsRouteToHost: { dst: '169.254.77.1', dev: 'eth9' } })), ['DOC_RP_FILTER_STRICT']);
});

test('ARP: unanswered, answered by another MAC, a stale mapping, a re-addressed guest, the MAC learned on another port', () => {
  const a = vmView(vm('vm-a', 0));
  const b = vmView(vm('vm-b', 1));
  const reply = { outcome: 'reply' as const, detail: '64 bytes from 10.213.0.2: icmp_seq=1' };
  const lost = { outcome: 'no-reply' as const, detail: '1 packets transmitted, 0 received' };
  const n = (dst: string, state: string, lladdr?: string): NeighFact => ({ dst, dev: 'hgbr0', state: [state], ...(lladdr ? { lladdr } : {}) });
  const base = { pingNs: reply, pingHost: reply, neighBefore: [], fdb: [], tcp: null };
  assert.deepEqual(codes(judgeNeighbour(cfg, a, [a, b], { ...base, neighAfter: [n('10.213.0.2', 'REACHABLE', '02:48:0a:d5:00:02')] })), []);
  assert.deepEqual(codes(judgeNeighbour(cfg, a, [a, b], { ...base, pingNs: lost, neighAfter: [n('10.213.0.2', 'INCOMPLETE')] })), ['DOC_ARP_UNANSWERED']);
  const wrong = judgeNeighbour(cfg, a, [a, b], { ...base, neighAfter: [n('10.213.0.2', 'REACHABLE', '02:48:0a:d5:00:03')] });
  assert.deepEqual(codes(wrong), ['DOC_ARP_WRONG_MAC']);
  assert.match(wrong.findings[0]!.message, /vm-b/);
  assert.deepEqual(codes(judgeNeighbour(cfg, a, [a, b], { ...base, pingNs: lost, neighAfter: [n('10.213.0.2', 'DELAY', '02:48:0a:d5:00:09')] })), ['DOC_NEIGH_STALE']);
  const moved = judgeNeighbour(cfg, a, [a, b], { ...base, pingNs: lost, neighAfter: [n('10.213.0.2', 'REACHABLE', '02:48:0a:d5:00:02'), n('10.213.0.104', 'STALE', '02:48:0a:d5:00:02')] });
  assert.deepEqual(codes(moved), ['DOC_GUEST_READDRESSED']);
  assert.match(moved.findings[0]!.message, /10\.213\.0\.104/);
  const port = judgeNeighbour(cfg, a, [a, b], { ...base, neighAfter: [], fdb: [{ mac: '02:48:0a:d5:00:02', ifname: 'hgtap1', master: 'hgbr0', state: '', flags: [] }] });
  assert.deepEqual(codes(port), ['DOC_MAC_WRONG_PORT']);
  assert.match(port.findings[0]!.message, /vm-b's TAP/);
});

test('duplicates: a running VM started with another VM\'s MAC (from the store), both sides see it', () => {
  const a = vmView(vm('vm-a', 0));
  const b = vmView(vm('vm-b', 1, 'booting', (s) => ({ ...s, net: { tap: 'hgtap1', mac: '02:48:0a:d5:00:02' } })));
  assert.deepEqual(codes(judgeDuplicates(a, [a, b])), ['DOC_DUPLICATE_MAC']);
  assert.deepEqual(codes(judgeDuplicates(b, [a, b])), ['DOC_DUPLICATE_MAC']);
  assert.deepEqual(codes(judgeBootArgs(b)), ['DOC_MAC_NOT_ALLOCATED']);
  // A stopped VM holds no MAC on the wire.
  assert.deepEqual(codes(judgeDuplicates(a, [a, vmView({ ...b.vm, state: 'stopped' })])), []);
  const c = vmView(vm('vm-c', 2, 'ready', (s) => ({ ...s, bootArgs: `${String(s.bootArgs)} ip=10.213.0.2::10.213.0.1:255.255.255.0::eth0:off` })));
  assert.deepEqual(codes(judgeDuplicates(a, [a, c])), ['DOC_DUPLICATE_IP']);
  assert.deepEqual(codes(judgeBootArgs(c)), ['DOC_BOOTARGS_IP']);
});

test('boot arguments: the last root= wins and must be the one disk, /dev/vda', () => {
  assert.deepEqual(codes(judgeBootArgs(vmView(vm('vm-a', 0)))), []);
  const r = judgeBootArgs(vmView(vm('vm-a', 0, 'failed', (s) => ({ ...s, bootArgs: `${String(s.bootArgs)} root=/dev/vdb` }))));
  assert.deepEqual(codes(r), ['DOC_BOOTARGS_ROOT']);
  assert.match(r.findings[0]!.message, /root=\/dev\/vdb/);
  assert.deepEqual(codes(judgeBootArgs(vmView(vm('vm-a', 0, 'failed', (s) => ({ ...s, bootArgs: String(s.bootArgs).replace('init=/sbin/hangar-init', 'init=/bin/sh') }))))), ['DOC_BOOTARGS_INIT']);
});

test('ICMP and VNC: which side failed, and refused versus unreachable', () => {
  const a = vmView(vm('vm-a', 0));
  const reply = { outcome: 'reply' as const, detail: 'ok' };
  const lost = { outcome: 'no-reply' as const, detail: '0 received' };
  assert.deepEqual(codes(judgeIcmp(a, { pingNs: reply, pingHost: lost }, cfg)), ['DOC_ICMP_HOST_FAILED']);
  assert.deepEqual(codes(judgeIcmp(a, { pingNs: lost, pingHost: lost }, cfg)), ['DOC_ICMP_FAILED', 'DOC_ICMP_HOST_FAILED']);
  assert.deepEqual(codes(judgeVnc(a, { outcome: 'banner', banner: 'RFB 003.008\n', detail: '' }, false)), []);
  assert.equal(judgeVnc(a, { outcome: 'refused', detail: 'ECONNREFUSED' }, false).findings[0]!.severity, 'error');
  assert.equal(judgeVnc(a, { outcome: 'refused', detail: 'ECONNREFUSED' }, true).findings[0]!.severity, 'warning');
  assert.deepEqual(codes(judgeVnc(a, { outcome: 'timeout', detail: 'no connection within 2000 ms' }, false)), ['DOC_VNC_UNREACHABLE']);
  assert.deepEqual(codes(judgeVnc(a, { outcome: 'banner', banner: 'SSH-2.0', detail: '' }, false)), ['DOC_VNC_BAD_BANNER']);
});

test('VM state: failed carries its last error; booting within the grace period is information only', () => {
  const failed = { ...vm('vm-a', 0, 'failed'), lastError: { code: 'VM_BOOT_TIMEOUT', message: 'no READY' } };
  assert.match(judgeVmState(vmView(failed), Date.now(), 20_000).findings[0]!.message, /VM_BOOT_TIMEOUT/);
  const booting = { ...vm('vm-a', 0, 'booting'), updatedAt: new Date(1_000_000).toISOString() };
  assert.equal(judgeVmState(vmView(booting), 1_005_000, 20_000).findings[0]!.severity, 'info');
  assert.deepEqual(codes(judgeVmState(vmView(booting), 1_100_000, 20_000)), []);
});

test('host: accelerator on a PVM host, /dev/net/tun, VMM drivers', () => {
  const tcg = judgeAccel({ kvmDevice: 'ok', pvmHost: true }, []);
  assert.deepEqual(codes(tcg), ['DOC_ACCEL_TCG']);
  assert.match(tcg.saw, /PVM host/);
  assert.deepEqual(codes(judgeAccel({ kvmDevice: 'ok', pvmHost: true, override: 'kvm' }, [])), ['DOC_ACCEL_KVM_ON_PVM']);
  assert.deepEqual(codes(judgeAccel({ kvmDevice: 'ok', pvmHost: true }, [{ vmId: 'vm-a', accel: 'kvm' }])), ['DOC_ACCEL_KVM_ON_PVM']);
  assert.deepEqual(codes(judgeAccel({ kvmDevice: 'absent', pvmHost: false, override: 'kvm' }, [])), ['DOC_ACCEL_UNAVAILABLE']);
  assert.deepEqual(codes(judgeAccel({ kvmDevice: 'ok', pvmHost: false }, [])), []);
  assert.deepEqual(codes(judgeTun({ exists: true, charDevice: true, openable: true })), []);
  assert.deepEqual(codes(judgeTun({ exists: false, charDevice: false, openable: false })), ['DOC_TUN_MISSING']);
  const drivers = [{ kind: 'qemu', available: true, reason: 'ok' }, { kind: 'firecracker', available: false, reason: 'no binary' }];
  assert.deepEqual(codes(judgeVmmDrivers(drivers, ['qemu'])), [], 'an unused, unavailable driver is not an error');
  assert.deepEqual(codes(judgeVmmDrivers(drivers, ['qemu', 'firecracker'])), ['DOC_VMM_UNAVAILABLE']);
});

test('leftovers: TAPs, run directories and VMM processes without a VM', () => {
  const a = vm('vm-a', 0);
  const v = judgeLeftovers({
    taps: [{ name: 'hgtap0', master: 'hgbr0', up: true }, { name: 'hgtap7', master: 'hgbr0', up: true }],
    vms: [a], runDirs: ['vm-a', 'vm-gone'], runRoot: '/state/vms',
    procs: [{ pid: 100, argv: ['qemu-system-x86_64', '-chardev', 'file,id=con0,path=/state/vms/vm-a/console.log'] }, { pid: 555, argv: ['qemu-system-x86_64', 'path=/state/vms/vm-gone/qmp.sock'] }, { pid: 9, argv: ['qemu-system-x86_64', '/elsewhere/vms/x'] }],
  });
  assert.deepEqual(codes(v), ['DOC_LEFTOVER_TAP', 'DOC_LEFTOVER_RUNDIR', 'DOC_LEFTOVER_VMM']);
  assert.match(v.findings[0]!.message, /hgtap7/);
  assert.match(v.findings[2]!.message, /555/);
  assert.doesNotMatch(v.findings[2]!.message, /\b9\b/, 'another controller\'s VMM is not ours');
});

test('image: e2fsck errors, a missing init, network managers that would override ip=', () => {
  assert.deepEqual(codes(judgeFsck('/r', { code: 0, summary: 'clean', output: '' })), []);
  assert.deepEqual(codes(judgeFsck('/r', { code: 4, summary: 'x', output: 'Inode 12 has illegal blocks' })), ['DOC_ROOTFS_ERRORS']);
  const d = (stdout: string, stderr = ''): ReturnType<typeof parseDebugfs> => parseDebugfs(stdout, stderr);
  assert.deepEqual(codes(judgeInit(d('debugfs: stat /sbin/hangar-init\nInode: 2418   Type: regular    Mode:  0755   Flags: 0x80000\n'))), []);
  assert.deepEqual(codes(judgeInit(d('debugfs: stat /sbin/hangar-init\n', '/sbin/hangar-init: File not found by ext2_lookup'))), ['DOC_INIT_MISSING']);
  assert.deepEqual(codes(judgeInit(d('debugfs: stat /sbin/hangar-init\nInode: 2   Type: regular    Mode:  0644\n'))), ['DOC_INIT_MISSING']);
  const clean = d('debugfs: ls -p /etc/hangar/init.d\n/192/040755/0/0/./4096/\n/191/040755/0/0/../4096/\n');
  assert.deepEqual(codes(judgeNetOverrides(clean, new Map())), []);
  const networkd = d('debugfs: ls -p /etc/systemd/network\n/5/100644/0/0/10-eth0.network/40/\ndebugfs: cat /etc/network/interfaces\nauto eth0\niface eth0 inet dhcp\n');
  const w = judgeNetOverrides(networkd, new Map());
  assert.deepEqual(codes(w), ['DOC_IMAGE_NET_OVERRIDE']);
  assert.equal(w.findings[0]!.severity, 'warning', 'inert under hangar-init');
  const active = judgeNetOverrides(clean, new Map([['20-net.sh', '# site network\ndhclient -nw eth0\n']]));
  assert.equal(active.findings[0]!.severity, 'error');
  assert.match(active.findings[0]!.message, /20-net\.sh: dhclient -nw eth0/);
});

test('cgroups: the version in use is reported; none usable is a warning, never the cause of a VM failure', () => {
  const v1 = judgeCgroups({ version: 1, reason: 'cgroup v1 (hybrid: the v2 tree holds no controllers)', root: '/sys/fs/cgroup/cpu/hangar/' });
  assert.deepEqual(codes(v1), []);
  assert.match(v1.saw, /cgroup v1 \(hybrid/);
  assert.deepEqual(codes(judgeCgroups({ version: null, reason: 'no cpu controller', root: null })), ['DOC_CGROUPS_UNAVAILABLE']);
});
