// The doctor's vocabulary: checks and findings as data, the finding codes, and the cross-layer causal model that
// puts the most likely cause first (host → image → VM configuration → link → guest → symptoms). Pure.
import type { Evidence, Finding, Severity } from '../findings.js';
import { RULES } from '../kernel/rules.js';
import { orderByCause, rankBy, type CausalModel } from './causality.js';
import { CONSOLE_CAUSAL_MODEL, CONSOLE_PRIORITY } from './console.js';

export type CheckScope = 'host' | 'image' | 'vm';
export type CheckStatus = 'ok' | 'info' | 'warning' | 'error' | 'skipped';

/** A finding as the doctor reports it: the findings.ts shape (as `hangar kernel lint --json`) plus where it came from. */
export interface DoctorFinding extends Finding {
  evidence: Evidence[];
  /** The check that produced it. */
  check: string;
  /** Codes of findings in the same report that explain this one; absent on root causes. */
  causedBy?: string[];
}

/** One check: what ran (argv or file read), what it saw (one line), and what it concluded. */
export interface DoctorCheck {
  id: string;
  scope: CheckScope;
  title: string;
  ran: string[];
  saw: string;
  status: CheckStatus;
  findings: DoctorFinding[];
  ms: number;
}

export interface DoctorReport {
  ok: boolean;
  /** The VM examined, when one was. */
  vm: {
    id: string; name: string; state: string; ip: string | null; mac: string | null; tap: string | null;
    /** The golden snapshot it was cloned from (null: booted from its image). */
    snapshotId?: string | null;
    /** Stopped with its memory saved: a start restores it. */
    hibernated?: boolean;
  } | null;
  checks: DoctorCheck[];
  /** Every finding, most likely cause first. */
  findings: DoctorFinding[];
  /** The first finding that nothing else explains, when it is a warning or an error. */
  mostLikelyCause: DoctorFinding | null;
  startedAt: string;
  durationMs: number;
}

/** What a judge returns; the runner adds the check id to each finding. */
export interface Verdict {
  saw: string;
  findings: Omit<DoctorFinding, 'check'>[];
  /** Set when the check could not judge (a probe failed, nothing to check). */
  skipped?: string;
}

export type DoctorCode =
  // host
  | 'DOC_VMM_UNAVAILABLE' | 'DOC_ACCEL_UNAVAILABLE' | 'DOC_ACCEL_KVM_ON_PVM' | 'DOC_ACCEL_TCG' | 'DOC_TUN_MISSING'
  | 'DOC_NETNS_MISSING' | 'DOC_BRIDGE_MISSING' | 'DOC_BRIDGE_DOWN' | 'DOC_BRIDGE_NO_GATEWAY'
  | 'DOC_VETH_MISSING' | 'DOC_VETH_DOWN' | 'DOC_VETH_ADDRESS' | 'DOC_HOST_ROUTE_MISSING'
  | 'DOC_FORWARDING_OFF' | 'DOC_FORWARD_DROP' | 'DOC_RP_FILTER_STRICT'
  | 'DOC_LEFTOVER_TAP' | 'DOC_LEFTOVER_RUNDIR' | 'DOC_LEFTOVER_VMM' | 'DOC_PROBE_FAILED' | 'DOC_CGROUPS_UNAVAILABLE'
  // image
  | 'DOC_IMAGE_UNREADABLE' | 'DOC_ROOTFS_ERRORS' | 'DOC_INIT_MISSING' | 'DOC_IMAGE_VNC_MISSING' | 'DOC_IMAGE_NET_OVERRIDE'
  // VM
  | 'DOC_VM_FAILED' | 'DOC_VM_BOOTING' | 'DOC_VMM_NOT_RUNNING' | 'DOC_VM_FILE_MISSING' | 'DOC_CLONE_NET_BROKEN'
  | 'DOC_BOOTARGS_ROOT' | 'DOC_BOOTARGS_INIT' | 'DOC_BOOTARGS_IP' | 'DOC_MAC_NOT_ALLOCATED'
  | 'DOC_DUPLICATE_MAC' | 'DOC_DUPLICATE_IP' | 'DOC_MAC_WRONG_PORT'
  | 'DOC_TAP_MISSING' | 'DOC_TAP_DOWN' | 'DOC_TAP_NO_CARRIER' | 'DOC_TAP_NOT_ON_BRIDGE'
  | 'DOC_GUEST_READDRESSED' | 'DOC_ARP_UNANSWERED' | 'DOC_ARP_WRONG_MAC' | 'DOC_NEIGH_STALE'
  | 'DOC_ICMP_FAILED' | 'DOC_ICMP_HOST_FAILED' | 'DOC_VNC_REFUSED' | 'DOC_VNC_UNREACHABLE' | 'DOC_VNC_BAD_BANNER'
  // inside the guest (its agent's evidence)
  | 'DOC_AGENT_UNAVAILABLE' | 'DOC_AGENT_FAILED' | 'DOC_GUEST_NO_ETH0' | 'DOC_GUEST_ETH0_DOWN' | 'DOC_GUEST_ETH0_ADDRESS' | 'DOC_GUEST_NO_ROUTE'
  | 'DOC_GUEST_VNC_NOT_LISTENING' | 'DOC_GUEST_PROCESS_FAILED'
  // egress (src/doctor/egress.ts)
  | 'DOC_EGRESS_NO_UPLINK' | 'DOC_EGRESS_NO_NAT' | 'DOC_EGRESS_NETD_DOWN' | 'DOC_EGRESS_DNS_UPSTREAM'
  | 'DOC_EGRESS_PROXY_REFUSED' | 'DOC_EGRESS_DNS_REFUSED' | 'DOC_EGRESS_BLOCKED';

