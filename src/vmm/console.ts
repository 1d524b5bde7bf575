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

function matches(line: string, marker: string | RegExp): boolean {
  if (typeof marker === 'string') return line.includes(marker);
  marker.lastIndex = 0; // a /g or /y RegExp is stateful
  return marker.test(line);
}

/** Longest console line kept whole; the rest of a longer line is dropped (the guest writes the console). */
export const MAX_LINE_BYTES = 64 * 1024;
/** At most this much of the log is read per poll: a console written faster than that is caught up over polls. */
export const POLL_READ_BUDGET = 2 * 1024 * 1024;
const SCAN_CHUNK = 1024 * 1024;
/** Appended to a line cut at MAX_LINE_BYTES. */
export const CUT_MARK = ' [hangar: line cut at 65536 bytes]';

export interface ConsoleLine {
  text: string;
  /** Byte offset just after the line's newline. */
  end: number;
}

/**
 * Reads a growing console log incrementally: each poll reads only what was appended since the last one (at most
 * POLL_READ_BUDGET), keeps the unfinished last line as a carry of at most MAX_LINE_BYTES, and cuts longer lines
 * (marked with CUT_MARK, the rest skipped up to the next newline). A log that shrank (a restarted VMM, the
 * trimmer) is read again from its start. Work and memory per poll are bounded whatever the guest writes.
 */
export class ConsoleScanner {
  private pos: number;
  private lineStart: number;
  private carry: Buffer[] = [];
  private carryLen = 0;
  /** Inside a line already cut: bytes are skipped up to its newline. */
  private skipping = false;
  private readonly buf = Buffer.alloc(SCAN_CHUNK);

  constructor(readonly path: string, offset = 0, private readonly budget = POLL_READ_BUDGET) {
    this.pos = offset;
    this.lineStart = offset;
  }

  /** Where the next complete line starts. */
  get offset(): number { return this.lineStart; }

  /** The complete lines appended since the last poll (a missing log has none). */
  async poll(): Promise<ConsoleLine[]> {
    let fh;
    try {
      fh = await open(this.path, 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    try {
      const size = (await fh.stat()).size;
      if (size < this.pos) this.reset(0);
      const lines: ConsoleLine[] = [];
      const stop = Math.min(size, this.pos + this.budget);
      while (this.pos < stop) {
        const { bytesRead } = await fh.read(this.buf, 0, Math.min(this.buf.length, stop - this.pos), this.pos);
        if (bytesRead === 0) break;
        this.take(this.buf.subarray(0, bytesRead), lines);
      }
      return lines;
    } finally {
      await fh.close();
    }
  }

  private reset(offset: number): void {
    this.pos = offset;
    this.lineStart = offset;
    this.carry = [];
    this.carryLen = 0;
    this.skipping = false;
  }

  /** Splits one chunk read at this.pos into lines; the chunk's bytes are copied only into the bounded carry. */
  private take(chunk: Buffer, lines: ConsoleLine[]): void {
    let i = 0;
    while (i < chunk.length) {
      const nl = chunk.indexOf(10, i);
      const stop = nl < 0 ? chunk.length : nl;
      if (!this.skipping) {
        const room = MAX_LINE_BYTES - this.carryLen;
        const piece = chunk.subarray(i, Math.min(stop, i + room));
        if (piece.length) { this.carry.push(Buffer.from(piece)); this.carryLen += piece.length; }
        if (stop - i > room) {
          // Over the limit: the line is reported now, cut, and the rest of it up to its newline is skipped.
          lines.push({ text: this.carryText() + CUT_MARK, end: this.pos + stop + (nl < 0 ? 0 : 1) });
          this.skipping = true;
        }
      }
      if (nl < 0) break;
      const end = this.pos + nl + 1;
      if (!this.skipping) lines.push({ text: this.carryText().replace(/\r$/, ''), end });
      this.skipping = false;
      this.carry = [];
      this.carryLen = 0;
      this.lineStart = end;
      i = nl + 1;
    }
    this.pos += chunk.length;
  }

  private carryText(): string {
    return Buffer.concat(this.carry, this.carryLen).toString('utf8');
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
  const scanner = new ConsoleScanner(path, opts.fromOffset ?? 0);
  let exit: ProcessExit | null = null;
  void opts.exited?.then((e) => { exit = e; });

  const scan = async (): Promise<MarkerHit | null> => {
    for (const l of await scanner.poll()) {
      if (matches(l.text, marker)) return { line: l.text, elapsedMs: Math.round(performance.now() - started), offset: l.end };
    }
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
