// `hangar doctor`: runs the host, image and VM checks (independent probes in parallel), judges each from what its
// probes saw, and orders every finding so the most likely cause comes first. Read-only: it never changes the host.
import { judgeEgress, type EgressFacts } from './egress.js';
import { join } from 'node:path';
import type { AgentPort } from '../agent/port.js';
import { isHangarError } from '../errors.js';
import type { ImageInfo } from '../image/store.js';
import { readKernel } from '../kernel/image-reader.js';
import { lintImage, VMMS } from '../kernel/lint.js';
import type { NetConfig } from '../net/config.js';
import type { Dialer } from '../net/dial.js';
import { GUEST_INIT_PATH, VNC_PORT } from '../guest-protocol.js';
import type { VmRecord } from '../store/store.js';
import type { ImageSource } from '../vm/manager.js';
import type { HostInfo } from '../vm/service.js';
import {
  cloneOf, guestAddress, IMAGE_FILE_REQUESTS, isClone, judgeAccel, judgeBridge, judgeDesktopBinaries, judgeForwarding, judgeFsck, judgeHostLink,
  judgeInit, judgeLeftovers, judgeLint, judgeNetfilter, judgeNetns, judgeNetOverrides, judgeRpFilter, judgeTun, judgeCgroups, judgeVmmDrivers, judgeVmmProcess,
  LIVE_STATES, lsNames, rpFilterKeys, vmSideNs, vmView, type ReachFacts, type VmView,
} from './judges.js';
import { detectCgroups } from '../vmm/cgroup/host.js';
import { mergeByCode, orderDoctorFindings, topCause, type CheckScope, type DoctorCheck, type DoctorFinding, type DoctorReport, type Verdict } from './model.js';
import {
  probeAccel, probeBrNetfilter, probeDebugfs, probeDir, probeFdb, probeFile, probeForwardChain, probeFsck, probeLinks, probeNeigh,
  probeFiles, probeNetns, probePing, probeRouteGet, probeRoutes, probeSysctl, probeTcp, probeTun, probeVmmProcesses, type LinkFact, type ProcFacts, type Probed,
} from './probes.js';
import { probeGuest } from './guest.js';
import { isReachable, isRunning, judgeVm, unanswered, vmFiles, type VmFactSource, type VmFacts } from './vm.js';

/** What the doctor needs from the VM manager (VmManager provides all of it). */
export interface DoctorTarget {
  readonly netConfig: NetConfig;
  readonly vmDialer: Dialer;
  readonly imageSource?: ImageSource;
  readonly stateDir?: string;
  list(): VmRecord[];
  get(idOrName: string): VmRecord;
  consolePath(idOrName: string): string;
  host(): Promise<HostInfo>;
  /** The evidence of a VM's way out (absent: no egress layer, the check is skipped). */
  egressFacts?(idOrName: string): Promise<EgressFacts | null>;
}

export interface DoctorDeps {
  manager: DoctorTarget;
  /** Guest agents: when the VM's answers, its view from inside (eth0, routes, listening sockets, failed processes). */
  agents?: AgentPort;
  /** Where images resolve; default the manager's. */
  images?: ImageSource;
  /** The controller's state directory (run directories live in STATEDIR/vms); default the manager's. */
  stateDir?: string;
  now?: () => number;
}

export interface DoctorOptions {
  /** Examine this VM (id or name) besides the host and its image. */
  vm?: string;
  /** A VM booting for less than this is not blamed for being unready (default 20 s). */
  bootGraceMs?: number;
}

export const DEFAULT_BOOT_GRACE_MS = 20_000;

/** Runs a check body and records what it ran, saw and concluded. */
async function check(id: string, scope: CheckScope, title: string, body: () => Promise<{ ran: string[]; verdict: Verdict }>): Promise<DoctorCheck> {
  const t0 = performance.now();
  let ran: string[] = [];
  let verdict: Verdict;
  try {
    ({ ran, verdict } = await body());
  } catch (e) {
    verdict = {
      saw: `check failed: ${(e as Error).message}`,
      skipped: (e as Error).message,
      findings: [{ code: 'DOC_PROBE_FAILED', severity: 'warning', option: null, message: `The ${title} check could not run: ${(e as Error).message}`, fix: 'Fix what the message names (a missing tool, permissions) and run the doctor again.', evidence: [{ text: (e as Error).message }] }],
    };
  }
  return toCheck(id, scope, title, ran, verdict, Math.round(performance.now() - t0));
}

