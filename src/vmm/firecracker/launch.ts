// Pure planning of a Firecracker launch: the argv (direct, in a network namespace, or through the jailer), where
// the API socket and logs live, and which paths the VMM will see. Nothing here touches the host.
import { basename, join } from 'node:path';
import { HangarError } from '../../errors.js';
import type { MachineSpec } from '../types.js';
import { absPath } from './requests.js';
import type { BootPaths } from './requests.js';

/** sun_path is 108 bytes including the terminating NUL. */
export const UNIX_SOCKET_PATH_MAX = 107;
/** Where `ip netns add` puts namespace handles (the jailer's --netns takes the path). */
export const NETNS_DIR = '/var/run/netns';

export interface JailerOptions {
  /** The jailer binary. */
  binary: string;
  uid: number;
  gid: number;
  chrootBaseDir: string;
  cgroupVersion?: 1 | 2;
  /** The VM's cgroup limits, set by the jailer before it execs Firecracker (its --cgroup options). */
  cgroup?: JailerCgroup;
}

/** The jailer's cgroup: `<parent>/<id>` in each hierarchy, the files it writes (`--cgroup FILE=VALUE`). */
export interface JailerCgroup {
  version: 1 | 2;
  /** Relative to the cgroup mount (the jailer's --parent-cgroup). */
  parent: string;
  writes: readonly { file: string; value: string }[];
}

const CGROUP_PARENT_RE = /^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/;
const CGROUP_FILE_RE = /^(cpu|cpuset|memory|pids|blkio|io)\.[a-z_.]+$/;

/** `--cgroup-version V --parent-cgroup P --cgroup FILE=VALUE…`, validated. Pure. */
export function jailerCgroupArgs(c: JailerCgroup): string[] {
  if (c.version !== 1 && c.version !== 2) throw new HangarError('INVALID_ARGUMENT', `cgroup version must be 1 or 2 (got ${String(c.version)})`, { field: 'cgroup.version' });
  if (!CGROUP_PARENT_RE.test(c.parent) || c.parent.split('/').some((p) => p === '.' || p === '..')) {
    throw new HangarError('INVALID_ARGUMENT', `the parent cgroup must be a relative path without . or .. (got ${JSON.stringify(c.parent)})`, { field: 'cgroup.parent' });
  }
  const args = ['--cgroup-version', String(c.version), '--parent-cgroup', c.parent];
  for (const w of c.writes) {
    if (!CGROUP_FILE_RE.test(w.file) || !/^[0-9a-z: =]{1,200}$/.test(w.value)) {
      throw new HangarError('INVALID_ARGUMENT', `not a cgroup setting the jailer takes: ${JSON.stringify(`${w.file}=${w.value}`)}`, { field: 'cgroup.writes' });
    }
    args.push('--cgroup', `${w.file}=${w.value}`);
  }
  return args;
}

/**
 * How a file gets into the jail:
 * - copy: the kernel (small, read-only), owned by the jail user;
 * - link: the VM's own disk, hard-linked (the VM must write the real one), owned by the jail user;
 * - link-shared: a golden snapshot's state, hard-linked (clones share it), left owned by root and made readable by
 *   the jail group only (0640): a compromised VMM can read what it restores from but not alter it for other clones;
 * - create: an empty file the VMM writes (its log, a snapshot it is about to save), owned by the jail user.
 */
export type JailFileMode = 'copy' | 'link' | 'link-shared' | 'create';

/** What a staged jail needs: files placed inside the chroot before the API names them. */
export interface JailStage {
  /** <chroot_base>/<exec_file_name>/<id>/root, as the jailer builds it. */
  chrootDir: string;
  /** The per-VM jail directory (parent of root), removed after the VMM is gone. */
  jailDir: string;
  /** The jail user the VMM runs as once the jailer drops privileges. */
  owner: { uid: number; gid: number };
  files: { from: string | null; to: string; how: JailFileMode }[];
}

/** A snapshot's two state files (vmstate and guest memory). */
export interface SnapshotFiles {
  snapshotPath: string;
  memFilePath: string;
}

/** Where a jailed VMM sees snapshot state: the same names in every jail, so clones of one snapshot line up. */
export const IN_JAIL_SNAPSHOT: Readonly<SnapshotFiles> = Object.freeze({ snapshotPath: '/vmstate', memFilePath: '/memory' });

