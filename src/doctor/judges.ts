// The doctor's judges: facts in (what the probes saw), a verdict out (one line of what was seen, findings with
// evidence and a fix). Pure: no I/O, so every rule is testable on synthetic facts.
import type { Evidence, Severity } from '../findings.js';
import { GUEST_INIT_PATH, READY_MARKER, VNC_PORT } from '../guest-protocol.js';
import type { LintReport } from '../kernel/lint.js';
import type { NetConfig } from '../net/config.js';
import type { CloneNetPlan } from '../net/clone.js';
import type { VmNetPlan } from '../net/plan.js';
import type { VmRecord } from '../store/store.js';
import { decideAccel, type AccelFacts } from '../vmm/accel.js';
import { vmmEntry } from '../vmm/registry.js';
import { isVmmKind } from '../vmm/types.js';
import type { MachineSpec } from '../vmm/types.js';
import { parseCommandLine, parseIpParam, type ConsoleReport } from './console.js';
import type { DoctorCode, DoctorFinding, Verdict } from './model.js';
import type { DebugfsFacts, FdbFact, FsckFacts, IptablesFacts, LinkFact, NeighFact, PingFacts, ProcFacts, RouteFact, TcpFacts, TunFacts } from './probes.js';

type F = Omit<DoctorFinding, 'check'>;

function finding(code: DoctorCode, severity: Severity, message: string, fix: string, evidence: (Evidence | string)[], option: string | null = null): F {
  return { code, severity, option, message, fix, evidence: evidence.map((e) => (typeof e === 'string' ? { text: e } : e)) };
}

const ok = (saw: string): Verdict => ({ saw, findings: [] });
const skipped = (why: string): Verdict => ({ saw: why, findings: [], skipped: why });

/** How a link looks in one line, e.g. "hgtap0 (tun) UP,LOWER_UP master hgbr0 10.0.0.1/24". */
export function describeLink(l: LinkFact): string {
  const flags = l.flags.filter((f) => ['UP', 'LOWER_UP', 'NO-CARRIER'].includes(f));
  return [`${l.ifname}${l.kind ? ` (${l.kind})` : ''}`, flags.join(',') || 'DOWN', l.master ? `master ${l.master}` : '', l.addrs.join(' ')].filter(Boolean).join(' ');
}

const where = (ns: string | undefined): string => (ns ? `namespace ${ns}` : 'the host namespace');
/** Where the VM-facing side (bridge, TAPs) lives. */
export const vmSideNs = (cfg: NetConfig): string | undefined => (cfg.mode === 'netns' ? cfg.netns : cfg.hostNetns);
const isUp = (l: LinkFact): boolean => l.flags.includes('UP');

/** States in which a VMM process (and so a TAP) should exist. */
export const LIVE_STATES: readonly string[] = ['creating', 'booting', 'ready', 'paused', 'stopping'];

// ---------------------------------------------------------------- host

/** USED: the VMM kinds VMs of this controller use. */
export function judgeVmmDrivers(drivers: readonly { kind: string; available: boolean; version?: string; reason: string }[], used: readonly string[]): Verdict {
  const saw = drivers.map((d) => `${d.kind}: ${d.available ? `available${d.version ? ` (${d.version})` : ''}` : `unavailable (${d.reason})`}`).join('; ') || 'no VMM driver configured';
  const none = !drivers.some((d) => d.available);
  const findings = drivers.filter((d) => !d.available && (none || used.includes(d.kind))).map((d) =>
    finding('DOC_VMM_UNAVAILABLE', 'error', `The ${d.kind} VMM is not usable on this host: ${d.reason}; ${none ? 'no VM can start' : 'VMs that use it cannot start'}.`,
      isVmmKind(d.kind) ? vmmEntry(d.kind).installHint : `Install the ${d.kind} VMM.`,
      [`${d.kind}: ${d.reason}`]));
  return { saw, findings };
}

/** ACCELS: the accelerator each running VM's VMM was started with (from its argv). */
export function judgeAccel(facts: AccelFacts, accels: readonly { vmId: string; accel: string | null }[]): Verdict {
  let choice;
  try {
    choice = decideAccel(facts);
  } catch (e) {
    return { saw: (e as Error).message, findings: [finding('DOC_ACCEL_UNAVAILABLE', 'error', (e as Error).message, 'Unset HANGAR_ACCEL (Hangar picks TCG where KVM cannot work), or fix /dev/kvm (load kvm_intel/kvm_amd, permissions).', [`HANGAR_ACCEL=${facts.override ?? ''}`])] };
  }
  const findings: F[] = [];
  const kvmVms = accels.filter((a) => a.accel === 'kvm');
  if (facts.pvmHost && (choice.accel === 'kvm' || kvmVms.length)) {
    findings.push(finding('DOC_ACCEL_KVM_ON_PVM', 'error',
      `KVM is used on a PVM host (kvm_pvm loaded): ordinary guest kernels triple-fault under it${kvmVms.length ? ` (running with -accel kvm: ${kvmVms.map((v) => v.vmId).join(', ')})` : ''}.`,
      'Unset HANGAR_ACCEL=kvm so Hangar uses TCG here, or boot a PVM-enabled guest kernel.', [...choice.evidence, ...kvmVms.map((v) => `${v.vmId}: -accel kvm`)]));
  } else if (choice.accel === 'tcg') {
    findings.push(finding('DOC_ACCEL_TCG', 'info', `VMs run under ${choice.reason}: correct but slow (boots take seconds, not milliseconds).`,
      'Nothing to do here; on a host with usable KVM (not PVM) Hangar uses it.', choice.evidence));
  }
  return { saw: `${choice.accel.toUpperCase()}: ${choice.reason}`, findings };
}

/** Which cgroup version VMM limits use (src/vmm/cgroup/), or why they cannot be applied. */
export function judgeCgroups(c: { version: 1 | 2 | null; reason: string; root: string | null }): Verdict {
  if (c.version !== null) return ok(`${c.reason}: VMM limits in ${c.root ?? 'hangar/'}vm-ID`);
  return {
    saw: `no usable cgroups: ${c.reason}`,
    findings: [finding('DOC_CGROUPS_UNAVAILABLE', 'warning', `VMMs run without CPU, memory and pids limits: ${c.reason}; one VM can starve the others and the controller.`,
      'Mount the cpu, memory and pids controllers (cgroup v2 with them enabled, or v1 hierarchies) and run the controller as root (Delegate=yes under systemd).', [c.reason])],
  };
}

export function judgeTun(t: TunFacts): Verdict {
  if (t.exists && t.charDevice && t.openable) return ok('/dev/net/tun is a character device and opens read-write');
  const what = !t.exists ? 'does not exist' : !t.charDevice ? 'is not a character device' : `cannot be opened (${t.error ?? 'error'})`;
  return {
    saw: `/dev/net/tun ${what}`,
    findings: [finding('DOC_TUN_MISSING', 'error', `/dev/net/tun ${what}: no TAP device can be created or attached, so no VM gets a network.`,
      'Load the tun driver (modprobe tun) or create the node (mkdir -p /dev/net && mknod /dev/net/tun c 10 200); in a container, pass /dev/net/tun in.',
      [`/dev/net/tun ${what}`])],
  };
}