/** A check's record from its verdict. */
function toCheck(id: string, scope: CheckScope, title: string, ran: string[], verdict: Verdict, ms: number): DoctorCheck {
  const findings: DoctorFinding[] = verdict.findings.map((f) => ({ ...f, check: id }));
  const worst = findings.some((f) => f.severity === 'error') ? 'error' : findings.some((f) => f.severity === 'warning') ? 'warning' : findings.length ? 'info' : 'ok';
  return { id, scope, title, ran, saw: verdict.saw, status: verdict.skipped && !findings.length ? 'skipped' : worst, findings, ms };
}

/** A probe that failed to run is itself worth a warning: the doctor could not look there. */
function probeFailure(title: string, ...probes: Probed<unknown>[]): Verdict | null {
  const failed = probes.filter((p) => p.value === null && p.error);
  if (!failed.length) return null;
  return {
    saw: failed.map((p) => `${p.ran.join(', ')}: ${p.error}`).join('; '),
    skipped: 'probe failed',
    findings: [{ code: 'DOC_PROBE_FAILED', severity: 'warning', option: null, message: `${title}: ${failed.map((p) => `"${p.ran[0]}" failed (${p.error})`).join('; ')}.`, fix: 'Install the missing tool or fix what the error names, then run the doctor again.', evidence: failed.map((p) => ({ text: `${p.ran[0]}: ${p.error}` })) }],
  };
}

const ranOf = (...probes: (Probed<unknown> | null | undefined)[]): string[] => probes.flatMap((p) => p?.ran ?? []);

/** Memoised probes shared by several checks. */
function lazy<T>(fn: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () => (p ??= fn());
}

