// `hangar kernel lint`: checks a guest kernel or its config against the VMM it will boot on.
import { HangarError } from '../errors.js';
import { lintKernel, VMMS, type LintReport } from '../kernel/lint.js';
import { NEWEST_FIRECRACKER } from '../kernel/rules.js';
import { oneOf } from '../util/validate.js';
import { jsonOption, table, type Command } from './command.js';

/** Human rendering: one line on the kernel and target, a table (errors first), the fixes, a verdict. Pure. */
export function renderLintReport(r: LintReport, path: string): string {
  const t = r.target;
  const vmm = t.vmm === 'firecracker' ? `firecracker ${t.vmmVersion}${t.pci ? ' --enable-pci' : ''}` : `qemu-microvm (acpi=${t.acpi ? 'on' : 'off'}${t.pci ? ', pcie=on' : ''})`;
  const lines = [
    `kernel  ${path}: ${r.kernel.format}, version ${r.kernel.version ?? 'unknown'}${r.kernel.pvh === null ? '' : `, PVH note ${r.kernel.pvh ? 'present' : 'absent'}`}`,
    `target  ${vmm}, ${t.initrd ? 'with' : 'no'} initrd, ${t.ipBoot ? 'ip= on the command line' : 'no ip='}`,
    '',
  ];
  let out = lines.join('\n') + '\n';
  if (r.findings.length) {
    out += table(['SEVERITY', 'CODE', 'OPTION', 'MESSAGE'], r.findings.map((f) => [f.severity, f.code, f.option ?? '-', f.message]));
    const fixes = r.findings.filter((f) => f.severity !== 'info');
    if (fixes.length) out += '\nFixes:\n' + fixes.map((f) => `  ${f.code}: ${f.fix}\n`).join('');
  }
  const count = (s: string): number => r.findings.filter((f) => f.severity === s).length;
  out += `\n${r.ok ? 'OK' : 'FAIL'}: ${count('error')} error(s), ${count('warning')} warning(s), ${count('info')} note(s)\n`;
  return out;
}

export const commands: Command[] = [
  {
    path: ['kernel', 'lint'],
    summary: 'Check a guest kernel (.config, config.gz, vmlinux or bzImage) against the VMM it boots on',
    usage: `PATH [--vmm ${VMMS.join('|')}] [--vmm-version X.Y] [--initrd] [--no-ip] [--acpi] [--pci] [--json]`,
    args: [{ name: 'PATH', description: 'the kernel or its config: .config, config.gz, vmlinux or bzImage' }],
    options: {
      vmm: { type: 'string', arg: 'KIND', description: `the VMM it boots on: ${VMMS.join(' or ')} (default firecracker)` },
      'vmm-version': { type: 'string', arg: 'X.Y', description: `Firecracker's version (default ${NEWEST_FIRECRACKER})` },
      initrd: { type: 'boolean', description: 'it boots with an initrd (modules may load from it)' },
      'no-ip': { type: 'boolean', description: 'no ip= on the kernel command line (the guest configures its own network)' },
      acpi: { type: 'boolean', description: 'qemu-microvm with acpi=on' },
      pci: { type: 'boolean', description: 'with PCI (Firecracker --enable-pci, QEMU pcie=on)' },
      ...jsonOption,
    },
    details: 'Exit 0 when the kernel passes, 1 when a finding is an error (each with its fix), 2 when PATH cannot be read.',
    examples: ['hangar kernel lint /boot/config-6.1.0-18-amd64', 'hangar kernel lint ./vmlinux --vmm qemu-microvm --acpi --json'],
    async run({ values, positionals }, io) {
      if (positionals.length !== 1) {
        throw new HangarError('INVALID_ARGUMENT', `expected exactly one PATH (got ${positionals.length})`, { field: 'path' });
      }
      const path = positionals[0]!;
      const vmm = oneOf(values.vmm ?? 'firecracker', 'vmm', VMMS);
      if (values['vmm-version'] !== undefined && vmm !== 'firecracker') {
        throw new HangarError('INVALID_ARGUMENT', '--vmm-version applies to firecracker only', { field: 'vmm-version' });
      }
      if (values.acpi && vmm !== 'qemu-microvm') {
        throw new HangarError('INVALID_ARGUMENT', `--acpi applies to qemu-microvm only (Firecracker provides ACPI from 1.8 on its own)`, { field: 'acpi' });
      }
      const report = await lintKernel(path, {
        vmm,
        vmmVersion: typeof values['vmm-version'] === 'string' ? values['vmm-version'] : NEWEST_FIRECRACKER,
        initrd: values.initrd === true,
        ipBoot: values['no-ip'] !== true,
        acpi: values.acpi === true,
        pci: values.pci === true,
      });
      io.out(values.json ? JSON.stringify(report) + '\n' : renderLintReport(report, path));
      return report.ok ? 0 : 1;
    },
  },
];
