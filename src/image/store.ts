// Where artifacts and images live on disk, and the few operations that keep them whole: locks, staging
// directories in the same filesystem, atomic publish by rename (manifest and directory fsynced first, so a power
// loss cannot leave a published directory with an empty manifest), and reading published images back.
import { randomBytes } from 'node:crypto';
import { chmod, link, copyFile, constants as fsc, mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { HangarError, isHangarError } from '../errors.js';
import { resolvePaths, type HangarPaths } from '../config.js';
import { run } from '../util/exec.js';
import { fsync, type Fsync } from '../util/files.js';
import { KERNEL_FILE, MANIFEST_FILE, MANIFEST_SCHEMA, PROFILES, ROOTFS_FILE, type ImageManifest, type Profile } from './plan.js';

// ---- locks

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes an exclusive lock file (O_EXCL) holding our pid. A lock whose holder is dead (a crashed build) is taken
 * over; a live holder gives IMAGE_BUILD_LOCKED. Returns the release function (an undo).
 */
export async function acquireLock(path: string, what: string): Promise<() => Promise<void>> {
  await mkdir(dirname(path), { recursive: true });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(path, 'wx');
      await fh.writeFile(JSON.stringify({ pid: process.pid, started: new Date().toISOString(), what }));
      await fh.close();
      return async () => { await rm(path, { force: true }); };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const holder = await readFile(path, 'utf8').then((t) => JSON.parse(t) as { pid?: number; started?: string }).catch(() => ({} as { pid?: number; started?: string }));
      if (typeof holder.pid === 'number' && pidAlive(holder.pid) && holder.pid !== process.pid) {
        throw new HangarError('IMAGE_BUILD_LOCKED', `${what} is being built by pid ${holder.pid} (since ${holder.started ?? '?'}); lock ${path}`, { lock: path, pid: holder.pid });
      }
      if (holder.pid === process.pid) {
        throw new HangarError('IMAGE_BUILD_LOCKED', `${what} is already being built by this process; lock ${path}`, { lock: path, pid: holder.pid });
      }
      await rm(path, { force: true }); // stale: its holder is gone
    }
  }
  throw new HangarError('IMAGE_BUILD_LOCKED', `cannot take the lock ${path}`, { lock: path });
}

/**
 * acquireLock, waiting while a live process holds it (e.g. two builds sharing the deb cache: the second waits
 * rather than fails). `onWait` hears once who holds it. IMAGE_BUILD_LOCKED after timeoutMs.
 */
export async function waitForLock(path: string, what: string, opts: { timeoutMs: number; pollMs?: number; onWait?: (holder: string) => void }): Promise<() => Promise<void>> {
  const deadline = Date.now() + opts.timeoutMs;
  let told = false;
  for (;;) {
    try {
      return await acquireLock(path, what);
    } catch (e) {
      if (!isHangarError(e, 'IMAGE_BUILD_LOCKED') || e.details.pid === process.pid || Date.now() >= deadline) throw e;
      if (!told) {
        told = true;
        opts.onWait?.(`waiting for ${what}: held by pid ${String(e.details.pid)}`);
      }
      await new Promise((r) => setTimeout(r, opts.pollMs ?? 1000));
    }
  }
}

// ---- staging and removal

const STAGING_PREFIX = '.staging-';

/** A fresh staging directory under PARENT (same filesystem as the final place), named with our pid. */
export async function makeStaging(parent: string, name: string, mode?: number): Promise<string> {
  await mkdir(parent, { recursive: true });
  const dir = stagingPath(parent, name);
  await mkdir(dir, mode);
  if (mode !== undefined) await chmod(dir, mode); // whatever the umask
  return dir;
}

/** A staging name under PARENT for this process: cleanStaleStaging reclaims it once the process is gone. */
export function stagingPath(parent: string, name: string): string {
  return join(parent, `${STAGING_PREFIX}${name}-${process.pid}-${randomBytes(3).toString('hex')}`);
}

/** Mount points at or below DIR, deepest first (debootstrap mounts proc/sys in its target). */
export async function mountsUnder(dir: string): Promise<string[]> {
  const text = await readFile('/proc/self/mounts', 'utf8').catch(() => '');
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  return text.split('\n').map((l) => l.split(' ')[1] ?? '').map((m) => m.replace(/\\040/g, ' '))
    .filter((m) => m === dir || m.startsWith(prefix)).sort((a, b) => b.length - a.length);
}

/**
 * Removes a build tree. Never recurses into a mounted filesystem: everything mounted below is unmounted first,
 * and if anything is still mounted the tree is left alone (and named in the error).
 */
export async function removeTree(dir: string): Promise<void> {
  for (const m of await mountsUnder(dir)) await run('umount', ['-l', m], { allowFailure: true });
  const left = await mountsUnder(dir);
  if (left.length) throw new HangarError('IMAGE_BUILD_FAILED', `refusing to remove ${dir}: still mounted: ${left.join(', ')}`, { mounts: left });
  await rm(dir, { recursive: true, force: true });
}

/** Removes staging directories under PARENT whose builder process is gone (an interrupted or crashed build). */
export async function cleanStaleStaging(parent: string): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await readdir(parent).catch(() => [] as string[])) {
    if (!name.startsWith(STAGING_PREFIX)) continue;
    const pid = Number(/-(\d+)-[0-9a-f]{6}$/.exec(name)?.[1]);
    if (Number.isInteger(pid) && pid > 0 && pidAlive(pid)) continue;
    await removeTree(join(parent, name));
    removed.push(name);
  }
  return removed;
}

