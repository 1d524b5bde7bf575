// Shared figures for benches: percentiles over samples, rounding for tables, and which of the machine's processes a
// bench may count as its own (a leak check must not count another controller's VMs).

export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export const median = (samples: readonly number[]): number => percentile(samples, 50);

export const round = (n: number, digits = 3): number => Math.round(n * 10 ** digits) / 10 ** digits;

// ---------------------------------------------------------------- what a bench may count as its own

/** One process as a leak check sees it (read from /proc by the bench; fixtures in tests). */
export interface ProcFact {
  pid: number;
  argv: readonly string[];
  /** Working directory, null when unreadable. */
  cwd: string | null;
  /** Which of the bench's own network namespaces it runs in, else null. */
  netns: string | null;
}

/** What a bench made: nothing else on the machine (the main job's controller and VMs, other tests) is its business. */
export interface BenchOwnership {
  /** Directories only this bench writes: its controller's state dir, its hand-started VMs' dirs. */
  dirs: readonly string[];
  /** Network namespaces this bench created. */
  netns: readonly string[];
  /** Pids recorded in pidfiles under those directories. */
  pidFilePids?: readonly number[];
  /** Never counted: the bench process itself (and whatever started it). */
  exclude?: readonly number[];
}

const trim = (dir: string): string => dir.replace(/\/+$/, '');
/** A path at or below dir (dir "/tmp/a" does not own "/tmp/ab"). */
const under = (dir: string, path: string): boolean => path === trim(dir) || path.startsWith(`${trim(dir)}/`);
/** An argv word naming a path below dir, alone or inside an option ("file,id=con0,path=DIR/vms/x/console.log"). */
const mentions = (dir: string, word: string): boolean => word === trim(dir) || word.includes(`${trim(dir)}/`);

/**
 * The processes that are the bench's own: an argv word naming a path under one of its directories (QEMU's
 * -chardev/-drive/-kernel arguments do), a working directory there, a pid one of its pidfiles names, or a home in
 * one of its namespaces. Pure. A `hangar-vm-…` of another controller matches none of these.
 */
export function ownedProcesses(procs: readonly ProcFact[], own: BenchOwnership): ProcFact[] {
  const netns = new Set(own.netns);
  const pids = new Set(own.pidFilePids ?? []);
  const exclude = new Set(own.exclude ?? []);
  return procs.filter((p) => !exclude.has(p.pid) && (
    pids.has(p.pid)
    || (p.netns !== null && netns.has(p.netns))
    || own.dirs.some((d) => (p.cwd !== null && under(d, p.cwd)) || p.argv.some((a) => mentions(d, a)))
  ));
}
