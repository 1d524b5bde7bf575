// The doctor's VM checks over the facts of a healthy VM in every state and provenance (cold, restored after a
// hibernation, clone; ready, paused, stopped by its user, hibernated): no error finding. And the opposite: a clone
// whose snapshot's files are gone has the missing file named first, with its path; a broken clone network is named.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { planCloneNetwork, type GuestNetIdentity } from '../../src/net/clone.js';
import { normaliseNetConfig } from '../../src/net/config.js';
import { planVmNetwork } from '../../src/net/plan.js';
import type { Hibernation, VmRecord } from '../../src/domain/vm.js';
import type { ProcessExit } from '../../src/vmm/types.js';
import { vmView, type ReachFacts, type VmView } from '../../src/doctor/judges.js';
import { mergeByCode, orderDoctorFindings, topCause, type DoctorFinding } from '../../src/doctor/model.js';
import type { FileFact, LinkFact } from '../../src/doctor/probes.js';
import { judgeVm, unanswered, vmFiles, type VmFacts } from '../../src/doctor/vm.js';
import { ROOT } from '../support/env.js';

// The fixtures' guest network: 172.16.0.2 behind the gateway 172.16.0.1/24.
const cfg = normaliseNetConfig({ mode: 'netns', netns: 'hgt-vms-x', hostNetns: 'hgt-host-x', bridge: 'hgbr0', cidr: '172.16.0.0/24' });
const fixture = (name: string): string => readFileSync(join(ROOT, 'test', 'fixtures', 'console', name), 'utf8');
const SNAP = 'snap-0123abcd';
const SNAP_DIR = `/state/snapshots/${SNAP}`;
const T0 = Date.parse('2026-11-27T10:00:00.000Z');

