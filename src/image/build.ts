// `hangar image build`: gathers the inputs, plans (keys, image id, what must be built), checks the host, then runs
// the build as named steps. Artifacts are content-addressed under the cache; an image directory links a kernel
// artifact and a rootfs artifact and adds manifest.json. Everything is written to a staging directory in the same
// filesystem and renamed into place, so an interrupted build never leaves a half-written artifact or image.
import { existsSync } from 'node:fs';
import { chmod, mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HangarError, isHangarError } from '../errors.js';
import { resolvePaths, type HangarPaths } from '../config.js';
import { run } from '../util/exec.js';
import { silentProgress, type Progress } from '../util/progress.js';
import { runSteps, type Step } from '../util/steps.js';
import { findMissing, lineProgress, realHostChecks, requireDiskSpace, requireHostTools, requireRoot, type HostChecks } from './host.js';
import {
  compileKernel, configureKernel, ensureKernelTree, KERNEL_TARBALL, kernelRelease, kernelSourceVersion, publishKernelArtifact,
  treeIsUnpacked, type LintFn,
} from './kernel.js';
import {
  buildManifest, cacheKey, cacheLayout, DEBIAN_SUITE, imageId, KERNEL_FILE, KERNEL_SOURCE_PACKAGE, kernelInputs, MANIFEST_FILE,
  PROFILES, renderGuestTemplate, requiredBytes, ROOTFS_FILE, rootfsInputs,
  type CacheLayout, type KernelArtifactMeta, type KernelInputs, type NamedContent, type Profile, type RootfsArtifactMeta, type RootfsInputs,
} from './plan.js';
import { installAgent, readAgentSources } from './agent-build.js';
import { checkForbidden, customizeRootfs, debootstrap, fileInfo, listPackages, makeExt4, slimRootfs } from './rootfs.js';
import { findHostMirror, type Mirror } from './sources.js';
import {
  acquireLock, cleanStaleStaging, linkOrCopy, makeStaging, publishDir, readImage, readJsonFile, removeTree, waitForLock, writeJsonFile, type ImageInfo,
} from './store.js';
import { oneOf } from '../util/validate.js';

const here = dirname(fileURLToPath(import.meta.url));
/** src/image: the fragments and guest files are data, not compiled; from dist/src/image they are three levels up. */
export const IMAGE_DATA_DIR = existsSync(join(here, 'kernel-fragments')) ? here : resolve(here, '../../../src/image');

// ---- inputs and plan

export interface Fragment extends NamedContent {
  path: string;
}

export interface GatheredInputs {
  sourceVersion: string;
  fragments: Fragment[];
  guestFiles: NamedContent[];
  /** hangar-agent's sources (src/image/guest/agent/); absent: the image has no agent. */
  agentSources?: NamedContent[];
}

