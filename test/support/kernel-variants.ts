// Guest kernel variants for fault-injection tests: the image's kernel with a few options flipped (e.g. no
// virtio-net, virtio as modules). Built incrementally from a copy of the image pipeline's cached kernel tree
// (the cached tree itself is never modified), and cached by the resulting config so reruns take no time.
// Also makes an ImageInfo-shaped directory (manifest.json + vmlinux + rootfs.ext4) for a test's ImageSource.
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { resolvePaths, type HangarPaths } from '../../src/config.js';
import { isHangarError } from '../../src/errors.js';
import { parseConfig, optionValue } from '../../src/kernel/config.js';
import { cacheLayout, KERNEL_FILE, MANIFEST_FILE, ROOTFS_FILE, type ImageManifest } from '../../src/image/plan.js';
import { acquireLock, linkOrCopy, readImage, removeTree, type ImageInfo } from '../../src/image/store.js';
import { run } from '../../src/util/exec.js';

/** Option name (without CONFIG_) → wanted value: 'y', 'm' or 'n'. */
export type OptionFlips = Record<string, 'y' | 'm' | 'n'>;

export interface KernelVariantSpec {
  name: string;
  flips: OptionFlips;
}

export interface BuiltVariant {
  name: string;
  vmlinux: string;
  config: string;
  /** True when it came from the cache. */
  cached: boolean;
  /** Wall time of olddefconfig + make vmlinux (0 when cached). */
  buildMs: number;
}

/** The kernel faults of the doctor's matrix (test/doctor/faults.int.test.ts, bench/doctor.ts). */
export const MATRIX_KERNEL_VARIANTS: readonly KernelVariantSpec[] = [
  { name: 'no-virtio-net', flips: { VIRTIO_NET: 'n' } },
  // Modules need CONFIG_MODULES=y, which the image kernel does not set: this one rebuilds almost everything.
  { name: 'virtio-modules', flips: { MODULES: 'y', VIRTIO_BLK: 'm', VIRTIO_NET: 'm' } },
];

export type VariantResult = { ok: true; variants: BuiltVariant[]; copyMs: number } | { ok: false; skip: string };

const sha = (s: string): string => createHash('sha256').update(s).digest('hex');

/** Where variants are cached: beside the image pipeline's kernel artifacts, in a directory of its own. */
export const variantCacheDir = (paths: HangarPaths): string => join(paths.cacheDir, 'test-kernel-variants');

/** The .config the image's kernel was built with (the pipeline keeps it beside the artifact). */
async function baseConfigOf(image: ImageInfo, paths: HangarPaths): Promise<string | null> {
  const dir = cacheLayout(paths.cacheDir).kernelArtifact(image.manifest.inputs.kernelKey);
  return readFile(join(dir, 'config'), 'utf8').catch(() => null);
}

/** The cached tree of the image's kernel source version, when it was built (vmlinux.o present). */
async function cachedTree(image: ImageInfo, paths: HangarPaths): Promise<string | null> {
  const tree = cacheLayout(paths.cacheDir).kernelTree(image.manifest.inputs.kernel.sourceVersion);
  const ok = await stat(join(tree, 'vmlinux.o')).then(() => true, () => false);
  return ok ? tree : null;
}

/** scripts/config arguments for a set of flips. */
function configArgs(flips: OptionFlips): string[] {
  return Object.entries(flips).flatMap(([k, v]) => [v === 'y' ? '--enable' : v === 'm' ? '--module' : '--disable', k]);
}

/** Options whose flip olddefconfig undid (a dependency forced them back). */
function unmetFlips(configText: string, flips: OptionFlips): string[] {
  const cfg = parseConfig(configText);
  return Object.entries(flips).filter(([k, v]) => optionValue(cfg, k) !== v).map(([k, v]) => `CONFIG_${k}=${v} (got ${optionValue(cfg, k)})`);
}

async function lockTree(locks: string, sourceVersion: string, tree: string): Promise<() => Promise<void>> {
  // The image pipeline's own lock on the tree: no build changes it while we copy it.
  const path = join(locks, `kernel-tree-${sourceVersion}.lock`);
  for (let i = 0; ; i++) {
    try {
      return await acquireLock(path, `the kernel tree ${tree} (test variant copy)`);
    } catch (e) {
      if (!isHangarError(e, 'IMAGE_BUILD_LOCKED') || i >= 120) throw e;
      await new Promise((r) => setTimeout(r, 5000));
    }
  }
}

/**
 * Builds (or takes from the cache) each variant of IMAGE's kernel. One copy of the tree serves every variant that
 * is not cached; it is removed afterwards. Returns a skip reason when the tree or the base config is absent.
 */
