// Where Hangar keeps things. Normalised once; everything else receives a HangarPaths.
import { join } from 'node:path';

export interface HangarPaths {
  /** Durable state: database, token, per-VM run directories. */
  stateDir: string;
  /** Content-addressed build cache, outside any checkout so a fresh clone reuses it. */
  cacheDir: string;
  /** Published images: one directory per image id. */
  imagesDir: string;
  /** Golden snapshots, beside the images (they pin the image they were taken from). */
  snapshotsDir: string;
}

export function resolvePaths(env: NodeJS.ProcessEnv = process.env): HangarPaths {
  const stateDir = env.HANGAR_STATE_DIR || '/var/lib/hangar';
  const cacheDir = env.HANGAR_CACHE_DIR || '/var/cache/hangar';
  const imagesDir = env.HANGAR_IMAGES_DIR || join(cacheDir, 'images');
  return { stateDir, cacheDir, imagesDir, snapshotsDir: join(cacheDir, 'snapshots') };
}

/** The controller's state database (read-only readers such as `hangar image prune` open it too). */
export function stateDbPath(paths: HangarPaths): string {
  return join(paths.stateDir, 'state.db');
}