export async function runDoctor(deps: DoctorDeps, opts: DoctorOptions = {}): Promise<DoctorReport> {
  const t0 = performance.now();
  const now = deps.now ?? Date.now;
  const startedAt = new Date(now()).toISOString();
  const m = deps.manager;
  const cfg = m.netConfig;
  const images = deps.images ?? m.imageSource;
  const stateDir = deps.stateDir ?? m.stateDir;
  const runRoot = stateDir ? join(stateDir, 'vms') : null;
  const graceMs = opts.bootGraceMs ?? DEFAULT_BOOT_GRACE_MS;
  // Resolve the VM first: an unknown id is the caller's error (VM_NOT_FOUND), not a finding.
  const target = opts.vm !== undefined ? vmView(m.get(opts.vm)) : null;
  const vms = m.list().map(vmView);
  const vmNs = vmSideNs(cfg);
  const netns = cfg.mode === 'netns';

  const p = {
    namespaces: lazy(probeNetns),
    vmLinks: lazy(() => probeLinks(vmNs)),
    hostLinks: lazy(() => (netns ? probeLinks(cfg.hostNetns) : probeLinks(vmNs))),
    hostRoutes: lazy(() => probeRoutes(cfg.hostNetns)),
    vmSysctl: lazy(() => probeSysctl(vmNs, ['net.ipv4.ip_forward', 'net.bridge.bridge-nf-call-iptables', ...rpFilterKeys(cfg).vm])),
    hostSysctl: lazy(() => probeSysctl(cfg.hostNetns, rpFilterKeys(cfg).host)),
    forward: lazy(() => probeForwardChain(vmNs)),
    procs: lazy(probeVmmProcesses),
    host: lazy(() => m.host()),
  };

  const hostChecks: Promise<DoctorCheck>[] = [
    check('host.vmm', 'host', 'VMM binaries', async () => {
      const h = await p.host();
      return { ran: ['probe each configured VMM driver (binary --version, machine types)'], verdict: judgeVmmDrivers(h.drivers, [...new Set(vms.map((v) => v.vm.vmm))]) };
    }),
    check('host.accel', 'host', 'Accelerator', async () => {
      const [acc, procs] = await Promise.all([probeAccel(), p.procs()]);
      const accels = vms.filter((v) => LIVE_STATES.includes(v.vm.state)).map((v) => ({ vmId: v.vm.id, accel: judgeVmmProcess(v, procs.value).accel }));
      return { ran: ranOf(acc, procs), verdict: judgeAccel(acc.value!, accels) };
    }),
    check('host.cgroups', 'host', 'Cgroups for VMM limits', async () => {
      const d = await detectCgroups();
      const root = d.layout ? [...d.layout.roots.values()][0] ?? null : null;
      return { ran: ['read /proc/self/mountinfo and /proc/self/cgroup'], verdict: judgeCgroups({ version: d.layout?.version ?? null, reason: d.reason, root: root ? `${root}/` : null }) };
    }),
    check('host.tun', 'host', '/dev/net/tun', async () => {
      const t = await probeTun();
      return { ran: t.ran, verdict: judgeTun(t.value!) };
    }),
    check('host.netns', 'host', 'Network namespaces', async () => {
      const n = await p.namespaces();
      return { ran: n.ran, verdict: judgeNetns(cfg, n.value) };
    }),
    check('host.bridge', 'host', `Bridge ${cfg.bridge}`, async () => {
      const l = await p.vmLinks();
      return { ran: l.ran, verdict: judgeBridge(cfg, l.value) };
    }),
    check('host.link', 'host', 'Host side ↔ VM namespace', async () => {
      if (!netns) return { ran: [], verdict: judgeHostLink(cfg, { hostLinks: null, nsLinks: null, hostRoutes: null }) };
      const [h, n, r] = await Promise.all([p.hostLinks(), p.vmLinks(), p.hostRoutes()]);
      return { ran: ranOf(h, n, r), verdict: probeFailure('host link', r) ?? judgeHostLink(cfg, { hostLinks: h.value, nsLinks: n.value, hostRoutes: r.value }) };
    }),
    check('host.forwarding', 'host', 'IPv4 forwarding in the VM namespace', async () => {
      if (!netns) return { ran: [], verdict: judgeForwarding(cfg, null) };
      const s = await p.vmSysctl();
      return { ran: s.ran, verdict: judgeForwarding(cfg, s.value) };
    }),
    check('host.netfilter', 'host', 'FORWARD chain and br_netfilter', async () => {
      const [s, fw, l] = await Promise.all([p.vmSysctl(), p.forward(), p.vmLinks()]);
      const br = await probeBrNetfilter(s.value);
      return {
        ran: ranOf(fw, s, br),
        verdict: probeFailure('FORWARD chain', fw) ?? judgeNetfilter(cfg, { sysctl: s.value, brNetfilter: br.value!.active, bridge: l.value?.find((x) => x.ifname === cfg.bridge), forward: fw.value }),
      };
    }),
    check('host.rp_filter', 'host', 'Reverse-path filtering', async () => {
      if (!netns) return { ran: [], verdict: judgeRpFilter(cfg, { vmSysctl: null, hostSysctl: null, nsRouteToHost: null, hostRouteToVms: null }) };
      const [vs, hs, r1, r2] = await Promise.all([p.vmSysctl(), p.hostSysctl(), probeRouteGet(cfg.netns, cfg.hostLink!.hostAddress), probeRouteGet(cfg.hostNetns, cfg.gateway)]);
      return { ran: ranOf(vs, hs, r1, r2), verdict: judgeRpFilter(cfg, { vmSysctl: vs.value, hostSysctl: hs.value, nsRouteToHost: r1.value, hostRouteToVms: r2.value }) };
    }),
    check('host.leftovers', 'host', 'Leftovers (TAPs, run directories, VMM processes without a VM)', async () => {
      const [l, procs, dirs] = await Promise.all([p.vmLinks(), p.procs(), runRoot ? probeDir(runRoot) : Promise.resolve(null)]);
      const re = new RegExp(`^${cfg.tapPrefix.replace(/-/g, '\\-')}\\d+$`);
      const taps = l.value?.filter((x: LinkFact) => x.kind === 'tun' && re.test(x.ifname)).map((x) => ({ name: x.ifname, master: x.master ?? null, up: x.flags.includes('UP') })) ?? null;
      return { ran: ranOf(l, procs, dirs), verdict: judgeLeftovers({ taps, vms: vms.map((v) => v.vm), runDirs: dirs?.value ?? null, runRoot, procs: procs.value }) };
    }),
  ];

  const imageChecks = (async (): Promise<DoctorCheck[]> => {
    const list = await imagesToCheck(images, target, vms);
    return (await Promise.all(list.map((ref) => checkImage(images, ref)))).flat();
  })();

  const vmChecks = target ? checkVm(target, vms, { cfg, dialer: m.vmDialer, consolePath: m.consolePath(target.vm.id), now: now(), graceMs, vmLinks: p.vmLinks, procs: p.procs, namespaces: async () => (await p.namespaces()), ...(deps.agents ? { agents: deps.agents } : {}) }) : Promise.resolve([]);

  const egressCheck = target && m.egressFacts ? [check('vm.egress', 'vm', 'Egress (uplink, NAT, DNS, proxy, policy)', async () => {
    const facts = await m.egressFacts!(target.vm.id);
    return { ran: ['nft counters and postrouting', 'netd stats', 'ip link/route of the uplink'], verdict: facts ? judgeEgress(facts) : { saw: 'no network', findings: [], skipped: 'the VM has no network' } };
  })] : [];
  const checks = [...(await Promise.all(hostChecks)), ...(await imageChecks), ...(await vmChecks), ...(await Promise.all(egressCheck))];
  const findings = orderDoctorFindings(mergeByCode(checks.flatMap((c) => c.findings)));
  const t = target?.vm;
  return {
    ok: !findings.some((f) => f.severity === 'error'),
    vm: t ? {
      id: t.id, name: t.name, state: t.state, ip: target!.plan?.ip ?? null, mac: target!.plan?.mac ?? null, tap: target!.plan?.tap ?? null,
      snapshotId: t.snapshotId ?? null, hibernated: Boolean(t.hibernation),
    } : null,
    checks,
    findings,
    mostLikelyCause: topCause(findings),
    startedAt,
    durationMs: Math.round(performance.now() - t0),
  };
}

