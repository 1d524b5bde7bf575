// Renders findings for people (a short table, most likely cause first) and for machines (JSON). The order is the
// judge's: the renderer never re-sorts, so the causal order a classifier computed is what the reader sees.
import type { Finding } from '../findings.js';
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

/** Output width when stdout is not a terminal. */
export const DEFAULT_WIDTH = 100;
/** Narrower than this, wrapped text keeps this many columns (lines get longer than the terminal, never cut). */
const MIN_TEXT = 24;

/** The width human output is wrapped to: the terminal's columns, DEFAULT_WIDTH when not a terminal. */
export function terminalWidth(out: { isTTY?: boolean; columns?: number } = process.stdout): number {
  return out.isTTY && out.columns && out.columns > 0 ? out.columns : DEFAULT_WIDTH;
}

/**
 * Wraps text to `width` columns: the first line starts after `first` (already printed), the others with `indent`.
 * Breaks at spaces where a word fits, splits longer words; keeps every character (spacing inside a line too).
 */
export function wrap(text: string, width: number, indent = '', first = indent.length): string[] {
  const out: string[] = [];
  let line = '';
  let start = first;
  const newline = (): void => { out.push(line); line = ''; start = indent.length; };
  const room = (): number => Math.max(MIN_TEXT, width - start);
  text.split('\n').forEach((para, p) => {
    if (p > 0) newline();
    (para.match(/\s*\S+|\s+$/g) ?? []).forEach((token, t) => {
      if (line.length + token.length <= room()) { line += token; return; }
      // It does not fit: break before it (the spaces at a break go), and split what is longer than a whole line.
      let word = t === 0 ? token : token.trimStart();
      if (line.length) newline();
      while (word.length > room()) {
        line = word.slice(0, room());
        word = word.slice(room());
        newline();
      }
      line = word;
    });
  });
  out.push(line);
  return out.map((l, i) => (i === 0 ? l : `${indent}${l}`));
}

/** A table whose last column wraps to the width (continuation lines under it). */
function wrappedTable(headers: string[], rows: (string | number)[][], width: number): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const last = headers.length - 1;
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const lead = widths.slice(0, last).reduce((a, w) => a + w + 2, 0);
  return cells.map((r) => {
    const head = r.slice(0, last).map((c, i) => c.padEnd(widths[i]!)).join('  ') + '  ';
    return head + wrap(r[last] ?? '', width, ' '.repeat(lead), lead).join('\n');
  }).join('\n') + '\n';
}

/** A table of findings in the given order; consequences say what explains them ("← CODE"). Messages are whole. */
export function renderFindingsTable(findings: readonly RenderableFinding[], width = DEFAULT_WIDTH): string {
  if (findings.length === 0) return 'No findings.\n';
  const rows = findings.map((f, i) => [
    i + 1,
    f.severity,
    f.code,
    lineRanges(f),
    `${f.causedBy?.length ? `← ${f.causedBy.join(', ')}: ` : ''}${f.message}`,
  ]);
  return wrappedTable(['#', 'SEVERITY', 'CODE', 'LINES', 'FINDING'], rows, width);
}

/** A finding's evidence, every line whole: "  | " then the text, wrapped under it. */
export function renderEvidence(evidence: readonly { line?: number; text: string }[], width: number): string {
  return evidence.map((e) => {
    const head = `  | ${e.line !== undefined ? `${e.line}: ` : ''}`;
    return head + wrap(e.text, width, '    ', head.length).join('\n');
  }).join('\n');
}

/** The first finding that nothing else explains, worst severity first (the order is already that). */
export function mostLikelyCause<T extends RenderableFinding>(findings: readonly T[]): T | undefined {
  const top = findings[0];
  return top && top.severity !== 'info' && !top.causedBy?.length ? top : undefined;
}

const secs = (v: number | null): string => (v === null ? '-' : `${v.toFixed(3)}s`);