/** What a broken path from the host to the guest looks like from outside. */
const NET_SYMPTOMS: readonly DoctorCode[] = ['DOC_ARP_UNANSWERED', 'DOC_ICMP_FAILED', 'DOC_ICMP_HOST_FAILED', 'DOC_VNC_UNREACHABLE'];
/** Failures on the routed path between the host side and the VM namespace (ARP on the bridge still works). */
const ROUTED_SYMPTOMS: readonly DoctorCode[] = ['DOC_ICMP_HOST_FAILED', 'DOC_VNC_UNREACHABLE'];
const CONSOLE_NET = ['CON_IP_MISMATCH'];

/** cause → what it can explain (besides the console's own edges, which are included). */
const EXPLAINS: Partial<Record<string, readonly string[]>> = {
  DOC_ACCEL_KVM_ON_PVM: ['CON_EMPTY_LOG', 'CON_NO_KERNEL_OUTPUT', 'CON_REBOOT_LOOP', 'CON_READY_MISSING', 'DOC_VMM_NOT_RUNNING'],
  DOC_TUN_MISSING: ['DOC_TAP_MISSING'],
  DOC_NETNS_MISSING: ['DOC_BRIDGE_MISSING', 'DOC_VETH_MISSING', 'DOC_HOST_ROUTE_MISSING', 'DOC_FORWARDING_OFF', 'DOC_TAP_MISSING', 'DOC_PROBE_FAILED', ...NET_SYMPTOMS],
  DOC_BRIDGE_MISSING: ['DOC_BRIDGE_NO_GATEWAY', 'DOC_TAP_NOT_ON_BRIDGE', ...NET_SYMPTOMS],
  DOC_BRIDGE_DOWN: NET_SYMPTOMS,
  DOC_BRIDGE_NO_GATEWAY: NET_SYMPTOMS,
  DOC_VETH_MISSING: ['DOC_HOST_ROUTE_MISSING', ...ROUTED_SYMPTOMS],
  DOC_VETH_DOWN: ROUTED_SYMPTOMS,
  DOC_VETH_ADDRESS: ['DOC_HOST_ROUTE_MISSING', ...ROUTED_SYMPTOMS],
  DOC_HOST_ROUTE_MISSING: ROUTED_SYMPTOMS,
  DOC_FORWARDING_OFF: ROUTED_SYMPTOMS,
  DOC_FORWARD_DROP: ROUTED_SYMPTOMS,
  DOC_RP_FILTER_STRICT: ROUTED_SYMPTOMS,
  // image
  DOC_ROOTFS_ERRORS: ['CON_ROOT_FS_UNSUPPORTED', 'CON_ROOT_DEVICE_MISSING', 'CON_INIT_NOT_FOUND', 'CON_INIT_EXEC_FAILED'],
  DOC_INIT_MISSING: ['CON_INIT_NOT_FOUND', 'CON_INIT_EXEC_FAILED'],
  DOC_IMAGE_VNC_MISSING: ['DOC_VNC_REFUSED', 'CON_READY_MISSING'],
  DOC_IMAGE_NET_OVERRIDE: ['CON_NET_MANAGER', 'CON_GUEST_NET_CHANGED', 'DOC_GUEST_READDRESSED'],
  // kernel lint findings whose option differs from the console finding's (same option: see relates)
  ...Object.fromEntries(['KL_VIRTIO_MISSING', 'KL_VIRTIO_MODULE', 'KL_VIRTIO_MMIO_MISSING', 'KL_VIRTIO_MMIO_MODULE', 'KL_VIRTIO_MMIO_NO_DISCOVERY', 'KL_VIRTIO_PCI_MISSING', 'KL_VIRTIO_PCI_MODULE']
    .map((c) => [c, ['CON_NO_BLOCK_DEVICE', 'CON_NO_NET_DEVICE', 'CON_VIRTIO_PROBE_FAILED']])),
  KL_QEMU_ELF_NO_PVH: ['CON_EMPTY_LOG'],
  KL_SERIAL_CONSOLE: ['CON_EMPTY_LOG', 'CON_NO_KERNEL_OUTPUT'],
  KL_BINFMT_SCRIPT: ['CON_INIT_EXEC_FAILED', 'CON_INIT_NOT_FOUND'],
  KL_BINFMT_ELF: ['CON_INIT_EXEC_FAILED'],
  KL_CMDLINE_OVERRIDE: ['CON_ROOT_DEVICE_MISSING', 'CON_IP_CONFIG_MISSING', 'CON_NO_BLOCK_DEVICE', 'CON_NO_NET_DEVICE'],
  // the VM's own files: a VMM that cannot open its kernel prints nothing and exits
  DOC_VM_FILE_MISSING: ['DOC_VM_FAILED', 'DOC_VMM_NOT_RUNNING', 'CON_EMPTY_LOG', 'CON_NO_KERNEL_OUTPUT', 'CON_READY_MISSING'],
  // VM configuration
  DOC_BOOTARGS_ROOT: ['CON_ROOT_DEVICE_MISSING', 'CON_NO_BLOCK_DEVICE'],
  DOC_BOOTARGS_INIT: ['CON_INIT_NOT_FOUND', 'CON_INIT_EXEC_FAILED'],
  DOC_BOOTARGS_IP: ['DOC_DUPLICATE_IP', 'DOC_GUEST_READDRESSED', ...CONSOLE_NET, ...NET_SYMPTOMS],
  DOC_DUPLICATE_MAC: ['DOC_MAC_WRONG_PORT', 'DOC_ARP_WRONG_MAC', 'DOC_MAC_NOT_ALLOCATED', ...NET_SYMPTOMS],
  DOC_DUPLICATE_IP: ['DOC_ARP_WRONG_MAC', ...CONSOLE_NET, ...NET_SYMPTOMS],
  DOC_MAC_WRONG_PORT: NET_SYMPTOMS,
  DOC_VMM_NOT_RUNNING: ['DOC_TAP_NO_CARRIER', 'DOC_TAP_MISSING', ...NET_SYMPTOMS],
  // link
  DOC_CLONE_NET_BROKEN: ['DOC_TAP_MISSING', 'DOC_TAP_NO_CARRIER', ...NET_SYMPTOMS],
  DOC_TAP_MISSING: NET_SYMPTOMS,
  DOC_TAP_DOWN: NET_SYMPTOMS,
  DOC_TAP_NO_CARRIER: NET_SYMPTOMS,
  DOC_TAP_NOT_ON_BRIDGE: NET_SYMPTOMS,
  // guest
  CON_NO_NET_DEVICE: NET_SYMPTOMS,
  CON_IP_CONFIG_MISSING: NET_SYMPTOMS,
  CON_IP_CONFIG_FAILED: NET_SYMPTOMS,
  CON_NET_MANAGER: ['DOC_GUEST_READDRESSED'],
  CON_GUEST_NET_CHANGED: ['DOC_GUEST_READDRESSED', ...NET_SYMPTOMS],
  CON_IP_MISMATCH: NET_SYMPTOMS,
  DOC_GUEST_READDRESSED: [...CONSOLE_NET, ...NET_SYMPTOMS],
  // symptoms, nearest first
  DOC_ARP_WRONG_MAC: ['DOC_ICMP_FAILED', 'DOC_ICMP_HOST_FAILED', 'DOC_VNC_UNREACHABLE', 'DOC_VNC_REFUSED'],
  DOC_NEIGH_STALE: ['DOC_ICMP_FAILED', 'DOC_ICMP_HOST_FAILED', 'DOC_VNC_UNREACHABLE', 'DOC_VNC_REFUSED'],
  DOC_ARP_UNANSWERED: ['DOC_ICMP_FAILED', 'DOC_ICMP_HOST_FAILED', 'DOC_VNC_UNREACHABLE'],
  DOC_ICMP_FAILED: ['DOC_ICMP_HOST_FAILED', 'DOC_VNC_UNREACHABLE'],
  DOC_ICMP_HOST_FAILED: ['DOC_VNC_UNREACHABLE'],
  DOC_VNC_REFUSED: ['CON_READY_MISSING'],
  // inside the guest: what its agent saw explains what the host saw from outside
  DOC_GUEST_NO_ETH0: ['DOC_GUEST_NO_ROUTE', 'DOC_ARP_WRONG_MAC', 'DOC_NEIGH_STALE', ...NET_SYMPTOMS],
  DOC_GUEST_ETH0_DOWN: ['DOC_ARP_WRONG_MAC', 'DOC_NEIGH_STALE', ...NET_SYMPTOMS],
  DOC_GUEST_ETH0_ADDRESS: ['DOC_GUEST_READDRESSED', 'DOC_ARP_WRONG_MAC', 'DOC_NEIGH_STALE', ...CONSOLE_NET, ...NET_SYMPTOMS],
  DOC_GUEST_NO_ROUTE: ROUTED_SYMPTOMS,
  DOC_GUEST_PROCESS_FAILED: ['DOC_GUEST_VNC_NOT_LISTENING', 'DOC_VNC_REFUSED', 'DOC_VNC_BAD_BANNER', 'CON_READY_MISSING'],
  DOC_GUEST_VNC_NOT_LISTENING: ['DOC_VNC_REFUSED', 'CON_READY_MISSING'],
  // No way out explains every egress symptom; a dead netd explains failed lookups.
  DOC_EGRESS_NO_UPLINK: ['DOC_EGRESS_NO_NAT', 'DOC_EGRESS_DNS_UPSTREAM', 'DOC_EGRESS_PROXY_REFUSED', 'DOC_EGRESS_BLOCKED'],
  DOC_EGRESS_NO_NAT: ['DOC_EGRESS_DNS_UPSTREAM'],
  DOC_EGRESS_NETD_DOWN: ['DOC_EGRESS_DNS_UPSTREAM', 'DOC_EGRESS_PROXY_REFUSED'],
};