/** The target VM's image; without a VM, the images VMs use, or the newest image of each profile. */
async function imagesToCheck(images: ImageSource | undefined, target: VmView | null, vms: readonly VmView[]): Promise<string[]> {
  if (!images) return [];
  if (target) return [target.vm.imageId];
  const used = [...new Set(vms.map((v) => v.vm.imageId))];
  if (used.length) return used;
  const newest = new Map<string, string>();
  for (const i of await images.list().catch(() => [] as ImageInfo[])) if (!newest.has(i.profile)) newest.set(i.profile, i.id); // list is newest first
  return [...newest.values()];
}

async function checkImage(images: ImageSource | undefined, ref: string): Promise<DoctorCheck[]> {
  let image: ImageInfo;
  try {
    image = await images!.resolve(ref);
  } catch (e) {
    return [await check('image', 'image', `Image ${ref}`, async () => ({
      ran: [`resolve image ${ref}`],
      verdict: { saw: (e as Error).message, findings: [{ code: 'DOC_IMAGE_UNREADABLE', severity: 'error', option: null, message: `The VM's image ${ref} cannot be read: ${(e as Error).message}`, fix: isHangarError(e, 'IMAGE_NOT_FOUND') ? 'Rebuild the image (hangar image build) or create VMs from an image that exists.' : 'Rebuild the image (hangar image build --force).', evidence: [{ text: (e as Error).message }] }] },
    }))];
  }
  const files = lazy(() => probeDebugfs(image.rootfsPath, [...IMAGE_FILE_REQUESTS]));
  return Promise.all([
    check('image.lint', 'image', `Kernel lint of ${image.id} (${VMMS.join(', ')})`, async () => {
      const k = await readKernel(image.kernelPath);
      const reports = VMMS.map((vmm) => ({ vmm, report: lintImage(k, { vmm, initrd: false, ipBoot: true }) }));
      return { ran: [`read ${image.kernelPath} (embedded config)`, ...VMMS.map((v) => `lint for ${v} (no initrd, ip= boot)`)], verdict: judgeLint(reports) };
    }),
    check('image.rootfs', 'image', `Root filesystem of ${image.id}`, async () => {
      const f = await probeFsck(image.rootfsPath);
      return { ran: f.ran, verdict: probeFailure('e2fsck', f) ?? judgeFsck(image.rootfsPath, f.value!) };
    }),
    check('image.init', 'image', `Guest init ${GUEST_INIT_PATH}`, async () => {
      const d = await files();
      return { ran: d.ran, verdict: probeFailure('debugfs', d) ?? judgeInit(d.value!) };
    }),
    check('image.desktop', 'image', 'Desktop binaries (Xvfb, x11vnc)', async () => {
      const d = await files();
      return { ran: d.ran, verdict: probeFailure('debugfs', d) ?? judgeDesktopBinaries(d.value!) };
    }),
    check('image.netconfig', 'image', 'Guest files that would override ip=', async () => {
      const d = await files();
      if (!d.value) return { ran: d.ran, verdict: probeFailure('debugfs', d)! };
      const hookNames = lsNames(d.value.out.get('ls -p /etc/hangar/init.d')).filter((n) => n.endsWith('.sh'));
      const hooks = new Map<string, string>();
      let ran = d.ran;
      if (hookNames.length) {
        const h = await probeDebugfs(image.rootfsPath, hookNames.map((n) => `cat /etc/hangar/init.d/${n}`));
        ran = [...ran, ...h.ran];
        for (const n of hookNames) hooks.set(n, h.value?.out.get(`cat /etc/hangar/init.d/${n}`) ?? '');
      }
      return { ran, verdict: judgeNetOverrides(d.value, hooks) };
    }),
  ]);
}

