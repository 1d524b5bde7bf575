// The doctor's view of one VM, whatever its state and provenance: cold-booted, restored after a hibernation,
// cloned from a golden snapshot; booting, ready, paused, stopped by its user, hibernated (stopped with
// `hibernation` set) or failed. Pure: facts in (what the probes saw), one verdict per VM check out. The files the
// VM itself needs (its kernel, disk, saved state, its snapshot's files) are planned here too, so a missing one is
// named with its path, and a clone's own network namespace replaces the bridge-side checks that do not apply.
import { basename, dirname } from 'node:path';
import type { Evidence } from '../findings.js';
import type { NetConfig } from '../net/config.js';
import { classifyConsole } from './console.js';
import {
  adjustConsole, cloneOf, describeLink, guestAddress, judgeBootArgs, judgeDuplicates, judgeIcmp, judgeNeighbour, judgeTap,
  judgeVmmProcess, judgeVmState, judgeVnc, type ReachFacts, type VmView,
} from './judges.js';
import type { DoctorFinding, Verdict } from './model.js';
import type { FileFact, LinkFact, ProcFacts } from './probes.js';
import { judgeGuest, type GuestFacts } from './guest.js';

type F = Omit<DoctorFinding, 'check'>;

/** States in which the VM's VMM runs the guest. */
const RUNNING = ['booting', 'ready', 'paused'];
export const isRunning = (v: VmView): boolean => RUNNING.includes(v.vm.state);
/** Whether the guest can answer at all (booting or ready; a paused guest's vCPUs are stopped by design). */
export const isReachable = (v: VmView): boolean => ['booting', 'ready'].includes(v.vm.state) && v.plan !== null;

/**
 * No answer where a healthy guest gives one (a refused port is an answer): the doctor probes once more before
 * judging, as a link that has just come back drops the first packets for up to a second.
 */
export const unanswered = (f: ReachFacts): boolean =>
  [f.pingNs, f.pingHost].some((p) => p && p.outcome !== 'reply') || (f.tcp !== null && f.tcp.outcome !== 'banner' && f.tcp.outcome !== 'refused');

// ---------------------------------------------------------------- the VM's own files

export type FileRole = 'kernel' | 'disk' | 'saved state' | 'snapshot state' | 'snapshot disk' | 'file';

export interface VmFile {
  role: FileRole;
  path: string;
  /** The size recorded when the file was written (saved state), when known. */
  size?: number;
  /** now: the VM's next step (a restore, the start that failed) needs it; later: a hibernation of the running VM would. */
  need: 'now' | 'later';
}

interface HibernationView { dir?: string; files?: Record<string, { size?: number }>; at?: string }

/** The snapshot directory a clone's current run was restored from (its kernel travels in it), or null. */
export function snapshotDirOf(v: VmView): string | null {
  const k = v.spec?.kernelPath;
  return v.vm.snapshotId && k && basename(dirname(k)) === v.vm.snapshotId ? dirname(k) : null;
}

const under = (p: string, dir: string | null | undefined): boolean => Boolean(dir) && p.startsWith(`${dir}/`);

