// Per-VM resource limits as cgroup files: which limits a VM gets (derived from its vCPUs and memory, the config's
// defaults and the VM's own overrides) and, for each cgroup version, which files hold which values. Pure: the
// executor (host.ts) writes what this plans. v2: cpu.max, memory.max, memory.swap.max, pids.max, io.max. v1 (one
// hierarchy per controller): cpu.cfs_quota_us/cfs_period_us, memory.limit_in_bytes (+ memory.memsw.limit_in_bytes
// when the kernel accounts swap), pids.max, blkio.throttle.*.
import { invalidArgument } from '../../util/validate.js';

export type CgroupVersion = 1 | 2;

/** What a VM may ask for on create (`resources`), each optional; the rest is derived. */
export interface VmResources {
  /** CPU time in cores (0.5 = half of one CPU); default: its vCPUs. */
  cpuCores?: number;
  /** Memory of the whole VMM process (guest memory + the VMM's own), MiB; default: guest memory + overhead. */
  memMiB?: number;
  /** Processes and threads of the VMM; default from the config. */
  pids?: number;
  /** Disk throughput caps on the VM's disk (bytes/s, operations/s); default: none. */
  io?: IoLimits;
}

export interface IoLimits {
  readBps?: number;
  writeBps?: number;
  readIops?: number;
  writeIops?: number;
}

/** The config's side of the limits. */
export interface ResourceDefaults {
  /** Cores per vCPU (1: a vCPU may use one whole core). */
  cpuPerVcpu: number;
  /** What the VMM itself needs beyond guest memory (TCG's translation cache, device buffers), MiB. */
  overheadMiB: number;
  /** Swap allowed beyond the memory limit, MiB (0: none). */
  swapMiB: number;
  pids: number;
  io: IoLimits;
}

export const DEFAULT_RESOURCES: ResourceDefaults = { cpuPerVcpu: 1, overheadMiB: 256, swapMiB: 0, pids: 512, io: {} };

export interface ResourceLimits {
  cpuCores: number;
  memoryBytes: number;
  swapBytes: number;
  pids: number;
  /** Throttles on one block device ("MAJOR:MINOR"), the one the VM's disk lives on. */
  io?: IoLimits & { device: string };
}

/** One write: the controller (v1 hierarchy; '' in v2's single tree), the file, the value. */
export interface CgroupWrite {
  controller: string;
  file: string;
  value: string;
}

export const CPU_PERIOD_US = 100_000;
const MIB = 1024 * 1024;
/** The smallest quota the kernel takes (1 ms). */
const MIN_QUOTA_US = 1000;
/** The controller's CPU share against a VM's (v1 shares 1024, v2 weight 100 by default). */
export const CONTROLLER_CPU = { v1Shares: 10_240, v2Weight: 1000 } as const;

/** The controllers a VM's cgroup is made in: v1 adds cpuacct, where the CPU usage counter is. */
export function vmControllers(version: CgroupVersion): string[] {
  return version === 2 ? ['cpu', 'memory', 'pids', 'io'] : ['cpu', 'cpuacct', 'memory', 'pids', 'blkio'];
}

const DEVICE_RE = /^\d{1,10}:\d{1,10}$/;

function positive(v: unknown, field: string, max: number, integer = true): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v > max || (integer && !Number.isInteger(v))) {
    throw invalidArgument({ field, reason: 'range', min: 0, max, got: v }, `must be a positive ${integer ? 'integer' : 'number'} up to ${max}`);
  }
  return v;
}

/** A VM's limits: its overrides where given, else derived from its machine and the defaults. */
export function deriveLimits(vm: { vcpus: number; memMiB: number }, d: ResourceDefaults, own: VmResources = {}, ioDevice?: string): ResourceLimits {
  const cpuCores = own.cpuCores !== undefined ? positive(own.cpuCores, 'resources.cpuCores', 1024, false) : vm.vcpus * d.cpuPerVcpu;
  const memMiB = own.memMiB !== undefined ? positive(own.memMiB, 'resources.memMiB', 4 * 1024 * 1024) : vm.memMiB + d.overheadMiB;
  const io = { ...d.io, ...own.io };
  const hasIo = Object.values(io).some((v) => v !== undefined);
  if (ioDevice !== undefined && !DEVICE_RE.test(ioDevice)) throw invalidArgument({ field: 'io.device', reason: 'format' }, 'must be MAJOR:MINOR');
  return {
    cpuCores, memoryBytes: memMiB * MIB, swapBytes: d.swapMiB * MIB,
    pids: own.pids !== undefined ? positive(own.pids, 'resources.pids', 4_194_304) : d.pids,
    ...(hasIo && ioDevice ? { io: { device: ioDevice, ...io } } : {}),
  };
}

/** cpu.max's quota for a number of cores, in µs per period. */
export function cpuQuotaUs(cores: number): number {
  return Math.max(MIN_QUOTA_US, Math.round(cores * CPU_PERIOD_US));
}