interface VmCheckCtx {
  cfg: NetConfig;
  dialer: Dialer;
  consolePath: string;
  now: number;
  graceMs: number;
  vmLinks: () => Promise<Probed<LinkFact[]>>;
  procs: () => Promise<Probed<ProcFacts[]>>;
  namespaces: () => Promise<Probed<string[]>>;
  agents?: AgentPort;
}

type Timed<T> = Probed<T> & { ms: number };

async function timed<T>(p: Promise<Probed<T>>): Promise<Timed<T>> {
  const t0 = performance.now();
  const r = await p;
  return { ...r, ms: Math.round(performance.now() - t0) };
}

type Reach = { ran: Record<'neigh' | 'icmp' | 'tcp', string[]>; facts: ReachFacts };

/**
 * ICMP from both sides and a dial of the VNC port; for a VM on the bridge, what ARP and the bridge learned too. A
 * round without an answer is run once more, and the second round is judged: a link that has just come back (a TAP
 * set up again, a VM just restored) drops the first packets for up to a second (the kernel's linkwatch), and a
 * healthy VM must not be reported unreachable for it.
 */
async function probeReach(v: VmView, c: VmCheckCtx): Promise<Reach & { ms: number }> {
  const t0 = performance.now();
  const first = await reachRound(v, c);
  if (!unanswered(first.facts)) return { ...first, ms: Math.round(performance.now() - t0) };
  const second = await reachRound(v, c);
  const again = (ran: string[]): string[] => ran.map((x) => `again: ${x}`);
  return {
    ran: { neigh: [...first.ran.neigh, ...again(second.ran.neigh)], icmp: [...first.ran.icmp, ...again(second.ran.icmp)], tcp: [...first.ran.tcp, ...again(second.ran.tcp)] },
    facts: second.facts,
    ms: Math.round(performance.now() - t0),
  };
}

