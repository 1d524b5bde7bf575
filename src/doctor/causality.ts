// Causal ordering of findings, shared by the console classifier and the doctor: which finding explains which, so
// the root cause comes first and its consequences name it. Pure.
import type { Finding, Severity } from '../findings.js';

export interface CausalModel {
  /** Codes a code can explain (static; paths through codes absent from the report count). */
  explains: (code: string) => readonly string[];
  /** Among roots of the same severity and depth, a lower rank is the likelier culprit. */
  rank: (code: string) => number;
  /** Extra edges between two present findings that the static table cannot express (e.g. same kernel option). */
  relates?: (cause: Finding, effect: Finding) => boolean;
  /** Last tie-break (e.g. first evidence line). */
  tieBreak?: (a: Finding, b: Finding) => number;
}

export const SEV_RANK: Record<Severity, number> = { error: 0, warning: 1, info: 2 };

/**
 * Marks consequences (causedBy: the nearest present causes), raises a cause to the severity of the worst thing it
 * explains, and orders: severity, then causal depth (causes before their consequences), then rank, then tieBreak.
 * Codes are expected to be unique within FINDINGS.
 */
export function orderByCause<F extends Finding & { causedBy?: readonly string[] }>(findings: readonly F[], m: CausalModel): F[] {
  const byCode = new Map(findings.map((f) => [f.code, f]));
  const present = [...byCode.keys()];
  const adjacency = (c: string): string[] => {
    const out = [...m.explains(c)];
    const cf = byCode.get(c);
    if (cf && m.relates) for (const e of findings) if (e.code !== c && m.relates(cf, e)) out.push(e.code);
    return out;
  };
  const reachable = (from: string): Set<string> => {
    const out = new Set<string>();
    const stack = adjacency(from);
    while (stack.length) {
      const c = stack.pop()!;
      if (c !== from && !out.has(c)) { out.add(c); stack.push(...adjacency(c)); }
    }
    return out;
  };
  const reach = new Map(present.map((c) => [c, reachable(c)]));
  const causes = new Map<string, string[]>();
  for (const code of present) {
    // A pair that explains each other (a cycle) is not a cause of either.
    const cands = present.filter((c) => c !== code && reach.get(c)!.has(code) && !reach.get(code)!.has(c));
    // Keep the nearest: drop a candidate that explains this one only through another candidate.
    const nearest = cands.filter((c) => !cands.some((o) => o !== c && reach.get(c)!.has(o)));
    if (nearest.length) causes.set(code, nearest.sort((a, b) => m.rank(a) - m.rank(b)));
  }
  const depth = (c: string, guard = 0): number =>
    guard > 32 ? 0 : Math.max(0, ...(causes.get(c) ?? []).map((p) => 1 + depth(p, guard + 1)));
  const sevOf = (c: string): Severity => {
    let best = byCode.get(c)!.severity;
    for (const e of reach.get(c)!) {
      const s = byCode.get(e)?.severity;
      if (s && SEV_RANK[s] < SEV_RANK[best]) best = s;
    }
    return best;
  };
  const out = findings.map((f) => {
    const cb = causes.get(f.code);
    const { causedBy: _drop, ...rest } = f;
    return { ...rest, severity: sevOf(f.code), ...(cb ? { causedBy: cb } : {}) } as unknown as F;
  });
  return out.sort(
    (a, b) =>
      SEV_RANK[a.severity] - SEV_RANK[b.severity] ||
      depth(a.code) - depth(b.code) ||
      m.rank(a.code) - m.rank(b.code) ||
      (m.tieBreak ? m.tieBreak(a, b) : 0),
  );
}

/** rank() for a priority list: listed codes in order, unlisted ones after them. */
export function rankBy(priority: readonly string[]): (code: string) => number {
  const idx = new Map(priority.map((c, i) => [c, i]));
  return (code) => idx.get(code) ?? priority.length;
}