/**
 * Publishes a finished staging directory at FINAL with rename(2): readers see the old directory or the new one,
 * never a half-written one. An existing FINAL (a forced rebuild) is moved aside first and removed after. The
 * staging directory's entries are fsynced before the rename and the parent's after it (its files' contents are
 * the writer's: writeJsonFile fsyncs a manifest).
 */
export async function publishDir(staging: string, final: string, sync: Fsync = fsync): Promise<void> {
  await mkdir(dirname(final), { recursive: true });
  await sync.dir(staging);
  let aside: string | null = null;
  try {
    await rename(staging, final);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
    aside = join(dirname(final), `${STAGING_PREFIX}old-${basename(final)}-${process.pid}-${randomBytes(3).toString('hex')}`);
    await rename(final, aside);
    await rename(staging, final);
  }
  await sync.dir(dirname(final));
  if (aside) await rm(aside, { recursive: true, force: true });
}

/** Hard-links SRC to DEST (artifacts are immutable), copying when they are on different filesystems. */
export async function linkOrCopy(src: string, dest: string): Promise<void> {
  try {
    await link(src, dest);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
    await copyFile(src, dest, fsc.COPYFILE_FICLONE);
  }
}

/** Writes a manifest into a staging directory and fsyncs it: its bytes are on disk before publishDir's rename. */
export async function writeJsonFile(path: string, value: unknown, sync: Fsync = fsync): Promise<void> {
  await writeFile(path, JSON.stringify(value, null, 2) + '\n');
  await sync.file(path);
}

export async function readJsonFile<T>(path: string): Promise<T | null> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch {
    return null;
  }
}

// ---- published images

export interface ImageInfo {
  id: string;
  profile: Profile;
  created: string;
  kernelVersion: string;
  dir: string;
  kernelPath: string;
  rootfsPath: string;
  manifestPath: string;
  sizes: { vmlinux: number; rootfs: number };
  manifest: ImageManifest;
}

function isManifest(m: unknown): m is ImageManifest {
  const x = m as ImageManifest | null;
  return !!x && x.schema === MANIFEST_SCHEMA && typeof x.id === 'string' && (PROFILES as readonly string[]).includes(x.profile)
    && !!x.files?.[KERNEL_FILE] && !!x.files?.[ROOTFS_FILE] && typeof x.created === 'string';
}

/**
 * Reads one image directory. Cheap by design (no hashing): the manifest must parse and both files must exist with
 * the sizes the manifest records; IMAGE_INVALID otherwise.
 */
export async function readImage(dir: string): Promise<ImageInfo> {
  const manifestPath = join(dir, MANIFEST_FILE);
  const manifest = await readJsonFile<unknown>(manifestPath);
  if (!isManifest(manifest)) throw new HangarError('IMAGE_INVALID', `${dir}: no valid ${MANIFEST_FILE}`, { dir });
  const kernelPath = join(dir, KERNEL_FILE);
  const rootfsPath = join(dir, ROOTFS_FILE);
  for (const [name, p] of [[KERNEL_FILE, kernelPath], [ROOTFS_FILE, rootfsPath]] as const) {
    const st = await stat(p).catch(() => null);
    const want = manifest.files[name]!.size;
    if (!st || st.size !== want) {
      throw new HangarError('IMAGE_INVALID', `${p}: ${st ? `size ${st.size}, manifest says ${want}` : 'missing'}`, { dir, file: name });
    }
    const mtime = manifest.files[name]!.mtimeMs;
    if (mtime !== undefined && Math.abs(st.mtimeMs - mtime) > 1) {
      throw new HangarError('IMAGE_INVALID', `${p}: modified after it was published (mtime differs from the manifest); rebuild with --force`, { dir, file: name });
    }
  }
  return {
    id: manifest.id,
    profile: manifest.profile,
    created: manifest.created,
    kernelVersion: manifest.kernel.version,
    dir,
    kernelPath,
    rootfsPath,
    manifestPath,
    sizes: { vmlinux: manifest.files[KERNEL_FILE]!.size, rootfs: manifest.files[ROOTFS_FILE]!.size },
    manifest,
  };
}

/** Published images, newest first. Staging and broken directories are skipped. */
export async function listImages(paths: HangarPaths = resolvePaths()): Promise<ImageInfo[]> {
  const out: ImageInfo[] = [];
  for (const name of await readdir(paths.imagesDir).catch(() => [] as string[])) {
    if (name.startsWith('.')) continue;
    try {
      out.push(await readImage(join(paths.imagesDir, name)));
    } catch (e) {
      if (!isHangarError(e, 'IMAGE_INVALID')) throw e;
    }
  }
  return out.sort((a, b) => b.created.localeCompare(a.created) || a.id.localeCompare(b.id));
}

/** An image by exact id, unique id prefix, or profile name (the newest of that profile). */
export async function resolveImage(ref: string, paths: HangarPaths = resolvePaths()): Promise<ImageInfo> {
  const images = await listImages(paths);
  const exact = images.find((i) => i.id === ref);
  if (exact) return exact;
  if ((PROFILES as readonly string[]).includes(ref)) {
    const newest = images.find((i) => i.profile === ref);
    if (newest) return newest;
  } else if (ref.length > 0) {
    const matches = images.filter((i) => i.id.startsWith(ref));
    if (matches.length === 1) return matches[0]!;
    if (matches.length > 1) {
      throw new HangarError('IMAGE_NOT_FOUND', `image reference '${ref}' is ambiguous: ${matches.map((m) => m.id).join(', ')}`, { ref, matches: matches.map((m) => m.id) });
    }
  }
  throw new HangarError('IMAGE_NOT_FOUND', `no image '${ref}' in ${paths.imagesDir}${images.length ? ` (have: ${images.map((i) => i.id).join(', ')})` : ''}`, { ref, imagesDir: paths.imagesDir });
}