const link = (ifname: string, extra: Partial<LinkFact> = {}): LinkFact => ({ ifname, flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'], addrs: [], ...extra });
const qemu = (vm: VmRecord): { pid: number; argv: string[] } => ({ pid: vm.pid ?? 1, argv: ['qemu-system-x86_64', '-accel', 'tcg', '-chardev', `file,id=con0,path=${vm.runDir}/console.log,append=on`] });
const reply = { outcome: 'reply' as const, detail: '64 bytes: icmp_seq=1' };

/** A VM booted from its image at 172.16.0.2, in `state`. */
function coldVm(state: VmRecord['state'], extra: Partial<VmRecord> = {}): VmRecord {
  const id = 'vm-cold0001';
  const plan = planVmNetwork(cfg, [], id);
  const runDir = `/state/vms/${id}`;
  return {
    id, name: 'alice', state, imageId: 'desktop-1', profile: 'desktop', vmm: 'qemu', vcpus: 1, memMiB: 512, ttlS: null,
    createdAt: new Date(T0).toISOString(), updatedAt: new Date(T0).toISOString(), expiresAt: null, pid: ['booting', 'ready', 'paused'].includes(state) ? 4242 : null, runDir,
    spec: {
      id, kernelPath: '/cache/images/desktop-1/vmlinux', rootfsPath: `${runDir}/rootfs.ext4`, vcpus: 1, memMiB: 512, runDir, consoleLogPath: `${runDir}/console.log`,
      bootArgs: `console=ttyS0 reboot=k panic=1 pci=off root=/dev/vda rw init=/sbin/hangar-init ip=${plan.ip}::${plan.gateway}:${plan.netmask}:alice:eth0:off`,
      net: { tap: plan.tap, mac: plan.mac }, netns: cfg.netns,
    },
    net: plan, bootMs: 9000, lastError: null, exit: null, snapshotId: null, hibernation: null, ...extra,
  };
}

/** A clone of SNAP (taken of the VM above, so its guest keeps 172.16.0.2), reached at its own pool address. */
function cloneVm(state: VmRecord['state'], extra: Partial<VmRecord> = {}): VmRecord {
  const id = 'vm-clone002';
  const pool = planVmNetwork(cfg, [{ vmId: 'vm-cold0001', index: 0, tap: 'hgtap0', ip: '172.16.0.2', mac: '02:48:ac:10:00:02' }], id);
  const g: GuestNetIdentity = { ip: '172.16.0.2', mac: '02:48:ac:10:00:02', tap: 'hgtap0', gateway: '172.16.0.1', netmask: '255.255.255.0', prefix: 24, gatewayMac: '02:00:00:00:00:01' };
  const clone = planCloneNetwork(cfg, pool, g);
  const runDir = `/state/vms/${id}`;
  const net = { ...pool, mac: g.mac, gateway: g.gateway, netmask: g.netmask, prefix: g.prefix, bootIp: { address: g.ip, gateway: g.gateway, netmask: g.netmask }, clone };
  return {
    ...coldVm(state), id, name: 'bob',
    runDir, snapshotId: SNAP, bootMs: 1800,
    spec: {
      id, kernelPath: `${SNAP_DIR}/vmlinux`, rootfsPath: `${runDir}/rootfs.ext4`, vcpus: 1, memMiB: 512, runDir, consoleLogPath: `${runDir}/console.log`,
      bootArgs: 'console=ttyS0 reboot=k panic=1 pci=off root=/dev/vda rw init=/sbin/hangar-init ip=172.16.0.2::172.16.0.1:255.255.255.0:alice:eth0:off',
      net: { tap: g.tap, mac: g.mac }, netns: clone.netns,
    },
    net, ...extra,
  };
}

const hibernation = (vm: VmRecord): Hibernation => ({
  dir: `${vm.runDir}/hibernation`, files: { 'state.bin': { sha256: 'a'.repeat(64), size: 52_428_800 } }, vmmVersion: '7.2.15', at: '2026-11-27T10:00:00.000Z', saveMs: 900, guestAgent: true,
});

/** What the probes see for a healthy VM in its state: processes, links, answers, files all there. */
function healthyFacts(vm: VmRecord, consoleLog: string, edit: (f: VmFacts) => VmFacts = (f) => f): VmFacts {
  const v: VmView = vmView(vm);
  const running = ['booting', 'ready', 'paused'].includes(vm.state);
  const plan = v.plan!;
  const clone = (vm.net as { clone?: ReturnType<typeof planCloneNetwork> }).clone;
  const vmLinks = [link('hgbr0', { kind: 'bridge', addrs: ['172.16.0.1/24'] }), link('hgveth-n', { kind: 'veth', addrs: ['169.254.77.2/30'] })];
  if (running && !clone) vmLinks.push(link(plan.tap, { kind: 'tun', master: 'hgbr0' }));
  if (running && clone) vmLinks.push(link(clone.hostIfname, { kind: 'veth', addrs: [`${clone.link.hostAddress}/30`] }));
  const reach: ReachFacts = {
    pingNs: reply, pingHost: reply, tcp: { outcome: 'banner', banner: 'RFB 003.008\n', detail: 'answered "RFB 003.008"' },
    neighBefore: [], neighAfter: clone ? [] : [{ dst: plan.ip, dev: 'hgbr0', lladdr: plan.mac, state: ['REACHABLE'] }],
    fdb: clone ? [] : [{ mac: plan.mac, ifname: plan.tap, master: 'hgbr0', state: '', flags: [] }],
  };
  const files = new Map<string, FileFact>(vmFiles(v).map((f) => [f.path, { size: f.size ?? 1_234_567 }]));
  return edit({
    view: v, all: [v], cfg, now: T0 + 600_000, graceMs: 20_000,
    procs: running ? [qemu(vm)] : [],
    files,
    namespaces: ['hgt-vms-x', 'hgt-host-x', ...(clone && running ? [clone.netns] : [])],
    vmLinks,
    cloneLinks: clone && running ? [link(clone.guest.tap, { kind: 'tun', addrs: ['172.16.0.1/24'] }), link(clone.cloneIfname, { kind: 'veth', addrs: [`${clone.link.cloneAddress}/30`] })] : null,
    reach: ['booting', 'ready'].includes(vm.state) ? reach : null,
    console: consoleLog,
  });
}

/** The VM checks' findings as the doctor reports them: merged by code, most likely cause first. */
function findings(f: VmFacts): DoctorFinding[] {
  return orderDoctorFindings(mergeByCode(judgeVm(f).flatMap((j) => j.verdict.findings.map((x) => ({ ...x, check: j.id })))));
}
const summary = (fs: DoctorFinding[]): string => fs.map((x) => `${x.code}:${x.severity}${x.causedBy ? `<${x.causedBy.join('|')}` : ''}`).join(' ') || '(none)';

function assertHealthy(f: VmFacts, why: string): DoctorFinding[] {
  const fs = findings(f);
  assert.deepEqual(fs.filter((x) => x.severity !== 'info').map((x) => `${x.code}: ${x.message}`), [], `${why}: ${summary(fs)}`);
  assert.equal(topCause(fs), null, why);
  return fs;
}

test('a ready VM: cold-booted, restored after a hibernation, cloned from a snapshot: no error, no warning', () => {
  assertHealthy(healthyFacts(coldVm('ready'), fixture('healthy.log')), 'cold ready');
  const restored = assertHealthy(healthyFacts(coldVm('ready'), fixture('synth-hibernated-resumed.log')), 'ready after hibernate + resume');
  assert.ok(restored.some((x) => x.code === 'CON_RESTORED' && x.severity === 'info'), 'the restore is information');
  const clone = assertHealthy(healthyFacts(cloneVm('ready'), fixture('synth-clone.log')), 'clone ready');
  assert.ok(!clone.some((x) => ['DOC_BOOTARGS_IP', 'CON_NO_KERNEL_OUTPUT', 'CON_GUEST_ADDRESS_UNKNOWN'].includes(x.code)), summary(clone));
  // The clone is probed where the host reaches it (its pool address), through its own namespace.
  const checks = judgeVm(healthyFacts(cloneVm('ready'), fixture('synth-clone.log')));
  assert.match(checks.find((c) => c.id === 'vm.tap')!.verdict.saw, /hgt-vms-x-c1: hgtap0 \(tun\) UP,LOWER_UP 172\.16\.0\.1\/24/);
  assert.match(checks.find((c) => c.id === 'vm.vnc')!.verdict.saw, /^172\.16\.0\.3:5900 answered/);
  assert.match(checks.find((c) => c.id === 'vm.bootargs')!.verdict.saw, /clone: the guest keeps 172\.16\.0\.2, reached at 172\.16\.0\.3/);
});

test('a paused VM, cold or clone: no error (its guest answers nothing by design, so nothing is probed)', () => {
  for (const [vm, log] of [[coldVm('paused'), 'synth-hibernated-resumed.log'], [cloneVm('paused'), 'synth-clone.log']] as const) {
    const f = healthyFacts(vm, fixture(log));
    assertHealthy(f, `${vm.name} paused`);
    assert.equal(judgeVm(f).find((c) => c.id === 'vm.vnc')!.verdict.skipped?.includes('vCPUs are stopped'), true);
  }
});

test('a VM stopped by its user, cold or clone: no error, no CON_GUEST_ADDRESS_UNKNOWN', () => {
  const exit: ProcessExit = { code: 0, signal: null, by: 'hangar', at: '2026-11-27T10:00:00.000Z' };
  assertHealthy(healthyFacts(coldVm('stopped', { exit }), fixture('healthy.log')), 'cold stopped');
  const clone = assertHealthy(healthyFacts(cloneVm('stopped', { exit }), fixture('synth-clone.log')), 'clone stopped');
  assert.ok(!clone.some((x) => x.code === 'CON_GUEST_ADDRESS_UNKNOWN'), summary(clone));
  // Stopped while it booted: READY never came because its user stopped it.
  const early = fixture('healthy.log').split('\n').slice(0, 100).join('\n');
  const fs = assertHealthy(healthyFacts(coldVm('stopped', { exit }), early), 'stopped before ready');
  assert.match(fs.find((x) => x.code === 'CON_READY_MISSING')!.message, /stopped before it was ready/);
});

test('a hibernated VM (stopped with its saved state), cold or clone: no error; its saved state is checked', () => {
  const cold = coldVm('stopped');
  const f = healthyFacts({ ...cold, hibernation: hibernation(cold) }, fixture('healthy.log'));
  assertHealthy(f, 'cold hibernated');
  const files = judgeVm(f).find((c) => c.id === 'vm.files')!.verdict.saw;
  assert.match(files, /saved state \/state\/vms\/vm-cold0001\/hibernation\/state\.bin: 52428800 bytes/);
  assert.match(files, /kernel \/cache\/images\/desktop-1\/vmlinux/);
  const clone = cloneVm('stopped');
  assertHealthy(healthyFacts({ ...clone, hibernation: hibernation(clone) }, fixture('synth-clone.log')), 'clone hibernated');
  assert.match(judgeVm(healthyFacts(coldVm('stopped', { hibernation: hibernation(cold) }), fixture('healthy.log')))[0]!.verdict.saw, /^stopped, .*\(hibernated at 2026-11-27T10:00:00\.000Z/);
});

const KERNEL_GONE = `QEMU for vm-clone002 did not come up: qemu-system-x86_64: could not open kernel file '${SNAP_DIR}/vmlinux': No such file or directory`;
const missing = (...paths: string[]) => (f: VmFacts): VmFacts => ({ ...f, files: new Map([...f.files!].map(([p, x]) => [p, paths.includes(p) ? { missing: true } : x])) });

test('a hibernated clone whose snapshot was deleted: the missing kernel is the first finding, with its path', () => {
  const vm = cloneVm('stopped');
  const fs = findings(healthyFacts({ ...vm, hibernation: hibernation(vm) }, fixture('synth-clone.log'), missing(`${SNAP_DIR}/vmlinux`)));
  assert.equal(fs[0]?.code, 'DOC_VM_FILE_MISSING', summary(fs));
  assert.equal(fs[0]!.severity, 'error');
  assert.match(fs[0]!.message, new RegExp(`kernel ${SNAP_DIR}/vmlinux is missing \\(the snapshot ${SNAP} it was cloned from is gone`));
  assert.match(fs[0]!.message, /cannot be restored/);
  assert.ok(fs[0]!.evidence.some((e) => e.text === `kernel ${SNAP_DIR}/vmlinux: No such file or directory`));
});

test('a clone that failed to start because its snapshot\'s files are gone: the missing file first, not DOC_BOOTARGS_IP', () => {
  const vm = cloneVm('failed', { lastError: { code: 'VMM_START_FAILED', message: KERNEL_GONE } });
  const log = `${fixture('synth-clone.log')}\nHANGAR-CONSOLE-RESTORED hibernation_of_2026-11-27T10:40:00.000Z 2026-11-27T11:00:00.000Z\n`;
  const fs = findings(healthyFacts({ ...vm, hibernation: hibernation(vm) }, log, missing(`${SNAP_DIR}/vmlinux`)));
  assert.equal(fs[0]?.code, 'DOC_VM_FILE_MISSING', summary(fs));
  assert.equal(topCause(fs)?.code, 'DOC_VM_FILE_MISSING');
  assert.ok(fs[0]!.evidence.some((e) => e.text.includes(`could not open kernel file '${SNAP_DIR}/vmlinux'`)), 'the VMM\'s own words');
  assert.deepEqual(fs.find((x) => x.code === 'DOC_VM_FAILED')?.causedBy, ['DOC_VM_FILE_MISSING']);
  assert.ok(!fs.some((x) => x.code === 'DOC_BOOTARGS_IP' || x.code === 'CON_NO_KERNEL_OUTPUT'), summary(fs));

  // Its first restore, from the snapshot's state file: the path the snapshot check named.
  const state = `${SNAP_DIR}/state.bin`;
  const first = cloneVm('failed', { bootMs: null, lastError: { code: 'SNAPSHOT_FAILED', message: `${state}: missing` } });
  const fs2 = findings(healthyFacts(first, fixture('synth-clone.log').split('\n').slice(0, 2).join('\n'), missing(state)));
  assert.equal(fs2[0]?.code, 'DOC_VM_FILE_MISSING', summary(fs2));
  assert.match(fs2[0]!.message, new RegExp(`snapshot state ${state} is missing`));
});

test('a running clone whose snapshot was deleted still works: a warning names the file, no error', () => {
  const fs = findings(healthyFacts(cloneVm('ready'), fixture('synth-clone.log'), missing(`${SNAP_DIR}/vmlinux`)));
  assert.equal(fs[0]?.code, 'DOC_VM_FILE_MISSING', summary(fs));
  assert.equal(fs[0]!.severity, 'warning');
  assert.match(fs[0]!.message, /once hibernated/);
  assert.ok(!fs.some((x) => x.severity === 'error'), summary(fs));
  // A stopped clone starts cold from its image: the snapshot is not needed, nothing to say.
  assertHealthy(healthyFacts(cloneVm('stopped'), fixture('synth-clone.log'), missing(`${SNAP_DIR}/vmlinux`)), 'stopped clone without its snapshot');
});

test('clone-aware, not blind: a clone booted with another ip=, a missing clone namespace, a TAP down in it', () => {
  const vm = cloneVm('ready');
  const wrongIp = { ...vm, spec: { ...vm.spec!, bootArgs: String(vm.spec!.bootArgs).replace('ip=172.16.0.2:', 'ip=172.16.0.3:') } };
  const fs = findings(healthyFacts(wrongIp, fixture('synth-clone.log')));
  assert.equal(fs[0]?.code, 'DOC_BOOTARGS_IP', summary(fs));
  assert.match(fs[0]!.message, /snapshot's guest address 172\.16\.0\.2/);
  const noNs = findings(healthyFacts(vm, fixture('synth-clone.log'), (f) => ({ ...f, namespaces: ['hgt-vms-x', 'hgt-host-x'], cloneLinks: null, reach: { ...f.reach!, pingNs: { outcome: 'no-reply', detail: '0 received' }, pingHost: { outcome: 'no-reply', detail: '0 received' }, tcp: { outcome: 'timeout', detail: 'no connection within 2000 ms' } } })));
  assert.equal(noNs[0]?.code, 'DOC_CLONE_NET_BROKEN', summary(noNs));
  assert.match(noNs[0]!.message, /namespace hgt-vms-x-c1 does not exist/);
  assert.deepEqual(noNs.find((x) => x.code === 'DOC_ICMP_FAILED')?.causedBy, ['DOC_CLONE_NET_BROKEN']);
  const down = findings(healthyFacts(vm, fixture('synth-clone.log'), (f) => ({ ...f, cloneLinks: f.cloneLinks!.map((l) => (l.ifname === 'hgtap0' ? { ...l, flags: ['BROADCAST'] } : l)) })));
  assert.equal(down[0]?.code, 'DOC_TAP_DOWN', summary(down));
  assert.match(down[0]!.fix, /ip -n hgt-vms-x-c1 link set hgtap0 up/);
});

test('reachability probes without an answer are run once more before judging (a link that just came back drops packets)', () => {
  const f = healthyFacts(coldVm('ready'), fixture('healthy.log')).reach!;
  assert.equal(unanswered(f), false);
  assert.equal(unanswered({ ...f, pingNs: { outcome: 'no-reply', detail: '0 received' } }), true);
  assert.equal(unanswered({ ...f, pingHost: { outcome: 'unreachable', detail: 'Destination Host Unreachable' } }), true);
  assert.equal(unanswered({ ...f, tcp: { outcome: 'timeout', detail: 'no connection within 2000 ms' } }), true);
  assert.equal(unanswered({ ...f, tcp: { outcome: 'refused', detail: 'ECONNREFUSED' } }), false, 'a refusal is an answer');
});

test('inside the guest (its agent): eth0 down explains what the host saw from outside; a healthy guest adds nothing', () => {
  const vm = coldVm('ready');
  const healthyGuest = { status: { state: 'ready' as const, session: 's', since: 0 }, info: { hostname: 'g', uptimeMs: 1, bootId: 'b', ifaces: [{ name: 'eth0', up: true, addrs: ['172.16.0.2/24'] }], routes: ['default via 172.16.0.1 dev eth0'], listening: [{ proto: 'tcp', addr: '0.0.0.0', port: 5900 }], failed: [] } };
  assertHealthy(healthyFacts(vm, fixture('healthy.log'), (f) => ({ ...f, guest: healthyGuest })), 'healthy guest');
  const down = healthyFacts(vm, fixture('healthy.log'), (f) => ({
    ...f,
    guest: { ...healthyGuest, info: { ...healthyGuest.info, ifaces: [{ name: 'eth0', up: false, addrs: ['172.16.0.2/24'] }] } },
    reach: { ...f.reach!, pingNs: { outcome: 'no-reply', detail: '100% packet loss' }, pingHost: { outcome: 'no-reply', detail: '100% packet loss' }, tcp: { outcome: 'timeout', detail: 'timed out' } },
  }));
  const fs = findings(down);
  assert.equal(topCause(fs)?.code, 'DOC_GUEST_ETH0_DOWN', summary(fs));
  assert.ok(fs.find((x) => x.code === 'DOC_ICMP_FAILED')?.causedBy?.includes('DOC_GUEST_ETH0_DOWN'), summary(fs));
  assert.equal(judgeVm(down).find((c) => c.id === 'vm.guest')?.uses[0], 'agent');
  // The VNC server not listening explains the refused port.
  const refused = healthyFacts(vm, fixture('healthy.log'), (f) => ({
    ...f, guest: { ...healthyGuest, info: { ...healthyGuest.info, listening: [] } }, reach: { ...f.reach!, tcp: { outcome: 'refused', detail: 'ECONNREFUSED' } },
  }));
  const rf = findings(refused);
  assert.equal(topCause(rf)?.code, 'DOC_GUEST_VNC_NOT_LISTENING', summary(rf));
  // No agent support: no guest check at all (as before).
  assert.equal(judgeVm(healthyFacts(vm, fixture('healthy.log'))).some((c) => c.id === 'vm.guest'), false);
});