/** Which of its own files the VM needs, given its state and provenance. Pure. */
export function vmFiles(v: VmView): VmFile[] {
  const vm = v.vm;
  const spec = v.spec;
  const hib = vm.hibernation as HibernationView | null;
  const snapDir = snapshotDirOf(v);
  const roleOf = (p: string): FileRole =>
    p === spec?.kernelPath ? 'kernel' : p === spec?.rootfsPath ? 'disk' : under(p, hib?.dir) ? 'saved state'
      : under(p, snapDir) ? (p.endsWith('/disk.ext4') ? 'snapshot disk' : 'snapshot state') : 'file';
  const out: VmFile[] = [];
  const add = (path: string | undefined, need: VmFile['need'], size?: number): void => {
    if (path && !out.some((f) => f.path === path)) out.push({ role: roleOf(path), path, need, ...(size !== undefined ? { size } : {}) });
  };
  if (hib) {
    // A start or resume restores the saved state with the machine it was saved from: kernel, disk, state files.
    add(spec?.kernelPath, 'now');
    add(spec?.rootfsPath, 'now');
    for (const [name, info] of Object.entries(hib.files ?? {})) add(hib.dir ? `${hib.dir}/${name}` : undefined, 'now', info.size);
  } else if (RUNNING.includes(vm.state)) {
    // The VMM opened them at start; a hibernation would restore from them.
    add(spec?.kernelPath, 'later');
    add(spec?.rootfsPath, 'later');
  } else if (vm.state === 'stopped') {
    // A start boots the image's kernel (the image checks cover it) on the VM's own disk.
    add(spec?.rootfsPath, 'later');
  }
  if (vm.state === 'failed' && vm.lastError?.message) {
    // The files its last start failed on: those its error names (the VMM's or the snapshot check's message).
    for (const p of (vm.lastError.message.match(/\/[\w.+@-]+(?:\/[\w.+@-]+)+/g) ?? []).map((x) => x.replace(/\.+$/, ''))) {
      const mine = p === spec?.kernelPath || p === spec?.rootfsPath || under(p, vm.runDir) || under(p, snapDir) || under(p, hib?.dir);
      if (mine) add(p, 'now');
    }
    for (const f of out) if (vm.lastError.message.includes(f.path)) f.need = 'now';
  }
  return out;
}

export function judgeVmFiles(v: VmView, files: readonly VmFile[], facts: ReadonlyMap<string, FileFact> | null): Verdict {
  if (!files.length) return { saw: `VM is ${v.vm.state}: it needs no file of its own now`, findings: [], skipped: 'nothing to check' };
  if (!facts) return { saw: 'cannot stat the files', findings: [], skipped: 'probe failed' };
  const bad = files.map((f) => ({ f, fact: facts.get(f.path) }))
    .filter(({ f, fact }) => fact?.missing || (fact?.size !== undefined && f.size !== undefined && fact.size !== f.size));
  const saw = files.map((f) => {
    const x = facts.get(f.path);
    return `${f.role} ${f.path}: ${x?.missing ? 'missing' : x?.error ? x.error : x?.size !== undefined ? `${x.size} bytes` : '?'}`;
  }).join('; ');
  if (!bad.length) return { saw, findings: [] };
  const vm = v.vm;
  const now = bad.some(({ f }) => f.need === 'now');
  const snapDir = snapshotDirOf(v);
  const what = bad.map(({ f, fact }, i) => `${i ? 'its' : 'The VM\'s'} ${f.role} ${f.path} ${fact!.missing ? 'is missing' : `is ${fact!.size} bytes, ${f.size} when it was saved`}`);
  const hibernated = Boolean(vm.hibernation);
  const gone = snapDir && bad.some(({ f }) => under(f.path, snapDir)) ? ` (the snapshot ${vm.snapshotId} it was cloned from is gone: ${snapDir})` : '';
  const consequence = vm.state === 'failed' && vm.lastError && bad.some(({ f }) => vm.lastError!.message.includes(f.path))
    ? `its last start failed on it (${vm.lastError.code}, below)`
    : hibernated ? 'the VM is hibernated and cannot be restored without it: start and resume fail'
      : RUNNING.includes(vm.state) ? 'the VM runs (its VMM opened the file when it started), but it cannot be restored once hibernated (the idle hibernator may hibernate it)'
        : 'the next start boots a fresh copy of the image: what the VM wrote is lost';
  const fix = gone
    ? hibernated
      ? `The hibernated clone cannot come back without its snapshot: destroy it (hangar vm rm ${vm.name}) and create a new clone from an existing snapshot.`
      : `Do not let it hibernate: stop and start it (a start boots it from its image, a cold boot, and it no longer depends on the snapshot), or destroy it and clone an existing snapshot.`
    : bad.some(({ f }) => f.role === 'saved state')
      ? `The saved state cannot be rebuilt: destroy the VM (hangar vm rm ${vm.name}) and create it again.`
      : bad.some(({ f }) => f.role === 'kernel')
        ? 'Restore the kernel file (the image\'s: hangar image build recreates a deleted image), or destroy the VM and create it again.'
        : 'Restore the file from a backup, or destroy the VM and create it again; never delete files under the state directory of a VM that exists.';
  const evidence: Evidence[] = bad.map(({ f, fact }) => ({ text: `${f.role} ${f.path}: ${fact!.missing ? 'No such file or directory' : `size ${fact!.size}, saved ${f.size}`}` }));
  if (vm.lastError && bad.some(({ f }) => vm.lastError!.message.includes(f.path))) evidence.push({ text: `lastError ${vm.lastError.code}: ${vm.lastError.message}` });
  return {
    saw,
    findings: [{
      code: 'DOC_VM_FILE_MISSING', severity: now ? 'error' : 'warning', option: null,
      message: `${what.join('; ')}${gone}: ${consequence}.`, fix, evidence,
    }],
  };
}