const KL_ORDER = RULES.map((r) => r.code);

/** Among roots of the same severity and depth: host, image, VM configuration, link, guest, symptoms, leftovers. */
export const DOCTOR_PRIORITY: readonly string[] = [
  'DOC_VMM_UNAVAILABLE', 'DOC_ACCEL_UNAVAILABLE', 'DOC_ACCEL_KVM_ON_PVM', 'DOC_TUN_MISSING', 'DOC_NETNS_MISSING',
  'DOC_BRIDGE_MISSING', 'DOC_BRIDGE_DOWN', 'DOC_BRIDGE_NO_GATEWAY', 'DOC_VETH_MISSING', 'DOC_VETH_DOWN', 'DOC_VETH_ADDRESS',
  'DOC_HOST_ROUTE_MISSING', 'DOC_FORWARDING_OFF', 'DOC_FORWARD_DROP', 'DOC_RP_FILTER_STRICT',
  'DOC_VM_FILE_MISSING', 'DOC_IMAGE_UNREADABLE', ...KL_ORDER, 'DOC_ROOTFS_ERRORS', 'DOC_INIT_MISSING', 'DOC_IMAGE_VNC_MISSING', 'DOC_IMAGE_NET_OVERRIDE',
  'DOC_BOOTARGS_ROOT', 'DOC_BOOTARGS_INIT', 'DOC_BOOTARGS_IP', 'DOC_DUPLICATE_MAC', 'DOC_DUPLICATE_IP', 'DOC_MAC_NOT_ALLOCATED',
  'DOC_VMM_NOT_RUNNING', 'DOC_CLONE_NET_BROKEN', 'DOC_TAP_MISSING', 'DOC_TAP_DOWN', 'DOC_TAP_NOT_ON_BRIDGE', 'DOC_TAP_NO_CARRIER', 'DOC_MAC_WRONG_PORT', 'DOC_NEIGH_STALE',
  ...CONSOLE_PRIORITY.filter((c) => c !== 'CON_READY_MISSING' && c !== 'CON_REBOOT_LOOP'),
  'DOC_GUEST_NO_ETH0', 'DOC_GUEST_ETH0_DOWN', 'DOC_GUEST_ETH0_ADDRESS', 'DOC_GUEST_NO_ROUTE', 'DOC_GUEST_PROCESS_FAILED', 'DOC_GUEST_VNC_NOT_LISTENING',
  'DOC_GUEST_READDRESSED', 'DOC_ARP_WRONG_MAC', 'DOC_ARP_UNANSWERED', 'DOC_ICMP_FAILED', 'DOC_ICMP_HOST_FAILED',
  'DOC_VNC_REFUSED', 'DOC_VNC_UNREACHABLE', 'DOC_VNC_BAD_BANNER', 'CON_READY_MISSING', 'CON_REBOOT_LOOP',
  'DOC_VM_FAILED', 'DOC_VM_BOOTING', 'DOC_AGENT_FAILED', 'DOC_AGENT_UNAVAILABLE', 'DOC_LEFTOVER_VMM', 'DOC_LEFTOVER_TAP', 'DOC_LEFTOVER_RUNDIR', 'DOC_PROBE_FAILED',
  'DOC_ACCEL_TCG', 'DOC_CGROUPS_UNAVAILABLE',
  'DOC_EGRESS_NO_UPLINK', 'DOC_EGRESS_NO_NAT', 'DOC_EGRESS_NETD_DOWN', 'DOC_EGRESS_PROXY_REFUSED', 'DOC_EGRESS_DNS_UPSTREAM',
  'DOC_EGRESS_DNS_REFUSED', 'DOC_EGRESS_BLOCKED',
];

