// The kernel lint: resolves a target (VMM, release, initrd, ip=), evaluates the rules, returns a report.
// lintConfig is pure; lintKernel reads a file first (config, config.gz, vmlinux or bzImage).
import { HangarError } from '../errors.js';
import { hasErrors, sortFindings, type Finding } from '../findings.js';
import { oneOf } from '../util/validate.js';
import { compareVersions, kernelVersionInfo, parseVersion, type KernelConfig } from './config.js';
import { readKernel, type KernelFormat, type KernelImage } from './image-reader.js';
import { FIRECRACKER_FEATURES, NEWEST_FIRECRACKER, OLDEST_FIRECRACKER, evaluate, type LintTarget, type RuleContext, type Vmm } from './rules.js';

export type { LintTarget, Vmm } from './rules.js';
export const VMMS: readonly Vmm[] = ['firecracker', 'qemu-microvm'];

export interface LintOptions {
  vmm: Vmm;
  /** Firecracker release 'X.Y' (a patch part is accepted and ignored); default the newest Hangar knows. */
  vmmVersion?: string;
  /** An initrd is booted; default false. */
  initrd?: boolean;
  /** The kernel's ip= parameter configures the network; default true. */
  ipBoot?: boolean;
  /** QEMU microvm only: acpi=on (default false: Hangar runs microvm with acpi=off). Firecracker's ACPI follows its release. */
  acpi?: boolean;
  /** virtio over PCI (Firecracker --enable-pci from 1.13, microvm pcie=on); default false. */
  pci?: boolean;
}

export interface LintReport {
  ok: boolean;
  kernel: { version: string | null; source: 'config' | 'ikconfig'; format: KernelFormat; pvh: boolean | null };
  target: LintTarget;
  findings: Finding[];
}

/** Validates options and applies defaults. INVALID_ARGUMENT for an unknown VMM or a malformed/too old release. */
export function resolveTarget(opts: LintOptions): LintTarget {
  const vmm = oneOf(opts.vmm, 'vmm', VMMS);
  const pci = opts.pci ?? false;
  if (vmm === 'qemu-microvm') {
    return { vmm, vmmVersion: null, initrd: opts.initrd ?? false, ipBoot: opts.ipBoot ?? true, acpi: opts.acpi ?? false, pci };
  }
  const raw = opts.vmmVersion ?? NEWEST_FIRECRACKER;
  const p = /^v?\d+\.\d+(\.\d+)?$/.test(raw) ? parseVersion(raw) : null;
  if (!p) throw new HangarError('INVALID_ARGUMENT', `vmm-version must look like 1.13 (got ${JSON.stringify(raw)})`, { field: 'vmmVersion' });
  const vmmVersion = `${p[0]}.${p[1]}`;
  if (compareVersions(vmmVersion, OLDEST_FIRECRACKER) < 0) {
    throw new HangarError('INVALID_ARGUMENT', `Firecracker ${vmmVersion} predates ${OLDEST_FIRECRACKER}, the oldest release Hangar knows`, { field: 'vmmVersion' });
  }
  if (pci && compareVersions(vmmVersion, FIRECRACKER_FEATURES.pci) < 0) {
    throw new HangarError('INVALID_ARGUMENT', `Firecracker ${vmmVersion} has no PCI transport (--enable-pci came in ${FIRECRACKER_FEATURES.pci})`, { field: 'pci' });
  }
  // Firecracker's ACPI tables are not optional: every release from 1.8 provides them.
  const acpi = compareVersions(vmmVersion, FIRECRACKER_FEATURES.acpi) >= 0;
  return { vmm, vmmVersion, initrd: opts.initrd ?? false, ipBoot: opts.ipBoot ?? true, acpi, pci };
}

/** What the lint judges: a config (possibly unknown) plus what the file told about the image. */
export interface LintSubject {
  config: KernelConfig | null;
  source: 'config' | 'ikconfig';
  format: KernelFormat;
  pvh: boolean | null;
  elfMachine: number | null;
  bannerVersion: string | null;
}

/** Lints a subject for a target; pure. */
export function lintSubject(subject: LintSubject, opts: LintOptions): LintReport {
  const target = resolveTarget(opts);
  // A release newer than Hangar knows is judged as the newest known one (KL_VMM_VERSION_NEWER says so).
  const judged: LintTarget = target.vmmVersion && compareVersions(target.vmmVersion, NEWEST_FIRECRACKER) > 0
    ? { ...target, vmmVersion: NEWEST_FIRECRACKER } : target;
  const version = kernelVersionInfo(subject.config, subject.bannerVersion);
  const ctx: RuleContext = {
    config: subject.config ?? { options: new Map(), version: null, headerArch: null, malformed: 0 },
    configKnown: subject.config !== null,
    format: subject.format,
    pvh: subject.pvh,
    elfMachine: subject.elfMachine,
    version,
    target: judged,
    requestedVmmVersion: target.vmmVersion,
  };
  const findings = sortFindings(evaluate(ctx));
  return {
    ok: !hasErrors(findings),
    kernel: { version: version.exact, source: subject.source, format: subject.format, pvh: subject.pvh },
    target,
    findings,
  };
}

/** Lints a parsed .config; pure. */
export function lintConfig(config: KernelConfig, opts: LintOptions): LintReport {
  return lintSubject({ config, source: 'config', format: 'config', pvh: null, elfMachine: null, bannerVersion: null }, opts);
}

/** Lints a file image as already read by readKernel; pure. */
export function lintImage(image: KernelImage, opts: LintOptions): LintReport {
  return lintSubject(image, opts);
}

/**
 * Reads a kernel or config file and lints it. Throws KERNEL_UNREADABLE when the file cannot be read or is not a
 * kernel, INVALID_ARGUMENT for bad options (checked before the file is read).
 */
export async function lintKernel(path: string, opts: LintOptions): Promise<LintReport> {
  resolveTarget(opts);
  return lintImage(await readKernel(path), opts);
}