export function judgeNetns(cfg: NetConfig, namespaces: readonly string[] | null): Verdict {
  if (!namespaces) return skipped('ip netns list failed');
  const wanted = [...(cfg.mode === 'netns' ? [cfg.netns!] : []), ...(cfg.hostNetns ? [cfg.hostNetns] : [])];
  if (!wanted.length) return ok('bridge mode on the host namespace: no namespace needed');
  const missing = wanted.filter((n) => !namespaces.includes(n));
  if (!missing.length) return ok(`namespace${wanted.length > 1 ? 's' : ''} ${wanted.join(', ')} present`);
  return {
    saw: `missing: ${missing.join(', ')}`,
    findings: [finding('DOC_NETNS_MISSING', 'error', `The network namespace${missing.length > 1 ? 's' : ''} ${missing.join(' and ')} ${missing.length > 1 ? 'do' : 'does'} not exist: the bridge, TAPs and veth in ${missing.length > 1 ? 'them' : 'it'} are gone, and no VM is reachable.`,
      "Restart the controller ('hangar up' recreates the host network), after 'hangar down' if VMs are listed as running.",
      [`ip netns list: ${namespaces.join(' ') || '(none)'}`])],
  };
}

export function judgeBridge(cfg: NetConfig, links: readonly LinkFact[] | null): Verdict {
  const ns = vmSideNs(cfg);
  if (!links) return skipped(`cannot list links in ${where(ns)}`);
  const br = links.find((l) => l.ifname === cfg.bridge);
  const want = `${cfg.gateway}/${cfg.prefix}`;
  if (!br || br.kind !== 'bridge') {
    return {
      saw: br ? `${cfg.bridge} is a ${br.kind ?? 'non-bridge'} link` : `no ${cfg.bridge} in ${where(ns)}`,
      findings: [finding('DOC_BRIDGE_MISSING', 'error', `The bridge ${cfg.bridge} ${br ? `is not a bridge (${br.kind ?? 'unknown kind'})` : `does not exist in ${where(ns)}`}: TAPs have nothing to join.`,
        "Restart the controller ('hangar up' recreates the bridge).", br ? [describeLink(br)] : [`links: ${links.map((l) => l.ifname).join(' ')}`])],
    };
  }
  const findings: F[] = [];
  if (!isUp(br)) {
    findings.push(finding('DOC_BRIDGE_DOWN', 'error', `The bridge ${cfg.bridge} is administratively down: no frame crosses it.`,
      `ip ${ns ? `-n ${ns} ` : ''}link set ${cfg.bridge} up`, [describeLink(br)]));
  }
  if (!br.addrs.includes(want)) {
    const other = br.addrs.find((a) => a.startsWith(`${cfg.gateway}/`));
    findings.push(finding('DOC_BRIDGE_NO_GATEWAY', 'error',
      other
        ? `The bridge ${cfg.bridge} has the gateway ${cfg.gateway} with the wrong prefix (${other}, want ${want}): routes to the VM subnet are wrong.`
        : `The bridge ${cfg.bridge} lacks the gateway address ${want}: the guests' gateway does not exist, the namespace has no route to ${cfg.cidr}, and nothing answers or sends ARP for the VMs ("Destination Host Unreachable").`,
      `ip ${ns ? `-n ${ns} ` : ''}addr replace ${want} dev ${cfg.bridge} (or restart the controller)`, [describeLink(br)]));
  }
  return { saw: describeLink(br), findings };
}

export interface HostLinkFacts {
  hostLinks: readonly LinkFact[] | null;
  nsLinks: readonly LinkFact[] | null;
  hostRoutes: readonly RouteFact[] | null;
}

export function judgeHostLink(cfg: NetConfig, f: HostLinkFacts): Verdict {
  if (cfg.mode !== 'netns') return skipped('bridge mode: the host reaches the VMs on the bridge itself, no veth');
  if (!f.hostLinks || !f.nsLinks) return skipped('cannot list links on both ends');
  const hl = cfg.hostLink!;
  const hostEnd = f.hostLinks.find((l) => l.ifname === hl.hostIfname);
  const nsEnd = f.nsLinks.find((l) => l.ifname === hl.nsIfname);
  const findings: F[] = [];
  const hostWhere = where(cfg.hostNetns);
  if (!hostEnd || !nsEnd) {
    findings.push(finding('DOC_VETH_MISSING', 'error', `The veth pair between the host side and ${cfg.netns} is ${!hostEnd && !nsEnd ? 'gone' : `half gone (${hostEnd ? `${cfg.netns}/${hl.nsIfname}` : `${hl.hostIfname} in ${hostWhere}`} missing)`}: the host cannot route to the VM subnet.`,
      "Restart the controller ('hangar up' recreates the veth and the route).", [hostEnd ? describeLink(hostEnd) : `no ${hl.hostIfname} in ${hostWhere}`, nsEnd ? describeLink(nsEnd) : `no ${hl.nsIfname} in ${cfg.netns}`]));
    return { saw: `veth ${hl.hostIfname}/${hl.nsIfname} incomplete`, findings };
  }
  for (const [end, ns, addr] of [[hostEnd, cfg.hostNetns, hl.hostAddress], [nsEnd, cfg.netns, hl.nsAddress]] as const) {
    if (!isUp(end)) {
      findings.push(finding('DOC_VETH_DOWN', 'error', `The veth end ${end.ifname} (${where(ns)}) is down: host ↔ VM traffic stops there.`,
        `ip ${ns ? `-n ${ns} ` : ''}link set ${end.ifname} up`, [describeLink(end)]));
    }
    if (!end.addrs.includes(`${addr}/${hl.prefix}`)) {
      findings.push(finding('DOC_VETH_ADDRESS', 'error', `The veth end ${end.ifname} (${where(ns)}) lacks ${addr}/${hl.prefix}: the route to the VM subnet has no next hop.`,
        `ip ${ns ? `-n ${ns} ` : ''}addr replace ${addr}/${hl.prefix} dev ${end.ifname}`, [describeLink(end)]));
    }
  }
  if (f.hostRoutes) {
    const route = f.hostRoutes.find((r) => r.dst === cfg.cidr);
    if (!route || route.gateway !== hl.nsAddress || route.dev !== hl.hostIfname) {
      findings.push(finding('DOC_HOST_ROUTE_MISSING', 'error',
        route ? `The host side routes ${cfg.cidr} via ${route.gateway ?? '(direct)'} dev ${route.dev ?? '?'}, not via ${hl.nsAddress} dev ${hl.hostIfname}: VM traffic goes the wrong way.`
          : `The host side has no route to ${cfg.cidr}: packets to the VMs follow the default route instead of the veth.`,
        `ip ${cfg.hostNetns ? `-n ${cfg.hostNetns} ` : ''}route replace ${cfg.cidr} via ${hl.nsAddress} dev ${hl.hostIfname}`,
        [route ? `${route.dst} via ${route.gateway ?? '-'} dev ${route.dev ?? '-'}` : `routes: ${f.hostRoutes.map((r) => r.dst).join(' ') || '(none)'}`]));
    }
  }
  return { saw: `${describeLink(hostEnd)} ↔ ${cfg.netns}/${describeLink(nsEnd)}`, findings };
}