/** The files and values that set `l` on a VM's cgroup, in the order they must be written. */
export function planLimits(version: CgroupVersion, l: ResourceLimits, caps: { swapAccounting: boolean } = { swapAccounting: true }): CgroupWrite[] {
  const quota = cpuQuotaUs(l.cpuCores);
  const io = l.io;
  if (version === 2) {
    const ioParts = io ? ([['rbps', io.readBps], ['wbps', io.writeBps], ['riops', io.readIops], ['wiops', io.writeIops]] as const).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`) : [];
    return [
      { controller: '', file: 'cpu.max', value: `${quota} ${CPU_PERIOD_US}` },
      { controller: '', file: 'memory.max', value: String(l.memoryBytes) },
      ...(caps.swapAccounting ? [{ controller: '', file: 'memory.swap.max', value: String(l.swapBytes) }] : []),
      { controller: '', file: 'pids.max', value: String(l.pids) },
      ...(io && ioParts.length ? [{ controller: '', file: 'io.max', value: `${io.device} ${ioParts.join(' ')}` }] : []),
    ];
  }
  const blkio = io
    ? ([['read_bps_device', io.readBps], ['write_bps_device', io.writeBps], ['read_iops_device', io.readIops], ['write_iops_device', io.writeIops]] as const)
      .filter(([, v]) => v !== undefined).map(([f, v]) => ({ controller: 'blkio', file: `blkio.throttle.${f}`, value: `${io.device} ${v}` }))
    : [];
  return [
    { controller: 'cpu', file: 'cpu.cfs_period_us', value: String(CPU_PERIOD_US) },
    { controller: 'cpu', file: 'cpu.cfs_quota_us', value: String(quota) },
    // memsw (memory + swap) may never be below the memory limit: the memory limit first (a new cgroup is unlimited).
    { controller: 'memory', file: 'memory.limit_in_bytes', value: String(l.memoryBytes) },
    ...(caps.swapAccounting ? [{ controller: 'memory', file: 'memory.memsw.limit_in_bytes', value: String(l.memoryBytes + l.swapBytes) }] : []),
    { controller: 'pids', file: 'pids.max', value: String(l.pids) },
    ...blkio,
  ];
}

/** The controller's own cgroup: no limits, a CPU share ten times a VM's, so a VM storm cannot starve the API. */
export function planControllerCgroup(version: CgroupVersion): CgroupWrite[] {
  return version === 2
    ? [{ controller: '', file: 'cpu.weight', value: String(CONTROLLER_CPU.v2Weight) }]
    : [{ controller: 'cpu', file: 'cpu.shares', value: String(CONTROLLER_CPU.v1Shares) }];
}

/** The limits as a VM's view shows them (limits read back are what the VMM really runs under). */
export interface LimitsView {
  cgroupVersion: CgroupVersion;
  cgroup: string;
  cpuCores: number;
  memMiB: number;
  swapMiB: number;
  pids: number;
  io: (IoLimits & { device: string }) | null;
}

export function limitsView(version: CgroupVersion, cgroup: string, l: ResourceLimits): LimitsView {
  return {
    cgroupVersion: version, cgroup, cpuCores: l.cpuCores, memMiB: Math.round(l.memoryBytes / MIB), swapMiB: Math.round(l.swapBytes / MIB), pids: l.pids, io: l.io ?? null,
  };
}

/** Parses /proc/PID/cgroup: hierarchy controllers → path ('' for v2's unified line). */
export function parseProcCgroup(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    const ctrls = m[1]!.split(',').filter(Boolean);
    if (ctrls.length === 0) out.set('', m[2]!);
    for (const c of ctrls) out.set(c, m[2]!);
  }
  return out;
}

export interface CgroupMount {
  /** v1: the controllers this hierarchy holds; v2: []. */
  controllers: string[];
  mountPoint: string;
  version: CgroupVersion;
}

/** The cgroup mounts in /proc/self/mountinfo (v1 controllers from the super options). */
export function parseMountinfo(text: string): CgroupMount[] {
  const out: CgroupMount[] = [];
  for (const line of text.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!pre || !post) continue;
    const mountPoint = pre.split(' ')[4];
    const [fstype, , superOpts] = post.split(' ');
    if (!mountPoint) continue;
    if (fstype === 'cgroup2') out.push({ controllers: [], mountPoint, version: 2 });
    else if (fstype === 'cgroup') {
      const known = ['cpu', 'cpuacct', 'cpuset', 'memory', 'devices', 'freezer', 'blkio', 'pids', 'net_cls', 'net_prio', 'perf_event', 'hugetlb', 'rdma', 'misc'];
      out.push({ controllers: (superOpts ?? '').split(',').filter((o) => known.includes(o)), mountPoint, version: 1 });
    }
  }
  return out;
}

/**
 * Which version Hangar uses: v1 when the hierarchies it needs are v1 mounts (a hybrid host, whose v2 tree has no
 * controllers), v2 when the unified tree holds them; null when neither has them all.
 */
export function chooseVersion(mounts: CgroupMount[], v2Controllers: string[]): CgroupVersion | null {
  const v1 = new Set(mounts.filter((m) => m.version === 1).flatMap((m) => m.controllers));
  if (vmControllers(1).every((c) => v1.has(c))) return 1;
  const need = vmControllers(2).filter((c) => c !== 'io');
  if (mounts.some((m) => m.version === 2) && need.every((c) => v2Controllers.includes(c))) return 2;
  return null;
}

/**
 * Hangar's subtree beside (not under) the controller's own cgroup: `<own>/hangar`, or, when the controller already
 * sits in `…/hangar/controller` (a restart within the same unit), that `…/hangar`.
 */
export function hangarRoot(own: string): string {
  const clean = own.replace(/\/+$/, '');
  const m = /^(.*\/hangar)\/controller$/.exec(clean);
  if (m) return m[1]!;
  return `${clean}/hangar`.replace(/^\/\//, '/');
}
