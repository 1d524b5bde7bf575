// Removing images: `hangar image rm` and `hangar image prune`. An image is pinned while anything may still need
// its files: a VM record (a stopped VM boots again from the image's kernel and rootfs) or a snapshot (a restore
// starts the VMM with the same kernel). The planner is pure; the executor renames an image out of the way first
// (one atomic step: a reader sees the whole image or none), then deletes it.
import { existsSync } from 'node:fs';
import { lstat, readdir, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { HangarError } from '../errors.js';
import { stateDbPath, type HangarPaths } from '../config.js';
import { isSnapshotManifest, SNAPSHOT_MANIFEST } from '../snapshot/manifest.js';
import { cacheLayout, shortKey } from './plan.js';
import { pidAlive, readJsonFile, removeTree, stagingPath, type ImageInfo } from './store.js';

/** Who uses each image id: "vm NAME (ID)" and "snapshot ID" entries. */
export type ImageUsers = ReadonlyMap<string, readonly string[]>;

export interface PrunePlan {
  remove: ImageInfo[];
  keep: { image: ImageInfo; reason: string }[];
}

/**
 * Which images prune removes: per profile, the `keep` newest stay, and so does every image in use. Pure.
 * `images` in any order; the plan lists them newest first.
 */
export function planPrune(images: readonly ImageInfo[], keep: number, users: ImageUsers): PrunePlan {
  if (!Number.isInteger(keep) || keep < 0) throw new HangarError('INVALID_ARGUMENT', `keep must be a whole number ≥ 0 (got ${keep})`, { field: 'keep' });
  const sorted = [...images].sort((a, b) => b.created.localeCompare(a.created) || a.id.localeCompare(b.id));
  const seen = new Map<string, number>();
  const plan: PrunePlan = { remove: [], keep: [] };
  for (const image of sorted) {
    const rank = (seen.get(image.profile) ?? 0) + 1;
    seen.set(image.profile, rank);
    const using = users.get(image.id) ?? [];
    if (using.length) plan.keep.push({ image, reason: `in use by ${using.join(', ')}` });
    else if (rank <= keep) plan.keep.push({ image, reason: rank === 1 ? `newest ${image.profile} image` : `among the ${keep} newest ${image.profile} images` });
    else plan.remove.push(image);
  }
  return plan;
}

/** The in-use refusal for one image, or null. Pure. */
export function removalRefusal(image: ImageInfo, users: ImageUsers): HangarError | null {
  const using = users.get(image.id) ?? [];
  if (!using.length) return null;
  return new HangarError('IMAGE_IN_USE', `image ${image.id} is in use by ${using.join(', ')}: destroy those first`, { id: image.id, users: using });
}

/**
 * Reads who uses which image from the controller's database (read-only: a running controller is not disturbed)
 * and the snapshot manifests. A database that cannot be read is an error, not "nothing in use".
 */
export async function readImageUsers(paths: HangarPaths): Promise<Map<string, string[]>> {
  const users = new Map<string, string[]>();
  const add = (id: string, who: string): void => { users.set(id, [...(users.get(id) ?? []), who]); };
  const dbPath = stateDbPath(paths);
  if (existsSync(dbPath)) {
    let db: Database.Database | undefined;
    try {
      db = new Database(dbPath, { readonly: true, fileMustExist: true });
      db.pragma('busy_timeout = 5000');
      const rows = db.prepare('SELECT id, name, image_id FROM vms ORDER BY created_at').all() as { id: string; name: string; image_id: string }[];
      for (const r of rows) add(r.image_id, `vm ${r.name} (${r.id})`);
    } catch (e) {
      throw new HangarError('STORE_ERROR', `cannot read the VMs from ${dbPath}: ${(e as Error).message}`, { path: dbPath }, { cause: e });
    } finally {
      db?.close();
    }
  }
  for (const name of await readdir(paths.snapshotsDir).catch(() => [] as string[])) {
    if (name.startsWith('.')) continue;
    const m = await readJsonFile<unknown>(join(paths.snapshotsDir, name, SNAPSHOT_MANIFEST)).catch(() => null);
    if (isSnapshotManifest(m)) add(m.image.id, `snapshot ${m.id}`);
  }
  return users;
}

/** A build-cache artifact directory (kernel or rootfs), by its short key. */
export interface Artifact {
  kind: 'kernel' | 'rootfs';
  key: string;
  dir: string;
}

/** Artifacts no remaining image was built from (images hard-link their files from them). Pure. */
export function unusedArtifacts(artifacts: readonly Artifact[], remaining: readonly ImageInfo[]): Artifact[] {
  const used = new Set(remaining.flatMap((i) => [`kernel:${shortKey(i.manifest.inputs.kernelKey)}`, `rootfs:${shortKey(i.manifest.inputs.rootfsKey)}`]));
  return artifacts.filter((a) => !used.has(`${a.kind}:${a.key}`));
}

/** The published artifacts in the build cache (staging and dot names skipped). */
export async function listArtifacts(paths: HangarPaths): Promise<Artifact[]> {
  const layout = cacheLayout(paths.cacheDir);
  const out: Artifact[] = [];
  for (const kind of ['kernel', 'rootfs'] as const) {
    const parent = dirname(kind === 'kernel' ? layout.kernelArtifact('x') : layout.rootfsArtifact('x'));
    for (const key of await readdir(parent).catch(() => [] as string[])) if (!key.startsWith('.')) out.push({ kind, key, dir: join(parent, key) });
  }
  return out;
}

async function filesUnder(path: string): Promise<string[]> {
  const st = await lstat(path).catch(() => null);
  if (!st) return [];
  if (!st.isDirectory()) return [path];
  const out: string[] = [];
  for (const name of await readdir(path)) out.push(...(await filesUnder(join(path, name))));
  return out;
}

/**
 * The disk space deleting these paths gives back: allocated blocks (a rootfs is sparse) of every file all of whose
 * links are among them. An image's files are hard links into the build cache, so deleting images alone frees
 * little; deleting the artifacts they came from too frees the space.
 */
export async function reclaimableBytes(paths: readonly string[]): Promise<number> {
  const inodes = new Map<string, { links: number; nlink: number; bytes: number }>();
  for (const p of paths) {
    for (const f of await filesUnder(p)) {
      const st = await lstat(f).catch(() => null);
      if (!st) continue;
      const k = `${st.dev}:${st.ino}`;
      const e = inodes.get(k) ?? { links: 0, nlink: st.nlink, bytes: st.blocks * 512 };
      e.links++;
      inodes.set(k, e);
    }
  }
  let n = 0;
  for (const e of inodes.values()) if (e.links >= e.nlink) n += e.bytes;
  return n;
}

/** IMAGE_BUILD_LOCKED while a live process holds any build lock (a build, or a debootstrap filling the deb cache). */
export async function assertNoBuildRunning(paths: HangarPaths): Promise<void> {
  const locks = cacheLayout(paths.cacheDir).locks;
  for (const name of await readdir(locks).catch(() => [] as string[])) {
    const holder = await readJsonFile<{ pid?: number }>(join(locks, name)).catch(() => null);
    if (typeof holder?.pid === 'number' && pidAlive(holder.pid)) {
      throw new HangarError('IMAGE_BUILD_LOCKED', `an image build is running (pid ${holder.pid}, lock ${name}): the build cache is left alone`, { pid: holder.pid, lock: name });
    }
  }
}

/**
 * Removes build-cache artifacts (after the images made from them are gone). Refused (IMAGE_BUILD_LOCKED) while
 * any build runs: a build reuses artifacts without locking them, and must not find one half gone.
 */
export async function removeArtifacts(artifacts: readonly Artifact[], paths: HangarPaths): Promise<void> {
  await assertNoBuildRunning(paths);
  for (const a of artifacts) {
    const doomed = stagingPath(dirname(a.dir), `rm-${a.key}`);
    await rename(a.dir, doomed);
    await removeTree(doomed);
  }
}

/** Removes one published image: refused (IMAGE_IN_USE) while anything uses it. */
export async function removeImage(image: ImageInfo, users: ImageUsers, paths: HangarPaths): Promise<void> {
  const refused = removalRefusal(image, users);
  if (refused) throw refused;
  // Out of the images directory in one rename (listImages skips dot names), then deleted; if this process dies in
  // between, the next build's cleanStaleStaging finishes the job.
  const doomed = stagingPath(paths.imagesDir, `rm-${image.id}`);
  await rename(image.dir, doomed);
  await removeTree(doomed);
}
