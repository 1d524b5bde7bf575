// Thin host helpers of the image pipeline: the preflight checks (injectable for tests), progress from command
// output, hashing and measuring files.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, statfs } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { HangarError } from '../errors.js';
import { which } from '../util/exec.js';
import type { Progress } from '../util/progress.js';
import { HOST_TOOLS, packagesForMissing } from './plan.js';

/** What the build asks of the host before it changes anything; tests inject their own. */
export interface HostChecks {
  isRoot: () => boolean;
  which: (tool: string) => Promise<string | null>;
  /** Bytes available to us on the filesystem holding PATH (or its nearest existing parent). */
  freeBytes: (path: string) => Promise<number>;
  /** Whether a file exists (the kernel source tarball, libelf headers). */
  exists: (path: string) => Promise<boolean>;
}

export const realHostChecks: HostChecks = {
  isRoot: () => process.getuid?.() === 0,
  which,
  freeBytes: async (path) => {
    let p = path;
    for (;;) {
      try {
        const s = await statfs(p);
        return s.bavail * s.bsize;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || dirname(p) === p) throw e;
        p = dirname(p);
      }
    }
  },
  exists: async (path) => lstat(path).then(() => true, () => false),
};

/** Files that must exist besides the tools, and the package that provides each. */
export const HOST_FILES: Record<string, string> = {
  '/usr/include/libelf.h': 'libelf-dev', // objtool links against libelf
};

export function requireRoot(checks: HostChecks, what: string): void {
  if (!checks.isRoot()) throw new HangarError('NOT_ROOT', `${what} needs root (debootstrap, chroot, device nodes); run it as root`, {});
}

/** Every missing tool or file, by name, with the Debian packages that would provide them. */
export async function findMissing(checks: HostChecks, extraFiles: Record<string, string> = {}): Promise<{ missing: string[]; packages: string[] }> {
  const missing: string[] = [];
  for (const t of Object.keys(HOST_TOOLS)) if (!(await checks.which(t))) missing.push(t);
  const files = { ...HOST_FILES, ...extraFiles };
  for (const f of Object.keys(files)) if (!(await checks.exists(f))) missing.push(f);
  return { missing, packages: packagesForMissing(missing, files) };
}

export async function requireHostTools(checks: HostChecks, extraFiles: Record<string, string> = {}): Promise<void> {
  const { missing, packages } = await findMissing(checks, extraFiles);
  if (missing.length) {
    throw new HangarError('MISSING_HOST_TOOLS', `missing host tools: ${missing.join(', ')} (apt-get install ${packages.join(' ')}, or run with --install-deps)`, { tools: missing, packages });
  }
}

export async function requireDiskSpace(checks: HostChecks, path: string, needBytes: number): Promise<void> {
  const free = await checks.freeBytes(path);
  if (free < needBytes) {
    const gib = (n: number): string => `${(n / 2 ** 30).toFixed(1)} GiB`;
    throw new HangarError('NO_DISK_SPACE', `${path}: ${gib(free)} free, the build needs ${gib(needBytes)}`, { path, freeBytes: free, neededBytes: needBytes });
  }
}

/**
 * Turns a command's output into progress lines: IMPORTANT lines always, others at most every INTERVAL ms (the
 * latest one), so a kernel compile says what it is doing without flooding the terminal.
 */
export function lineProgress(progress: Progress, label: string, opts: { intervalMs?: number; important?: RegExp; count?: RegExp } = {}): (chunk: string) => void {
  const interval = opts.intervalMs ?? 10_000;
  let last = 0;
  let partial = '';
  let counted = 0;
  return (chunk) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const raw of lines) {
      const line = raw.trim();
      if (!line) continue;
      if (opts.count?.test(line)) counted++;
      const now = Date.now();
      if (opts.important?.test(line) || now - last >= interval) {
        last = now;
        progress.info(`${label}: ${opts.count ? `[${counted}] ` : ''}${line.slice(0, 160)}`);
      }
    }
  };
}

export function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path, { highWaterMark: 4 * 1024 * 1024 }).on('data', (c) => h.update(c)).on('error', reject).on('end', () => resolve(h.digest('hex')));
  });
}

/** Allocated bytes and entry count of a tree (lstat, not following links or crossing into other trees). */
export async function measureTree(root: string): Promise<{ allocatedBytes: number; apparentBytes: number; files: number }> {
  let allocatedBytes = 0;
  let apparentBytes = 0;
  let files = 0;
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      const st = await lstat(p);
      files++;
      allocatedBytes += st.blocks * 512;
      apparentBytes += st.size;
      if (e.isDirectory()) await walk(p);
    }
  };
  await walk(root);
  return { allocatedBytes, apparentBytes, files };
}
