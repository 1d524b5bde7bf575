// Golden snapshots on disk, the way images are kept: written into a staging directory beside the final place and
// published with one rename, so a reader sees a whole snapshot or none. The directory is the source of truth.
// Snapshots hold guest memory (secrets of whoever used the desktop): their directories are 0700.
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { HangarError, isHangarError } from '../errors.js';
import { cleanStaleStaging, makeStaging, publishDir, readJsonFile, writeJsonFile } from '../image/store.js';
import { checkFiles, fsync, type Fsync } from '../util/files.js';
import { isSnapshotManifest, SNAPSHOT_MANIFEST, validSnapshotId, type SnapshotManifest } from './manifest.js';

export const SNAPSHOT_DIR_MODE = 0o700;

export interface StoredSnapshot {
  manifest: SnapshotManifest;
  dir: string;
}

export class SnapshotStore {
  /** `sync`: the fsync the publish uses (tests watch its order against the rename). */
  constructor(readonly dir: string, private readonly sync: Fsync = fsync) {}

  newId(): string {
    return `snap-${randomBytes(4).toString('hex')}`;
  }

  /** A fresh staging directory on the same filesystem (its owner pid in the name: stale ones are reclaimed). */
  async stage(id: string): Promise<string> {
    await mkdir(this.dir, { recursive: true, mode: SNAPSHOT_DIR_MODE });
    await chmod(this.dir, SNAPSHOT_DIR_MODE); // also one made 0750 by an older Hangar
    await cleanStaleStaging(this.dir).catch(() => undefined);
    return makeStaging(this.dir, id, SNAPSHOT_DIR_MODE);
  }

  async publish(staging: string, manifest: SnapshotManifest): Promise<StoredSnapshot> {
    // The manifest's bytes and the staging directory's entries are on disk before the rename publishes them.
    await writeJsonFile(join(staging, SNAPSHOT_MANIFEST), manifest, this.sync);
    const dir = join(this.dir, manifest.id);
    await publishDir(staging, dir, this.sync);
    return { manifest, dir };
  }

  /** One snapshot; SNAPSHOT_NOT_FOUND when absent, SNAPSHOT_FAILED when its files do not match the manifest. */
  async get(id: string): Promise<StoredSnapshot> {
    const dir = join(this.dir, validSnapshotId(id));
    const m = await readJsonFile<unknown>(join(dir, SNAPSHOT_MANIFEST));
    if (m === null) throw new HangarError('SNAPSHOT_NOT_FOUND', `no snapshot ${id}`, { id }); // the same words for another tenant's (src/api/tenancy.ts)
    if (!isSnapshotManifest(m) || m.id !== id) throw new HangarError('SNAPSHOT_FAILED', `${dir}: ${SNAPSHOT_MANIFEST} is not a valid snapshot manifest`, { id, dir });
    await checkFiles(dir, m.files);
    return { manifest: m, dir };
  }

  /** Published snapshots, newest first; broken ones are skipped (and named by `get`). */
  async list(): Promise<StoredSnapshot[]> {
    const out: StoredSnapshot[] = [];
    for (const name of await readdir(this.dir).catch(() => [] as string[])) {
      if (name.startsWith('.')) continue;
      try {
        out.push(await this.get(name));
      } catch (e) {
        if (!isHangarError(e, 'SNAPSHOT_NOT_FOUND') && !isHangarError(e, 'SNAPSHOT_FAILED')) throw e;
      }
    }
    return out.sort((a, b) => b.manifest.created.localeCompare(a.manifest.created) || a.manifest.id.localeCompare(b.manifest.id));
  }

  async remove(id: string): Promise<void> {
    const dir = join(this.dir, validSnapshotId(id));
    const m = await readJsonFile<unknown>(join(dir, SNAPSHOT_MANIFEST));
    if (m === null) throw new HangarError('SNAPSHOT_NOT_FOUND', `no snapshot ${id}`, { id });
    // A restored QEMU holds nothing open; a Firecracker clone maps the memory file, and an unlinked file stays
    // valid for it until it exits. So a snapshot can go while its clones run.
    await rm(dir, { recursive: true, force: true });
  }
}
