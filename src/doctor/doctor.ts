// `hangar doctor`: runs the host, image and VM checks (independent probes in parallel), judges each from what its
// probes saw, and orders every finding so the most likely cause comes first. Read-only: it never changes the host.
import { join } from 'node:path';
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
import { classifyConsole } from './console.js';
import {
  adjustConsole, IMAGE_FILE_REQUESTS, judgeAccel, judgeBootArgs, judgeBridge, judgeDesktopBinaries, judgeDuplicates, judgeForwarding,
  judgeFsck, judgeHostLink, judgeIcmp, judgeInit, judgeLeftovers, judgeLint, judgeNeighbour, judgeNetfilter, judgeNetns,
  judgeNetOverrides, judgeRpFilter, judgeTap, judgeTun, judgeVmmDrivers, judgeVmmProcess, judgeVmState, judgeVnc, isClone, LIVE_STATES,
  lsNames, rpFilterKeys, vmSideNs, vmView, type ReachFacts, type VmView,
} from './judges.js';
import { mergeByCode, orderDoctorFindings, topCause, type CheckScope, type DoctorCheck, type DoctorFinding, type DoctorReport, type Verdict } from './model.js';
import {
  probeAccel, probeBrNetfilter, probeDebugfs, probeDir, probeFdb, probeFile, probeForwardChain, probeFsck, probeLinks, probeNeigh,
  probeNetns, probePing, probeRouteGet, probeRoutes, probeSysctl, probeTcp, probeTun, probeVmmProcesses, type LinkFact, type ProcFacts, type Probed,
} from './probes.js';

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
}

export interface DoctorDeps {
  manager: DoctorTarget;
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
  const findings: DoctorFinding[] = verdict.findings.map((f) => ({ ...f, check: id }));
  const worst = findings.some((f) => f.severity === 'error') ? 'error' : findings.some((f) => f.severity === 'warning') ? 'warning' : findings.length ? 'info' : 'ok';
  return { id, scope, title, ran, saw: verdict.saw, status: verdict.skipped && !findings.length ? 'skipped' : worst, findings, ms: Math.round(performance.now() - t0) };
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

  const vmChecks = target ? checkVm(target, vms, { cfg, dialer: m.vmDialer, consolePath: m.consolePath(target.vm.id), now: now(), graceMs, vmLinks: p.vmLinks, procs: p.procs }) : Promise.resolve([]);