// ---------------------------------------------------------------- a clone's own network

export interface CloneNetFacts {
  namespaces: readonly string[] | null;
  /** Links in the clone's namespace. */
  cloneLinks: readonly LinkFact[] | null;
  /** Links on the VM side (where the clone's veth end is). */
  vmLinks: readonly LinkFact[] | null;
}

const has = (l: LinkFact | undefined, addr: string): boolean => Boolean(l?.addrs.includes(addr));

/** The clone's namespace as src/net/clone.ts builds it: TAP as the guest's gateway, veth pair, link addresses. */
export function judgeCloneNet(v: VmView, f: CloneNetFacts): Verdict {
  const c = cloneOf(v)!;
  if (!isRunning(v)) return { saw: `VM is ${v.vm.state}: its namespace ${c.netns} is removed while it does not run`, findings: [], skipped: 'not running' };
  if (f.namespaces && !f.namespaces.includes(c.netns)) {
    return {
      saw: `namespace ${c.netns} missing`,
      findings: [{ code: 'DOC_CLONE_NET_BROKEN', severity: 'error', option: null,
        message: `The clone's network namespace ${c.netns} does not exist: its TAP ${c.guest.tap} and veth went with it, the guest's NIC is connected to nothing and ${v.plan!.ip} leads nowhere.`,
        fix: 'Stop and start the VM (a start recreates its network), or destroy it and clone again.', evidence: [{ text: `ip netns list: ${f.namespaces.join(' ') || '(none)'}` }] }],
    };
  }
  if (!f.cloneLinks) return { saw: `cannot list links in ${c.netns}`, findings: [], skipped: 'probe failed' };
  const tap = f.cloneLinks.find((l) => l.ifname === c.guest.tap);
  const veth = f.cloneLinks.find((l) => l.ifname === c.cloneIfname);
  const side = f.vmLinks?.find((l) => l.ifname === c.hostIfname);
  const findings: F[] = [];
  const nsArg = `ip -n ${c.netns}`;
  if (!tap) {
    findings.push({ code: 'DOC_TAP_MISSING', severity: 'error', option: null, message: `The clone's TAP ${c.guest.tap} does not exist in its namespace ${c.netns}: the guest's NIC is connected to nothing.`,
      fix: 'Stop and start the VM (its network is created at start).', evidence: [{ text: `links in ${c.netns}: ${f.cloneLinks.map((l) => l.ifname).join(' ')}` }] });
  } else if (!tap.flags.includes('UP')) {
    findings.push({ code: 'DOC_TAP_DOWN', severity: 'error', option: null, message: `The clone's TAP ${c.guest.tap} (namespace ${c.netns}) is administratively down: the guest's frames are dropped at the host end.`,
      fix: `${nsArg} link set ${c.guest.tap} up`, evidence: [{ text: describeLink(tap) }] });
  } else if (!tap.flags.includes('LOWER_UP')) {
    findings.push({ code: 'DOC_TAP_NO_CARRIER', severity: 'error', option: null, message: `The clone's TAP ${c.guest.tap} (namespace ${c.netns}) has no carrier: no VMM process holds it open.`,
      fix: 'Check the VMM process runs; restart the VM.', evidence: [{ text: describeLink(tap) }] });
  }
  const broken: string[] = [];
  const ev: string[] = [];
  const gw = `${c.guest.gateway}/${c.guest.prefix}`;
  if (tap && !has(tap, gw)) { broken.push(`its TAP ${c.guest.tap} lacks the guest's gateway address ${gw}`); ev.push(describeLink(tap)); }
  const inner = `${c.link.cloneAddress}/${c.link.prefix}`;
  if (!veth || !veth.flags.includes('UP') || !has(veth, inner)) { broken.push(veth ? `the veth end ${c.cloneIfname} is not up with ${inner}` : `the veth end ${c.cloneIfname} is missing`); ev.push(veth ? describeLink(veth) : `no ${c.cloneIfname} in ${c.netns}`); }
  const outer = `${c.link.hostAddress}/${c.link.prefix}`;
  if (f.vmLinks && (!side || !side.flags.includes('UP') || !has(side, outer))) { broken.push(side ? `the VM-side veth end ${c.hostIfname} is not up with ${outer}` : `the VM-side veth end ${c.hostIfname} is missing`); ev.push(side ? describeLink(side) : `no ${c.hostIfname} on the VM side`); }
  if (broken.length) {
    findings.push({ code: 'DOC_CLONE_NET_BROKEN', severity: 'error', option: null,
      message: `The clone's network is broken (namespace ${c.netns}): ${broken.join('; ')}. The host reaches the clone at ${v.plan!.ip} through that veth pair, translated to ${c.guest.ip} inside.`,
      fix: 'Stop and start the VM (a start recreates its network).', evidence: ev.map((text) => ({ text })) });
  }
  const saw = [tap ? describeLink(tap) : `no ${c.guest.tap}`, veth ? describeLink(veth) : `no ${c.cloneIfname}`, side ? `VM side ${describeLink(side)}` : ''].filter(Boolean).join('; ');
  return { saw: `${c.netns}: ${saw}`, findings };
}