const options = (f: Finding): string[] => (f.option ?? '').split(/,\s*/).filter(Boolean);
/** Findings about the host in general, never the cause of one VM's failure. */
const BYSTANDERS = new Set(['DOC_CGROUPS_UNAVAILABLE', 'DOC_LEFTOVER_TAP', 'DOC_LEFTOVER_RUNDIR', 'DOC_LEFTOVER_VMM', 'DOC_PROBE_FAILED', 'DOC_VM_BOOTING', 'DOC_AGENT_UNAVAILABLE']);

export const DOCTOR_CAUSAL_MODEL: CausalModel = {
  explains: (c) => [...(EXPLAINS[c] ?? []), ...CONSOLE_CAUSAL_MODEL.explains(c)],
  rank: rankBy(DOCTOR_PRIORITY),
  relates: (cause, effect) => {
    // A kernel lint finding explains a console finding about the same kernel option (no virtio-net → no eth0).
    if (cause.code.startsWith('KL_') && effect.code.startsWith('CON_') && cause.severity !== 'info') {
      return options(cause).some((o) => options(effect).includes(o));
    }
    // A failed VM is the symptom of whatever else went wrong.
    return effect.code === 'DOC_VM_FAILED' && cause.severity !== 'info' && !BYSTANDERS.has(cause.code);
  },
};