export function judgeForwarding(cfg: NetConfig, sysctl: Readonly<Record<string, string>> | null): Verdict {
  if (cfg.mode !== 'netns') return skipped('bridge mode: the host reaches the VMs without routing');
  if (!sysctl) return skipped(`cannot read sysctls in ${cfg.netns}`);
  const v = sysctl['net.ipv4.ip_forward'];
  if (v === undefined) return skipped(`net.ipv4.ip_forward unreadable in ${cfg.netns}`);
  if (v === '1') return ok(`net.ipv4.ip_forward = 1 in ${cfg.netns}`);
  return {
    saw: `net.ipv4.ip_forward = ${v ?? '?'} in ${cfg.netns}`,
    findings: [finding('DOC_FORWARDING_OFF', 'error', `IPv4 forwarding is off in ${cfg.netns}: packets from the host side are not routed onto the bridge (the VMs answer ARP on the bridge but are unreachable from the host).`,
      `ip netns exec ${cfg.netns} sysctl -w net.ipv4.ip_forward=1 (only inside the namespace)`, [`net.ipv4.ip_forward = ${v ?? '(unreadable)'}`])],
  };
}

export interface NetfilterFacts {
  sysctl: Readonly<Record<string, string>> | null;
  brNetfilter: boolean;
  bridge: LinkFact | undefined;
  forward: IptablesFacts | null;
}

export function judgeNetfilter(cfg: NetConfig, f: NetfilterFacts): Verdict {
  const ns = vmSideNs(cfg);
  if (!f.forward) return skipped(`cannot read iptables in ${where(ns)}`);
  const callIptables = f.brNetfilter && (f.sysctl?.['net.bridge.bridge-nf-call-iptables'] === '1' || f.bridge?.nfCallIptables === true);
  const brText = f.brNetfilter
    ? `br_netfilter active, bridge-nf-call-iptables=${f.sysctl?.['net.bridge.bridge-nf-call-iptables'] ?? '?'}${f.bridge?.nfCallIptables ? ` (${cfg.bridge} nf_call_iptables on)` : ''}`
    : 'br_netfilter not loaded';
  const saw = `FORWARD policy ${f.forward.policy ?? '?'}, ${f.forward.rules.length} rule(s); ${brText}`;
  const drops = f.forward.rules.filter((r) => /-j (DROP|REJECT)\b/.test(r));
  const accepts = f.forward.rules.filter((r) => /-j ACCEPT\b/.test(r) && (r.includes(cfg.cidr) || r.includes(cfg.bridge)));
  const dropPolicy = f.forward.policy === 'DROP' || f.forward.policy === 'REJECT';
  if (!dropPolicy && !drops.length) return ok(saw);
  // Routed traffic host side → VM namespace → bridge crosses FORWARD (netns mode); with br_netfilter, frames
  // bridged between TAPs do too. Host ↔ VM in bridge mode is local delivery (INPUT/OUTPUT), not FORWARD.
  const hits = [cfg.mode === 'netns' ? 'the routed path host side → VMs' : null, callIptables ? 'traffic bridged between VMs (br_netfilter)' : null].filter(Boolean);
  if (!hits.length) return ok(`${saw} (nothing Hangar uses crosses FORWARD here)`);
  const sev: Severity = dropPolicy && !accepts.length ? 'error' : 'warning';
  return {
    saw,
    findings: [finding('DOC_FORWARD_DROP', sev,
      `${dropPolicy ? `The FORWARD policy is ${f.forward.policy}` : `FORWARD has ${drops.length} DROP/REJECT rule(s)`} in ${where(ns)}${accepts.length ? ' (some ACCEPT rules mention the VM subnet)' : ''}: it drops ${hits.join(' and ')}${callIptables ? '; br_netfilter hands bridged IPv4 frames to iptables (bridge-nf-call-iptables=1)' : ''}. ARP still works, so it looks like a dead guest.`,
      `In ${where(ns)} only: iptables -P FORWARD ACCEPT, or allow the VM subnet (iptables -I FORWARD -d ${cfg.cidr} -j ACCEPT; iptables -I FORWARD -s ${cfg.cidr} -j ACCEPT)${callIptables ? `; or stop bridged frames going to iptables (sysctl net.bridge.bridge-nf-call-iptables=0 in ${ns ?? 'the host'})` : ''}.`,
      [`-P FORWARD ${f.forward.policy ?? '?'}`, ...drops.slice(0, 5), ...accepts.slice(0, 3), brText])],
  };
}

export interface RpFilterFacts {
  vmSysctl: Readonly<Record<string, string>> | null;
  hostSysctl: Readonly<Record<string, string>> | null;
  /** Route the VM namespace takes back to the host side's veth address. */
  nsRouteToHost: RouteFact | null;
  /** Route the host side takes to the VM subnet. */
  hostRouteToVms: RouteFact | null;
}

/** The sysctl keys judgeRpFilter reads in each namespace. */
export function rpFilterKeys(cfg: NetConfig): { vm: string[]; host: string[] } {
  const k = (i: string): string => `net.ipv4.conf.${i.replace(/\./g, '/')}.rp_filter`;
  if (cfg.mode !== 'netns') return { vm: [k('all'), k(cfg.bridge)], host: [] };
  return { vm: [k('all'), k(cfg.bridge), k(cfg.hostLink!.nsIfname)], host: [k('all'), k(cfg.hostLink!.hostIfname)] };
}

export function judgeRpFilter(cfg: NetConfig, f: RpFilterFacts): Verdict {
  if (cfg.mode !== 'netns') return ok('bridge mode: no routed path to check');
  if (!f.vmSysctl || !f.hostSysctl) return skipped('cannot read the rp_filter sysctls on both sides');
  const hl = cfg.hostLink!;
  const eff = (s: Readonly<Record<string, string>> | null, i: string): number =>
    Math.max(Number(s?.[`net.ipv4.conf.all.rp_filter`] ?? 0), Number(s?.[`net.ipv4.conf.${i.replace(/\./g, '/')}.rp_filter`] ?? 0));
  const sides = [
    { name: `${cfg.netns}/${hl.nsIfname}`, mode: eff(f.vmSysctl, hl.nsIfname), route: f.nsRouteToHost, want: hl.nsIfname, from: hl.hostAddress },
    { name: `${cfg.hostNetns ?? 'host'}/${hl.hostIfname}`, mode: eff(f.hostSysctl, hl.hostIfname), route: f.hostRouteToVms, want: hl.hostIfname, from: cfg.cidr },
  ];
  const saw = sides.map((s) => `${s.name} rp_filter=${s.mode}${s.mode === 1 ? ' (strict)' : ''}`).join(', ');
  const bad = sides.filter((s) => s.mode === 1 && s.route && s.route.dev !== s.want);
  if (!bad.length) return ok(`${saw}${sides.some((s) => s.mode === 1) ? '; routes are symmetric, strict mode drops nothing' : ''}`);
  return {
    saw,
    findings: [finding('DOC_RP_FILTER_STRICT', 'error',
      `Strict reverse-path filtering (rp_filter=1) on ${bad.map((s) => s.name).join(', ')} while the route back to ${bad.map((s) => s.from).join(', ')} leaves by ${bad.map((s) => s.route!.dev).join(', ')}: the kernel drops the packets as spoofed.`,
      'Use loose mode (rp_filter=2) on those interfaces, or make the routes symmetric (the VM subnet via the veth).',
      bad.map((s) => `${s.name}: rp_filter=${s.mode}; route to ${s.from} via dev ${s.route!.dev}`))],
  };
}