// ---------------------------------------------------------------- all VM checks

/** Where each check's facts come from (the runner turns these into what ran). */
export type VmFactSource = 'store' | 'procs' | 'files' | 'vmLinks' | 'cloneLinks' | 'neigh' | 'icmp' | 'tcp' | 'console' | 'agent';

export interface VmFacts {
  view: VmView;
  all: readonly VmView[];
  cfg: NetConfig;
  now: number;
  graceMs: number;
  procs: readonly ProcFacts[] | null;
  files: ReadonlyMap<string, FileFact> | null;
  namespaces: readonly string[] | null;
  vmLinks: readonly LinkFact[] | null;
  cloneLinks: readonly LinkFact[] | null;
  /** null: not probed (the guest cannot answer in this state). */
  reach: ReachFacts | null;
  /** The console log's text; null when there is none (not started yet) or it could not be read (consoleError). */
  console: string | null;
  consoleError?: string;
  /** What the guest agent saw inside (undefined: no agent support; null: not asked in this state). */
  guest?: GuestFacts | null;
}

export interface VmVerdict {
  id: string;
  title: string;
  uses: VmFactSource[];
  verdict: Verdict;
}

/** Every VM check's verdict, in report order. Pure. */
export function judgeVm(f: VmFacts): VmVerdict[] {
  const v = f.view;
  const vm = v.vm;
  const plan = v.plan;
  const clone = cloneOf(v);
  const inGrace = vm.state === 'booting' && f.now - Date.parse(vm.updatedAt) < f.graceMs;
  const notLive = (): Verdict => {
    const why = `VM is ${vm.state}${vm.hibernation ? ' (hibernated)' : ''}: ${vm.state === 'paused' ? 'its vCPUs are stopped, the guest answers nothing by design' : 'no guest to reach'}`;
    return { saw: why, findings: [], skipped: why };
  };
  const reached = isReachable(v) && f.reach ? f.reach : null;
  const guest = guestAddress(v);
  return [
    { id: 'vm.state', title: `VM ${vm.id} state`, uses: ['store'], verdict: judgeVmState(v, f.now, f.graceMs) },
    { id: 'vm.vmm', title: 'VMM process', uses: ['procs'], verdict: judgeVmmProcess(v, f.procs) },
    { id: 'vm.files', title: 'Files of the VM\'s own (kernel, disk, saved state)', uses: ['files'], verdict: judgeVmFiles(v, vmFiles(v), f.files) },
    { id: 'vm.bootargs', title: clone ? 'Boot arguments against the snapshot\'s guest network' : 'Boot arguments against the allocation', uses: ['store'], verdict: judgeBootArgs(v) },
    { id: 'vm.duplicates', title: 'Duplicate MAC/IP across VMs', uses: ['store'], verdict: judgeDuplicates(v, f.all) },
    clone
      ? { id: 'vm.tap', title: `Clone network ${clone.netns} (TAP ${clone.guest.tap}, veth ${clone.hostIfname})`, uses: ['cloneLinks', 'vmLinks'], verdict: judgeCloneNet(v, f) }
      : { id: 'vm.tap', title: `TAP ${plan?.tap ?? ''}`.trim(), uses: ['vmLinks'], verdict: judgeTap(f.cfg, v, f.vmLinks) },
    { id: 'vm.neighbour', title: `ARP/neighbour state of ${plan?.ip ?? 'the guest'}`, uses: ['neigh'], verdict: reached ? judgeNeighbour(f.cfg, v, f.all, reached) : notLive() },
    { id: 'vm.icmp', title: 'ICMP echo', uses: ['icmp'], verdict: reached ? judgeIcmp(v, reached, f.cfg) : notLive() },
    { id: 'vm.vnc', title: 'TCP to the VNC port', uses: ['tcp'], verdict: reached ? judgeVnc(v, reached.tcp, inGrace) : notLive() },
    { id: 'vm.console', title: 'Serial console', uses: ['console'], verdict: judgeConsole(v, f, inGrace, guest?.address) },
    ...(f.guest !== undefined ? [{
      id: 'vm.guest', title: 'Inside the guest (its agent: eth0, routes, listening sockets, failed processes)', uses: ['agent'] as VmFactSource[],
      verdict: f.guest && isReachable(v) ? judgeGuest(f.guest, { address: guest?.address, gateway: guest?.gateway, booting: inGrace }) : notLive(),
    }] : []),
  ];
}

