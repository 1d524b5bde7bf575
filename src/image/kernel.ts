// Guest kernel executors: unpack Debian's linux-source tarball once into a build tree under the cache, configure
// it (allnoconfig + fragments + olddefconfig, then check every requested option survived), compile vmlinux, and
// publish it as a content-addressed artifact only after its embedded config reads back and passes the kernel lint
// for both VMMs.
import { copyFile, readFile, stat, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { HangarError, isHangarError } from '../errors.js';
import { optionValue, parseConfig, type KernelConfig } from '../kernel/config.js';
import { readKernel } from '../kernel/image-reader.js';
import { lintKernel, VMMS, type LintOptions, type LintReport } from '../kernel/lint.js';
import { run } from '../util/exec.js';
import type { Progress } from '../util/progress.js';
import { lineProgress, sha256File } from './host.js';
import { droppedOptions, KERNEL_FILE, sha256, type KernelArtifactMeta, type KernelInputs } from './plan.js';
import { makeStaging, publishDir, removeTree, writeJsonFile } from './store.js';

export const KERNEL_TARBALL = '/usr/src/linux-source-6.1.tar.xz';
const UNPACKED_MARK = '.hangar-unpacked';

export interface KernelExecOpts {
  progress: Progress;
  signal?: AbortSignal;
}

/** The Debian version of the installed kernel source package (an input of the kernel key). */
export async function kernelSourceVersion(pkg: string): Promise<string> {
  const r = await run('dpkg-query', ['-W', '-f', '${Status}\t${Version}', pkg], { allowFailure: true });
  const [status = '', version = ''] = r.stdout.split('\t');
  if (r.code !== 0 || !status.includes('install ok installed') || !version) {
    throw new HangarError('MISSING_HOST_TOOLS', `the kernel source package ${pkg} is not installed (apt-get install ${pkg}, or run with --install-deps)`, { tools: [pkg], packages: [pkg] });
  }
  return version;
}

export async function treeIsUnpacked(tree: string): Promise<boolean> {
  return stat(join(tree, UNPACKED_MARK)).then(() => true, () => false);
}

/** Unpacks the tarball into TREE (via a staging directory beside it) unless it is already there. */
export async function ensureKernelTree(tarball: string, tree: string, o: KernelExecOpts): Promise<void> {
  if (await treeIsUnpacked(tree)) {
    o.progress.info(`kernel tree ${tree} reused`);
    return;
  }
  const parent = join(tree, '..');
  const staging = await makeStaging(parent, 'tree');
  try {
    o.progress.info(`unpacking ${tarball}`);
    await run('tar', ['-xf', tarball, '-C', staging, '--strip-components=1'], { signal: o.signal, timeoutMs: 15 * 60_000 });
    await writeFile(join(staging, UNPACKED_MARK), '');
    await publishDir(staging, tree);
  } catch (e) {
    await removeTree(staging).catch(() => undefined);
    throw e;
  }
}

const makeEnv = (): NodeJS.ProcessEnv => ({ ...process.env, LC_ALL: 'C', KBUILD_BUILD_USER: 'hangar', KBUILD_BUILD_HOST: 'hangar' });

/**
 * allnoconfig, merge the fragments, olddefconfig; then every option a fragment requests must have its requested
 * value in the final .config (KERNEL_OPTION_DROPPED names the ones that did not). Returns the final .config.
 */
export async function configureKernel(tree: string, fragmentPaths: readonly string[], o: KernelExecOpts): Promise<string> {
  const opts = { cwd: tree, env: makeEnv(), signal: o.signal, timeoutMs: 10 * 60_000 };
  try {
    await run('make', ['allnoconfig'], opts);
    await run(join(tree, 'scripts/kconfig/merge_config.sh'), ['-m', '.config', ...fragmentPaths], opts);
    await run('make', ['olddefconfig'], opts);
  } catch (e) {
    throw isHangarError(e, 'COMMAND_FAILED') ? new HangarError('KERNEL_BUILD_FAILED', `kernel configuration failed: ${e.message}`, e.details, { cause: e }) : e;
  }
  const config = await readFile(join(tree, '.config'), 'utf8');
  const fragments = await Promise.all(fragmentPaths.map((p) => readFile(p, 'utf8')));
  const dropped = droppedOptions(fragments, config);
  if (dropped.length) {
    throw new HangarError('KERNEL_OPTION_DROPPED', `kernel options did not survive olddefconfig (a dependency is missing from the fragment?): ${dropped.map((d) => `${d.option}=${d.requested} (got ${d.actual})`).join(', ')}`, { dropped });
  }
  return config;
}

/** `make -j N vmlinux`, with progress lines from the build output. */
export async function compileKernel(tree: string, o: KernelExecOpts & { jobs?: number }): Promise<void> {
  const jobs = o.jobs ?? availableParallelism();
  const onOut = lineProgress(o.progress, 'make', { intervalMs: 10_000, count: /^\s*(CC|AS|LD|AR)\b/, important: /error:|^make.*Error/ });
  try {
    await run('make', [`-j${jobs}`, 'vmlinux'], { cwd: tree, env: makeEnv(), signal: o.signal, timeoutMs: 90 * 60_000, onOutput: (c) => onOut(c), maxBuffer: 1024 * 1024 });
  } catch (e) {
    throw isHangarError(e, 'COMMAND_FAILED') ? new HangarError('KERNEL_BUILD_FAILED', `kernel compile failed: ${e.message}`, e.details, { cause: e }) : e;
  }
}

/** The release string (`uname -r`) the tree built. */
export async function kernelRelease(tree: string): Promise<string> {
  return (await readFile(join(tree, 'include/config/kernel.release'), 'utf8')).trim();
}

/** Options on which two configs disagree (absent = n), for the read-back check. */
export function configDiff(a: KernelConfig, b: KernelConfig): string[] {
  const names = new Set([...a.options.keys(), ...b.options.keys()]);
  return [...names].filter((n) => optionValue(a, n) !== optionValue(b, n)).sort().map((n) => `CONFIG_${n}`);
}

export type LintFn = (path: string, opts: LintOptions) => Promise<LintReport>;

/**
 * The publish gate: the kernel must pass the lint for every VMM Hangar drives (booted with ip= and without an
 * initrd, as Hangar boots it). KERNEL_LINT_FAILED carries the error findings per VMM.
 */
export async function lintGate(path: string, lint: LintFn = lintKernel): Promise<KernelArtifactMeta['lint']> {
  const verdicts: KernelArtifactMeta['lint'] = {};
  const failures: { vmm: string; findings: LintReport['findings'] }[] = [];
  for (const vmm of VMMS) {
    const report = await lint(path, { vmm, initrd: false, ipBoot: true });
    const errors = report.findings.filter((f) => f.severity === 'error');
    verdicts[vmm] = { ok: report.ok, errors: errors.length, warnings: report.findings.filter((f) => f.severity === 'warning').length };
    if (!report.ok) failures.push({ vmm, findings: errors });
  }
  if (failures.length) {
    const summary = failures.map((f) => `${f.vmm}: ${f.findings.map((x) => x.option ?? x.code).join(', ') || 'not ok'}`).join('; ');
    throw new HangarError('KERNEL_LINT_FAILED', `kernel ${path} fails the lint, not published (${summary})`, { failures });
  }
  return verdicts;
}

export interface PublishKernelArgs {
  vmlinux: string;
  /** The .config the build used; the config embedded in the image must equal it. */
  config: string;
  release: string;
  key: string;
  inputs: KernelInputs;
  artifactDir: string;
  durationsMs: Record<string, number>;
  /** Whether the tree held an earlier build (recorded so timings are not mistaken for a cold build). */
  incremental: boolean;
  lint?: LintFn;
}

/**
 * Copies vmlinux into a staging directory, reads its embedded config back, lints the staged file for both VMMs,
 * and only then renames the directory into place. Any failure removes the staging directory: nothing half-made or
 * lint-rejected is ever at ARTIFACTDIR.
 */
export async function publishKernelArtifact(a: PublishKernelArgs): Promise<KernelArtifactMeta> {
  const staging = await makeStaging(join(a.artifactDir, '..'), 'kernel');
  try {
    const staged = join(staging, KERNEL_FILE);
    await copyFile(a.vmlinux, staged);
    // Read the config back out of the staged file itself: what is published is what was checked.
    const embedded = (await readKernel(staged)).config;
    if (embedded === null) throw new HangarError('KERNEL_UNREADABLE', `${a.vmlinux} has no embedded config (CONFIG_IKCONFIG)`, { path: a.vmlinux });
    const diff = configDiff(embedded, parseConfig(a.config));
    if (diff.length) {
      throw new HangarError('KERNEL_BUILD_FAILED', `${a.vmlinux}: its embedded config differs from the .config it was built with (stale build?): ${diff.slice(0, 10).join(', ')}`, { path: a.vmlinux, differ: diff });
    }
    const lint = await lintGate(staged, a.lint);
    const meta: KernelArtifactMeta = {
      key: a.key,
      inputs: a.inputs,
      release: a.release,
      configSha256: sha256(a.config),
      file: { sha256: await sha256File(staged), size: (await stat(staged)).size },
      builtAt: new Date().toISOString(),
      durationsMs: a.durationsMs,
      lint,
      incremental: a.incremental,
    };
    await writeFile(join(staging, 'config'), a.config);
    await writeJsonFile(join(staging, 'meta.json'), meta);
    await publishDir(staging, a.artifactDir);
    return meta;
  } catch (e) {
    await removeTree(staging).catch(() => undefined);
    throw e;
  }
}