export interface LeftoverFacts {
  taps: readonly { name: string; master: string | null; up: boolean }[] | null;
  vms: readonly VmRecord[];
  /** Entries of STATEDIR/vms; null when unknown. */
  runDirs: readonly string[] | null;
  runRoot: string | null;
  procs: readonly ProcFacts[] | null;
}

export function judgeLeftovers(f: LeftoverFacts): Verdict {
  const findings: F[] = [];
  const byId = new Map(f.vms.map((v) => [v.id, v]));
  const liveTaps = new Set(f.vms.filter((v) => LIVE_STATES.includes(v.state)).map((v) => (v.net as { tap?: string } | null)?.tap).filter(Boolean));
  const orphanTaps = (f.taps ?? []).filter((t) => !liveTaps.has(t.name));
  if (orphanTaps.length) {
    findings.push(finding('DOC_LEFTOVER_TAP', 'warning', `${orphanTaps.length} Hangar TAP device(s) belong to no running VM: ${orphanTaps.map((t) => t.name).join(', ')}. A new VM cannot take that name, and a leftover on the bridge can answer for a stale MAC.`,
      "Restart the controller (it reclaims orphans at start) or delete them: ip link del TAP (in the VM namespace).",
      orphanTaps.map((t) => `${t.name}${t.master ? ` master ${t.master}` : ''}${t.up ? ' UP' : ''}`)));
  }
  const orphanDirs = (f.runDirs ?? []).filter((d) => !byId.has(d));
  if (orphanDirs.length) {
    findings.push(finding('DOC_LEFTOVER_RUNDIR', 'warning', `${orphanDirs.length} run director${orphanDirs.length > 1 ? 'ies' : 'y'} under ${f.runRoot} belong to no VM (disks and logs of VMs that were not cleaned up): ${orphanDirs.slice(0, 5).join(', ')}.`,
      'Restart the controller (it reclaims orphans at start) or remove them.', orphanDirs.slice(0, 10).map((d) => `${f.runRoot}/${d}`)));
  }
  const ours = (f.procs ?? []).filter((p) => f.runRoot && p.argv.some((a) => a.includes(`${f.runRoot}/`)));
  const orphanProcs = ours.filter((p) => {
    const id = /\/vms\/([^/,]+)/.exec(p.argv.find((a) => a.includes(`${f.runRoot}/`)) ?? '')?.[1];
    const vm = id ? byId.get(id) : undefined;
    return !vm || !LIVE_STATES.includes(vm.state) || (vm.pid !== null && vm.pid !== p.pid);
  });
  if (orphanProcs.length) {
    findings.push(finding('DOC_LEFTOVER_VMM', 'warning', `${orphanProcs.length} VMM process(es) run for no VM of this controller (pids ${orphanProcs.map((p) => p.pid).join(', ')}): they hold memory, CPU and possibly a TAP or a MAC on the bridge.`,
      'Stop them (kill PID) after checking they are not adopted by another controller; restarting the controller adopts or fails them.',
      orphanProcs.map((p) => `pid ${p.pid}: ${p.argv.slice(0, 3).join(' ')} …`)));
  }
  const saw = `${f.taps?.length ?? '?'} Hangar TAP(s), ${f.runDirs?.length ?? '?'} run dir(s), ${ours.length} VMM process(es) of this controller; ${orphanTaps.length + orphanDirs.length + orphanProcs.length} without a VM`;
  return { saw, findings };
}

// ---------------------------------------------------------------- image

export function judgeLint(reports: readonly { vmm: string; report: LintReport }[]): Verdict {
  const findings: F[] = [];
  for (const { vmm, report } of reports) {
    for (const f of report.findings) {
      if (f.severity === 'info') continue;
      findings.push({ ...f, evidence: [{ text: `${vmm}: ${f.message}` }] });
    }
  }
  const saw = reports.map(({ vmm, report }) => {
    const e = report.findings.filter((f) => f.severity === 'error').length;
    const w = report.findings.filter((f) => f.severity === 'warning').length;
    return `${vmm}: ${e} error(s), ${w} warning(s)`;
  }).join('; ');
  return { saw: `kernel ${reports[0]?.report.kernel.version ?? '?'} (${reports[0]?.report.kernel.source ?? '?'}): ${saw}`, findings };
}

export function judgeFsck(path: string, f: FsckFacts): Verdict {
  if (f.code === 0) return ok(`clean: ${f.summary}`);
  if (f.code !== null && f.code & 8) {
    return { saw: `e2fsck could not check it (exit ${f.code})`, findings: [finding('DOC_IMAGE_UNREADABLE', 'error', `The image's root filesystem ${path} cannot be read as ext4 (e2fsck exit ${f.code}).`, 'Rebuild the image (hangar image build --force).', f.output.split('\n').slice(-4))] };
  }
  return {
    saw: `e2fsck -fn exit ${f.code}: ${f.summary}`,
    findings: [finding('DOC_ROOTFS_ERRORS', 'error', `The image's root filesystem has errors (e2fsck -n exit ${f.code}): guests may fail to mount it or find files corrupted.`,
      'Rebuild the image (hangar image build --force); never write to a published rootfs (VMs get copies).', f.output.split('\n').filter((l) => !/^Pass \d/.test(l)).slice(-6))],
  };
}

/** The debugfs requests judgeImageFiles reads. */
export const IMAGE_FILE_REQUESTS: readonly string[] = [
  `stat ${GUEST_INIT_PATH}`,
  'stat /usr/bin/x11vnc',
  'stat /usr/bin/Xvfb',
  'ls -p /etc/systemd/network',
  'ls -p /etc/netplan',
  'cat /etc/network/interfaces',
  'ls -p /etc/network/interfaces.d',
  'ls -p /etc/NetworkManager/system-connections',
  'stat /usr/sbin/NetworkManager',
  'stat /usr/sbin/dhclient',
  'stat /usr/sbin/dhcpcd',
  'stat /usr/lib/systemd/systemd-networkd',
  'ls -p /etc/hangar/init.d',
];

const notFound = (d: DebugfsFacts, path: string): boolean => d.errors.some((e) => e.startsWith(`${path}:`) && /not found|No such/i.test(e));
/** Names in a `ls -p` listing (lines "/ino/mode/uid/gid/name/size/"), without . and .. */
export function lsNames(out: string | undefined): string[] {
  return (out ?? '').split('\n').map((l) => l.trim().split('/')).filter((p) => p.length >= 6).map((p) => p[5]!).filter((n) => n && n !== '.' && n !== '..');
}

/** Type and mode from `stat` output ("Type: regular    Mode:  0755"). */
export function statType(out: string | undefined): { type: string; mode: number } | null {
  const m = /Type:\s+(\S+)\s+Mode:\s+([0-7]+)/.exec(out ?? '');
  return m ? { type: m[1]!, mode: Number.parseInt(m[2]!, 8) } : null;
}

