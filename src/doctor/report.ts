// Renders findings for people (a short table, most likely cause first) and for machines (JSON). The order is the
// judge's: the renderer never re-sorts, so the causal order a classifier computed is what the reader sees.
import type { Finding } from '../findings.js';
import { table } from '../cli/command.js';
import type { ConsoleReport } from './console.js';

/** A finding that may name the findings it is a consequence of. */
export type RenderableFinding = Finding & { causedBy?: readonly string[] };

/** Evidence line numbers as ranges: "3, 120-123". */
export function lineRanges(f: Finding): string {
  const nums = [...new Set((f.evidence ?? []).map((e) => e.line).filter((n): n is number => n !== undefined))].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < nums.length; i++) {
    let j = i;
    while (j + 1 < nums.length && nums[j + 1] === nums[j]! + 1) j++;
    parts.push(j > i ? `${nums[i]}-${nums[j]}` : `${nums[i]}`);
    i = j;
  }
  return parts.join(', ') || '-';
}

const clip = (s: string, n: number): string => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

/** A table of findings in the given order; consequences say what explains them ("← CODE"). */
export function renderFindingsTable(findings: readonly RenderableFinding[], width = 110): string {
  if (findings.length === 0) return 'No findings.\n';
  const rows = findings.map((f, i) => [
    i + 1,
    f.severity,
    f.code,
    lineRanges(f),
    clip(`${f.causedBy?.length ? `← ${f.causedBy.join(', ')}: ` : ''}${f.message}`, width),
  ]);
  return table(['#', 'SEVERITY', 'CODE', 'LINES', 'FINDING'], rows);
}

/** The first finding that nothing else explains, worst severity first (the order is already that). */
export function mostLikelyCause<T extends RenderableFinding>(findings: readonly T[]): T | undefined {
  const top = findings[0];
  return top && top.severity !== 'info' && !top.causedBy?.length ? top : undefined;
}

const secs = (v: number | null): string => (v === null ? '-' : `${v.toFixed(3)}s`);

/** Human output of `hangar doctor --console`. */
export function renderConsoleReport(r: ConsoleReport): string {
  const f = r.facts;
  const params = f.commandLine ? f.commandLine.split(/\s+/).filter((p) => /^(root|init|ip)=/.test(p)).join(' ') : '';
  const head = [
    `Kernel ${f.kernelVersion ?? '(no banner)'}, ${f.boots} boot(s)${f.boots > 1 ? ` (describing boot ${f.analysedBoot})` : ''}${params ? `, ${params}` : ''}`,
    `Devices: block ${f.blockDevices.join(' ') || 'none'}; net ${f.netDevices.join(' ') || 'none'}`,
    `Timeline: kernel ${secs(r.timeline.kernelStart)}, root mounted ${secs(r.timeline.rootMounted)}, init ${secs(r.timeline.init)}, ready ${secs(r.timeline.ready)}`,
  ].join('\n');
  const top = mostLikelyCause(r.findings);
  const verdict = top
    ? `\nMost likely cause: ${top.code} (lines ${lineRanges(top)})\n  ${top.message}\nFix: ${top.fix}\n`
    : r.ok ? '\nNo error found.\n' : '';
  return `${head}\n\n${renderFindingsTable(r.findings)}${verdict}`;
}

/** JSON output: the same findings shape as `hangar kernel lint --json`, plus the timeline and facts. */
export function consoleReportJson(r: ConsoleReport): { ok: boolean; findings: ConsoleReport['findings']; timeline: ConsoleReport['timeline']; facts: ConsoleReport['facts'] } {
  return { ok: r.ok, findings: r.findings, timeline: r.timeline, facts: r.facts };
}
