// How a VMM is confined on the host, shared by the drivers: the unprivileged user it runs as (resolved, and made
// when absent), the command that drops to it (setpriv, measured to be the way with QEMU 7.2's full -sandbox: its
// own -runas needs setuid after the seccomp filter is in, which elevateprivileges=deny kills with SIGSYS), the run
// directory prepared for it, and its cgroup limits (src/vmm/cgroup/).
import { chmod, chown, mkdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { HangarError } from '../errors.js';
import { run, which } from '../util/exec.js';
import { blockDeviceOf, createVmCgroup, detectCgroups, enterControllerCgroup, openVmCgroup, type CgroupLayout, type VmCgroup } from './cgroup/host.js';
import { deriveLimits, type ResourceDefaults, type VmResources } from './cgroup/plan.js';
import type { ProcessExit } from './types.js';

/** The default name of the VMMs' user. */
export const DEFAULT_VMM_USER = 'hangar-vmm';
/** A run directory: root's, the VMM user's group may create (its sockets) but not remove root's files (sticky). */
export const RUN_DIR_MODE = 0o1770;
/** A VM's disk: root's, read and written by the VMM user's group; the VMM cannot unlink or replace it. */
export const DISK_MODE = 0o660;

export interface VmmUser {
  name: string;
  uid: number;
  gid: number;
  /** The kvm group, kept as a supplementary group when the VMM uses /dev/kvm. */
  kvmGid: number | null;
}

/** What a driver is given to confine its VMMs (each part optional: tests and development run without). */
export interface Confinement {
  user: VmmUser | null;
  /** setpriv's path (util-linux). */
  setpriv?: string;
  cgroups: CgroupLayout | null;
  resources: ResourceDefaults;
}

const USER_RE = /^[a-z_][a-z0-9_-]{0,31}$/;

async function getent(db: 'passwd' | 'group', key: string): Promise<string[] | null> {
  const r = await run('getent', [db, key], { allowFailure: true, timeoutMs: 10_000 });
  return r.code === 0 ? r.stdout.trim().split(':') : null;
}

/**
 * The VMM user, created when absent (a system user: no login shell, no home, its own group). The controller does
 * this at start so a plain `hangar up` works; under the hardened unit /etc is read-only and set-up
 * (scripts/install-deps.sh) has made it already.
 */
export async function resolveVmmUser(name: string, opts: { create?: boolean } = {}): Promise<VmmUser> {
  if (!USER_RE.test(name)) throw new HangarError('INVALID_ARGUMENT', `vmm.user must be a user name (got ${JSON.stringify(name)})`, { field: 'vmm.user' });
  let pw = await getent('passwd', name);
  if (!pw && opts.create !== false) {
    const r = await run('useradd', ['--system', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', '--user-group', name], { allowFailure: true, timeoutMs: 30_000 });
    if (r.code !== 0) {
      throw new HangarError('VMM_USER_MISSING', `the VMM user ${name} does not exist and cannot be created (${r.stderr.trim().slice(0, 200)}): run scripts/install-deps.sh as root`, { user: name });
    }
    pw = await getent('passwd', name);
  }
  if (!pw) throw new HangarError('VMM_USER_MISSING', `the VMM user ${name} does not exist: run scripts/install-deps.sh as root`, { user: name });
  const uid = Number(pw[2]);
  const gid = Number(pw[3]);
  if (!(uid > 0) || !(gid > 0)) throw new HangarError('INVALID_ARGUMENT', `the VMM user ${name} must not be root (uid ${uid}, gid ${gid})`, { field: 'vmm.user' });
  const kvm = await getent('group', 'kvm');
  return { name, uid, gid, kvmGid: kvm ? Number(kvm[2]) : null };
}

/** `setpriv …` that drops to the user for good, then execs the command (the pid stays the VMM's). Pure. */
export function dropPrivileges(setpriv: string, user: VmmUser, kvm: boolean, command: string, args: readonly string[]): [string, string[]] {
  const groups = kvm && user.kvmGid !== null ? ['--groups', String(user.kvmGid)] : ['--clear-groups'];
  return [setpriv, ['--reuid', String(user.uid), '--regid', String(user.gid), ...groups, '--no-new-privs', '--inh-caps=-all', '--bounding-set=-all', command, ...args]];
}

export async function findSetpriv(): Promise<string> {
  const p = await which('setpriv');
  if (!p) throw new HangarError('MISSING_HOST_TOOLS', 'setpriv (util-linux) is needed to run VMMs as an unprivileged user', { tools: ['setpriv'] });
  return p;
}

/**
 * Lets the VMM user reach its run directory: each ancestor that denies it gets search (x) for others, never read
 * or write (the state directory becomes 0711: its files keep their own 0600).
 */
export async function ensureTraversable(dir: string): Promise<void> {
  for (let d = dir; d !== dirname(d); d = dirname(d)) {
    const st = await stat(d);
    if ((st.mode & 0o001) === 0) await chmod(d, (st.mode & 0o7777) | 0o001);
  }
}

/** The run directory for a confined VMM: root's, group the VMM user's, 1770. */
export async function prepareRunDir(runDir: string, user: VmmUser): Promise<void> {
  await mkdir(runDir, { recursive: true, mode: 0o750 });
  await chown(runDir, 0, user.gid);
  await chmod(runDir, RUN_DIR_MODE);
  await ensureTraversable(dirname(runDir));
}

/** Files root made that the VMM opens itself: its disk (root:group 0660) and its console log (the VMM's, 0600). */
export async function handOver(user: VmmUser, files: { disk?: string; console?: string }): Promise<void> {
  if (files.disk) {
    await chown(files.disk, 0, user.gid);
    await chmod(files.disk, DISK_MODE);
  }
  if (files.console) {
    // QEMU's file chardev opens it O_APPEND by path; the controller trims and appends to it with O_NOFOLLOW.
    await chown(files.console, user.uid, user.gid).catch((e: NodeJS.ErrnoException) => { if (e.code !== 'ENOENT') throw e; });
  }
}

/** Makes the VM's cgroup with its limits (null when cgroups are off). The disk names the device io limits apply to. */
export async function vmCgroup(c: Confinement, spec: { id: string; vcpus: number; memMiB: number; rootfsPath: string; resources?: VmResources }): Promise<VmCgroup | null> {
  if (!c.cgroups) return null;
  const wantsIo = Object.values({ ...c.resources.io, ...spec.resources?.io }).some((v) => v !== undefined);
  let device: string | undefined;
  if (wantsIo) {
    device = await blockDeviceOf(spec.rootfsPath).catch(() => undefined);
    // Anonymous devices (overlay, tmpfs: major 0) have no block queue to throttle.
    if (device?.startsWith('0:')) device = undefined;
  }
  return createVmCgroup(c.cgroups, spec.id, deriveLimits(spec, c.resources, spec.resources, device));
}

/** An adopted VMM's cgroup, with the limits its VM derives (what it was started with, io device aside). */
export function adoptedCgroup(c: Confinement, spec: { id: string; vcpus: number; memMiB: number; resources?: VmResources }): VmCgroup | null {
  return c.cgroups ? openVmCgroup(c.cgroups, spec.id, deriveLimits(spec, c.resources, spec.resources)) : null;
}

/** After the VMM's exit: whether the OOM killer ended it, then its cgroup is removed (the undo of its start). */
export async function closeCgroup(cgroup: VmCgroup, e: ProcessExit): Promise<ProcessExit> {
  const usage = await cgroup.usage().catch(() => null);
  const out = usage && usage.oomKills > 0 ? { ...e, oomKilled: true } : e;
  for (let i = 0; i < 20; i++) {
    // The kernel drops an exited process from cgroup.procs a moment after its parent has reaped it.
    if (await cgroup.remove().then(() => true, () => false)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return out;
}

/**
 * The controller's confinement at start: the VMM user (resolved, made when absent), setpriv, and the cgroup layout
 * with the controller moved into its own cgroup. Cgroups that cannot be used are reported, not fatal.
 */
export async function setupConfinement(cfg: { user: string | null; cgroups: boolean; resources: ResourceDefaults }): Promise<{ confine: Confinement; cgroups: string }> {
  const user = cfg.user ? await resolveVmmUser(cfg.user) : null;
  const setpriv = user ? await findSetpriv() : undefined;
  let layout: CgroupLayout | null = null;
  let why = 'off in the config (vmm.cgroups)';
  if (cfg.cgroups) {
    const d = await detectCgroups();
    layout = d.layout;
    why = d.reason;
    if (layout) {
      try {
        await enterControllerCgroup(layout);
      } catch (e) {
        why = `cannot use cgroups (${(e as Error).message})`;
        layout = null;
      }
    }
  }
  return { confine: { user, ...(setpriv ? { setpriv } : {}), cgroups: layout, resources: cfg.resources }, cgroups: why };
}