/** Orders a report's findings, most likely cause first; findings with the same code must have been merged. */
export function orderDoctorFindings(findings: readonly DoctorFinding[]): DoctorFinding[] {
  return orderByCause(findings, DOCTOR_CAUSAL_MODEL);
}

/** The first finding that nothing else explains, when it is not mere information. */
export function topCause(ordered: readonly DoctorFinding[]): DoctorFinding | null {
  const top = ordered[0];
  return top && top.severity !== 'info' && !top.causedBy?.length ? top : null;
}

/** Merges findings with the same code (e.g. one lint rule failing for both VMMs): evidence and checks joined. */
export function mergeByCode(findings: readonly DoctorFinding[]): DoctorFinding[] {
  const out = new Map<string, DoctorFinding>();
  const rank: Record<Severity, number> = { error: 0, warning: 1, info: 2 };
  for (const f of findings) {
    const prev = out.get(f.code);
    if (!prev) { out.set(f.code, { ...f, evidence: [...f.evidence] }); continue; }
    const seen = new Set(prev.evidence.map((e) => `${e.line ?? ''}:${e.text}`));
    for (const e of f.evidence) if (!seen.has(`${e.line ?? ''}:${e.text}`)) prev.evidence.push(e);
    if (rank[f.severity] < rank[prev.severity]) { prev.severity = f.severity; prev.message = f.message; prev.fix = f.fix; }
    if (!prev.check.split(', ').includes(f.check)) prev.check = `${prev.check}, ${f.check}`;
  }
  return [...out.values()];
}