async function reachRound(v: VmView, c: VmCheckCtx): Promise<Reach> {
  const ip = v.plan!.ip;
  const ns = vmSideNs(c.cfg);
  // A clone is reached at its pool address through its own veth (translated in its namespace), not on the bridge.
  const bridge = !isClone(v);
  const neighBefore = bridge ? await probeNeigh(ns, c.cfg.bridge) : null;
  const [ns1, host1, tcp] = await Promise.all([
    probePing(ns, ip).then(async (r) => ({ r, neigh: bridge ? await probeNeigh(ns, c.cfg.bridge) : null, fdb: bridge ? await probeFdb(ns, c.cfg.bridge) : null })),
    c.cfg.mode === 'netns' ? probePing(c.cfg.hostNetns, ip) : Promise.resolve(null),
    probeTcp(c.dialer, ip, VNC_PORT),
  ]);
  return {
    ran: { neigh: ranOf(neighBefore, ns1.r, ns1.neigh, ns1.fdb), icmp: ranOf(ns1.r, host1), tcp: tcp.ran },
    facts: { pingNs: ns1.r.value, pingHost: host1?.value ?? null, neighBefore: neighBefore?.value ?? null, neighAfter: ns1.neigh?.value ?? null, fdb: ns1.fdb?.value ?? null, tcp: tcp.value },
  };
}

/** Probes what the VM's state and provenance call for (in parallel), then judges every VM check from the facts. */
async function checkVm(v: VmView, all: readonly VmView[], c: VmCheckCtx): Promise<DoctorCheck[]> {
  const clone = cloneOf(v);
  const files = vmFiles(v);
  const none = Promise.resolve(null);
  const t0 = performance.now();
  const [procs, vmLinks, namespaces, cloneLinks, fileFacts, con, reach, guest] = await Promise.all([
    timed(c.procs()), timed(c.vmLinks()), timed(c.namespaces()),
    clone && isRunning(v) ? timed(probeLinks(clone.netns)) : none,
    timed(probeFiles(files.map((f) => f.path))),
    timed(probeFile(c.consolePath)),
    isReachable(v) ? probeReach(v, c) : none,
    c.agents && isReachable(v) ? probeGuest(c.agents, v.vm.id).then((g) => ({ ...g, ms: Math.round(performance.now() - t0) })) : none,
  ]);
  const expect = guestAddress(v)?.address;
  const sources: Record<VmFactSource, { ran: string[]; ms: number }> = {
    store: { ran: [`store: VM ${v.vm.id} (its record, spec and allocation; ${all.length} VM(s))`], ms: 0 },
    procs, files: fileFacts, vmLinks, cloneLinks: cloneLinks ?? { ran: [], ms: 0 },
    neigh: { ran: reach?.ran.neigh ?? [], ms: reach?.ms ?? 0 }, icmp: { ran: reach?.ran.icmp ?? [], ms: reach?.ms ?? 0 }, tcp: { ran: reach?.ran.tcp ?? [], ms: reach?.ms ?? 0 },
    console: { ran: con.ran.map((x) => `${x}, classify (expect ${expect ?? 'no address'})`), ms: con.ms },
    agent: { ran: guest?.ran ?? [], ms: guest?.ms ?? 0 },
  };
  const facts: VmFacts = {
    view: v, all, cfg: c.cfg, now: c.now, graceMs: c.graceMs,
    procs: procs.value, files: fileFacts.value, namespaces: namespaces.value, vmLinks: vmLinks.value, cloneLinks: cloneLinks?.value ?? null,
    reach: reach?.facts ?? null,
    // No console log yet (the VMM never started) is not a failure to read one.
    console: con.value, ...(con.value === null && con.error && con.error !== 'ENOENT' ? { consoleError: con.error } : {}),
    ...(c.agents ? { guest: guest?.value ?? null } : {}),
  };
  return judgeVm(facts).map((j) => {
    const used = j.uses.map((u) => sources[u]);
    return toCheck(j.id, 'vm', j.title, used.flatMap((u) => u.ran), j.verdict, Math.max(0, ...used.map((u) => u.ms)));
  });
}
