// Serial console classifier: reads a guest's console log and names the most likely root cause from evidence.
// Pure: text in, report out. Every finding cites the exact console lines (1-based) it was judged from, and a
// small causality model orders them so the root cause comes first and its consequences are marked as such.
import type { Evidence, Finding, Severity } from '../findings.js';
import { GUEST_INIT_PATH, INIT_MARKER, READY_MARKER } from '../guest-protocol.js';
import { orderByCause as orderFindingsByCause, rankBy, type CausalModel } from './causality.js';
import { BANNER_RE, readHistory, splitBoots, splitLines, type ConsoleHistory, type Line, type Restore } from './console-lines.js';
import { RESUMED_MARKER } from '../guest-protocol.js';

/** Printed by the guest init after boot: `HANGAR-NET <ifname> <addr>[/prefix]` ('-' or nothing when unaddressed). */
export const NET_MARKER = 'HANGAR-NET';
/** Printed by the guest init when a step it waits for fails, e.g. `HANGAR-ERROR vnc-not-ready`, then log tails. */
export const ERROR_MARKER = 'HANGAR-ERROR';

export type ConsoleCode =
  | 'CON_EMPTY_LOG'
  | 'CON_NO_KERNEL_OUTPUT'
  | 'CON_VIRTIO_PROBE_FAILED'
  | 'CON_NO_BLOCK_DEVICE'
  | 'CON_ROOT_DEVICE_MISSING'
  | 'CON_ROOT_FS_UNSUPPORTED'
  | 'CON_INIT_NOT_FOUND'
  | 'CON_INIT_EXEC_FAILED'
  | 'CON_OOM_KILL'
  | 'CON_KERNEL_OOPS'
  | 'CON_INIT_SCRIPT_ERROR'
  | 'CON_INIT_EXITED'
  | 'CON_KERNEL_PANIC'
  | 'CON_REBOOT_LOOP'
  | 'CON_READY_MISSING'
  | 'CON_LOW_MEMORY'
  | 'CON_NO_CONSOLE'
  | 'CON_NO_NET_DEVICE'
  | 'CON_IP_CONFIG_MISSING'
  | 'CON_IP_CONFIG_FAILED'
  | 'CON_NET_MANAGER'
  | 'CON_GUEST_NET_CHANGED'
  | 'CON_IP_MISMATCH'
  | 'CON_GUEST_ADDRESS_UNKNOWN'
  | 'CON_VIRTIO_DMA_WARNING'
  | 'CON_RESTORED'
  | 'CON_READY';

export interface ConsoleFinding extends Finding {
  code: ConsoleCode;
  evidence: Evidence[];
  /** Codes of findings in the same report that explain this one (it is their consequence). Absent on root causes. */
  causedBy?: ConsoleCode[];
}

export type PanicKind = 'vfs' | 'kill_init' | 'no_init' | 'requested_init' | 'oom' | 'other';

export interface IpParam {
  address: string | null;
  gateway: string | null;
  netmask: string | null;
  device: string | null;
  autoconf: string | null;
}

export interface ConsoleFacts {
  kernelVersion?: string;
  commandLine?: string;
  /** Kernel boots seen in the log (more than one: the guest rebooted, e.g. panic=N; none: a clone's log). */
  boots: number;
  /** The boot the findings describe (1-based), the last one that got somewhere (0: none). */
  analysedBoot: number;
  /** virtio-mmio devices the VMM declared on the command line (`virtio_mmio.device=SIZE@BASE:IRQ`). */
  virtioMmioDeclared: string[];
  /** virtio-mmio transports the kernel registered, e.g. "virtio-mmio.0 0xfeb00e00 irq 12". */
  virtioDevices: string[];
  blockDevices: string[];
  netDevices: string[];
  ipConfig?: {
    /** ip= from the command line. */
    requested?: IpParam;
    /** The kernel's "IP-Config: Complete" block. */
    configured?: { device: string | null; address: string | null; netmask: string | null; gateway: string | null };
    errors: string[];
  };
  /** What the guest init reported after boot (HANGAR-NET lines) and any userspace network managers seen. */
  guestNet?: { reports: { ifname: string; address: string | null; line: number }[]; managers: string[] };
  /** From the kernel's "Memory: AVAILK/TOTALK available" line. */
  memory?: { availableKiB: number; totalKiB: number };
  panic?: { kind: PanicKind; reason: string; line: number };
  init?: { path: string | null; exitStatus?: number; signal?: number };
  markers: { init?: number; ready?: number };
  /** Restores of saved state the log records (the host's marker lines), oldest first. */
  restores: Restore[];
}

export interface ConsoleTimeline {
  kernelStart: number | null;
  rootMounted: number | null;
  init: number | null;
  ready: number | null;
}

export interface ConsoleReport {
  ok: boolean;
  findings: ConsoleFinding[];
  timeline: ConsoleTimeline;
  facts: ConsoleFacts;
}

export interface ClassifyOptions {
  /** The address the host expects the guest to have (from its allocation). */
  expectIp?: string;
  /** Whether Hangar's guest markers (READY) are expected; default: when init= is Hangar's init or a marker shows. */
  expectMarkers?: boolean;
}

// ---- lines

const ev = (l: Line): Evidence => ({ line: l.n, text: l.raw });
const MAX_EVIDENCE = 12;

function evidenceOf(...groups: (Line | Line[] | undefined | null)[]): Evidence[] {
  const seen = new Set<number>();
  const out: Line[] = [];
  for (const g of groups) {
    for (const l of Array.isArray(g) ? g : g ? [g] : []) {
      if (!seen.has(l.n)) { seen.add(l.n); out.push(l); }
    }
  }
  return out.slice(0, MAX_EVIDENCE).map(ev);
}

// ---- small parsers

const ERRNO: Record<number, string> = {
  1: 'EPERM', 2: 'ENOENT', 5: 'EIO', 6: 'ENXIO', 7: 'E2BIG', 8: 'ENOEXEC', 12: 'ENOMEM', 13: 'EACCES', 14: 'EFAULT',
  19: 'ENODEV', 20: 'ENOTDIR', 21: 'EISDIR', 22: 'EINVAL', 26: 'ETXTBSY', 40: 'ELOOP',
};
const errnoName = (e: number): string => ERRNO[Math.abs(e)] ?? `errno ${Math.abs(e)}`;

