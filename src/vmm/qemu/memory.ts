// Guest RAM as a file (see state.ts for how snapshots and clones use it): a VM's own shared RAM file in tmpfs, made
// before QEMU starts and removed after it ends, and a golden snapshot's sparse copy of it.
import { chmod, chown, mkdir, open, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { run } from '../../util/exec.js';
import { hashFile, type FileInfo } from '../../util/files.js';

/** A golden snapshot's copy of the guest RAM (with a device-state-only state.bin): clones map it privately. */
export const QEMU_MEMORY_FILE = 'memory.ram';
/** Where VMs' shared RAM files live by default: tmpfs, so guest RAM is never written back to a disk. */
export const DEFAULT_MEMORY_DIR = '/dev/shm/hangar';

/** The VM's own shared RAM file under `dir` (null: anonymous RAM). Pure. */
export function sharedMemoryPath(dir: string | null | undefined, id: string): string | null {
  const d = dir === undefined ? DEFAULT_MEMORY_DIR : dir;
  return d === null ? null : join(d, `${id}.ram`);
}

/** A fresh, sparse RAM file of the guest's size, the VMM user's (QEMU maps it; nothing else may). */
export async function makeSharedMemory(path: string, memMiB: number, user: { uid: number; gid: number } | null): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o711 });
  await rm(path, { force: true });
  const fh = await open(path, 'wx', 0o600);
  try {
    await fh.truncate(memMiB * 1024 * 1024);
    if (user) await fh.chown(user.uid, user.gid);
  } finally {
    await fh.close();
  }
}

/**
 * Copies a paused guest's RAM file (sparse) to `copy`, hashing the source meanwhile (it does not change while the
 * guest is paused). QEMU 7.2 opens a share=off backing file read-write (8.2 falls back to read-only), so a confined
 * VMM's group may read and write the copy (0660, like a disk); Hangar never writes it.
 */
export async function copyRamFile(source: string, copy: string, owner: { gid: number } | null): Promise<FileInfo> {
  const [, info] = await Promise.all([run('cp', ['--sparse=always', '--', source, copy], { timeoutMs: 300_000 }), hashFile(source)]);
  if (owner) await chown(copy, 0, owner.gid);
  await chmod(copy, owner ? 0o660 : 0o600);
  return info;
}