  const checks = [...(await Promise.all(hostChecks)), ...(await imageChecks), ...(await vmChecks)];
  const findings = orderDoctorFindings(mergeByCode(checks.flatMap((c) => c.findings)));
  const t = target?.vm;
  return {
    ok: !findings.some((f) => f.severity === 'error'),
    vm: t ? { id: t.id, name: t.name, state: t.state, ip: target!.plan?.ip ?? null, mac: target!.plan?.mac ?? null, tap: target!.plan?.tap ?? null } : null,
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
}

async function checkVm(v: VmView, all: readonly VmView[], c: VmCheckCtx): Promise<DoctorCheck[]> {
  const vm = v.vm;
  const plan = v.plan;
  const inGrace = vm.state === 'booting' && c.now - Date.parse(vm.updatedAt) < c.graceMs;
  const reachable = ['booting', 'ready'].includes(vm.state) && plan !== null && !isClone(v);
  const ns = vmSideNs(c.cfg);
  // Active probes: ping from the bridge's side, then read what ARP and the bridge learned; in parallel, ping from
  // the host side and dial the VNC port the way the desktop proxy does.
  const reach = lazy(async (): Promise<{ ran: { neigh: string[]; icmp: string[]; tcp: string[] }; facts: ReachFacts }> => {
    const ip = plan!.ip;
    const neighBefore = await probeNeigh(ns, c.cfg.bridge);
    const [ns1, host1, tcp] = await Promise.all([
      probePing(ns, ip).then(async (r) => ({ r, neigh: await probeNeigh(ns, c.cfg.bridge), fdb: await probeFdb(ns, c.cfg.bridge) })),
      c.cfg.mode === 'netns' ? probePing(c.cfg.hostNetns, ip) : Promise.resolve(null),
      probeTcp(c.dialer, ip, VNC_PORT),
    ]);
    return {
      ran: { neigh: ranOf(neighBefore, ns1.r, ns1.neigh, ns1.fdb), icmp: ranOf(ns1.r, host1), tcp: tcp.ran },
      facts: { pingNs: ns1.r.value, pingHost: host1?.value ?? null, neighBefore: neighBefore.value, neighAfter: ns1.neigh.value, fdb: ns1.fdb.value, tcp: tcp.value },
    };
  });
  const notLive = `VM is ${vm.state}: ${vm.state === 'paused' ? 'its vCPUs are stopped, the guest answers nothing by design' : 'no guest to reach'}`;
  return Promise.all([
    check('vm.state', 'vm', `VM ${vm.id} state`, async () => ({ ran: [`store: VM ${vm.id}`], verdict: judgeVmState(v, c.now, c.graceMs) })),
    check('vm.vmm', 'vm', 'VMM process', async () => {
      const procs = await c.procs();
      return { ran: procs.ran, verdict: judgeVmmProcess(v, procs.value) };
    }),
    check('vm.bootargs', 'vm', 'Boot arguments against the allocation', async () => ({ ran: [`store: VM ${vm.id} machine spec and allocation`], verdict: judgeBootArgs(v) })),
    check('vm.duplicates', 'vm', 'Duplicate MAC/IP across VMs', async () => ({ ran: [`store: ${all.length} VM(s), their specs and allocations`], verdict: judgeDuplicates(v, all) })),
    check('vm.tap', 'vm', `TAP ${plan?.tap ?? ''}`.trim(), async () => {
      const l = await c.vmLinks();
      return { ran: l.ran, verdict: judgeTap(c.cfg, v, l.value) };
    }),
    check('vm.neighbour', 'vm', `ARP/neighbour state of ${plan?.ip ?? 'the guest'}`, async () => {
      if (!reachable) return { ran: [], verdict: { saw: notLive, findings: [], skipped: notLive } };
      const r = await reach();
      return { ran: r.ran.neigh, verdict: judgeNeighbour(c.cfg, v, all, r.facts) };
    }),
    check('vm.icmp', 'vm', 'ICMP echo', async () => {
      if (!reachable) return { ran: [], verdict: { saw: notLive, findings: [], skipped: notLive } };
      const r = await reach();
      return { ran: r.ran.icmp, verdict: judgeIcmp(v, r.facts, c.cfg) };
    }),
    check('vm.vnc', 'vm', `TCP to the VNC port ${VNC_PORT}`, async () => {
      if (!reachable) return { ran: [], verdict: { saw: notLive, findings: [], skipped: notLive } };
      const r = await reach();
      return { ran: r.ran.tcp, verdict: judgeVnc(v, r.facts.tcp, inGrace) };
    }),
    check('vm.console', 'vm', 'Serial console', async () => {
      const f = await probeFile(c.consolePath);
      if (f.value === null) {
        return { ran: f.ran, verdict: vm.state === 'creating' ? { saw: 'no console yet', findings: [], skipped: 'not started' } : (probeFailure('console log', f) ?? { saw: 'unreadable', findings: [] }) };
      }
      const report = classifyConsole(f.value, plan ? { expectIp: plan.ip } : {});
      const t = report.timeline;
      const saw = `${report.facts.kernelVersion ? `kernel ${report.facts.kernelVersion}, ` : ''}${report.findings.filter((x) => x.severity !== 'info').length} finding(s); ready at ${t.ready ?? '-'} s guest time`;
      return { ran: f.ran.map((x) => `${x}, classify (expect ${plan?.ip ?? 'no address'})`), verdict: { saw, findings: adjustConsole(report, inGrace) } };
    }),
  ]);
}