const SIGNALS: Record<number, string> = { 4: 'SIGILL', 6: 'SIGABRT', 7: 'SIGBUS', 9: 'SIGKILL', 11: 'SIGSEGV', 15: 'SIGTERM' };

/** Splits a kernel command line into params (repeated keys keep every value); arguments after `--` go to init. */
export function parseCommandLine(cmdline: string): Map<string, string[]> {
  const params = new Map<string, string[]>();
  for (const tok of cmdline.match(/(?:[^\s"]+|"[^"]*")+/g) ?? []) {
    if (tok === '--') break;
    const eq = tok.indexOf('=');
    const key = eq < 0 ? tok : tok.slice(0, eq);
    const value = eq < 0 ? '' : tok.slice(eq + 1).replace(/^"|"$/g, '');
    params.set(key, [...(params.get(key) ?? []), value]);
  }
  return params;
}

/** ip=<client>:<server>:<gw>:<netmask>:<hostname>:<device>:<autoconf>:... (Documentation/admin-guide/nfs/nfsroot.rst). */
export function parseIpParam(value: string): IpParam {
  const f = value.split(':');
  const opt = (i: number): string | null => (f[i] ? f[i]! : null);
  const single = f.length === 1 ? value : null; // ip=dhcp, ip=off, ...
  return {
    address: single ? null : opt(0),
    gateway: opt(2),
    netmask: opt(3),
    device: opt(5),
    autoconf: single ?? opt(6),
  };
}

const IPV4_RE = /\b(\d{1,3}(?:\.\d{1,3}){3})\b/;

// ---- causality

/** cause → the findings it can explain. Transitive paths count (a root device missing → panic → no READY). */
const EXPLAINS: Partial<Record<ConsoleCode, readonly ConsoleCode[]>> = {
  CON_EMPTY_LOG: ['CON_READY_MISSING'],
  CON_NO_KERNEL_OUTPUT: ['CON_READY_MISSING'],
  CON_VIRTIO_PROBE_FAILED: ['CON_NO_BLOCK_DEVICE', 'CON_NO_NET_DEVICE', 'CON_ROOT_DEVICE_MISSING'],
  CON_NO_BLOCK_DEVICE: ['CON_KERNEL_PANIC', 'CON_READY_MISSING'],
  CON_ROOT_DEVICE_MISSING: ['CON_KERNEL_PANIC', 'CON_READY_MISSING'],
  CON_ROOT_FS_UNSUPPORTED: ['CON_KERNEL_PANIC', 'CON_READY_MISSING'],
  CON_INIT_NOT_FOUND: ['CON_KERNEL_PANIC'],
  CON_INIT_EXEC_FAILED: ['CON_KERNEL_PANIC'],
  CON_OOM_KILL: ['CON_INIT_SCRIPT_ERROR', 'CON_INIT_EXITED', 'CON_KERNEL_PANIC', 'CON_READY_MISSING'],
  CON_KERNEL_OOPS: ['CON_KERNEL_PANIC', 'CON_READY_MISSING'],
  CON_LOW_MEMORY: ['CON_OOM_KILL', 'CON_READY_MISSING'],
  CON_INIT_SCRIPT_ERROR: ['CON_INIT_EXITED', 'CON_READY_MISSING'],
  CON_INIT_EXITED: ['CON_KERNEL_PANIC'],
  CON_KERNEL_PANIC: ['CON_REBOOT_LOOP', 'CON_READY_MISSING'],
  CON_NO_NET_DEVICE: ['CON_IP_CONFIG_FAILED', 'CON_IP_MISMATCH', 'CON_GUEST_ADDRESS_UNKNOWN'],
  CON_IP_CONFIG_MISSING: ['CON_GUEST_ADDRESS_UNKNOWN'],
  CON_NET_MANAGER: ['CON_GUEST_NET_CHANGED'],
  CON_GUEST_NET_CHANGED: ['CON_IP_MISMATCH'],
};

/** Among root causes of the same severity, the one earlier here is the likelier culprit (boot order, then network). */
const PRIORITY: readonly ConsoleCode[] = [
  'CON_EMPTY_LOG', 'CON_NO_KERNEL_OUTPUT', 'CON_VIRTIO_PROBE_FAILED', 'CON_NO_BLOCK_DEVICE', 'CON_ROOT_DEVICE_MISSING',
  'CON_ROOT_FS_UNSUPPORTED', 'CON_INIT_NOT_FOUND', 'CON_INIT_EXEC_FAILED', 'CON_LOW_MEMORY', 'CON_OOM_KILL', 'CON_KERNEL_OOPS',
  'CON_INIT_SCRIPT_ERROR', 'CON_INIT_EXITED', 'CON_KERNEL_PANIC', 'CON_NO_NET_DEVICE', 'CON_IP_CONFIG_MISSING',
  'CON_IP_CONFIG_FAILED', 'CON_NET_MANAGER', 'CON_GUEST_NET_CHANGED', 'CON_IP_MISMATCH', 'CON_GUEST_ADDRESS_UNKNOWN',
  'CON_READY_MISSING', 'CON_REBOOT_LOOP', 'CON_NO_CONSOLE', 'CON_VIRTIO_DMA_WARNING', 'CON_RESTORED', 'CON_READY',
];

/**
 * Marks consequences (causedBy: the nearest present causes), raises a cause to the severity of what it explains,
 * and orders: severity, then causal depth (causes before their consequences), then PRIORITY, then first line.
 */
export function orderByCause(findings: ConsoleFinding[]): ConsoleFinding[] {
  return orderFindingsByCause(findings, CONSOLE_CAUSAL_MODEL);
}

/** The console's causal model, also part of the doctor's (which adds host, image and VM causes to it). */
export const CONSOLE_CAUSAL_MODEL: CausalModel = {
  explains: (c) => EXPLAINS[c as ConsoleCode] ?? [],
  rank: rankBy(PRIORITY),
  tieBreak: (a, b) => (a.evidence?.[0]?.line ?? Number.MAX_SAFE_INTEGER) - (b.evidence?.[0]?.line ?? Number.MAX_SAFE_INTEGER),
};

/** The console codes, root causes first (boot order, then network). */
export const CONSOLE_PRIORITY: readonly ConsoleCode[] = PRIORITY;

// ---- the classifier

const PANIC_RE = /Kernel panic - not syncing: (.*)$/;
const DMA_RE = /virtio[-_]mmio\b.*Failed to enable 64-bit or 32-bit DMA/;
const OOM_KILLED_RE = /Out of memory(?: \([^)]*\))?: Killed process (\d+) \(([^)]*)\)/;
const OOM_INVOKED_RE = /^(\S+) invoked oom-killer/;
const OOPS_RE = /^(BUG: |Oops: |general protection fault|Unable to handle kernel|kernel BUG at )/;
const IPCFG_ERR_RE =
  /^(IP-Config: (Device `[^']*' not found|No network devices available|Failed to open|Unable to set|Gateway not on|Cannot add default route|Auto-configuration of network failed|Incomplete network configuration|Unable to guess netmask)|DHCP\/BOOTP: No suitable device found)/;
const NET_MANAGER_RE = /\b(dhclient|dhcpcd|udhcpc|systemd-networkd|NetworkManager|connmand|wicked|ifupdown|ifup|Internet Systems Consortium DHCP Client|DHCPDISCOVER|DHCPREQUEST|DHCPACK)\b/;
/** How a manager line names its program. */
const managerName = (m: string): string => (/^DHCP|Internet Systems/.test(m) ? 'dhclient' : m);
// Shell and daemon errors printed by the init or what it starts (no printk timestamp: userspace writes them).
const SCRIPT_ERR_RE =
  /(^\S+: (line \d+: )?.*(not found|No such file or directory|Permission denied|syntax error|unexpected|Operation not permitted|Read-only file system|cannot |can't |Exec format error|unknown |\bfailed\b))|^\(EE\) |Fatal server error|^Killed\b|Segmentation fault/;
const PARTITION_RE = /^([0-9a-f]{4,})\s+(\d+)\s+(\S+)/;

/** The longest silence (≥ 8 s of printk time) between the command line and the root phase: [before, after]. */
function silentGap(lines: Line[], from: Line | undefined, to: Line | undefined): [Line, Line] | null {
  if (!to) return null;
  const stamped = lines.filter((l) => l.ts !== null && l.n >= (from?.n ?? 0) && l.n <= to.n);
  let best: [Line, Line] | null = null;
  for (let i = 1; i < stamped.length; i++) {
    const gap = stamped[i]!.ts! - stamped[i - 1]!.ts!;
    if (gap >= 8 && (!best || gap > best[1].ts! - best[0].ts!)) best = [stamped[i - 1]!, stamped[i]!];
  }
  return best;
}

type AddFinding = (code: ConsoleCode, severity: Severity, option: string | null, message: string, fix: string, evidence: Evidence[]) => unknown;

/** Says the VM was restored, and what the boot findings describe (information: a restore is no fault). */
function addRestored(add: AddFinding, h: ConsoleHistory, all: Line[], boot: Line[]): void {
  const last = h.restores.at(-1);
  const after = last ? h.resumed.filter((l) => l.n > last.line) : h.resumed;
  const printed = after.filter((l) => l.raw.trim() !== '');
  const resumedLine = after.find((l) => l.raw.startsWith(RESUMED_MARKER));
  const what = (r: Restore): string => `${r.what.replace(/_/g, ' ')} (restored${r.at ? ` at ${r.at}` : ''}, line ${r.line})`;
  const restored = h.markerless
    ? 'The VM was restored from saved state by a Hangar that rewrote the console log: the boot\'s history is lost'
    : `The VM was restored from saved state${h.restores.length > 1 ? ` ${h.restores.length} times, last` : ''}: the ${what(last!)}`;
  const boots = h.hasBoot
    ? `the boot findings describe its boot before that (lines ${boot[0]?.n ?? 1}-${[...boot].reverse().find((l) => l.raw.trim())?.n ?? 1})`
    : h.markerless ? 'there is no boot to judge' : 'its boot happened in the snapshot\'s source VM, so this log has no boot to judge';
  const since = printed.length
    ? `since then the guest printed ${printed.length} line(s)${resumedLine ? ` and its agent resynchronised the clock (${RESUMED_MARKER})` : ''}`
    : 'nothing was printed since (a guest without the resume agent prints nothing after a restore, nor does a VMM that could not restore)';
  add('CON_RESTORED', 'info', null, `${restored}; ${boots}; ${since}.`, 'None: a restore is not a fault.',
    [...h.restores.map((r) => ev(all[r.line - 1]!)), ...(resumedLine ? [ev(resumedLine)] : [])].slice(-MAX_EVIDENCE));
}

export function classifyConsole(text: string, opts: ClassifyOptions = {}): ConsoleReport {
  const all = splitLines(text);
  // Boot-phase evidence comes from the boot's history only (a clone's log has none: its boot happened in the
  // snapshot's source VM); what the guest printed after a restore counts for what can happen at any time (panic,
  // oops, OOM, errors of the init's services).
  const h = readHistory(all);
  const boots = h.hasBoot ? splitBoots(h.history) : [];
  const versionLines = h.history.filter((l) => BANNER_RE.test(l.msg));
  // Describe the last boot that reached an outcome (panic or READY); a loop's last boot is often cut short. A
  // restored VM was saved while its last boot ran.
  let idx = boots.length - 1;
  for (let i = boots.length - 1; i >= 0 && !h.restores.length; i--) {
    if (boots[i]!.some((l) => PANIC_RE.test(l.msg) || l.raw.includes(READY_MARKER))) { idx = i; break; }
  }
  const lines = boots[idx] ?? [];
  /** The analysed boot and every restored run after it. */
  const run = [...lines, ...h.resumed];
  const findings: ConsoleFinding[] = [];
  const add = (code: ConsoleCode, severity: Severity, option: string | null, message: string, fix: string, evidence: Evidence[]): ConsoleFinding => {
    const f: ConsoleFinding = { code, severity, option, message, fix, evidence };
    findings.push(f);
    return f;
  };
  const find = (re: RegExp, from: Line[] = lines): Line | undefined => from.find((l) => re.test(l.msg));
  const findAll = (re: RegExp, from: Line[] = lines): Line[] => from.filter((l) => re.test(l.msg));

  // ---- facts
  const versionLine = find(/^Linux version \S+/);
  const cmdLine = find(/^Kernel command line: /) ?? find(/^Command line: /);
  const commandLine = cmdLine ? cmdLine.msg.replace(/^(Kernel )?[Cc]ommand line: /, '') : undefined;
  const params = parseCommandLine(commandLine ?? '');
  const param = (k: string): string | undefined => params.get(k)?.at(-1);
  const rootParam = param('root');
  const initParam = param('init') ?? null;
  const ipParam = param('ip') ?? param('nfsaddrs');

  const virtioMmioDeclared = params.get('virtio_mmio.device') ?? [];
  const REGISTER_RE = /^virtio-mmio: Registering device (\S+) at (0x[0-9a-f]+)-0x[0-9a-f]+, IRQ (\d+)/;
  const registerLines = findAll(REGISTER_RE);
  const virtioDevices = registerLines.map((l) => { const m = REGISTER_RE.exec(l.msg)!; return `${m[1]!} ${m[2]!} irq ${m[3]!}`; });
  const blockDevices = new Set<string>();
  for (const l of findAll(/^virtio_blk virtio\d+: \[(\S+)\]/)) blockDevices.add(/\[(\S+)\]/.exec(l.msg)![1]!);
  const memLine = find(/^Memory: \d+K\/\d+K available/);
  const memory = memLine ? (([a, t]) => ({ availableKiB: Number(a), totalKiB: Number(t) }))(/^Memory: (\d+)K\/(\d+)K/.exec(memLine.msg)!.slice(1)) : undefined;

  // Root mount failure and the partitions the kernel lists after "Please append a correct root=".
  const cannotOpen = find(/^VFS: Cannot open root device "([^"]*)"/);
  const appendHint = find(/^Please append a correct "root=" boot option/);
  const noFsLine = find(/^No filesystem could mount root, tried:/);
  const partitionsHeader = appendHint ?? find(/^List of all partitions:/);
  const partitionLines: Line[] = [];
  const partitionNames: string[] = [];
  if (partitionsHeader) {
    for (const l of lines.slice(lines.indexOf(partitionsHeader) + 1)) {
      const m = PARTITION_RE.exec(l.msg);
      if (m) { partitionLines.push(l); partitionNames.push(m[3]!); blockDevices.add(m[3]!); continue; }
      if (/^\s*driver: /.test(l.msg)) { partitionLines.push(l); continue; }
      break;
    }
  }
  const mountedLine = find(/^VFS: Mounted root \(/);
  const waitingRoot = find(/^Waiting for root device /);

  // Panic.
  const panicLine = run.find((l) => PANIC_RE.test(l.msg) && !l.msg.includes('---[ end Kernel panic'));
  let panic: ConsoleFacts['panic'];
  if (panicLine) {
    const reason = PANIC_RE.exec(panicLine.msg)![1]!.trim();
    const kind: PanicKind = /^VFS: Unable to mount root fs/.test(reason) ? 'vfs'
      : /^Attempted to kill init!/.test(reason) ? 'kill_init'
      : /^No working init found/.test(reason) ? 'no_init'
      : /^Requested init \S+ failed/.test(reason) ? 'requested_init'
      : /Out of memory|deadlocked on memory/.test(reason) ? 'oom'
      : 'other';
    panic = { kind, reason, line: panicLine.n };
  }
  const panicTail = run.filter((l) => l.n > (panicLine?.n ?? Infinity) && /^(---\[ end Kernel panic|Rebooting in \d+ seconds)/.test(l.msg));

  // Init.
  const runInitLines = findAll(/^Run (\S+) as init process/);
  const initPath = initParam ?? (runInitLines.at(-1) ? /^Run (\S+) as init process/.exec(runInitLines.at(-1)!.msg)![1]! : null);
  const initMarker = lines.find((l) => l.raw.includes(INIT_MARKER));
  const readyLine = lines.find((l) => l.raw.includes(READY_MARKER));

  // Network: ip=, IP-Config, devices, guest reports, managers.
  const requested = ipParam !== undefined ? parseIpParam(ipParam) : undefined;
  const ipCfgLines = findAll(/IP-Config:/);
  const ipCompleteIdx = lines.findIndex((l) => /^IP-Config: Complete:/.test(l.msg));
  const ipDetail = ipCompleteIdx >= 0 ? lines.slice(ipCompleteIdx + 1, ipCompleteIdx + 4).find((l) => /device=/.test(l.msg)) : undefined;
  const field = (s: string, k: string): string | null => new RegExp(`\\b${k}=([^,\\s]+)`).exec(s)?.[1] ?? null;
  const configured = ipDetail
    ? { device: field(ipDetail.msg, 'device'), address: field(ipDetail.msg, 'ipaddr'), netmask: field(ipDetail.msg, 'mask'), gateway: field(ipDetail.msg, 'gw') }
    : undefined;
  const ipErrLines = findAll(IPCFG_ERR_RE);
  const netDevices = new Set<string>();
  if (configured?.device) netDevices.add(configured.device);
  for (const l of findAll(/^virtio_net virtio\d+ (\S+?):? /)) netDevices.add(/^virtio_net virtio\d+ (\S+?):? /.exec(l.msg)![1]!);
  for (const l of findAll(/ADDRCONF\(NETDEV_(?:UP|CHANGE)\): (\S+?): /)) netDevices.add(/ADDRCONF\(NETDEV_(?:UP|CHANGE)\): (\S+?): /.exec(l.msg)![1]!);
  const netReportLines = run.filter((l) => l.raw.includes(NET_MARKER));
  const netReports = netReportLines.map((l) => {
    const after = l.raw.slice(l.raw.indexOf(NET_MARKER) + NET_MARKER.length).trim().split(/\s+/);
    const ifname = after[0] ?? '';
    const address = IPV4_RE.exec(after.slice(1).join(' '))?.[1] ?? null;
    // The init prints the name whether or not the device exists ("eth0 none"): only an address proves it.
    if (ifname && address) netDevices.add(ifname);
    return { ifname, address, line: l.n, l };
  });
  const managerLines = run.filter((l) => !/^(Kernel )?[Cc]ommand line: /.test(l.msg) && NET_MANAGER_RE.test(l.msg));
  const managers = [...new Set(managerLines.map((l) => managerName(NET_MANAGER_RE.exec(l.msg)![1]!)))];

  const dmaLines = findAll(DMA_RE);
  const probeFailLines = findAll(/^virtio[-_]mmio\b.*(probe of \S+ failed with error|Wrong magic value|Version \d+ not supported|must provide VIRTIO_F_VERSION_1)/);

  const rootPhaseLine = waitingRoot ?? cannotOpen ?? mountedLine ?? noFsLine ?? panicLine ?? runInitLines[0];
  const afterRootPhase = Boolean(mountedLine || cannotOpen || noFsLine || panic?.kind === 'vfs' || runInitLines.length);

  // ---- findings, boot order

  if (!h.hasBoot) {
    // Nothing to judge of the boot; restoreFinding() below says so.
  } else if (all.length === 0 || all.every((l) => l.raw.trim() === '')) {
    add('CON_EMPTY_LOG', 'error', null, 'The console log is empty: the guest printed nothing.',
      'Check that the VMM started (its own log), that the kernel loads (QEMU needs CONFIG_PVH=y for a vmlinux), and that console=ttyS0 is on the command line with CONFIG_SERIAL_8250_CONSOLE=y.', []);
  } else if (!versionLine && !lines.some((l) => l.ts !== null)) {
    add('CON_NO_KERNEL_OUTPUT', 'error', 'CONFIG_SERIAL_8250_CONSOLE', 'No kernel messages in the log (no "Linux version" banner, no printk timestamps): the kernel did not start or does not print to this console.',
      'Boot with console=ttyS0 and CONFIG_SERIAL_8250=y, CONFIG_SERIAL_8250_CONSOLE=y, CONFIG_PRINTK=y; for QEMU microvm load a vmlinux with a PVH note (CONFIG_PVH=y).',
      evidenceOf(lines.slice(0, 3)));
  }

  if (probeFailLines.length) {
    add('CON_VIRTIO_PROBE_FAILED', 'error', 'CONFIG_VIRTIO_MMIO', `virtio-mmio probing failed (${probeFailLines.length} line(s)): the devices behind it never appeared.`,
      'Check the virtio_mmio.device= entries the VMM appends (size@base:irq) and that the VMM offers a virtio-mmio version the kernel supports (modern devices need VIRTIO_F_VERSION_1).',
      evidenceOf(probeFailLines, cmdLine));
  }

  // The DMA warning: informational when devices probed; otherwise evidence next to the real cause, never the cause.
  const anyProbed = blockDevices.size > 0 || netDevices.size > 0;
  const dmaNote = dmaLines.length
    ? ` The virtio-mmio "Failed to enable 64-bit or 32-bit DMA" warning (line ${dmaLines.map((l) => l.n).join(', ')}) is not the cause: the VMM does not offer VIRTIO_F_ACCESS_PLATFORM, so virtio does not go through the DMA API and SWIOTLB plays no part.`
    : '';

  // Registered transports without a bound driver point at the guest kernel; no transport at all points at the VMM.
  const bound = blockDevices.size + netDevices.size;
  const driverMissing = virtioDevices.length > bound;
  const transportNote = virtioDevices.length === 0
    ? 'the VMM declared no virtio-mmio device for it'
    : driverMissing
      ? `${virtioDevices.length} virtio-mmio device(s) registered but only ${bound} bound to a driver: the guest kernel lacks the driver built in`
      : `${virtioDevices.length} virtio-mmio device(s) registered, all bound to other drivers: the VMM attached none for it`;
  const rootName = rootParam?.replace(/^\/dev\//, '');
  if (cannotOpen || waitingRoot && !mountedLine) {
    const noBlock = blockDevices.size === 0 && (partitionsHeader ? partitionNames.length === 0 : true);
    if (noBlock) {
      add('CON_NO_BLOCK_DEVICE', 'error', 'CONFIG_VIRTIO_BLK',
        `No block device was probed, so root=${rootParam ?? '(unset)'} cannot be opened: the kernel lists no partitions (no virtio-blk disk appeared; ${transportNote}).${dmaNote}`,
        driverMissing
          ? 'Build the guest kernel with CONFIG_VIRTIO_BLK=y built in (=y, not =m: there is no initrd to load modules); `hangar kernel lint` checks this.'
          : 'Attach the root disk to the VM (QEMU: -drive …,if=none -device virtio-blk-device; Firecracker: PUT /drives/rootfs); the guest kernel needs CONFIG_VIRTIO_BLK=y, CONFIG_VIRTIO_MMIO=y and CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y built in.',
        evidenceOf(cmdLine, find(/^\/dev\/root: Can't open blockdev/), cannotOpen ?? waitingRoot, appendHint, dmaLines));
    } else if (rootName && !blockDevices.has(rootName)) {
      const avail = [...blockDevices];
      add('CON_ROOT_DEVICE_MISSING', 'error', null,
        `root=${rootParam} does not exist; the kernel found: ${avail.join(', ')}.`,
        `Boot with root=/dev/${avail[0] ?? 'vda'} (the first virtio-blk disk is vda, in the order the drives are attached), or attach the missing drive.`,
        evidenceOf(cmdLine, cannotOpen ?? waitingRoot, appendHint, partitionLines));
    } else if (cannotOpen) {
      const err = /error (-?\d+)/.exec(cannotOpen.msg)?.[1];
      add('CON_ROOT_DEVICE_MISSING', 'error', null,
        `The root device could not be opened${err ? ` (${errnoName(Number(err))})` : ''} although the kernel lists it.`,
        'Check the disk image (a raw ext4 image, not truncated, readable by the VMM) and that it is not attached read-only while rw is requested.',
        evidenceOf(cmdLine, cannotOpen, appendHint, partitionLines));
    }
  }
  if (noFsLine) {
    add('CON_ROOT_FS_UNSUPPORTED', 'error', 'CONFIG_EXT4_FS',
      `No filesystem the kernel knows could mount root=${rootParam ?? '(unset)'} (${noFsLine.msg.replace(/^No filesystem could mount root, tried:\s*/, 'tried: ') || 'tried nothing'}).`,
      'Build the guest kernel with the root filesystem built in (CONFIG_EXT4_FS=y) and check the image really is that filesystem (e.g. `file rootfs.ext4`, `e2fsck -n`).',
      evidenceOf(cmdLine, noFsLine, partitionLines));
  }

  // Init could not be executed.
  const startFail = find(/^Starting init: (\S+) exists but couldn't execute it \(error (-?\d+)\)/);
  if (panic?.kind === 'requested_init' || panic?.kind === 'no_init' || startFail) {
    const m = panic ? /^Requested init (\S+) failed \(error (-?\d+)\)/.exec(panic.reason) : null;
    const sm = startFail ? /^Starting init: (\S+) exists but couldn't execute it \(error (-?\d+)\)/.exec(startFail.msg) : null;
    const path = m?.[1] ?? sm?.[1] ?? initPath ?? '/sbin/init';
    const errno = Number(m?.[2] ?? sm?.[2] ?? -2);
    const runLine = runInitLines.find((l) => l.msg.includes(path));
    const initArgLine = initParam ? cmdLine : undefined;
    if (Math.abs(errno) === 2 || panic?.kind === 'no_init' && !startFail) {
      add('CON_INIT_NOT_FOUND', 'error', null,
        panic?.kind === 'no_init'
          ? 'No working init found: none of /sbin/init, /etc/init, /bin/init, /bin/sh could be executed from the root filesystem.'
          : `init=${path} failed with ENOENT: the file is not in the root filesystem, or it is a script whose interpreter (#! line) is missing.`,
        `Check the image contains ${path} (and its #! interpreter, e.g. /bin/sh) and is executable; Hangar's images install ${GUEST_INIT_PATH}.`,
        evidenceOf(initArgLine, runLine, startFail, panicLine));
    } else {
      add('CON_INIT_EXEC_FAILED', 'error', Math.abs(errno) === 8 ? 'CONFIG_BINFMT_ELF' : null,
        `init ${path} exists but could not be executed (${errnoName(errno)}).`,
        Math.abs(errno) === 8
          ? 'ENOEXEC: the kernel cannot run this format: build with CONFIG_BINFMT_ELF=y and CONFIG_BINFMT_SCRIPT=y, and check the binary matches the guest architecture.'
          : Math.abs(errno) === 13 ? `EACCES: make ${path} executable (chmod 0755) and make sure root is not mounted noexec.` : `Check ${path} in the image.`,
        evidenceOf(initArgLine, runLine, startFail, panicLine));
    }
  }

  // OOM kills.
  const oomKilled = findAll(OOM_KILLED_RE, run);
  const oomInvoked = findAll(OOM_INVOKED_RE, run);
  const oomNoKillable = find(/^Out of memory and no killable processes/, run);
  if (oomKilled.length || oomNoKillable || panic?.kind === 'oom') {
    const victims = oomKilled.map((l) => { const m = OOM_KILLED_RE.exec(l.msg)!; return `${m[2]!} (pid ${m[1]!})`; });
    add('CON_OOM_KILL', 'error', null,
      victims.length
        ? `The guest ran out of memory: the OOM killer killed ${[...new Set(victims)].join(', ')}.`
        : 'The guest ran out of memory with nothing left to kill.',
      'Give the VM more memory (mem_size_mib / -m); a desktop guest (Xvfb, window manager, VNC server) needs a few hundred MiB.',
      evidenceOf(oomInvoked.slice(0, 2), oomKilled, oomNoKillable, panic?.kind === 'oom' ? panicLine : undefined));
  }

  // Measured: the desktop image boots to READY with -m 64 (47 MiB available) and stalls after the init marker at
  // -m 40, without an OOM kill (no swap, the page cache thrashes).
  if (memory && memory.totalKiB < 56 * 1024) {
    add('CON_LOW_MEMORY', 'warning', null,
      `The guest has only ${Math.round(memory.totalKiB / 1024)} MiB (${Math.round(memory.availableKiB / 1024)} MiB available after the kernel): too little for a desktop, it stalls or gets OOM-killed.`,
      'Give the VM more memory (mem_size_mib / -m): 256 MiB or more for a desktop guest.',
      evidenceOf(memLine));
  }

  const oopsLines = findAll(OOPS_RE, run);
  if (oopsLines.length) {
    add('CON_KERNEL_OOPS', 'warning', null, `The kernel reported a bug/oops: "${oopsLines[0]!.msg.trim()}".`,
      'Read the oops trace that follows in the log; it names the faulting function. Report it with the kernel version and config.',
      evidenceOf(oopsLines));
  }

  // Userspace errors printed after the init started; a restored run comes after it (here or, for a clone, in the
  // snapshot's source VM).
  const initStart = h.hasBoot ? runInitLines[0]?.n ?? initMarker?.n ?? Infinity : 0;
  const scriptErrLines = run.filter((l) => l.n > initStart && l.ts === null && !l.raw.includes('HANGAR-') && SCRIPT_ERR_RE.test(l.raw));
  if (scriptErrLines.length) {
    // After its error marker the init prints service logs as `tail` does ("==> /run/hangar/x11vnc.log <=="): name the log.
    const first = scriptErrLines[0]!;
    const header = run.slice(0, run.indexOf(first)).reverse().find((l) => /^==> .+ <==$/.test(l.raw.trim()));
    const where = header && run.slice(run.indexOf(header), run.indexOf(first)).every((l) => l.ts === null) ? header : undefined;
    add('CON_INIT_SCRIPT_ERROR', 'warning', null,
      `The init (or a service it starts) printed ${scriptErrLines.length} error line(s), first: "${first.raw.trim()}"${where ? ` (in ${where.raw.trim().slice(4, -4)})` : ''}.`,
      `Fix the failing command in the init script (${initPath ?? GUEST_INIT_PATH}) or install what it needs in the image.`,
      evidenceOf(where, scriptErrLines));
  }

  // Init exited or was killed.
  let init: ConsoleFacts['init'] = initPath || runInitLines.length ? { path: initPath } : undefined;
  if (panic?.kind === 'kill_init') {
    const status = Number.parseInt(/exitcode=(0x[0-9a-f]+)/i.exec(panic.reason)?.[1] ?? '0', 16);
    const signal = status & 0x7f;
    const exitStatus = (status >> 8) & 0xff;
    init = { path: initPath, ...(signal ? { signal } : { exitStatus }) };
    const what = signal
      ? `was killed by signal ${signal} (${SIGNALS[signal] ?? 'signal'})`
      : exitStatus === 0
        ? 'exited normally (status 0): PID 1 must never return'
        : `exited with status ${exitStatus}`;
    add('CON_INIT_EXITED', 'error', null,
      `init (${initPath ?? 'PID 1'}) ${what}, so the kernel panicked ("Attempted to kill init").`,
      exitStatus === 0 && !signal
        ? `Use an init that stays in the foreground: ${GUEST_INIT_PATH} ends by waiting on its services; an init= that runs to its end (e.g. /bin/true, a script without a final wait/exec) panics the guest.`
        : signal === 9 ? 'init was killed (SIGKILL, often the OOM killer): see the OOM finding, give the VM more memory.'
          : 'Read the lines printed just before the panic (init script errors) and fix the failing step; run the init under `set -x` to see where it stops.',
      evidenceOf(cmdLine && initParam ? cmdLine : undefined, runInitLines.at(-1), scriptErrLines.slice(-3), panicLine));
  }

  if (panicLine && panic) {
    const kindText: Record<PanicKind, string> = {
      vfs: 'VFS: unable to mount the root filesystem', kill_init: 'init exited or was killed', no_init: 'no working init found',
      requested_init: 'the requested init= could not be executed', oom: 'out of memory', other: 'other',
    };
    add('CON_KERNEL_PANIC', 'error', null, `Kernel panic (${kindText[panic.kind]}): "${panic.reason}".`,
      panic.kind === 'other' ? 'Read the lines just before the panic; they name the failing subsystem.' : 'Fix the cause reported above; the panic is its consequence.',
      evidenceOf(panicLine, panicTail));
  }

  if (boots.length > 1) {
    add('CON_REBOOT_LOOP', 'warning', null,
      `The guest booted ${boots.length} times in this log (panic=N reboots after a panic); findings describe boot ${idx + 1}.`,
      'Fix the panic; while debugging, boot with panic=-1 or QEMU -no-reboot so the first failure stays on screen.',
      evidenceOf(versionLines.slice(0, 6)));
  }

  const noConsole = find(/^Warning: unable to open an initial console/);
  if (noConsole) {
    add('CON_NO_CONSOLE', 'warning', 'CONFIG_DEVTMPFS_MOUNT', 'The kernel could not open /dev/console for init: init output will be lost.',
      'Build with CONFIG_DEVTMPFS=y and CONFIG_DEVTMPFS_MOUNT=y, or ship /dev/console in the image.', evidenceOf(noConsole));
  }

  // ---- network
  // ip= asks the kernel for an address: a static one, or a protocol (dhcp, bootp, rarp, any, on).
  const wantsIp = Boolean(requested && (requested.address || ['dhcp', 'bootp', 'rarp', 'any', 'on', 'both'].includes(requested.autoconf ?? '')));
  const deviceMissingLines = ipErrLines.filter((l) => /Device `[^']*' not found|No network devices available|No suitable device found/.test(l.msg));
  // ipconfig waits up to 12 s (DEVICE_WAIT_MAX) for the ip= device and, when it never appears, gives up without a
  // word (6.1): the only trace is a long silent gap in the timestamps before the root filesystem is mounted.
  const deviceWaitGap = wantsIp && ipCfgLines.length === 0 && netDevices.size === 0 ? silentGap(lines, cmdLine, rootPhaseLine) : null;
  if ((deviceMissingLines.length || deviceWaitGap) && netDevices.size === 0) {
    const dev = requested?.device ?? 'eth0';
    const how = deviceWaitGap
      ? `the kernel waited ${(deviceWaitGap[1].ts! - deviceWaitGap[0].ts!).toFixed(1)} s for it (lines ${deviceWaitGap[0].n}-${deviceWaitGap[1].n}, ipconfig's device wait) and gave up without an IP-Config line`
      : 'the kernel could not apply ip=';
    add('CON_NO_NET_DEVICE', 'error', 'CONFIG_VIRTIO_NET',
      `No network device: ${dev} never appeared (no virtio-net device probed; ${transportNote}); ${how}.${dmaNote}`,
      driverMissing
        ? 'Build the guest kernel with CONFIG_VIRTIO_NET=y built in (=y, not =m); `hangar kernel lint` checks this.'
        : 'Attach a NIC to the VM (QEMU: -netdev tap,… -device virtio-net-device; Firecracker: PUT /network-interfaces/eth0); the guest kernel needs CONFIG_VIRTIO_NET=y built in.',
      evidenceOf(cmdLine, deviceMissingLines, deviceWaitGap ?? [], dmaLines));
  }
  if (ipErrLines.length) {
    add('CON_IP_CONFIG_FAILED', 'error', 'CONFIG_IP_PNP', `The kernel's IP autoconfiguration failed: "${ipErrLines[0]!.msg.trim()}".`,
      'Make ip= name an interface that exists (ip=GUEST::GW:MASK::eth0:off), with the gateway inside GUEST/MASK.',
      evidenceOf(ipErrLines, cmdLine));
  } else if (wantsIp && ipCfgLines.length === 0 && afterRootPhase && !deviceWaitGap) {
    add('CON_IP_CONFIG_MISSING', 'error', 'CONFIG_IP_PNP',
      `ip=${ipParam ?? ''} is on the command line but the kernel printed no IP-Config line: it ignored ip= (likely CONFIG_IP_PNP is off), so eth0 has no address unless userspace sets one.`,
      'Build the guest kernel with CONFIG_IP_PNP=y (Hangar configures the guest address through ip=).',
      evidenceOf(cmdLine));
  }

  const bootAddress = configured?.address ?? requested?.address ?? null;
  const bootDevice = configured?.device ?? requested?.device ?? 'eth0';
  const bootEvidence = ipDetail ?? cmdLine;
  // A change needs an address the kernel really applied (IP-Config: Complete); without it there was nothing to change.
  const changed = configured?.address ? netReports.filter((r) => r.ifname === bootDevice && r.address !== configured.address) : [];
  if (managerLines.length) {
    add('CON_NET_MANAGER', 'warning', null,
      changed.length
        ? `A userspace network manager ran in the guest (${managers.join(', ')}) and re-addressed ${bootDevice}, overriding the address the kernel set from ip=.`
        : `A userspace network manager ran in the guest (${managers.join(', ')}): it can override the address the kernel set from ip=.`,
      'Disable it in the image (Hangar configures the guest network with ip=): e.g. `systemctl mask systemd-networkd NetworkManager`, remove dhclient/ifupdown, or drop eth0 from /etc/network/interfaces.',
      evidenceOf(managerLines));
  }

  if (changed.length) {
    const last = changed.at(-1)!;
    add('CON_GUEST_NET_CHANGED', 'error', null,
      `The guest re-addressed ${bootDevice} after boot: the kernel set ${bootAddress} from ip= but the init reports ${last.address ?? 'no address'}${managers.length ? ` (${managers.join(', ')} ran)` : ''}. The host routes and ARP-answers for ${bootAddress}; replies to the new address go nowhere ("Destination Host Unreachable").`,
      'Stop userspace from reconfiguring the interface (no DHCP client or network manager in the image), or give the VM the address it takes.',
      evidenceOf(bootEvidence, changed.map((r) => r.l), managerLines.slice(0, 3)));
  }

  if (opts.expectIp && h.hasBoot) {
    const finalReport = [...netReports].reverse().find((r) => r.ifname === bootDevice) ?? netReports.at(-1);
    const actual = finalReport ? finalReport.address : bootAddress;
    const actualLine = finalReport?.l ?? bootEvidence;
    if (actual === null && !finalReport && !bootAddress) {
      add('CON_GUEST_ADDRESS_UNKNOWN', 'warning', null,
        `The log shows no address for the guest (no ip=, no IP-Config, no ${NET_MARKER} line), so ${opts.expectIp} cannot be confirmed.`,
        'Boot with ip=GUEST::GW:MASK::eth0:off and use Hangar\'s guest init, which reports the address.', evidenceOf(cmdLine));
    } else if (actual !== opts.expectIp) {
      add('CON_IP_MISMATCH', 'error', null,
        `The host expects the guest at ${opts.expectIp} but the guest has ${actual ?? 'no address'}: traffic to ${opts.expectIp} is never answered (ARP goes unanswered, "Destination Host Unreachable"); another VM may hold it (duplicate IP).`,
        `Boot the VM with ip=${opts.expectIp}::… as allocated, and check no other VM on the bridge uses ${opts.expectIp} or ${actual ?? 'the same MAC'}.`,
        evidenceOf(actualLine));
    }
  }

  // ---- readiness
  const expectMarkers = opts.expectMarkers ?? (initPath === GUEST_INIT_PATH || Boolean(initMarker || readyLine || netReportLines.length));
  if (readyLine) {
    add('CON_READY', 'info', null, `The guest printed ${READY_MARKER}: the VNC server accepts connections.`, 'None.', evidenceOf(readyLine));
  } else if (expectMarkers && h.hasBoot) {
    const lastLine = lines.at(-1);
    const errLine = lines.find((l) => l.raw.includes(ERROR_MARKER));
    // The init follows its error marker with the tails of the desktop services' logs.
    const errTail = errLine ? lines.slice(lines.indexOf(errLine) + 1, lines.indexOf(errLine) + 40).filter((l) => l.ts === null && l.raw.trim()) : [];
    const reason = panic ? 'the kernel panicked before it'
      : errLine ? `the init reported "${errLine.raw.slice(errLine.raw.indexOf(ERROR_MARKER)).trim()}"`
      : initMarker ? `the init started (${INIT_MARKER}) but the desktop/VNC server never came up`
      : 'the log ends before it (still booting, hung, or killed)';
    add('CON_READY_MISSING', 'error', null, `${READY_MARKER} was never printed: ${reason}.`,
      initMarker && !panic
        ? 'Read the init\'s output after its marker (Xvfb, window manager, x11vnc errors; the guest keeps their logs in /run/hangar) and give the VM enough memory.'
        : 'Fix the cause reported above; READY follows once the guest boots.',
      evidenceOf(initMarker, errLine, errTail, panic ? panicLine : !initMarker && !errLine ? lastLine : undefined));
  }

  if (dmaLines.length && (anyProbed || !findings.some((f) => f.code === 'CON_NO_BLOCK_DEVICE' || f.code === 'CON_NO_NET_DEVICE'))) {
    add('CON_VIRTIO_DMA_WARNING', 'info', null,
      `virtio-mmio printed "Failed to enable 64-bit or 32-bit DMA" but the devices probed${anyProbed ? ` (${[...blockDevices, ...netDevices].join(', ')})` : ''}: harmless. Firecracker and QEMU microvm do not offer VIRTIO_F_ACCESS_PLATFORM, so the guest does not use the DMA API for virtio; SWIOTLB is irrelevant here (and always built on x86_64).`,
      'None needed; it is not the cause of a network or boot problem.',
      evidenceOf(dmaLines));
  }

  if (h.restores.length || h.markerless) addRestored(add, h, all, lines);

  // ---- timeline: printk seconds where the line has a timestamp, else a number after the marker (uptime).
  const markerTime = (l: Line | undefined, marker: string): number | null => {
    if (!l) return null;
    if (l.ts !== null) return l.ts;
    const m = new RegExp(`${marker}\\s+(?:t=)?(\\d+(?:\\.\\d+)?)\\b`).exec(l.raw);
    return m ? Number(m[1]) : null;
  };
  const timeline: ConsoleTimeline = {
    kernelStart: versionLine?.ts ?? lines.find((l) => l.ts !== null)?.ts ?? null,
    rootMounted: mountedLine?.ts ?? null,
    init: runInitLines[0]?.ts ?? markerTime(initMarker, INIT_MARKER),
    ready: markerTime(readyLine, READY_MARKER),
  };

  const ordered = orderByCause(findings);
  const facts: ConsoleFacts = {
    ...(versionLine ? { kernelVersion: /^Linux version (\S+)/.exec(versionLine.msg)![1]! } : {}),
    ...(commandLine !== undefined ? { commandLine } : {}),
    boots: boots.length,
    analysedBoot: idx + 1,
    restores: h.restores,
    virtioMmioDeclared,
    virtioDevices: [...virtioDevices.values()],
    blockDevices: [...blockDevices],
    netDevices: [...netDevices],
    ...(requested || configured || ipErrLines.length
      ? { ipConfig: { ...(requested ? { requested } : {}), ...(configured ? { configured } : {}), errors: ipErrLines.map((l) => l.msg.trim()) } }
      : {}),
    ...(netReports.length || managers.length
      ? { guestNet: { reports: netReports.map(({ ifname, address, line }) => ({ ifname, address, line })), managers } }
      : {}),
    ...(memory ? { memory } : {}),
    ...(panic ? { panic } : {}),
    ...(init ? { init } : {}),
    markers: { ...(initMarker ? { init: initMarker.n } : {}), ...(readyLine ? { ready: readyLine.n } : {}) },
  };
  return { ok: !ordered.some((f) => f.severity === 'error'), findings: ordered, timeline, facts };
}
