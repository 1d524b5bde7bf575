// Following a VM's serial console log: wait for a marker line (with a timeout, cancellation, and the VMM's exit
// as a reason to stop waiting), and read its tail for error reports.
import { open, stat } from 'node:fs/promises';
import { HangarError } from '../errors.js';
import { tailFile } from '../util/tail.js';
import type { ProcessExit } from './types.js';

export interface WaitForMarkerOptions {
  timeoutMs: number;
  signal?: AbortSignal;
  /** The VMM's exit: if it settles first, the wait fails with VMM_CRASHED. */
  exited?: Promise<ProcessExit>;
  /** Start reading at this byte offset (default 0: the whole log). */
  fromOffset?: number;
  pollMs?: number;
  /** Lines of console kept in the error details. */
  tailLines?: number;
}

export interface MarkerHit {
  line: string;
  /** From the call to the marker. */
  elapsedMs: number;
  /** Byte offset just after the matched line. */
  offset: number;
}

const DEFAULT_TAIL = 40;
const READ_CHUNK = 64 * 1024;

function matches(line: string, marker: string | RegExp): boolean {
  if (typeof marker === 'string') return line.includes(marker);
  marker.lastIndex = 0; // a /g or /y RegExp is stateful
  return marker.test(line);
}

/** Reads complete lines appended after `offset`; returns them and the new offset (partial last line left for later). */
async function readLines(path: string, offset: number): Promise<{ lines: { text: string; end: number }[]; offset: number }> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { lines: [], offset };
    throw e;
  }
  try {
    const size = (await fh.stat()).size;
    if (size < offset) offset = 0; // truncated (a restarted VMM reopened the log): start over
    const lines: { text: string; end: number }[] = [];
    let pending = Buffer.alloc(0);
    let pos = offset;
    let lineStart = offset;
    while (pos < size) {
      const buf = Buffer.alloc(Math.min(READ_CHUNK, size - pos));
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) break;
      pending = Buffer.concat([pending, buf.subarray(0, bytesRead)]);
      pos += bytesRead;
      let nl: number;
      while ((nl = pending.indexOf(10)) >= 0) {
        const end = lineStart + nl + 1;
        lines.push({ text: pending.subarray(0, nl).toString('utf8').replace(/\r$/, ''), end });
        pending = pending.subarray(nl + 1);
        lineStart = end;
      }
    }
    return { lines, offset: lineStart };
  } finally {
    await fh.close();
  }
}

/** The last `lines` lines of a file without its final newline ('' when it does not exist); reads at most 256 KiB. */
export async function tail(path: string, lines: number): Promise<string> {
  return (await tailFile(path, lines, 256 * 1024)).replace(/\r/g, '').replace(/\n$/, '');
}

/** The current size of a log, for `fromOffset` (0 when absent). */
export async function logSize(path: string): Promise<number> {
  try { return (await stat(path)).size; } catch { return 0; }
}

/**
 * Resolves with the first console line containing `marker` (or matching it). Fails with VM_BOOT_TIMEOUT after
 * timeoutMs, VMM_CRASHED when `exited` settles first, CANCELLED on abort; every failure carries the console tail.
 */
export async function waitForMarker(path: string, marker: string | RegExp, opts: WaitForMarkerOptions): Promise<MarkerHit> {
  const started = performance.now();
  const pollMs = opts.pollMs ?? 50;
  const tailLines = opts.tailLines ?? DEFAULT_TAIL;
  let offset = opts.fromOffset ?? 0;
  let exit: ProcessExit | null = null;
  void opts.exited?.then((e) => { exit = e; });

  const scan = async (): Promise<MarkerHit | null> => {
    const r = await readLines(path, offset);
    for (const l of r.lines) {
      if (matches(l.text, marker)) return { line: l.text, elapsedMs: Math.round(performance.now() - started), offset: l.end };
    }
    offset = r.offset;
    return null;
  };
  const failure = async (code: 'VM_BOOT_TIMEOUT' | 'VMM_CRASHED' | 'CANCELLED', message: string, extra: Record<string, unknown> = {}): Promise<HangarError> =>
    new HangarError(code, message, { path, marker: String(marker), elapsedMs: Math.round(performance.now() - started), ...extra, consoleTail: await tail(path, tailLines) });

  for (;;) {
    // Read once more after an exit: the marker may be the last thing the process wrote.
    const exitSeen: ProcessExit | null = exit;
    const hit = await scan();
    if (hit) return hit;
    if (exitSeen) {
      const e: ProcessExit = exitSeen;
      throw await failure('VMM_CRASHED', `the VMM exited (${e.signal ?? `code ${e.code ?? 'unknown'}`}, by ${e.by}) before the console showed ${String(marker)}`, { exit: e });
    }
    if (opts.signal?.aborted) throw await failure('CANCELLED', `stopped waiting for ${String(marker)}`);
    const elapsed = performance.now() - started;
    if (elapsed >= opts.timeoutMs) {
      throw await failure('VM_BOOT_TIMEOUT', `the console did not show ${String(marker)} within ${opts.timeoutMs} ms`, { timeoutMs: opts.timeoutMs });
    }
    await new Promise((r) => setTimeout(r, Math.min(pollMs, opts.timeoutMs - elapsed)));
  }
}