export interface LaunchPlan {
  /** The executable (firecracker, or the jailer) and its arguments. */
  command: string;
  args: string[];
  /** Direct launch only: the supervisor wraps the command in `ip netns exec` (the jailer joins it itself). */
  netns?: string;
  /** The API socket as the host reaches it. */
  apiSocket: string;
  pidfile: string;
  /** The VMM's stdout (the serial console) and stderr are appended here. */
  consoleLogPath: string;
  /** Firecracker's own log, as the host sees it. */
  logFile: string;
  /** Paths as the Firecracker process sees them (inside the chroot when jailed). */
  vmmPaths: BootPaths;
  /** hangar-agent's vsock Unix socket as the host reaches it (the VMM creates it at vmmPaths.vsockPath). */
  vsockSocket: string;
  /** How /proc shows this VMM (adopt's guard against a recycled pid): its exe, and strings its argv holds. */
  identity: { binary: string; markers: string[] };
  jail?: JailStage;
}

const NETNS_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const JAIL_ID_RE = /^[A-Za-z0-9-]{1,64}$/;

export function netnsName(value: unknown): string {
  if (typeof value !== 'string' || !NETNS_RE.test(value) || value === '.' || value === '..') {
    throw new HangarError('INVALID_ARGUMENT', `netns must match ${NETNS_RE} (got ${JSON.stringify(value)})`, { field: 'netns' });
  }
  return value;
}

function socketPathFits(path: string): string {
  const bytes = Buffer.byteLength(path);
  if (bytes > UNIX_SOCKET_PATH_MAX) {
    throw new HangarError('INVALID_ARGUMENT', `API socket path ${path} is ${bytes} bytes; a Unix socket path holds at most ${UNIX_SOCKET_PATH_MAX} (use a shorter runDir or chroot base)`, {
      field: 'runDir', bytes,
    });
  }
  return path;
}

/** `firecracker --api-sock PATH [--id ID]`. */
export function firecrackerArgv(binary: string, apiSock: string, id?: string): string[] {
  return [binary, '--api-sock', apiSock, ...(id ? ['--id', id] : [])];
}

/** `jailer --id … --exec-file … --uid … --gid … --chroot-base-dir … [--netns /var/run/netns/NS] -- <firecracker args>`. */
export function jailerArgv(j: JailerOptions & { id: string; execFile: string; netns?: string }, firecrackerArgs: readonly string[]): string[] {
  if (!JAIL_ID_RE.test(j.id)) throw new HangarError('INVALID_ARGUMENT', `jailer id must match ${JAIL_ID_RE} (got ${JSON.stringify(j.id)})`, { field: 'id' });
  if (!basename(j.execFile).includes('firecracker')) {
    throw new HangarError('INVALID_ARGUMENT', `the jailer only execs a file whose name contains "firecracker" (got ${basename(j.execFile)})`, { field: 'binary' });
  }
  for (const [k, v] of [['uid', j.uid], ['gid', j.gid]] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 0xfffffffe) throw new HangarError('INVALID_ARGUMENT', `jailer ${k} must be a non-negative integer (got ${v})`, { field: k });
  }
  return [
    j.binary,
    '--id', j.id,
    '--exec-file', j.execFile,
    '--uid', String(j.uid),
    '--gid', String(j.gid),
    '--chroot-base-dir', j.chrootBaseDir,
    ...(j.cgroup ? jailerCgroupArgs(j.cgroup) : j.cgroupVersion ? ['--cgroup-version', String(j.cgroupVersion)] : []),
    ...(j.netns ? ['--netns', join(NETNS_DIR, netnsName(j.netns))] : []),
    '--',
    ...firecrackerArgs,
  ];
}

/** The host path of a path as the jailed VMM sees it. */
export function hostPathInJail(jail: JailStage, inJail: string): string {
  return join(jail.chrootDir, inJail);
}

/**
 * The complete launch for a spec. Validates the spec's paths; throws before any side effect. With `restore`, the
 * VMM will load that snapshot instead of booting: jailed, its files are staged in the chroot (and the kernel,
 * which a load does not read, is not).
 */