export function judgeInit(d: DebugfsFacts): Verdict {
  const st = statType(d.out.get(`stat ${GUEST_INIT_PATH}`));
  if (st && st.type === 'regular' && st.mode & 0o111) return ok(`${GUEST_INIT_PATH}: regular file, mode ${st.mode.toString(8)}`);
  const what = !st ? 'is missing' : st.type !== 'regular' ? `is a ${st.type}, not a regular file` : `is not executable (mode ${st.mode.toString(8)})`;
  return {
    saw: `${GUEST_INIT_PATH} ${what}`,
    findings: [finding('DOC_INIT_MISSING', 'error', `The image's init ${GUEST_INIT_PATH} ${what}: the kernel cannot start it (init=${GUEST_INIT_PATH}) and panics.`,
      'Rebuild the image (hangar image build installs the init with mode 0755).', [notFound(d, GUEST_INIT_PATH) ? `${GUEST_INIT_PATH}: not found` : `stat ${GUEST_INIT_PATH}: ${st ? `${st.type} ${st.mode.toString(8)}` : 'unreadable'}`])],
  };
}

export function judgeDesktopBinaries(d: DebugfsFacts): Verdict {
  const missing = ['/usr/bin/x11vnc', '/usr/bin/Xvfb'].filter((p) => !statType(d.out.get(`stat ${p}`)));
  if (!missing.length) return ok('/usr/bin/x11vnc and /usr/bin/Xvfb present');
  return {
    saw: `missing: ${missing.join(', ')}`,
    findings: [finding('DOC_IMAGE_VNC_MISSING', 'error', `The image lacks ${missing.join(' and ')}: the guest cannot serve its desktop over VNC, so it never prints ${READY_MARKER}.`,
      'Rebuild the image with the desktop profile (it installs xvfb and x11vnc).', missing.map((p) => `${p}: not found`))],
  };
}

const NET_MANAGER_WORDS = /\b(dhclient|dhcpcd|udhcpc|ifup|networkctl|systemd-networkd|NetworkManager|nmcli|netplan|wicked|connmand)\b/;

