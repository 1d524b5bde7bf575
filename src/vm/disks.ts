// A VM's own disk: a sparse copy of its image's (or snapshot's) rootfs, a reflink where the filesystem can, so a
// VM writes to its own disk and never to the image. One way to copy, used by boot and by capture.
import { mkdir, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { run } from '../util/exec.js';
import type { Undo } from '../util/steps.js';

export interface Disks {
  exists(path: string): Promise<boolean>;
  /** Copies from → to; returns the undo (removing the copy). */
  copy(from: string, to: string): Promise<Undo>;
}

export async function copyDisk(from: string, to: string, timeoutMs = 300_000): Promise<void> {
  await run('cp', ['--reflink=auto', '--sparse=always', from, to], { timeoutMs });
}

export const hostDisks: Disks = {
  exists: async (path) => !!(await stat(path).catch(() => null)),
  copy: async (from, to) => {
    // The VM's run directory is made with its first disk (the VMM's sockets and logs go there too).
    await mkdir(dirname(to), { recursive: true, mode: 0o750 });
    await copyDisk(from, to, 120_000);
    return async () => { await rm(to, { force: true }); };
  },
};