function judgeConsole(v: VmView, f: VmFacts, inGrace: boolean, expectIp: string | undefined): Verdict {
  if (f.console === null) {
    if (v.vm.state === 'creating' || !f.consoleError) return { saw: 'no console yet', findings: [], skipped: 'not started' };
    return {
      saw: `unreadable: ${f.consoleError}`, skipped: 'probe failed',
      findings: [{ code: 'DOC_PROBE_FAILED', severity: 'warning', option: null, message: `The console log cannot be read (${f.consoleError}).`, fix: 'Fix what the error names (permissions) and run the doctor again.', evidence: [{ text: f.consoleError }] }],
    };
  }
  const report = classifyConsole(f.console, expectIp ? { expectIp } : {});
  const t = report.timeline;
  const restored = report.facts.restores.length ? `, restored ${report.facts.restores.length} time(s)` : '';
  const boot = report.facts.boots === 0 ? 'no boot in this log (restored from a snapshot)' : `${report.facts.kernelVersion ? `kernel ${report.facts.kernelVersion}, ` : ''}ready at ${t.ready ?? '-'} s guest time`;
  const findings = adjustConsole(report, inGrace, v.vm.state);
  return { saw: `${boot}${restored}; ${findings.filter((x) => x.severity !== 'info').length} finding(s)`, findings };
}