/** HOOKS: the contents of /etc/hangar/init.d/*.sh (name → text), read in a second pass. */
export function judgeNetOverrides(d: DebugfsFacts, hooks: ReadonlyMap<string, string>): Verdict {
  const found: string[] = [];
  const networkd = lsNames(d.out.get('ls -p /etc/systemd/network')).filter((n) => n.endsWith('.network'));
  if (networkd.length) found.push(`systemd-networkd config: ${networkd.map((n) => `/etc/systemd/network/${n}`).join(', ')}`);
  const netplan = lsNames(d.out.get('ls -p /etc/netplan')).filter((n) => /\.ya?ml$/.test(n));
  if (netplan.length) found.push(`netplan config: ${netplan.map((n) => `/etc/netplan/${n}`).join(', ')}`);
  const ifaces = d.out.get('cat /etc/network/interfaces') ?? '';
  const ifLines = notFound(d, '/etc/network/interfaces') ? [] : ifaces.split('\n').filter((l) => /^\s*(auto|allow-hotplug|iface)\s+.*\beth0\b/.test(l));
  if (ifLines.length) found.push(`/etc/network/interfaces configures eth0: ${ifLines.map((l) => l.trim()).join('; ')}`);
  const ifd = lsNames(d.out.get('ls -p /etc/network/interfaces.d'));
  if (ifd.length) found.push(`ifupdown snippets: ${ifd.map((n) => `/etc/network/interfaces.d/${n}`).join(', ')}`);
  const nm = lsNames(d.out.get('ls -p /etc/NetworkManager/system-connections'));
  if (nm.length) found.push(`NetworkManager connections: ${nm.join(', ')}`);
  const bins = ['/usr/sbin/NetworkManager', '/usr/sbin/dhclient', '/usr/sbin/dhcpcd', '/usr/lib/systemd/systemd-networkd'].filter((p) => statType(d.out.get(`stat ${p}`)));
  if (bins.length) found.push(`installed: ${bins.join(', ')}`);
  const active = [...hooks].filter(([, text]) => NET_MANAGER_WORDS.test(text)).map(([name, text]) => {
    const line = text.split('\n').find((l) => NET_MANAGER_WORDS.test(l) && !/^\s*#/.test(l)) ?? '';
    return `/etc/hangar/init.d/${name}: ${line.trim()}`;
  }).filter((s) => !s.endsWith(': '));
  const hookNames = [...hooks.keys()];
  const saw = `${found.length ? found.join('; ') : 'no network manager or config that would override ip='}; ${hookNames.length ? `init hooks: ${hookNames.join(', ')}` : 'no init hooks'}`;
  if (!found.length && !active.length) return ok(saw);
  return {
    saw,
    findings: [finding('DOC_IMAGE_NET_OVERRIDE', active.length ? 'error' : 'warning',
      active.length
        ? `An init hook starts a network manager that will re-address eth0 and override the address the kernel set from ip=: ${active.join('; ')}.`
        : `The image carries network configuration that would override ip= if anything started it (${GUEST_INIT_PATH} does not; a hook or another init would).`,
      'Remove it from the image (Hangar configures eth0 with ip=): drop the .network/netplan/interfaces entries for eth0, uninstall dhclient/NetworkManager, and keep init hooks from starting them.',
      [...active, ...found])],
  };
}

// ---------------------------------------------------------------- VM

export interface VmView {
  vm: VmRecord;
  plan: VmNetPlan | null;
  spec: Partial<MachineSpec> | null;
}

/** A clone's NIC lives in its own namespace with the snapshot's MAC: the bridge-side checks do not apply to it. */
export const isClone = (v: VmView): boolean => Boolean(cloneOf(v));

/** A clone's own network (src/net/clone.ts): its namespace, veth pair, and the guest identity it recreates. */
export const cloneOf = (v: VmView): CloneNetPlan | null => (v.plan as (VmNetPlan & { clone?: CloneNetPlan }) | null)?.clone ?? null;

/** What the guest holds and ip= configures: the snapshot source's address for a clone (behind its namespace). */
export function guestAddress(v: VmView): { address: string; gateway: string; netmask: string } | null {
  const c = cloneOf(v);
  if (c) return { address: c.guest.ip, gateway: c.guest.gateway, netmask: c.guest.netmask };
  return v.plan ? { address: v.plan.ip, gateway: v.plan.gateway, netmask: v.plan.netmask } : null;
}

/** Where the host reaches the guest: its pool address (a clone's is translated to the guest's in its namespace). */
export const hostAddress = (v: VmView): string | null => (isClone(v) ? v.plan!.ip : effectiveIdentity(v).ip);

export const vmView = (vm: VmRecord): VmView => ({
  vm,
  plan: vm.net ?? null,
  spec: vm.spec && Object.keys(vm.spec).length ? (vm.spec as Partial<MachineSpec>) : null,
});

/** The MAC and IP the VM really runs with (its spec and boot arguments), which may differ from its allocation. */
export function effectiveIdentity(v: VmView): { mac: string | null; ip: string | null } {
  const mac = (v.spec?.net?.mac ?? v.plan?.mac ?? null)?.toLowerCase() ?? null;
  const ipArg = v.spec?.bootArgs ? parseCommandLine(v.spec.bootArgs).get('ip')?.at(-1) : undefined;
  const ip = (ipArg ? parseIpParam(ipArg).address : null) ?? v.plan?.ip ?? null;
  return { mac, ip };
}

export function judgeVmState(v: VmView, nowMs: number, graceMs: number): Verdict {
  const vm = v.vm;
  const since = Math.round((nowMs - Date.parse(vm.updatedAt)) / 1000);
  if (vm.state === 'failed') {
    const e = vm.lastError;
    return {
      saw: `failed${e ? `: ${e.code}` : ''}`,
      findings: [finding('DOC_VM_FAILED', 'error', `The VM failed${e ? ` with ${e.code}: ${e.message}` : ''}.`,
        'Fix the cause named above, then start it again (hangar vm start) or create a new VM.', e ? [`lastError ${e.code}: ${e.message}`] : [`state failed`])],
    };
  }
  if (vm.state === 'booting' && nowMs - Date.parse(vm.updatedAt) < graceMs) {
    return { saw: `booting for ${since} s`, findings: [finding('DOC_VM_BOOTING', 'info', `The VM has been booting for ${since} s: a guest that is not ready yet is expected to fail some checks.`, 'Run the doctor again once it is ready, or if it stays booting.', [`state booting since ${vm.updatedAt}`])] };
  }
  const hib = vm.hibernation as { at?: string; dir?: string } | null;
  const how = [hib ? `hibernated${hib.at ? ` at ${hib.at}` : ''}${hib.dir ? `, its saved state in ${hib.dir}` : ''}` : '', vm.snapshotId ? `clone of ${vm.snapshotId}` : ''].filter(Boolean).join('; ');
  return ok(`${vm.state}${vm.state === 'booting' ? ` for ${since} s` : ''}${vm.bootMs ? `, ${vm.snapshotId || hib ? 'ready' : 'booted'} in ${vm.bootMs} ms` : ''}${how ? ` (${how})` : ''}`);
}

export function judgeVmmProcess(v: VmView, procs: readonly ProcFacts[] | null): Verdict & { accel: string | null } {
  const vm = v.vm;
  // The pid must still be this VM's VMM (pids are reused): its argv names the run directory (QEMU) or the id (jailer).
  const proc = vm.pid !== null ? procs?.find((p) => p.pid === vm.pid && p.argv.some((a) => a.includes(vm.runDir) || a === vm.id)) : undefined;
  const accelIdx = proc ? proc.argv.indexOf('-accel') : -1;
  const accel = proc && accelIdx >= 0 ? proc.argv[accelIdx + 1] ?? null : null;
  if (!['booting', 'ready', 'paused'].includes(vm.state)) return { ...skipped(`VM is ${vm.state}: no VMM process expected`), accel: null };
  if (!procs) return { ...skipped('cannot read /proc'), accel: null };
  if (proc) return { ...ok(`pid ${proc.pid}: ${proc.argv[0]} ${accel ? `-accel ${accel}` : ''}`.trim()), accel };
  return {
    saw: `no VMM process for pid ${vm.pid ?? '(none)'}`,
    accel: null,
    findings: [finding('DOC_VMM_NOT_RUNNING', 'error', `The VM is ${vm.state} but its VMM process ${vm.pid ?? ''} is gone: nothing runs the guest.`,
      'Restart the controller (it fails VMs whose VMM died) and start the VM again.', [`pid ${vm.pid ?? '(none)'}: no such process with ${vm.runDir} in its argv`])],
  };
}

export function judgeBootArgs(v: VmView): Verdict {
  if (!v.spec?.bootArgs) return skipped('the VM has no machine spec yet (never started)');
  const params = parseCommandLine(v.spec.bootArgs);
  const last = (k: string): string | undefined => params.get(k)?.at(-1);
  const findings: F[] = [];
  const ev = `boot args: ${v.spec.bootArgs}`;
  const root = last('root');
  // The VMM attaches exactly one disk, the VM's rootfs copy: the first virtio-blk device, vda.
  if (root !== '/dev/vda') {
    findings.push(finding('DOC_BOOTARGS_ROOT', 'error', `The VM boots with root=${root ?? '(none)'} but its only disk is /dev/vda (the VMM attaches one virtio-blk drive, the VM's rootfs): the kernel cannot mount its root filesystem.`,
      'Boot with root=/dev/vda (what Hangar builds); look for whatever changed the command line.', [ev]));
  }
  const init = last('init');
  if (init !== GUEST_INIT_PATH) {
    findings.push(finding('DOC_BOOTARGS_INIT', 'error', `The VM boots with init=${init ?? '(none)'} instead of ${GUEST_INIT_PATH}: the guest never reports READY.`,
      `Boot with init=${GUEST_INIT_PATH}.`, [ev]));
  }
  const ipArg = last('ip');
  const plan = v.plan;
  // A clone's guest keeps the snapshot source's address behind its own namespace, by design: its ip= is that one.
  const want = guestAddress(v);
  const clone = cloneOf(v);
  if (plan && want) {
    const ip = ipArg ? parseIpParam(ipArg) : null;
    const of = clone ? `the snapshot's guest address ${want.address}` : `allocated ${want.address}`;
    const wrong = !ip ? ['no ip= argument'] : [
      ip.address !== want.address ? `address ${ip.address ?? '(none)'} ≠ ${of}` : '',
      ip.gateway !== want.gateway ? `gateway ${ip.gateway ?? '(none)'} ≠ ${want.gateway}` : '',
      ip.netmask !== want.netmask ? `netmask ${ip.netmask ?? '(none)'} ≠ ${want.netmask}` : '',
    ].filter(Boolean);
    if (wrong.length) {
      findings.push(finding('DOC_BOOTARGS_IP', 'error',
        clone
          ? `The clone's ip= does not match the guest network its namespace recreates (${wrong.join(', ')}): its namespace translates ${plan.ip} to ${want.address}, which the guest does not hold.`
          : `The guest's ip= does not match its allocation (${wrong.join(', ')}): the host routes and ARPs for ${plan.ip}, which the guest does not hold.`,
        `Boot with ip=${want.address}::${want.gateway}:${want.netmask}::eth0:off (what Hangar builds from the ${clone ? 'snapshot\'s guest network' : 'allocation'}).`, [ev]));
    }
    const specMac = v.spec.net?.mac?.toLowerCase();
    if (specMac && specMac !== plan.mac.toLowerCase()) {
      findings.push(finding('DOC_MAC_NOT_ALLOCATED', 'warning', `The VM runs with MAC ${specMac}, not its allocated ${plan.mac}: the store cannot protect it from duplicates.`,
        'Start the VM with its allocated MAC (Hangar derives it from the IP).', [`spec net.mac ${specMac}`, `allocation mac ${plan.mac}`]));
    }
  }
  return { saw: `root=${root ?? '-'} init=${init ?? '-'} ip=${ipArg ?? '-'}${clone && want ? ` (clone: the guest keeps ${want.address}, reached at ${plan!.ip})` : ''}`, findings };
}

export function judgeDuplicates(v: VmView, others: readonly VmView[]): Verdict {
  if (isClone(v)) return skipped('cloned VM: its NIC is alone in its own namespace');
  const me = effectiveIdentity(v);
  const live = others.filter((o) => o.vm.id !== v.vm.id && !isClone(o) && ['booting', 'ready', 'paused'].includes(o.vm.state));
  const findings: F[] = [];
  const sameMac = live.filter((o) => me.mac && effectiveIdentity(o).mac === me.mac);
  const sameIp = live.filter((o) => me.ip && effectiveIdentity(o).ip === me.ip);
  const desc = (o: VmView): string => `${o.vm.id} (${o.vm.name}, ${o.vm.state}) runs with MAC ${effectiveIdentity(o).mac ?? '?'} IP ${effectiveIdentity(o).ip ?? '?'} on ${o.plan?.tap ?? '?'}`;
  if (sameMac.length) {
    findings.push(finding('DOC_DUPLICATE_MAC', 'error', `Another running VM uses this VM's MAC ${me.mac} (${sameMac.map((o) => o.vm.id).join(', ')}): the bridge learns the MAC on whichever TAP spoke last and delivers this VM's traffic there; ARP and TCP flap.`,
      'Give every VM its own MAC (Hangar derives it from the allocated IP); stop the VM started with a copied MAC.', [`this VM: MAC ${me.mac} on ${v.plan?.tap ?? '?'}`, ...sameMac.map(desc)]));
  }
  if (sameIp.length) {
    findings.push(finding('DOC_DUPLICATE_IP', 'error', `Another running VM holds this VM's address ${me.ip} (${sameIp.map((o) => o.vm.id).join(', ')}): ARP for it is answered by whichever guest replies first ("Destination Host Unreachable" or the wrong desktop).`,
      'Give every VM its own address (the allocation pool does); stop the VM booted with a copied ip=.', [`this VM: IP ${me.ip}`, ...sameIp.map(desc)]));
  }
  return { saw: `MAC ${me.mac ?? '?'} and IP ${me.ip ?? '?'}: ${findings.length ? 'shared with another VM' : `unique among ${live.length} other running VM(s)`}`, findings };
}

export function judgeTap(cfg: NetConfig, v: VmView, links: readonly LinkFact[] | null): Verdict {
  const tap = v.plan?.tap;
  if (!tap) return skipped('the VM has no network allocation');
  if (isClone(v)) return skipped('cloned VM: its TAP is in its own namespace, not on the bridge');
  if (!['booting', 'ready', 'paused'].includes(v.vm.state)) return skipped(`VM is ${v.vm.state}: its TAP is removed while it does not run`);
  const ns = vmSideNs(cfg);
  if (!links) return skipped(`cannot list links in ${where(ns)}`);
  const l = links.find((x) => x.ifname === tap);
  const nsArg = ns ? `-n ${ns} ` : '';
  if (!l) {
    return { saw: `${tap} missing in ${where(ns)}`, findings: [finding('DOC_TAP_MISSING', 'error', `The VM's TAP ${tap} does not exist in ${where(ns)}: the guest's NIC is connected to nothing.`,
      'Stop and start the VM (its TAP is created at start).', [`links in ${where(ns)}: ${links.map((x) => x.ifname).join(' ')}`])] };
  }
  const findings: F[] = [];
  if (!isUp(l)) {
    findings.push(finding('DOC_TAP_DOWN', 'error', `The VM's TAP ${tap} is administratively down: frames from the guest are dropped at the host end, so ARP for ${v.plan!.ip} is never answered ("Destination Host Unreachable") although the guest configured its address.`,
      `ip ${nsArg}link set ${tap} up`, [describeLink(l)]));
  } else if (!l.flags.includes('LOWER_UP')) {
    findings.push(finding('DOC_TAP_NO_CARRIER', 'error', `The VM's TAP ${tap} is up but has no carrier: no VMM process holds it open, so nothing reaches the guest.`,
      'Check the VMM process is running with this TAP (ifname=… on its command line); restart the VM.', [describeLink(l)]));
  }
  if (l.master !== cfg.bridge) {
    findings.push(finding('DOC_TAP_NOT_ON_BRIDGE', 'error', `The VM's TAP ${tap} is ${l.master ? `on ${l.master}, not on` : 'not enslaved to'} the bridge ${cfg.bridge}: the guest's frames never reach the gateway and ARP for ${v.plan!.ip} is never answered.`,
      `ip ${nsArg}link set ${tap} master ${cfg.bridge}`, [describeLink(l)]));
  }
  return { saw: describeLink(l), findings };
}

export interface ReachFacts {
  /** ping from the VM namespace (where the bridge and gateway are). */
  pingNs: PingFacts | null;
  /** ping from the host side (through the veth in netns mode). */
  pingHost: PingFacts | null;
  neighBefore: readonly NeighFact[] | null;
  neighAfter: readonly NeighFact[] | null;
  fdb: readonly FdbFact[] | null;
  tcp: TcpFacts | null;
}

const RESOLVED = ['REACHABLE', 'STALE', 'DELAY', 'PROBE', 'PERMANENT', 'NOARP'];
const neighText = (n: NeighFact): string => `${n.dst} dev ${n.dev ?? '?'}${n.lladdr ? ` lladdr ${n.lladdr}` : ''} ${n.state.join(',')}`;

/** ARP/neighbour state of the guest address, what the bridge learned about its MAC, and who else uses them. */
export function judgeNeighbour(cfg: NetConfig, v: VmView, others: readonly VmView[], f: ReachFacts): Verdict {
  const plan = v.plan;
  if (!plan) return skipped('the VM has no network allocation');
  if (isClone(v)) return skipped('cloned VM: reached through its own namespace, not the bridge');
  const { mac, ip } = effectiveIdentity(v);
  const owner = (m: string): string => {
    const o = others.find((x) => x.vm.id !== v.vm.id && effectiveIdentity(x).mac === m.toLowerCase());
    return o ? `${o.vm.id} (${o.vm.name})` : 'no VM of this controller';
  };
  const tapOwner = (t: string): string => {
    const o = others.find((x) => x.vm.id !== v.vm.id && x.plan?.tap === t);
    return o ? `${o.vm.id}'s TAP` : t === plan.tap ? 'its own TAP' : 'not a TAP of this VM';
  };
  const findings: F[] = [];
  const entry = (f.neighAfter ?? f.neighBefore ?? []).find((n) => n.dst === ip);
  const before = (f.neighBefore ?? []).find((n) => n.dst === ip);
  const sawParts: string[] = [];
  if (before) sawParts.push(`before: ${neighText(before)}`);
  if (entry) sawParts.push(`after ping: ${neighText(entry)}`);
  else sawParts.push(f.pingNs?.outcome === 'unreachable' ? `no ARP attempted (${f.pingNs.detail})` : `no neighbour entry for ${ip}`);
  const resolved = entry && entry.lladdr && entry.state.some((s) => RESOLVED.includes(s));
  if (entry && !resolved && entry.state.some((s) => s === 'INCOMPLETE' || s === 'FAILED')) {
    findings.push(finding('DOC_ARP_UNANSWERED', 'error', `Nobody answers ARP for ${ip} on ${cfg.bridge} (${entry.state.join(',')}): the guest does not hold that address on a working link ("Destination Host Unreachable").`,
      'See the findings that explain it (TAP, bridge, guest address); if none, read the guest console: the NIC or its driver may be missing.', [neighText(entry)]));
  } else if (resolved && mac && entry!.lladdr!.toLowerCase() !== mac) {
    const other = entry!.lladdr!.toLowerCase();
    if (entry!.state.includes('REACHABLE')) {
      findings.push(finding('DOC_ARP_WRONG_MAC', 'error', `${ip} is answered by MAC ${other} (${owner(other)}), not by this VM's ${mac}: another machine holds the address (duplicate IP) and gets this VM's traffic.`,
        `Find who owns ${other} (bridge fdb show br ${cfg.bridge}) and stop it or re-address it.`, [neighText(entry!)]));
    } else {
      // Not confirmed by a reply (STALE/DELAY/PROBE, or a static entry): a mapping left by an earlier holder.
      findings.push(finding('DOC_NEIGH_STALE', 'error', `The neighbour table still maps ${ip} to MAC ${other} (${entry!.state.join(',')}; ${owner(other)}), not to this VM's ${mac}: packets for the VM go to the old MAC until the entry is re-validated (seconds to minutes; never for a PERMANENT entry).`,
        `ip ${vmSideNs(cfg) ? `-n ${vmSideNs(cfg)} ` : ''}neigh del ${ip} dev ${cfg.bridge} (the next packet re-resolves it)`, [neighText(entry!)]));
    }
  }
  // The guest's MAC seen at another address: it re-addressed itself (DHCP client, network manager, a script).
  const elsewhere = [...(f.neighAfter ?? []), ...(f.neighBefore ?? [])].filter((n, i, all) => n.lladdr && mac && n.lladdr.toLowerCase() === mac && n.dst !== ip && all.findIndex((x) => x.dst === n.dst) === i);
  // (Whatever the old entry says: it may still be REACHABLE for seconds after the guest dropped the address.)
  if (elsewhere.length && f.pingNs && f.pingNs.outcome !== 'reply') {
    findings.push(finding('DOC_GUEST_READDRESSED', 'error', `The guest changed its address after boot: its MAC ${mac} now speaks from ${elsewhere.map((n) => n.dst).join(', ')} (neighbour table), while the host routes and ARPs for its allocated ${ip}, which nothing answers.`,
      'Find what re-addresses eth0 in the guest (a DHCP client, network manager or script started by an init hook) and remove it: Hangar sets the address with ip=.', [...elsewhere.map(neighText), ...(entry ? [neighText(entry)] : [])]));
  }
  if (f.fdb && mac) {
    const learned = f.fdb.filter((e) => e.mac === mac && !e.flags.includes('self'));
    const wrong = learned.filter((e) => e.ifname !== plan.tap);
    if (learned.length) sawParts.push(`fdb: ${mac} on ${learned.map((e) => e.ifname).join(', ')}`);
    if (wrong.length) {
      findings.push(finding('DOC_MAC_WRONG_PORT', 'error', `The bridge learned this VM's MAC ${mac} on ${wrong.map((e) => `${e.ifname} (${tapOwner(e.ifname)})`).join(', ')}, not on its TAP ${plan.tap}: frames for the VM are delivered to another port.`,
        'Another guest sends with the same MAC: give every VM its own MAC.', wrong.map((e) => `fdb ${e.mac} dev ${e.ifname} master ${e.master ?? '?'} ${e.state || 'learned'}`)));
    }
  }
  return { saw: sawParts.join('; '), findings };
}

export function judgeIcmp(v: VmView, f: Pick<ReachFacts, 'pingNs' | 'pingHost'>, cfg: NetConfig): Verdict {
  const ip = hostAddress(v);
  const findings: F[] = [];
  const nsName = vmSideNs(cfg) ?? 'the host namespace';
  const side = isClone(v) ? `through the clone's veth into ${cloneOf(v)!.netns}` : 'the bridge\'s side';
  if (f.pingNs && f.pingNs.outcome !== 'reply') {
    findings.push(finding('DOC_ICMP_FAILED', 'error', `ICMP echo to ${ip} from ${nsName} (${side}) got ${f.pingNs.outcome === 'unreachable' ? 'an unreachable error' : 'no reply'}: ${f.pingNs.detail}.`,
      'See the findings that explain it.', [f.pingNs.detail]));
  }
  if (f.pingHost && f.pingHost.outcome !== 'reply' && cfg.mode === 'netns') {
    findings.push(finding('DOC_ICMP_HOST_FAILED', 'error', `ICMP echo to ${ip} from the host side (${cfg.hostNetns ?? 'root namespace'}, through the veth) got ${f.pingHost.outcome === 'unreachable' ? 'an unreachable error' : 'no reply'}${f.pingNs?.outcome === 'reply' ? ', although the guest answers on the bridge: the routed path (veth, route, forwarding, FORWARD chain) drops it' : ''}: ${f.pingHost.detail}.`,
      'Check the host link, the forwarding sysctl and the FORWARD chain in the VM namespace (findings above).', [f.pingHost.detail]));
  }
  const saw = [f.pingNs ? `from ${nsName}: ${f.pingNs.outcome}` : null, f.pingHost && cfg.mode === 'netns' ? `from host side: ${f.pingHost.outcome}` : null].filter(Boolean).join('; ');
  return { saw: saw || 'not probed', findings };
}

export function judgeVnc(v: VmView, tcp: TcpFacts | null, booting: boolean): Verdict {
  const ip = hostAddress(v);
  if (!tcp) return skipped('not probed');
  const target = `${ip}:${VNC_PORT}`;
  switch (tcp.outcome) {
    case 'banner':
      if (tcp.banner?.startsWith('RFB ')) return ok(`${target} ${tcp.detail}`);
      return { saw: `${target} ${tcp.detail}`, findings: [finding('DOC_VNC_BAD_BANNER', 'error', `${target} answers but not with an RFB banner (${JSON.stringify(tcp.banner?.slice(0, 16))}): something else listens on the VNC port.`, 'Check what listens on the guest\'s port 5900.', [tcp.detail])] };
    case 'closed':
      return { saw: `${target} closed`, findings: [finding('DOC_VNC_BAD_BANNER', 'error', `${target} accepted the connection but sent no banner: the VNC server is stuck or overloaded.`, 'Read the guest\'s x11vnc log (/run/hangar/x11vnc.log in the guest).', [tcp.detail])] };
    case 'refused':
      return { saw: `${target} refused`, findings: [finding('DOC_VNC_REFUSED', booting ? 'warning' : 'error', `${target} refuses connections: the guest is up and reachable (it answered with a reset) but no VNC server listens${booting ? ' (yet: the VM is still booting)' : ''}.`,
        'The guest\'s desktop did not start or x11vnc died: read the console after the init marker and /run/hangar/x11vnc.log in the guest.', [tcp.detail])] };
    default:
      return { saw: `${target} ${tcp.outcome}`, findings: [finding('DOC_VNC_UNREACHABLE', 'error', `${target} cannot be reached from the host side (${tcp.outcome}: ${tcp.detail}): the desktop proxy cannot serve this VM.`,
        'See the findings that explain it (link, ARP, routing, FORWARD chain).', [tcp.detail])] };
  }
}

/**
 * The console's findings, adjusted for what the VM is doing: a VM within its boot grace period, or one stopped by
 * its user before it was ready, has not printed READY for no fault (when nothing in the log explains it).
 */
export function adjustConsole(report: ConsoleReport, inGrace: boolean, state?: string): F[] {
  return report.findings.map((f) => {
    const { causedBy: _c, ...rest } = f;
    if (f.code === 'CON_READY_MISSING' && (inGrace || (state === 'stopped' && !f.causedBy?.length))) {
      return { ...rest, severity: 'info' as const, message: `${f.message} (${inGrace ? 'the VM is still booting' : 'the VM was stopped before it was ready'})` };
    }
    return rest;
  });
}
