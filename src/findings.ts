// One findings shape for everything that judges: kernel lint, console classifier, doctor checks.

export type Severity = 'error' | 'warning' | 'info';

export interface Evidence {
  /** 1-based line number in the source (console log, config), when there is one. */
  line?: number;
  text: string;
}

export interface Finding {
  /** Stable code, e.g. KL_VIRTIO_BLK_MODULE or CON_KERNEL_PANIC. */
  code: string;
  severity: Severity;
  /** Kernel option(s) concerned, e.g. "CONFIG_VIRTIO_BLK"; null when none. */
  option: string | null;
  message: string;
  fix: string;
  evidence?: Evidence[];
}

const ORDER: Record<Severity, number> = { error: 0, warning: 1, info: 2 };

/** Errors first, then warnings, then info; stable within a severity. */
export function sortFindings<T extends Finding>(findings: readonly T[]): T[] {
  return findings.map((f, i) => ({ f, i })).sort((a, b) => ORDER[a.f.severity] - ORDER[b.f.severity] || a.i - b.i).map((x) => x.f);
}

export function hasErrors(findings: readonly Finding[]): boolean {
  return findings.some((f) => f.severity === 'error');
}