export async function buildKernelVariants(image: ImageInfo, specs: readonly KernelVariantSpec[], opts: { paths?: HangarPaths; jobs?: number; log?: (m: string) => void; cachedOnly?: boolean } = {}): Promise<VariantResult> {
  const paths = opts.paths ?? resolvePaths();
  const log = opts.log ?? (() => undefined);
  const base = await baseConfigOf(image, paths);
  if (!base) return { ok: false, skip: `the kernel config of ${image.id} is not in the kernel artifact cache (build the image with 'hangar image build')` };
  const cacheRoot = variantCacheDir(paths);
  const keyOf = (s: KernelVariantSpec): string => sha(`${base}\n--flips ${JSON.stringify(Object.entries(s.flips).sort())}`).slice(0, 16);
  const out: BuiltVariant[] = [];
  const todo: KernelVariantSpec[] = [];
  for (const s of specs) {
    const dir = join(cacheRoot, keyOf(s));
    if (await stat(join(dir, KERNEL_FILE)).then(() => true, () => false)) {
      out.push({ name: s.name, vmlinux: join(dir, KERNEL_FILE), config: await readFile(join(dir, 'config'), 'utf8'), cached: true, buildMs: 0 });
    } else {
      todo.push(s);
    }
  }
  if (!todo.length) return { ok: true, variants: out, copyMs: 0 };
  if (opts.cachedOnly) return { ok: false, skip: `kernel variant(s) ${todo.map((s) => s.name).join(', ')} not built yet (the doctor's fault tests build them)` };

  const tree = await cachedTree(image, paths);
  if (!tree) return { ok: false, skip: `no built kernel tree for ${image.manifest.inputs.kernel.sourceVersion} under ${paths.cacheDir}/kernel/tree (the image pipeline keeps it after 'hangar image build')` };
  await mkdir(cacheRoot, { recursive: true });
  const work = join(cacheRoot, `.work-${process.pid}`);
  await removeTree(work);
  const t0 = Date.now();
  const release = await lockTree(cacheLayout(paths.cacheDir).locks, image.manifest.inputs.kernel.sourceVersion, tree);
  try {
    await run('cp', ['-a', '--reflink=auto', tree, work], { timeoutMs: 20 * 60_000 });
  } finally {
    await release();
  }
  const copyMs = Date.now() - t0;
  log(`copied ${tree} in ${copyMs} ms`);
  const env = { ...process.env, LC_ALL: 'C', KBUILD_BUILD_USER: 'hangar', KBUILD_BUILD_HOST: 'hangar' };
  // objtool's build records absolute paths: built anywhere else, the copy rebuilds objtool and so every object.
  // So make runs with the copy bind-mounted over the tree's own path, in a private mount namespace (the host's
  // view of the tree is untouched). A fixed script; the paths are its arguments.
  const inTreePath = (args: string[], timeoutMs: number): Promise<unknown> => run('unshare', [
    '--mount', '--propagation', 'private', 'bash', '-c', 'mount --bind "$1" "$2" && cd -- "$2" && shift 2 && exec make "$@"', 'kvariant', work, tree, ...args,
  ], { env, timeoutMs, maxBuffer: 1024 * 1024 });
  try {
    for (const s of todo) {
      const t1 = Date.now();
      await writeFile(join(work, '.config'), base);
      await run(join(work, 'scripts/config'), ['--file', join(work, '.config'), ...configArgs(s.flips)], { cwd: work });
      await inTreePath(['olddefconfig'], 10 * 60_000);
      const config = await readFile(join(work, '.config'), 'utf8');
      const unmet = unmetFlips(config, s.flips);
      if (unmet.length) throw new Error(`kernel variant ${s.name}: olddefconfig undid ${unmet.join(', ')}`);
      await inTreePath([`-j${opts.jobs ?? 2}`, 'vmlinux'], 60 * 60_000);
      const buildMs = Date.now() - t1;
      log(`variant ${s.name} built in ${buildMs} ms`);
      const dir = join(cacheRoot, keyOf(s));
      const staging = `${dir}.staging-${process.pid}`;
      await rm(staging, { recursive: true, force: true });
      await mkdir(staging);
      await copyFile(join(work, 'vmlinux'), join(staging, KERNEL_FILE));
      await writeFile(join(staging, 'config'), config);
      await writeFile(join(staging, 'meta.json'), JSON.stringify({ name: s.name, flips: s.flips, base: image.id, buildMs, copyMs, builtAt: new Date().toISOString() }, null, 2));
      await rm(dir, { recursive: true, force: true });
      await rename(staging, dir);
      out.push({ name: s.name, vmlinux: join(dir, KERNEL_FILE), config, cached: false, buildMs });
    }
  } finally {
    await removeTree(work);
  }
  return { ok: true, variants: out, copyMs };
}

/**
 * An ImageInfo-shaped directory under PARENT: BASE's manifest with a new id, and the given kernel and rootfs
 * (hard links where possible; both are read-only inputs, the manager copies the rootfs per VM).
 */
export async function makeVariantImage(base: ImageInfo, parent: string, id: string, files: { vmlinux?: string; rootfs?: string }): Promise<ImageInfo> {
  const dir = join(parent, id);
  await mkdir(dir, { recursive: true });
  const kernel = files.vmlinux ?? base.kernelPath;
  const rootfs = files.rootfs ?? base.rootfsPath;
  await linkOrCopy(kernel, join(dir, KERNEL_FILE));
  await linkOrCopy(rootfs, join(dir, ROOTFS_FILE));
  const info = async (p: string): Promise<{ sha256: string; size: number; mtimeMs: number }> => {
    const st = await stat(p);
    return { sha256: 'test-variant', size: st.size, mtimeMs: st.mtimeMs };
  };
  const manifest: ImageManifest = {
    ...base.manifest,
    id,
    created: new Date().toISOString(),
    files: { [KERNEL_FILE]: await info(join(dir, KERNEL_FILE)), [ROOTFS_FILE]: await info(join(dir, ROOTFS_FILE)) },
  };
  await writeFile(join(dir, MANIFEST_FILE), JSON.stringify(manifest, null, 2));
  return readImage(dir);
}

/** Removes leftovers of interrupted variant builds (work trees of dead test processes). */
export async function cleanVariantWork(paths: HangarPaths = resolvePaths()): Promise<void> {
  const root = variantCacheDir(paths);
  for (const name of await readdir(root).catch(() => [] as string[])) {
    const pid = Number(/^\.work-(\d+)$/.exec(name)?.[1] ?? /\.staging-(\d+)$/.exec(name)?.[1]);
    if (!pid || pid === process.pid) continue;
    try { process.kill(pid, 0); } catch { await removeTree(join(root, name)); }
  }
}
