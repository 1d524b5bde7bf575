// Keeping a VM's console log under a size cap. QEMU and the supervisor append to console.log themselves (both
// open it O_APPEND) and the guest decides how much it writes, so the controller trims it from outside: a pure plan
// (what to keep) and an executor that moves the kept tail to the start of the file and truncates it in place.
// The writers' O_APPEND makes their next write land at the new end. The first line of a trimmed log says how many
// bytes were dropped in all (earlier trims included).
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';

export interface TrimPlan {
  /** Byte offset the kept tail starts at (before aligning it to a line start). */
  keepFrom: number;
}

/** The marker line a trimmed log starts with. */
export function trimMarker(droppedBytes: number, maxBytes: number): string {
  return `[hangar: ${droppedBytes} earlier bytes of this console were dropped to keep it under ${maxBytes} bytes]\n`;
}

const MARKER_RE = /^\[hangar: (\d{1,15}) earlier bytes of this console were dropped/;

/** Bytes an earlier trim dropped, from the log's first line ('' or any other line: 0). */
export function droppedBefore(firstLine: string): number {
  const m = MARKER_RE.exec(firstLine);
  return m ? Number(m[1]) : 0;
}

/**
 * What to keep of a log of `size` bytes: nothing to do while it is within `maxBytes`; past it, the newest half of
 * the cap is kept (so a log is not trimmed again at every round). Pure.
 */
export function planConsoleTrim(size: number, maxBytes: number): TrimPlan | null {
  if (size <= maxBytes) return null;
  return { keepFrom: size - Math.floor(maxBytes / 2) };
}

/** How far the kept tail may move forward to start at a whole line. */
const ALIGN_WINDOW = 64 * 1024;
const COPY_CHUNK = 1024 * 1024;
/** Rounds of copying what the VMM appended meanwhile before the truncate. */
const CATCH_UP_ROUNDS = 4;

export interface TrimResult {
  /** Bytes dropped by this trim. */
  dropped: number;
  /** Bytes dropped in all, as the marker line says. */
  droppedTotal: number;
  /** The log's size after the trim. */
  size: number;
}

/**
 * Trims the log at `path` to its newest part when it is over `maxBytes` (null: nothing to do, or no log). Bytes the
 * VMM appends between the last copy round and the truncate are lost (a window of microseconds).
 */
export async function trimConsoleLog(path: string, maxBytes: number): Promise<TrimResult | null> {
  let fh;
  try {
    // Never through a symlink: the log is the VMM user's, and its run directory is writable by that user.
    fh = await open(path, constants.O_RDWR | constants.O_NOFOLLOW);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  try {
    let size = (await fh.stat()).size;
    const plan = planConsoleTrim(size, maxBytes);
    if (!plan) return null;
    const head = Buffer.alloc(256);
    const before = droppedBefore(head.subarray(0, (await fh.read(head, 0, head.length, 0)).bytesRead).toString('utf8'));
    // Start at a whole line when there is a newline close by.
    let src = plan.keepFrom;
    const probe = Buffer.alloc(ALIGN_WINDOW);
    const { bytesRead } = await fh.read(probe, 0, Math.min(ALIGN_WINDOW, size - src), src);
    const nl = probe.subarray(0, bytesRead).indexOf(10);
    if (nl >= 0 && src + nl + 1 < size) src += nl + 1;
    const dropped = src;
    const marker = Buffer.from(trimMarker(before + dropped, maxBytes));
    await fh.write(marker, 0, marker.length, 0);
    // Forward copy: the destination is always before the source (src > marker length).
    let dst = marker.length;
    const buf = Buffer.alloc(COPY_CHUNK);
    for (let round = 0; round < CATCH_UP_ROUNDS && src < size; round++) {
      while (src < size) {
        const r = await fh.read(buf, 0, Math.min(buf.length, size - src), src);
        if (r.bytesRead === 0) break;
        await fh.write(buf, 0, r.bytesRead, dst);
        src += r.bytesRead;
        dst += r.bytesRead;
      }
      size = (await fh.stat()).size; // what the VMM wrote meanwhile
    }
    await fh.truncate(dst);
    return { dropped, droppedTotal: before + dropped, size: dst };
  } finally {
    await fh.close();
  }
}