export function planLaunch(spec: MachineSpec, opts: { binary: string; jailer?: JailerOptions; restore?: SnapshotFiles }): LaunchPlan {
  const runDir = absPath(spec.runDir, 'runDir');
  const kernelPath = absPath(spec.kernelPath, 'kernelPath');
  const rootfsPath = absPath(spec.rootfsPath, 'rootfsPath');
  const common = { pidfile: join(runDir, 'firecracker.pid'), consoleLogPath: absPath(spec.consoleLogPath, 'consoleLogPath') };
  const netns = spec.netns === undefined ? undefined : netnsName(spec.netns);

  if (!opts.jailer) {
    const apiSocket = socketPathFits(join(runDir, 'firecracker.sock'));
    const logFile = join(runDir, 'firecracker.log');
    return {
      command: opts.binary, args: firecrackerArgv(opts.binary, apiSocket, spec.id).slice(1), ...(netns ? { netns } : {}),
      apiSocket, logFile, vmmPaths: { kernelPath, rootfsPath, logPath: logFile, vsockPath: join(runDir, 'vsock.sock') }, ...common,
      vsockSocket: socketPathFits(join(runDir, 'vsock.sock')),
      identity: { binary: opts.binary, markers: [apiSocket] },
    };
  }

  const j = opts.jailer;
  const base = absPath(j.chrootBaseDir, 'jailer.chrootBaseDir');
  const jailDir = join(base, basename(opts.binary), spec.id);
  const chrootDir = join(jailDir, 'root');
  // Inside the jail the VMM sees chrootDir as '/'.
  const inJail = { sock: '/firecracker.sock', kernel: '/vmlinux', rootfs: '/rootfs.ext4', log: '/firecracker.log', vsock: '/vsock.sock' };
  const apiSocket = socketPathFits(join(chrootDir, inJail.sock));
  const [command, ...args] = jailerArgv({ ...j, chrootBaseDir: base, id: spec.id, execFile: opts.binary, ...(netns ? { netns } : {}) }, ['--api-sock', inJail.sock]);
  return {
    command: command!, args, apiSocket, logFile: join(chrootDir, inJail.log), ...common,
    // The jailer execs its copy of the binary as /<name> inside the chroot; /proc/PID/exe shows that path.
    identity: { binary: `/${basename(opts.binary)}`, markers: [inJail.sock, `--id=${spec.id}`] },
    vmmPaths: { kernelPath: inJail.kernel, rootfsPath: inJail.rootfs, logPath: inJail.log, vsockPath: inJail.vsock },
    vsockSocket: socketPathFits(join(chrootDir, inJail.vsock)),
    jail: {
      chrootDir, jailDir, owner: { uid: j.uid, gid: j.gid },
      files: [
        ...(opts.restore
          ? [
            { from: absPath(opts.restore.snapshotPath, 'snapshotPath'), to: join(chrootDir, IN_JAIL_SNAPSHOT.snapshotPath), how: 'link-shared' as const },
            { from: absPath(opts.restore.memFilePath, 'memFilePath'), to: join(chrootDir, IN_JAIL_SNAPSHOT.memFilePath), how: 'link-shared' as const },
          ]
          : [{ from: kernelPath, to: join(chrootDir, inJail.kernel), how: 'copy' as const }]),
        { from: rootfsPath, to: join(chrootDir, inJail.rootfs), how: 'link' },
        { from: null, to: join(chrootDir, inJail.log), how: 'create' },
      ],
    },
  };
}

/** Does a live process's argv belong to this plan (pid-reuse guard for adopt)? Pure. */
export function isOurVmm(plan: LaunchPlan, spec: MachineSpec, argv: readonly string[]): boolean {
  const sockIdx = argv.indexOf('--api-sock');
  const sockArg = sockIdx >= 0 ? argv[sockIdx + 1] : undefined;
  if (!plan.jail) return sockArg === plan.apiSocket;
  // Jailed: the jailer exec'd `firecracker --id=<id> … --api-sock /firecracker.sock`.
  const idIdx = argv.indexOf('--id');
  const hasId = argv.includes(`--id=${spec.id}`) || (idIdx >= 0 && argv[idIdx + 1] === spec.id);
  return hasId && sockArg !== undefined && plan.apiSocket.endsWith(sockArg);
}