/** Human output of `hangar doctor --console`, wrapped to `width` (nothing is cut). */
export function renderConsoleReport(r: ConsoleReport, width = DEFAULT_WIDTH): string {
  const f = r.facts;
  const params = f.commandLine ? f.commandLine.split(/\s+/).filter((p) => /^(root|init|ip)=/.test(p)).join(' ') : '';
  const restored = f.restores.length ? `; restored ${f.restores.length} time(s), last at line ${f.restores.at(-1)!.line}` : '';
  const head = [
    f.boots === 0
      ? `No boot in this log${restored} (a clone's boot happened in its snapshot's source VM)`
      : `Kernel ${f.kernelVersion ?? '(no banner)'}, ${f.boots} boot(s)${f.boots > 1 ? ` (describing boot ${f.analysedBoot})` : ''}${params ? `, ${params}` : ''}${restored}`,
    `Devices: block ${f.blockDevices.join(' ') || 'none'}; net ${f.netDevices.join(' ') || 'none'}`,
    `Timeline: kernel ${secs(r.timeline.kernelStart)}, root mounted ${secs(r.timeline.rootMounted)}, init ${secs(r.timeline.init)}, ready ${secs(r.timeline.ready)}`,
  ].map((l) => wrap(l, width, '  ').join('\n')).join('\n');
  const top = mostLikelyCause(r.findings);
  const verdict = top ? `\n${renderVerdict(`${top.code} (lines ${lineRanges(top)})`, top, width)}` : r.ok ? '\nNo error found.\n' : '';
  return `${head}\n\n${renderFindingsTable(r.findings, width)}${verdict}`;
}

/** "Most likely cause", its message, all its evidence and the fix, each whole. */
function renderVerdict(title: string, top: RenderableFinding, width: number): string {
  const ev = top.evidence?.length ? `${renderEvidence(top.evidence, width)}\n` : '';
  return `${wrap(`Most likely cause: ${title}`, width, '  ').join('\n')}\n  ${wrap(top.message, width, '  ', 2).join('\n')}\n${ev}${wrap(`Fix: ${top.fix}`, width, '  ').join('\n')}\n`;
}

/** JSON output: the same findings shape as `hangar kernel lint --json`, plus the timeline and facts. */
export function consoleReportJson(r: ConsoleReport): { ok: boolean; findings: ConsoleReport['findings']; timeline: ConsoleReport['timeline']; facts: ConsoleReport['facts'] } {
  return { ok: r.ok, findings: r.findings, timeline: r.timeline, facts: r.facts };
}

// ---- hangar doctor (host, image and VM checks)

const STATUS_MARK: Record<DoctorCheck['status'], string> = { ok: 'ok', info: 'info', warning: 'WARN', error: 'FAIL', skipped: 'skip' };

/** One entry per check: status, id, what ran, what it saw; wrapped under the id column, nothing cut. */
export function renderChecks(checks: readonly DoctorCheck[], width = DEFAULT_WIDTH): string {
  const idw = Math.max(...checks.map((c) => c.id.length), 2);
  const indent = ' '.repeat(4 + 2 + idw + 2);
  return checks.map((c) => {
    const ran = c.ran.length ? c.ran.join('; ') : '(store only)';
    return `${STATUS_MARK[c.status].padEnd(4)}  ${c.id.padEnd(idw)}  ${wrap(`${ran}  →  ${c.saw}`, width, indent, indent.length).join('\n')}`;
  }).join('\n') + '\n';
}

/** Human output of `hangar doctor`, wrapped to `width`: the checks, the findings (most likely cause first), the verdict. */
export function renderDoctorReport(r: DoctorReport, width = DEFAULT_WIDTH): string {
  const v = r.vm;
  const how = v ? [v.hibernated ? 'hibernated' : '', v.snapshotId ? `clone of ${v.snapshotId}` : ''].filter(Boolean).join(', ') : '';
  const head = v
    ? `VM ${v.id} (${v.name}): ${v.state}${how ? ` (${how})` : ''}, ${v.ip ?? 'no address'} ${v.mac ?? ''} ${v.tap ?? ''}`.trimEnd()
    : 'Host and images';
  const top = r.mostLikelyCause;
  const verdict = top ? `\n${renderVerdict(`${top.code} (${top.check})`, top, width)}` : r.ok ? '\nNo error found.\n' : '';
  const findings = r.findings.filter((f) => f.severity !== 'info' || r.findings.length <= 8);
  return `${wrap(`${head} — ${r.checks.length} checks in ${(r.durationMs / 1000).toFixed(2)} s`, width, '  ').join('\n')}\n\n${renderChecks(r.checks, width)}\n${renderFindingsTable(findings, width)}${verdict}`;
}

