// Renders findings for people (a short table, most likely cause first) and for machines (JSON). The order is the
// judge's: the renderer never re-sorts, so the causal order a classifier computed is what the reader sees.
import type { Finding } from '../findings.js';
import { table } from '../cli/command.js';
import type { ConsoleReport } from './console.js';
import type { DoctorCheck, DoctorReport } from './model.js';

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

// ---- hangar doctor (host, image and VM checks)

const STATUS_MARK: Record<DoctorCheck['status'], string> = { ok: 'ok', info: 'info', warning: 'WARN', error: 'FAIL', skipped: 'skip' };

/** One line per check: status, id, what ran, what it saw. */
export function renderChecks(checks: readonly DoctorCheck[], width = 160): string {
  const idw = Math.max(...checks.map((c) => c.id.length), 2);
  return checks.map((c) => {
    const ran = c.ran.length ? clip(c.ran.join('; '), 70) : '(store only)';
    return clip(`${STATUS_MARK[c.status].padEnd(4)}  ${c.id.padEnd(idw)}  ${ran}  →  ${c.saw}`, width);
  }).join('\n') + '\n';
}

/** Human output of `hangar doctor`: the checks, then the findings (most likely cause first) and the verdict. */
export function renderDoctorReport(r: DoctorReport): string {
  const head = r.vm
    ? `VM ${r.vm.id} (${r.vm.name}): ${r.vm.state}, ${r.vm.ip ?? 'no address'} ${r.vm.mac ?? ''} ${r.vm.tap ?? ''}`.trimEnd()
    : 'Host and images';
  const top = r.mostLikelyCause;
  const verdict = top
    ? `\nMost likely cause: ${top.code} (${top.check})\n  ${top.message}\n${top.evidence.slice(0, 4).map((e) => `  | ${e.line !== undefined ? `${e.line}: ` : ''}${clip(e.text, 150)}`).join('\n')}\nFix: ${top.fix}\n`
    : r.ok ? '\nNo error found.\n' : '';
  const findings = r.findings.filter((f) => f.severity !== 'info' || r.findings.length <= 8);
  return `${head} — ${r.checks.length} checks in ${(r.durationMs / 1000).toFixed(2)} s\n\n${renderChecks(r.checks)}\n${renderFindingsTable(findings)}${verdict}`;
}

