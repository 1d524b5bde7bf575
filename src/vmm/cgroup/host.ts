// The thin executor of the cgroup plans (plan.ts): finds the cgroup mounts and the controller's own place in them
// at run time, makes a VM's cgroup (`hangar/vm-ID` in every hierarchy Hangar uses) with its limits, moves a VMM
// process in, reads its usage and whether the kernel's OOM killer ended it, and removes it (the undo). The
// controller itself goes into `hangar/controller` with a larger CPU share.
import { constants } from 'node:fs';
import { mkdir, open, readFile, readdir, rmdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { HangarError } from '../../errors.js';
import {
  chooseVersion, hangarRoot, limitsView, parseMountinfo, parseProcCgroup, planControllerCgroup, planLimits, vmControllers,
  type CgroupVersion, type CgroupWrite, type LimitsView, type ResourceLimits,
} from './plan.js';

export interface CgroupLayout {
  version: CgroupVersion;
  /** Controller ('' in v2) → Hangar's root directory in that hierarchy (…/hangar). */
  roots: Map<string, string>;
  /** v1: memory.memsw.* exists (swap accounting on); v2: memory.swap.max exists. */
  swapAccounting: boolean;
  /** Hangar's root relative to the mount (v2's tree, v1's cpu hierarchy): the jailer's --parent-cgroup. */
  relRoot: string;
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(() => true, () => false);
}

/** Writes one value to a cgroup file (no O_CREAT: cgroup files exist or the controller is missing). */
async function put(dir: string, file: string, value: string): Promise<void> {
  const path = join(dir, file);
  let fh;
  try {
    fh = await open(path, constants.O_WRONLY | constants.O_NOFOLLOW);
    await fh.write(value);
  } catch (e) {
    throw new HangarError('CGROUP_FAILED', `cannot write ${JSON.stringify(value)} to ${path}: ${(e as Error).message}`, { path, value }, { cause: e });
  } finally {
    await fh?.close();
  }
}

/** How this host's cgroups are laid out for Hangar, or null when they cannot be used (then: why). */
export async function detectCgroups(opts: { proc?: string } = {}): Promise<{ layout: CgroupLayout | null; reason: string }> {
  const proc = opts.proc ?? '/proc';
  let mounts, own;
  try {
    mounts = parseMountinfo(await readFile(join(proc, 'self/mountinfo'), 'utf8'));
    own = parseProcCgroup(await readFile(join(proc, 'self/cgroup'), 'utf8'));
  } catch (e) {
    return { layout: null, reason: `cannot read /proc: ${(e as Error).message}` };
  }
  const unified = mounts.find((m) => m.version === 2);
  const v2Controllers = unified ? (await readFile(join(unified.mountPoint, own.get('') ?? '/', 'cgroup.controllers'), 'utf8').catch(() => '')).trim().split(/\s+/).filter(Boolean) : [];
  const version = chooseVersion(mounts, v2Controllers);
  if (version === null) return { layout: null, reason: 'neither cgroup v1 hierarchies nor a v2 tree hold the cpu, memory and pids controllers' };
  const roots = new Map<string, string>();
  if (version === 2) {
    roots.set('', join(unified!.mountPoint, hangarRoot(own.get('') ?? '/')));
  } else {
    for (const c of vmControllers(1)) {
      const m = mounts.find((x) => x.version === 1 && x.controllers.includes(c))!;
      roots.set(c, join(m.mountPoint, hangarRoot(own.get(c) ?? '/')));
    }
  }
  const mem = version === 2 ? roots.get('')! : roots.get('memory')!;
  // The root cgroup's files tell whether swap is accounted (a child gets the same files).
  const parent = join(mem, '..');
  const swapAccounting = await exists(join(parent, version === 2 ? 'memory.swap.max' : 'memory.memsw.limit_in_bytes'))
    || (version === 2 && !(await exists(join(parent, 'memory.max')))); // the v2 root has neither: assume on
  const relRoot = hangarRoot(own.get(version === 2 ? '' : 'cpu') ?? '/').replace(/^\/+/, '');
  return { layout: { version, roots, swapAccounting, relRoot }, reason: `cgroup v${version}${version === 1 && unified ? ' (hybrid: the v2 tree holds no controllers)' : ''}` };
}

/** v2 only: enables the controllers for the children of `dir`'s parent chain down to Hangar's root. */
async function enableV2(root: string): Promise<void> {
  const parent = join(root, '..');
  const want = vmControllers(2);
  for (const dir of [parent, root]) {
    const have = (await readFile(join(dir, 'cgroup.controllers'), 'utf8').catch(() => '')).trim().split(/\s+/);
    const add = want.filter((c) => have.includes(c)).map((c) => `+${c}`).join(' ');
    if (add) await put(dir, 'cgroup.subtree_control', add);
  }
}

async function apply(layout: CgroupLayout, dirs: Map<string, string>, writes: CgroupWrite[]): Promise<void> {
  for (const w of writes) await put(dirs.get(w.controller)!, w.file, w.value);
}

async function makeDirs(layout: CgroupLayout, name: string): Promise<Map<string, string>> {
  const dirs = new Map<string, string>();
  for (const [c, root] of layout.roots) {
    await mkdir(join(root, name), { recursive: true });
    dirs.set(c, join(root, name));
  }
  return dirs;
}

/** What a cgroup's counters say. */
export interface CgroupUsage {
  /** CPU time used, µs. */
  cpuUsec: number;
  memoryBytes: number;
  /** Times the kernel's OOM killer ran inside it. */
  oomKills: number;
}

/** One VM's cgroup in every hierarchy Hangar uses. */
export class VmCgroup {
  constructor(readonly layout: CgroupLayout, readonly name: string, readonly dirs: Map<string, string>, readonly limits: ResourceLimits | null) {}

  get view(): LimitsView | null {
    return this.limits ? limitsView(this.layout.version, this.name, this.limits) : null;
  }

  /** Moves a process (all its threads) in. */
  async join(pid: number): Promise<void> {
    for (const dir of this.dirs.values()) await put(dir, 'cgroup.procs', String(pid));
  }

  private file(controller: string, file: string): string {
    return join(this.dirs.get(this.layout.version === 2 ? '' : controller)!, file);
  }

  async usage(): Promise<CgroupUsage> {
    const read = (c: string, f: string): Promise<string> => readFile(this.file(c, f), 'utf8').catch(() => '');
    if (this.layout.version === 2) {
      const [cpu, mem, events] = await Promise.all([read('cpu', 'cpu.stat'), read('memory', 'memory.current'), read('memory', 'memory.events')]);
      return { cpuUsec: Number(/^usage_usec (\d+)/m.exec(cpu)?.[1] ?? 0), memoryBytes: Number(mem.trim() || 0), oomKills: Number(/^oom_kill (\d+)/m.exec(events)?.[1] ?? 0) };
    }
    const [cpu, mem, oom] = await Promise.all([read('cpuacct', 'cpuacct.usage'), read('memory', 'memory.usage_in_bytes'), read('memory', 'memory.oom_control')]);
    return { cpuUsec: Math.round(Number(cpu.trim() || 0) / 1000), memoryBytes: Number(mem.trim() || 0), oomKills: Number(/^oom_kill (\d+)/m.exec(oom)?.[1] ?? 0) };
  }

  /** The processes still inside (any hierarchy). */
  async pids(): Promise<number[]> {
    const all = new Set<number>();
    for (const dir of this.dirs.values()) {
      for (const l of (await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => '')).split('\n')) if (l.trim()) all.add(Number(l));
    }
    return [...all];
  }

  /** Removes it once empty (idempotent). A cgroup that still holds a process stays (and is reported). */
  async remove(): Promise<void> {
    for (const dir of this.dirs.values()) {
      try {
        await rmdir(dir);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') continue;
        throw new HangarError('CGROUP_FAILED', `cannot remove cgroup ${dir}: ${(e as Error).message}`, { path: dir, errno: code ?? null }, { cause: e });
      }
    }
  }
}

