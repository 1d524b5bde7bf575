// Root filesystem executors: debootstrap Debian (minbase + the profile's packages) into a staging tree, install the
// guest init and settings, slim it, list its packages, and turn the tree into an ext4 image with `mkfs.ext4 -d`
// (no loop mount). Each function does one thing; build.ts strings them together as named steps.
import { chmod, lstat, mkdir, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { HangarError } from '../errors.js';
import { run } from '../util/exec.js';
import type { Progress } from '../util/progress.js';
import { lineProgress, measureTree, sha256File } from './host.js';
import {
  debootstrapArgv, FORBIDDEN_PACKAGES, guestFileDest, GUEST_HOSTNAME, GUEST_USER, lockRootShadow, mkfsArgv, parseDpkgQuery, planRootfsSize,
  uuidFromKey, type DebPackage, type DebootstrapPlan, type NamedContent, type RootfsSizePlan,
} from './plan.js';
import { mountsUnder } from './store.js';

export interface RootfsExecOpts {
  progress: Progress;
  signal?: AbortSignal;
}

export async function debootstrap(plan: DebootstrapPlan, o: RootfsExecOpts): Promise<void> {
  await mkdir(plan.debCache, { recursive: true });
  const onOut = lineProgress(o.progress, 'debootstrap', { intervalMs: 5000, important: /^(I: (Installing|Configuring|Base system|Retrieving Release)|E: |W: )/ });
  try {
    await run('debootstrap', debootstrapArgv(plan), { signal: o.signal, timeoutMs: 60 * 60_000, onOutput: (c) => onOut(c), maxBuffer: 1024 * 1024 });
  } catch (e) {
    // debootstrap keeps its own log in the target; its tail says what failed.
    const log = await readFile(join(plan.target, 'debootstrap/debootstrap.log'), 'utf8').catch(() => '');
    const why = debootstrapFailure(log);
    throw new HangarError('IMAGE_BUILD_FAILED', `debootstrap failed${why ? `: ${why}` : ''} (${e instanceof Error ? e.message : String(e)})`, { logTail: log.split('\n').slice(-30).join('\n') }, { cause: e });
  } finally {
    // A killed debootstrap can leave proc/sys mounted inside the target.
    for (const m of await mountsUnder(plan.target)) await run('umount', ['-l', m], { allowFailure: true });
  }
}

/** The first dpkg/apt complaints of a debootstrap log, joined on one line (the log itself goes with the staging dir). */
export function debootstrapFailure(log: string): string {
  const lines = log.split('\n');
  const out: string[] = [];
  lines.forEach((l, i) => {
    if (/^(dpkg: (error|dependency problems)|E: )/.test(l) && out.length < 2) out.push([l, lines[i + 1] ?? '', lines[i + 2] ?? ''].map((x) => x.trim()).filter(Boolean).join(' '));
  });
  return out.join(' | ');
}

export async function listPackages(root: string): Promise<DebPackage[]> {
  const r = await run('dpkg-query', [`--admindir=${join(root, 'var/lib/dpkg')}`, '-W', '-f', '${Package}\t${Version}\t${Architecture}\n']);
  return parseDpkgQuery(r.stdout);
}

/** Fails naming any package that could configure the network behind the kernel's back (see FORBIDDEN_PACKAGES). */
export function checkForbidden(packages: readonly DebPackage[]): void {
  const bad = packages.filter((p) => (FORBIDDEN_PACKAGES as readonly string[]).includes(p.name)).map((p) => p.name);
  if (bad.length) {
    throw new HangarError('IMAGE_BUILD_FAILED', `the rootfs has packages that would manage the network or listen on it: ${bad.join(', ')} (the kernel's ip= configuration must stay in charge)`, { packages: bad });
  }
}

const rel = (p: string): string => p.replace(/^\/+/, '');

/** Installs the guest files (init at GUEST_INIT_PATH), the unprivileged desktop user, hostname; locks root. */
export async function customizeRootfs(root: string, guestFiles: readonly NamedContent[]): Promise<void> {
  for (const f of guestFiles) {
    const { path, mode } = guestFileDest(f.name);
    const dest = join(root, rel(path));
    await mkdir(dirname(dest), { recursive: true });
    await writeFile(dest, f.content);
    await chmod(dest, mode);
  }
  await mkdir(join(root, 'etc/hangar/init.d'), { recursive: true });
  await writeFile(join(root, 'etc/hostname'), `${GUEST_HOSTNAME}\n`);
  await writeFile(join(root, 'etc/hosts'), `127.0.0.1\tlocalhost\n127.0.1.1\t${GUEST_HOSTNAME}\n`);
  // DNS, if ip= named servers, is what the kernel recorded; nothing else writes resolv.conf.
  await rm(join(root, 'etc/resolv.conf'), { force: true });
  await symlink('/proc/net/pnp', join(root, 'etc/resolv.conf'));
  // useradd creates the account locked (no password); the desktop runs as this user, not root.
  const home = await lstat(join(root, 'home', GUEST_USER.name)).then(() => true, () => false);
  if (!home) {
    await run('chroot', [root, 'useradd', '--create-home', '--uid', String(GUEST_USER.uid), '--user-group', '--shell', '/bin/bash', GUEST_USER.name]);
  }
  const shadowPath = join(root, 'etc/shadow');
  await writeFile(shadowPath, lockRootShadow(await readFile(shadowPath, 'utf8')));
  // Keep later in-guest installs as slim as this build.
  await mkdir(join(root, 'etc/dpkg/dpkg.cfg.d'), { recursive: true });
  await writeFile(join(root, 'etc/dpkg/dpkg.cfg.d/hangar-slim'),
    'path-exclude=/usr/share/doc/*\npath-include=/usr/share/doc/*/copyright\npath-exclude=/usr/share/man/*\npath-exclude=/usr/share/info/*\n');
}

/** Removes what a disposable VM never reads: apt caches and lists, docs (keeping copyright notices), man, info, logs. */
export async function slimRootfs(root: string): Promise<void> {
  if ((await mountsUnder(root)).length) throw new HangarError('IMAGE_BUILD_FAILED', `${root} still has mounts; refusing to clean it`, { root });
  const empty = async (dir: string, keep: (name: string) => boolean = () => false): Promise<void> => {
    for (const n of await readdir(join(root, dir)).catch(() => [] as string[])) if (!keep(n)) await rm(join(root, dir, n), { recursive: true, force: true });
  };
  await empty('var/cache/apt');
  await empty('var/lib/apt/lists', (n) => n === 'partial');
  await empty('usr/share/man');
  await empty('usr/share/info');
  await empty('usr/share/lintian');
  await empty('var/log');
  await empty('debootstrap');
  await rm(join(root, 'debootstrap'), { recursive: true, force: true });
  for (const pkg of await readdir(join(root, 'usr/share/doc')).catch(() => [] as string[])) {
    const d = join(root, 'usr/share/doc', pkg);
    if (!(await lstat(d)).isDirectory()) continue;
    for (const n of await readdir(d)) if (n !== 'copyright') await rm(join(d, n), { recursive: true, force: true });
  }
  await empty('usr/share/locale', (n) => n === 'locale.alias');
}

export interface MkfsResult {
  size: RootfsSizePlan;
  contentBytes: number;
  files: number;
}

/** Sizes the image from the tree, runs mkfs.ext4 -d, and checks the result with e2fsck (read-only). */
export async function makeExt4(root: string, out: string, key: string, o: RootfsExecOpts): Promise<MkfsResult> {
  const content = await measureTree(root);
  const size = planRootfsSize(content);
  o.progress.info(`rootfs content ${(content.allocatedBytes / 2 ** 20).toFixed(0)} MiB in ${content.files} entries → image ${(size.sizeBytes / 2 ** 20).toFixed(0)} MiB, ${size.inodes} inodes`);
  await run('mkfs.ext4', mkfsArgv({ sourceDir: root, out, size, label: 'hangar-root', uuid: uuidFromKey(key) }), { signal: o.signal, timeoutMs: 20 * 60_000 });
  await run('e2fsck', ['-f', '-n', out], { signal: o.signal, timeoutMs: 10 * 60_000 });
  return { size, contentBytes: content.apparentBytes, files: content.files };
}

export async function fileInfo(path: string): Promise<{ sha256: string; size: number }> {
  return { sha256: await sha256File(path), size: (await stat(path)).size };
}
