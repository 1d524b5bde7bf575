// Files that must be what a manifest says they are (sha256 and size, computed streaming: state files are GiB), and
// files that must survive a crash whole: fsync, and the one atomic write (temp file, fsync, rename, fsync the dir).
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { HangarError } from '../errors.js';

export interface FileInfo {
  sha256: string;
  size: number;
}

export async function hashFile(path: string): Promise<FileInfo> {
  const h = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) {
    h.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { sha256: h.digest('hex'), size };
}

/** Every file must exist in dir with the size recorded (hashes are checked where the bytes are read anyway). */
export async function checkFiles(dir: string, files: Record<string, FileInfo>): Promise<void> {
  for (const [name, info] of Object.entries(files)) {
    const st = await stat(join(dir, name)).catch(() => null);
    if (!st || st.size !== info.size) {
      throw new HangarError('SNAPSHOT_FAILED', `${join(dir, name)}: ${st ? `size ${st.size}, the manifest says ${info.size}` : 'missing'}`, { dir, file: name });
    }
  }
}

// ---- durability

/** fsync of a file's data or of a directory's entries; a parameter where it matters, so tests can watch the order. */
export interface Fsync {
  file(path: string): Promise<void>;
  dir(path: string): Promise<void>;
}

async function syncPath(path: string): Promise<void> {
  // fsync through any descriptor flushes the inode: a read-only one works for files and directories alike.
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export const fsync: Fsync = { file: syncPath, dir: syncPath };

/**
 * Replaces PATH with DATA so that a crash or power loss leaves the old content or the new, never a torn or empty
 * file: a temp file in the same directory (created with MODE, then chmod'ed to it whatever the umask), fsync,
 * rename over PATH, fsync of the directory. The file gets a new inode, so an old mode or owner does not survive.
 */
export async function writeFileAtomic(path: string, data: string | Buffer, opts: { mode: number; sync?: Fsync }): Promise<void> {
  const sync = opts.sync ?? fsync;
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(3).toString('hex')}.tmp`);
  try {
    const fh = await open(tmp, 'wx', opts.mode);
    try {
      await fh.chmod(opts.mode);
      await fh.writeFile(data);
    } finally {
      await fh.close();
    }
    await sync.file(tmp);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  await sync.dir(dir);
}

/** Why a key file is not used as it is (null: it is fine). Pure. */
export function keyFileProblem(st: { mode: number; uid: number; isFile: boolean }, uid: number | null): string | null {
  if (!st.isFile) return 'not a regular file';
  if (uid !== null && st.uid !== uid) return `owned by uid ${st.uid}, not ${uid}`;
  if ((st.mode & 0o077) !== 0) return `mode ${(st.mode & 0o777).toString(8).padStart(4, '0')} lets others read it`;
  return null;
}

export interface KeyFileOptions {
  /** A fresh secret, as the file's text. */
  create(): string;
  /** Is the file's (trimmed) text a usable secret? */
  valid(text: string): boolean;
  /** Told when an existing file is replaced, and why. */
  onReplace?(reason: string): void;
}

/**
 * A secret kept in a 0600 file, re-checked at every start. A file that others can read (or that someone else owns,
 * or that is not a plain file) is replaced by a new secret rather than chmod'ed: it must be assumed read, and a
 * chmod would keep a disclosed secret valid. New and replacement files are written with writeFileAtomic.
 */
export async function loadOrCreateKeyFile(path: string, opts: KeyFileOptions): Promise<string> {
  const st = await lstat(path).catch(() => null);
  if (st) {
    const problem = keyFileProblem({ mode: st.mode, uid: st.uid, isFile: st.isFile() }, process.getuid?.() ?? null);
    const text = problem ? '' : (await readFile(path, 'utf8')).trim();
    if (!problem && opts.valid(text)) return text;
    opts.onReplace?.(problem ?? 'its content is not a valid key');
  }
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const fresh = opts.create();
  await writeFileAtomic(path, fresh + '\n', { mode: 0o600 });
  return fresh;
}