/** Makes (or takes over) a VM's cgroup and sets its limits. */
export async function createVmCgroup(layout: CgroupLayout, id: string, limits: ResourceLimits): Promise<VmCgroup> {
  if (layout.version === 2) await enableV2(layout.roots.get('')!);
  const name = `vm-${id}`;
  const dirs = await makeDirs(layout, name);
  const cg = new VmCgroup(layout, name, dirs, limits);
  try {
    await apply(layout, dirs, planLimits(layout.version, limits, { swapAccounting: layout.swapAccounting }));
  } catch (e) {
    await cg.remove().catch(() => undefined);
    throw e;
  }
  return cg;
}

/** A VM's cgroup as it is (an adopted VMM's): nothing is written; `limits` is what it was made with. */
export function openVmCgroup(layout: CgroupLayout, id: string, limits: ResourceLimits | null = null): VmCgroup {
  const name = `vm-${id}`;
  return new VmCgroup(layout, name, new Map([...layout.roots].map(([c, r]) => [c, join(r, name)])), limits);
}

/** The VM ids of the cgroups under Hangar's root (leftovers of VMMs gone while no controller watched). */
export async function listVmCgroups(layout: CgroupLayout): Promise<string[]> {
  const ids = new Set<string>();
  for (const root of layout.roots.values()) {
    for (const n of await readdir(root).catch(() => [] as string[])) if (n.startsWith('vm-')) ids.add(n.slice(3));
  }
  return [...ids];
}

/** Puts the controller process into `hangar/controller` with its larger CPU share. Returns the directories. */
export async function enterControllerCgroup(layout: CgroupLayout, pid = process.pid): Promise<Map<string, string>> {
  const roots = new Map([...layout.roots].filter(([c]) => c === '' || c === 'cpu' || c === 'cpuacct' || c === 'memory' || c === 'pids'));
  const dirs = await makeDirs({ ...layout, roots }, 'controller');
  for (const dir of dirs.values()) await put(dir, 'cgroup.procs', String(pid));
  if (layout.version === 2) await enableV2(layout.roots.get('')!);
  await apply(layout, dirs, planControllerCgroup(layout.version));
  return dirs;
}

/** The block device ("MAJOR:MINOR") a file lives on (what io.max / blkio.throttle name). */
export async function blockDeviceOf(path: string): Promise<string> {
  const dev = (await stat(path)).dev;
  // Linux's encoding of dev_t (glibc's gnu_dev_major/minor).
  const major = ((dev >> 8) & 0xfff) | Math.floor(dev / 2 ** 32) & ~0xfff;
  const minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
  return `${major}:${minor}`;
}