/** Kernel fragments (*.config, merged in name order) and guest files (rendered templates) from DATADIR. */
export async function readImageData(dataDir = IMAGE_DATA_DIR): Promise<Omit<GatheredInputs, 'sourceVersion'>> {
  const fragDir = join(dataDir, 'kernel-fragments');
  const fragments: Fragment[] = [];
  for (const name of (await readdir(fragDir)).filter((n) => n.endsWith('.config')).sort()) {
    const path = join(fragDir, name);
    fragments.push({ name, path, content: await readFile(path, 'utf8') });
  }
  if (!fragments.length) throw new HangarError('IMAGE_BUILD_FAILED', `no kernel fragments in ${fragDir}`, { dir: fragDir });
  const guestDir = join(dataDir, 'guest');
  const guestFiles: NamedContent[] = [];
  for (const e of (await readdir(guestDir, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    if (!e.isFile()) continue; // agent/ is source, compiled below
    guestFiles.push({ name: e.name, content: renderGuestTemplate(await readFile(join(guestDir, e.name), 'utf8')) });
  }
  return { fragments, guestFiles, agentSources: await readAgentSources(join(guestDir, 'agent')) };
}

export interface ImageBuildPlan {
  profile: Profile;
  id: string;
  kernelKey: string;
  rootfsKey: string;
  kernelInputs: KernelInputs;
  rootfsInputs: RootfsInputs;
  fragments: Fragment[];
  guestFiles: NamedContent[];
  agentSources: NamedContent[];
  layout: CacheLayout;
  kernelTree: string;
  kernelArtifactDir: string;
  rootfsArtifactDir: string;
  imagesDir: string;
  imageDir: string;
}

/** Pure: keys, id and every path of a build, from its inputs. */
export function planImageBuild(profile: Profile, inputs: GatheredInputs, paths: HangarPaths): ImageBuildPlan {
  const kIn = kernelInputs(inputs.sourceVersion, inputs.fragments);
  const rIn = rootfsInputs(profile, inputs.guestFiles, inputs.agentSources ?? []);
  const kernelKey = cacheKey(kIn);
  const rootfsKey = cacheKey(rIn);
  const id = imageId(profile, kernelKey, rootfsKey);
  const layout = cacheLayout(paths.cacheDir);
  return {
    profile, id, kernelKey, rootfsKey, kernelInputs: kIn, rootfsInputs: rIn, fragments: inputs.fragments, guestFiles: inputs.guestFiles,
    agentSources: inputs.agentSources ?? [], layout,
    kernelTree: layout.kernelTree(inputs.sourceVersion),
    kernelArtifactDir: layout.kernelArtifact(kernelKey),
    rootfsArtifactDir: layout.rootfsArtifact(rootfsKey),
    imagesDir: paths.imagesDir,
    imageDir: join(paths.imagesDir, id),
  };
}

export interface CacheState {
  image: boolean;
  kernel: boolean;
  rootfs: boolean;
}

export interface Work {
  noop: boolean;
  buildKernel: boolean;
  buildRootfs: boolean;
}

/** Pure: what has to be built given what the cache holds. --force rebuilds both artifacts (the kernel incrementally). */
export function planWork(cache: CacheState, force = false): Work {
  if (force) return { noop: false, buildKernel: true, buildRootfs: true };
  if (cache.image) return { noop: true, buildKernel: false, buildRootfs: false };
  return { noop: false, buildKernel: !cache.kernel, buildRootfs: !cache.rootfs };
}

// ---- cache probes (cheap: metadata and sizes, never a hash of a 1 GB file)

async function artifactMeta<T extends { file: { size: number } }>(dir: string, file: string): Promise<T | null> {
  const meta = await readJsonFile<T>(join(dir, 'meta.json'));
  if (!meta) return null;
  const st = await stat(join(dir, file)).catch(() => null);
  return st && st.size === meta.file.size ? meta : null;
}
export const readKernelArtifact = (dir: string): Promise<KernelArtifactMeta | null> => artifactMeta<KernelArtifactMeta>(dir, KERNEL_FILE);
export const readRootfsArtifact = (dir: string): Promise<RootfsArtifactMeta | null> => artifactMeta<RootfsArtifactMeta>(dir, ROOTFS_FILE);

export async function probeCache(plan: ImageBuildPlan): Promise<CacheState> {
  const image = await readImage(plan.imageDir).then(() => true, () => false);
  return {
    image,
    kernel: (await readKernelArtifact(plan.kernelArtifactDir)) !== null,
    rootfs: (await readRootfsArtifact(plan.rootfsArtifactDir)) !== null,
  };
}

// ---- steps

interface BuildCtx {
  plan: ImageBuildPlan;
  work: Work;
  progress: Progress;
  signal: AbortSignal;
  lint?: LintFn;
  jobs?: number;
  mirror?: Mirror;
  kernelConfig?: string;
  kernelTreeExisted?: boolean;
  kernel?: KernelArtifactMeta;
  rootfsTree?: string;
  rootfsStaging?: string;
  rootfs?: RootfsArtifactMeta;
  packages?: RootfsArtifactMeta['packages'];
  ms: Record<string, number>;
  image?: ImageInfo;
}

/** A step that records its own duration (artifact metadata needs them before the build ends) and honours abort. */
function step(name: string, fn: (c: BuildCtx) => Promise<(() => Promise<void>) | void>): Step<BuildCtx> {
  return {
    name,
    run: async (c) => {
      if (c.signal.aborted) throw new HangarError('CANCELLED', `image build interrupted before '${name}'`, { step: name });
      const t0 = performance.now();
      const undo = await fn(c);
      c.ms[name] = Math.round(performance.now() - t0);
      return undo ?? undefined;
    },
  };
}

const pick = (ms: Record<string, number>, prefix: string): Record<string, number> =>
  Object.fromEntries(Object.entries(ms).filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));

/** The named steps of a build, in order; which ones are present follows from WORK (a pure function of the plan). */
export function buildSteps(work: Work): Step<BuildCtx>[] {
  const steps: Step<BuildCtx>[] = [];
  steps.push(step('lock', async (c) => {
    const releases = [await acquireLock(join(c.plan.layout.locks, `image-${c.plan.id}.lock`), `image ${c.plan.id}`)];
    try {
      // The kernel tree and a rootfs artifact can be shared by builds of other images: lock them too.
      if (work.buildKernel) releases.push(await acquireLock(join(c.plan.layout.locks, `kernel-tree-${c.plan.kernelInputs.sourceVersion}.lock`), `the kernel tree ${c.plan.kernelTree}`));
      if (work.buildRootfs) releases.push(await acquireLock(join(c.plan.layout.locks, `rootfs-${c.plan.rootfsKey.slice(0, 16)}.lock`), `rootfs ${c.plan.rootfsKey.slice(0, 16)}`));
    } catch (e) {
      for (const r of releases.reverse()) await r();
      throw e;
    }
    return async () => { for (const r of releases.reverse()) await r(); };
  }));
  steps.push(step('clean stale staging', async (c) => {
    const parents = [c.plan.layout.staging, dirname(c.plan.kernelArtifactDir), dirname(c.plan.rootfsArtifactDir), dirname(c.plan.kernelTree), c.plan.imagesDir];
    for (const p of parents) for (const n of await cleanStaleStaging(p)) c.progress.info(`removed stale ${join(p, n)}`);
  }));
  if (work.buildKernel) {
    steps.push(step('kernel: unpack source', async (c) => {
      c.kernelTreeExisted = await treeIsUnpacked(c.plan.kernelTree);
      await ensureKernelTree(KERNEL_TARBALL, c.plan.kernelTree, c);
    }));
    steps.push(step('kernel: configure', async (c) => {
      c.kernelConfig = await configureKernel(c.plan.kernelTree, c.plan.fragments.map((f) => f.path), c);
    }));
    steps.push(step('kernel: compile', async (c) => compileKernel(c.plan.kernelTree, { ...c, ...(c.jobs ? { jobs: c.jobs } : {}) })));
    steps.push(step('kernel: verify, lint and publish', async (c) => {
      c.kernel = await publishKernelArtifact({
        vmlinux: join(c.plan.kernelTree, KERNEL_FILE),
        config: c.kernelConfig!,
        release: await kernelRelease(c.plan.kernelTree),
        key: c.plan.kernelKey,
        inputs: c.plan.kernelInputs,
        artifactDir: c.plan.kernelArtifactDir,
        durationsMs: pick(c.ms, 'kernel: '),
        incremental: c.kernelTreeExisted ?? true,
        ...(c.lint ? { lint: c.lint } : {}),
      });
      c.progress.info(`kernel ${c.kernel.release} → ${c.plan.kernelArtifactDir}`);
    }));
  }
  if (work.buildRootfs) {
    steps.push(step('rootfs: debootstrap', async (c) => {
      c.mirror = await findHostMirror(DEBIAN_SUITE);
      c.progress.info(`mirror ${c.mirror.uri} (${c.mirror.file}: ${c.mirror.evidence})`);
      const tree = await makeStaging(c.plan.layout.staging, 'rootfs-tree');
      c.rootfsTree = join(tree, 'root');
      const undo = async (): Promise<void> => removeTree(tree);
      try {
        // One debootstrap at a time writes the shared deb cache (another build's rootfs, e.g. the other profile).
        const release = await waitForLock(join(c.plan.layout.locks, 'debs.lock'), 'the deb cache', { timeoutMs: 60 * 60_000, onWait: (m) => c.progress.info(m) });
        try {
          await debootstrap({ suite: DEBIAN_SUITE, mirror: c.mirror.uri, target: c.rootfsTree, packages: c.plan.rootfsInputs.packages, debCache: c.plan.layout.debCache }, c);
        } finally {
          await release();
        }
      } catch (e) {
        await undo().catch(() => undefined);
        throw e;
      }
      return undo; // the tree goes on success too: the ext4 image is the artifact
    }));
    steps.push(step('rootfs: customize', async (c) => {
      c.packages = await listPackages(c.rootfsTree!);
      checkForbidden(c.packages);
      await customizeRootfs(c.rootfsTree!, c.plan.guestFiles);
    }));
    steps.push(step('rootfs: hangar-agent', async (c) => {
      if (!c.plan.agentSources.length) return;
      // Next to the tree in its staging directory (removed with it), never inside the rootfs.
      await installAgent(c.rootfsTree!, join(dirname(c.rootfsTree!), 'agent-src'), c.plan.agentSources, { signal: c.signal });
    }));
    steps.push(step('rootfs: slim', async (c) => slimRootfs(c.rootfsTree!)));
    steps.push(step('rootfs: mkfs', async (c) => {
      const staging = await makeStaging(dirname(c.plan.rootfsArtifactDir), 'rootfs');
      c.rootfsStaging = staging;
      const mk = await makeExt4(c.rootfsTree!, join(staging, ROOTFS_FILE), c.plan.rootfsKey, c).catch(async (e: unknown) => {
        await removeTree(staging).catch(() => undefined);
        throw e;
      });
      c.rootfs = {
        key: c.plan.rootfsKey, inputs: c.plan.rootfsInputs, mirror: c.mirror!.uri, packages: c.packages!, contentBytes: mk.contentBytes,
        files: mk.files, file: { sha256: '', size: 0 }, builtAt: '', durationsMs: {},
      };
      return async () => removeTree(staging);
    }));
    steps.push(step('rootfs: publish', async (c) => {
      const file = join(c.rootfsStaging!, ROOTFS_FILE);
      await chmod(file, 0o444); // golden: VMs boot copies or overlays, never this file
      c.rootfs = { ...c.rootfs!, file: await fileInfo(file), builtAt: new Date().toISOString(), durationsMs: pick(c.ms, 'rootfs: ') };
      await writeJsonFile(join(c.rootfsStaging!, 'meta.json'), c.rootfs);
      await publishDir(c.rootfsStaging!, c.plan.rootfsArtifactDir);
      c.progress.info(`rootfs ${(c.rootfs.file.size / 2 ** 20).toFixed(0)} MiB, ${c.rootfs.packages.length} packages → ${c.plan.rootfsArtifactDir}`);
    }));
  }
  steps.push(step('image: publish', async (c) => {
    c.kernel ??= (await readKernelArtifact(c.plan.kernelArtifactDir)) ?? undefined;
    c.rootfs ??= (await readRootfsArtifact(c.plan.rootfsArtifactDir)) ?? undefined;
    if (!c.kernel || !c.rootfs) throw new HangarError('IMAGE_BUILD_FAILED', 'a cached artifact vanished during the build', { kernel: !!c.kernel, rootfs: !!c.rootfs });
    const staging = await makeStaging(c.plan.imagesDir, `image-${c.plan.id}`);
    try {
      const t0 = performance.now();
      await linkOrCopy(join(c.plan.kernelArtifactDir, KERNEL_FILE), join(staging, KERNEL_FILE));
      await linkOrCopy(join(c.plan.rootfsArtifactDir, ROOTFS_FILE), join(staging, ROOTFS_FILE));
      const manifest = buildManifest({ id: c.plan.id, profile: c.plan.profile, created: new Date().toISOString(), kernel: c.kernel, rootfs: c.rootfs });
      for (const f of [KERNEL_FILE, ROOTFS_FILE]) manifest.files[f]!.mtimeMs = (await stat(join(staging, f))).mtimeMs;
      manifest.durationsMs.publish = Math.round(performance.now() - t0);
      await writeJsonFile(join(staging, MANIFEST_FILE), manifest);
      await publishDir(staging, c.plan.imageDir);
    } catch (e) {
      await removeTree(staging).catch(() => undefined);
      throw e;
    }
    c.image = await readImage(c.plan.imageDir);
  }));
  return steps;
}

// ---- the build

export interface BuildImageOptions {
  profile?: Profile;
  paths?: HangarPaths;
  /** Publish into this directory instead of paths.imagesDir. */
  outDir?: string;
  force?: boolean;
  installDeps?: boolean;
  progress?: Progress;
  checks?: HostChecks;
  lint?: LintFn;
  jobs?: number;
  /** Cancels the build (children are killed, staging removed). */
  signal?: AbortSignal;
  /** Turn SIGINT/SIGTERM into a clean cancel (the CLI sets this). */
  handleSignals?: boolean;
  /** Override the inputs (tests); by default read from src/image and dpkg. */
  inputs?: GatheredInputs;
}

export interface BuildResult extends ImageInfo {
  /** True when the image already existed with these inputs and nothing ran. */
  cached: boolean;
  built: { kernel: boolean; rootfs: boolean };
  stepsMs: Record<string, number>;
  totalMs: number;
}

/** Installs the Debian packages that provide what is missing (argument arrays; apt-get update first). */
async function installDeps(checks: HostChecks, progress: Progress): Promise<void> {
  requireRoot(checks, 'installing host packages');
  const { missing, packages } = await findMissing(checks, { [KERNEL_TARBALL]: KERNEL_SOURCE_PACKAGE });
  if (!missing.length) return;
  progress.info(`installing ${packages.join(' ')} (missing: ${missing.join(', ')})`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const onOut = lineProgress(progress, 'apt-get', { intervalMs: 5000, important: /^(E:|W:|Setting up)/ });
  await run('apt-get', ['update', '-qq'], { env, timeoutMs: 10 * 60_000, onOutput: (c) => onOut(c) });
  await run('apt-get', ['install', '-y', '--no-install-recommends', ...packages], { env, timeoutMs: 30 * 60_000, onOutput: (c) => onOut(c) });
}

export async function buildImage(opts: BuildImageOptions = {}): Promise<BuildResult> {
  const t0 = performance.now();
  const profile = oneOf(opts.profile ?? 'desktop', 'profile', PROFILES);
  const base = opts.paths ?? resolvePaths();
  const paths: HangarPaths = opts.outDir ? { ...base, imagesDir: resolve(opts.outDir) } : base;
  const progress = opts.progress ?? silentProgress;
  const checks = opts.checks ?? realHostChecks;

  if (opts.installDeps) await installDeps(checks, progress);
  const inputs = opts.inputs ?? { sourceVersion: await kernelSourceVersion(KERNEL_SOURCE_PACKAGE), ...(await readImageData()) };
  const plan = planImageBuild(profile, inputs, paths);
  const cache = await probeCache(plan);
  const work = planWork(cache, opts.force);
  if (work.noop) {
    const img = await readImage(plan.imageDir);
    progress.info(`image ${plan.id} is up to date (${plan.imageDir})`);
    return { ...img, cached: true, built: { kernel: false, rootfs: false }, stepsMs: {}, totalMs: Math.round(performance.now() - t0) };
  }

  // Preflight: every check before the first change to the host.
  requireRoot(checks, 'hangar image build');
  await requireHostTools(checks, work.buildKernel ? { [KERNEL_TARBALL]: KERNEL_SOURCE_PACKAGE } : {});
  const treeExists = await treeIsUnpacked(plan.kernelTree);
  await requireDiskSpace(checks, paths.cacheDir, requiredBytes({ kernelTreeExists: treeExists, buildKernel: work.buildKernel, buildRootfs: work.buildRootfs, profile }));
  progress.info(`image ${plan.id}: ${work.buildKernel ? 'build' : 'reuse'} kernel ${plan.kernelKey.slice(0, 16)}, ${work.buildRootfs ? 'build' : 'reuse'} rootfs ${plan.rootfsKey.slice(0, 16)}`);

  const ac = new AbortController();
  const onExternal = (): void => ac.abort();
  opts.signal?.addEventListener('abort', onExternal, { once: true });
  if (opts.signal?.aborted) ac.abort();
  const onSignal = (sig: NodeJS.Signals): void => {
    progress.info(`${sig}: stopping the build and removing its staging directories`);
    ac.abort();
  };
  if (opts.handleSignals) { process.on('SIGINT', onSignal); process.on('SIGTERM', onSignal); }
  await mkdir(paths.cacheDir, { recursive: true });
  const ctx: BuildCtx = { plan, work, progress, signal: ac.signal, ms: {}, ...(opts.lint ? { lint: opts.lint } : {}), ...(opts.jobs ? { jobs: opts.jobs } : {}) };
  try {
    const { stack } = await runSteps(buildSteps(work), ctx, progress);
    await stack.unwind(); // success: release the locks, remove the debootstrap tree
  } catch (e) {
    if (ac.signal.aborted) throw new HangarError('CANCELLED', `image build interrupted; nothing was published (${e instanceof Error ? e.message : String(e)})`, {}, { cause: e });
    if (isHangarError(e, 'COMMAND_FAILED')) throw new HangarError('IMAGE_BUILD_FAILED', e.message, e.details, { cause: e });
    throw e;
  } finally {
    opts.signal?.removeEventListener('abort', onExternal);
    if (opts.handleSignals) { process.off('SIGINT', onSignal); process.off('SIGTERM', onSignal); }
  }
  return { ...ctx.image!, cached: false, built: { kernel: work.buildKernel, rootfs: work.buildRootfs }, stepsMs: ctx.ms, totalMs: Math.round(performance.now() - t0) };
}
