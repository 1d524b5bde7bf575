// Files that must be what a manifest says they are: sha256 and size, computed streaming (state files are GiB).
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
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
