// A serial console log as lines, split the way the classifier reads it: into the boot's history and what the guest
// printed after each restore of saved state (hibernation, clone). The host writes a CONSOLE_RESTORED_MARKER line
// before every restore and QEMU appends to the log, so a restored VM's log is its boot, then marker and the
// resumed run, once per restore; a clone's log starts at a marker (its boot happened in the snapshot's source VM).
// Pure.
import { CONSOLE_RESTORED_MARKER } from '../guest-protocol.js';
import { RESUMED_MARKER } from '../guest-protocol.js';

export interface Line {
  /** 1-based. */
  n: number;
  /** The exact line, without its line ending. */
  raw: string;
  /** printk timestamp in seconds, when the line carries one. */
  ts: number | null;
  /** The text after the timestamp. */
  msg: string;
}

const TS_RE = /^\[\s*(\d+\.\d+)\]\s?/;
export const BANNER_RE = /^Linux version \S+/;

export function splitLines(text: string): Line[] {
  const raws = text.split('\n');
  if (raws.length > 0 && raws[raws.length - 1] === '') raws.pop();
  return raws.map((r, i) => {
    const raw = r.endsWith('\r') ? r.slice(0, -1) : r;
    const m = TS_RE.exec(raw);
    return { n: i + 1, raw, ts: m ? Number(m[1]) : null, msg: m ? raw.slice(m[0].length) : raw };
  });
}

/** Splits a log (lines from line 1 on) at each "Linux version" banner; content before the first belongs to the first boot. */
export function splitBoots(lines: Line[]): Line[][] {
  const starts = lines.filter((l) => BANNER_RE.test(l.msg)).map((l) => l.n - 1);
  if (starts.length <= 1) return [lines];
  starts[0] = 0;
  return starts.map((s, i) => lines.slice(s, starts[i + 1] ?? lines.length));
}

/** One restore of saved state, as the host's marker line names it. */
export interface Restore {
  line: number;
  /** What was restored, e.g. "snapshot_snap-0123abcd" or "hibernation_of_2026-01-01T00:00:00.000Z". */
  what: string;
  /** When (ISO time), null when the marker has none. */
  at: string | null;
}

export interface ConsoleHistory {
  /** Lines before the first restore marker: the boot (the whole log when nothing was restored). */
  history: Line[];
  /** Lines the guest printed after a restore (every restore's), markers excluded. */
  resumed: Line[];
  restores: Restore[];
  /** Whether the log holds a boot to judge: not for a clone (its boot happened elsewhere). */
  hasBoot: boolean;
  /**
   * Restored, but the log holds no marker: only the guest agent's HANGAR-RESUMED line and no kernel output (a log
   * rewritten at a restore, as Hangar did before it appended).
   */
  markerless: boolean;
}

const isMarker = (l: Line): boolean => l.raw.startsWith(`${CONSOLE_RESTORED_MARKER} `) || l.raw === CONSOLE_RESTORED_MARKER;

export function readHistory(all: Line[]): ConsoleHistory {
  const markers = all.filter(isMarker);
  const restores = markers.map((l) => {
    const [, what = '', at] = l.raw.trim().split(/\s+/);
    return { line: l.n, what, at: at && !Number.isNaN(Date.parse(at)) ? at : null };
  });
  if (!markers.length) {
    const markerless = all.some((l) => l.raw.startsWith(RESUMED_MARKER)) && !all.some((l) => l.ts !== null || BANNER_RE.test(l.msg));
    return markerless
      ? { history: [], resumed: all, restores: [], hasBoot: false, markerless }
      : { history: all, resumed: [], restores: [], hasBoot: true, markerless };
  }
  const first = markers[0]!.n;
  const history = all.slice(0, first - 1);
  return {
    history,
    resumed: all.slice(first).filter((l) => !isMarker(l)),
    restores,
    hasBoot: history.some((l) => l.raw.trim() !== ''),
    markerless: false,
  };
}
