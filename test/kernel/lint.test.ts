import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isHangarError } from '../../src/errors.js';
import { parseConfig, withOptions, type KernelConfig, type OptionValue } from '../../src/kernel/config.js';
import { identifyKernel } from '../../src/kernel/image-reader.js';
import { lintConfig, lintImage, lintKernel, resolveTarget, type LintOptions, type LintReport } from '../../src/kernel/lint.js';
import { NEWEST_FIRECRACKER, RULES, guestKernelVerdict, supportedGuestSeries } from '../../src/kernel/rules.js';
import { debianConfigText, skipUnlessDebianConfigs } from '../support/debian-configs.js';
import { SHARED, skipUnlessShared } from '../support/env.js';
import { GOOD_CONFIG, makeElf } from './fixtures.js';

const codes = (r: LintReport, severity?: string): string[] => r.findings.filter((f) => !severity || f.severity === severity).map((f) => f.code);
const errors = (r: LintReport): string[] => codes(r, 'error');
const good = parseConfig(GOOD_CONFIG);

// ---- Firecracker's own CI guest configs

const GUEST_CONFIGS = SHARED ? join(SHARED, 'fixtures/firecracker/guest-configs') : '';
const fcConfig = (name: string): string => join(GUEST_CONFIGS, name);

test("Firecracker's CI guest configs pass for the releases that support them", { skip: skipUnlessShared() }, async () => {
  const cases: [string, string[]][] = [
    ['microvm-kernel-ci-x86_64-5.10.config', ['1.9', '1.13', '1.16']],
    ['microvm-kernel-ci-x86_64-5.10-no-acpi.config', ['1.9', '1.13', '1.16']],
    ['microvm-kernel-ci-x86_64-6.1.config', ['1.9', '1.13', '1.16']],
    ['microvm-kernel-ci-x86_64-6.18.config', ['1.16']],
    ['v1.9.1-microvm-kernel-ci-x86_64-4.14.config', ['1.9']],
  ];
  for (const [file, versions] of cases) {
    for (const vmmVersion of versions) {
      const r = await lintKernel(fcConfig(file), { vmm: 'firecracker', vmmVersion });
      assert.equal(r.ok, true, `${file} on ${vmmVersion}: ${JSON.stringify(errors(r))}`);
      assert.deepEqual(codes(r, 'warning').filter((c) => c !== 'KL_KERNEL_VERSION_UNKNOWN'), [], `${file} on ${vmmVersion}`);
      assert.equal(r.kernel.source, 'config');
      assert.equal(r.kernel.format, 'config');
    }
  }
});

test('the 4.14 CI config passes for Firecracker 1.9 but fails for 1.13 and later', { skip: skipUnlessShared() }, async () => {
  const file = fcConfig('v1.9.1-microvm-kernel-ci-x86_64-4.14.config');
  const old = await lintKernel(file, { vmm: 'firecracker', vmmVersion: '1.9' });
  assert.equal(old.ok, true);
  assert.equal(old.kernel.version, null, 'the file has no header');
  assert.match(old.findings.find((f) => f.code === 'KL_KERNEL_VERSION_UNKNOWN')!.message, /before 4\.18/);
  for (const vmmVersion of ['1.10', '1.13', '1.16']) {
    const r = await lintKernel(file, { vmm: 'firecracker', vmmVersion });
    assert.deepEqual(errors(r), ['KL_FC_GUEST_KERNEL_UNSUPPORTED'], vmmVersion);
    assert.match(r.findings[0]!.message, /before 4\.18.*older than 5\.10/);
  }
  // With its real release known (as in its image's banner), the message names the removal.
  const named = lintConfig({ ...parseConfig(readFileSync(file, 'utf8')), version: '4.14.336' }, { vmm: 'firecracker', vmmVersion: '1.13' });
  assert.match(named.findings.find((f) => f.code === 'KL_FC_GUEST_KERNEL_UNSUPPORTED')!.message, /removed in 1\.10/);
  assert.match(named.findings.find((f) => f.code === 'KL_FC_GUEST_KERNEL_UNSUPPORTED')!.fix, /Firecracker release before 1\.10/);
});

test('device discovery: the no-ACPI 5.10 config needs command-line devices, the ACPI one does not (from Firecracker 1.8)', { skip: skipUnlessShared() }, async () => {
  const noAcpi = parseConfig(readFileSync(fcConfig('microvm-kernel-ci-x86_64-5.10-no-acpi.config'), 'utf8'));
  const acpi = parseConfig(readFileSync(fcConfig('microvm-kernel-ci-x86_64-5.10.config'), 'utf8'));
  const off = { VIRTIO_MMIO_CMDLINE_DEVICES: 'n' };
  // Both read command-line devices as shipped.
  assert.equal(lintConfig(noAcpi, { vmm: 'firecracker', vmmVersion: '1.7' }).ok, true);
  assert.equal(lintConfig(acpi, { vmm: 'firecracker', vmmVersion: '1.7' }).ok, true);
  // Without them, only the ACPI kernel still finds its devices, and only where Firecracker provides ACPI.
  assert.deepEqual(errors(lintConfig(withOptions(noAcpi, off), { vmm: 'firecracker', vmmVersion: '1.16' })), ['KL_VIRTIO_MMIO_NO_DISCOVERY']);
  assert.equal(lintConfig(withOptions(acpi, off), { vmm: 'firecracker', vmmVersion: '1.9' }).ok, true);
  assert.deepEqual(errors(lintConfig(withOptions(acpi, off), { vmm: 'firecracker', vmmVersion: '1.7' })), ['KL_VIRTIO_MMIO_NO_DISCOVERY']);
  // ACPI kernels see the devices twice on Firecracker 1.8+; the no-ACPI one is told MPTable boot is deprecated.
  assert.ok(codes(lintConfig(acpi, { vmm: 'firecracker', vmmVersion: '1.9' })).includes('KL_DEVICES_ANNOUNCED_TWICE'));
  assert.ok(codes(lintConfig(noAcpi, { vmm: 'firecracker', vmmVersion: '1.9' })).includes('KL_FC_LEGACY_BOOT_DEPRECATED'));
  assert.ok(!codes(lintConfig(noAcpi, { vmm: 'firecracker', vmmVersion: '1.7' })).includes('KL_FC_LEGACY_BOOT_DEPRECATED'));
  // QEMU microvm: acpi=off puts devices on the command line only, acpi=on in ACPI only.
  assert.equal(lintConfig(noAcpi, { vmm: 'qemu-microvm' }).ok, true);
  assert.deepEqual(errors(lintConfig(noAcpi, { vmm: 'qemu-microvm', acpi: true })), ['KL_VIRTIO_MMIO_NO_DISCOVERY']);
  const fc61 = await lintKernel(fcConfig('microvm-kernel-ci-x86_64-6.1.config'), { vmm: 'qemu-microvm' });
  assert.deepEqual(errors(fc61), ['KL_VIRTIO_MMIO_NO_DISCOVERY']);
  assert.equal((await lintKernel(fcConfig('microvm-kernel-ci-x86_64-6.1.config'), { vmm: 'qemu-microvm', acpi: true })).ok, true);
});

// ---- Debian's own configs

const VIRTIO_MODULE_CODES = ['KL_VIRTIO_MODULE', 'KL_VIRTIO_MMIO_MODULE', 'KL_VIRTIO_BLK_MODULE', 'KL_VIRTIO_NET_MODULE'];

test("Debian's cloud and generic 6.1 configs: virtio as modules fails without an initrd, passes with one", { skip: skipUnlessDebianConfigs() }, async () => {
  for (const flavour of ['cloud-amd64', 'amd64'] as const) {
    const cfg = parseConfig(await debianConfigText(flavour));
    assert.match(cfg.version ?? '', /^6\.1\./);
    const bare = lintConfig(cfg, { vmm: 'firecracker' });
    assert.equal(bare.ok, false);
    for (const c of VIRTIO_MODULE_CODES) assert.ok(errors(bare).includes(c), `${flavour}: ${c}`);
    // Debian's generic kernel even has ext4 as a module; the cloud kernel builds it in.
    assert.equal(errors(bare).includes('KL_EXT4_FS_MODULE'), flavour === 'amd64');
    assert.ok(errors(bare).includes('KL_IP_PNP'), 'Debian kernels have no IP autoconfiguration');

    const withInitrd = lintConfig(cfg, { vmm: 'firecracker', initrd: true });
    assert.deepEqual(errors(withInitrd).filter((c) => c.endsWith('_MODULE') || c.endsWith('_MISSING')), [], flavour);
    const mods = withInitrd.findings.find((f) => f.code === 'KL_INITRD_MUST_LOAD_MODULES')!;
    assert.match(mods.message, /virtio, virtio_ring, virtio_mmio, virtio_blk, failover, net_failover, virtio_net/);
    assert.deepEqual(errors(withInitrd), ['KL_IP_PNP'], 'ip= still needs IP_PNP, initrd or not');
    // With an initrd, without ip=, Debian's kernels boot on Firecracker through ACPI discovery.
    assert.equal(lintConfig(cfg, { vmm: 'firecracker', initrd: true, ipBoot: false }).ok, true, flavour);
    // QEMU microvm: only with acpi=on (Debian has no command-line devices), as the boot recipe measured.
    assert.deepEqual(errors(lintConfig(cfg, { vmm: 'qemu-microvm', initrd: true, ipBoot: false })), ['KL_VIRTIO_MMIO_NO_DISCOVERY']);
    assert.equal(lintConfig(cfg, { vmm: 'qemu-microvm', initrd: true, ipBoot: false, acpi: true }).ok, true);
  }
});

test('lint of the largest Debian config takes well under 100 ms', { skip: skipUnlessDebianConfigs() }, async () => {
  const text = await debianConfigText('amd64');
  const times: number[] = [];
  for (let i = 0; i < 7; i++) {
    const t0 = performance.now();
    lintConfig(parseConfig(text), { vmm: 'firecracker' });
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  assert.ok(times[3]! < 100, `median ${times[3]} ms`);
});

// ---- table-driven: each rule fires when its option is removed or set to m, from a config that passes

interface Toggle {
  code: string;
  /** Applied to the baseline first (both the config that passes and the one that fails). */
  base?: Record<string, OptionValue | undefined>;
  change?: Record<string, OptionValue | undefined>;
  version?: string | null;
  opts?: Partial<LintOptions>;
}
const FC: LintOptions = { vmm: 'firecracker' };
const PCI_BASE = { PCI: 'y', PCI_MSI: 'y', VIRTIO_PCI: 'y', ACPI: 'y' };
const TOGGLES: Toggle[] = [
  { code: 'KL_ARCH_NOT_X86_64', change: { X86_64: undefined } },
  ...['VIRTIO', 'VIRTIO_MMIO', 'VIRTIO_BLK', 'VIRTIO_NET', 'EXT4_FS'].flatMap((k): Toggle[] => [
    { code: `KL_${k}_MISSING`, change: { [k]: undefined } },
    { code: `KL_${k}_MODULE`, change: { [k]: 'm' } },
  ]),
  { code: 'KL_VIRTIO_PCI_MISSING', base: PCI_BASE, change: { VIRTIO_PCI: undefined }, opts: { pci: true } },
  { code: 'KL_VIRTIO_PCI_MODULE', base: PCI_BASE, change: { VIRTIO_PCI: 'm' }, opts: { pci: true } },
  { code: 'KL_PCI_TRANSPORT_NEEDS_PCI', base: PCI_BASE, change: { PCI_MSI: undefined }, opts: { pci: true } },
  { code: 'KL_PCI_TRANSPORT_NEEDS_PCI', base: PCI_BASE, change: { ACPI: undefined }, opts: { pci: true } },
  { code: 'KL_VIRTIO_MMIO_NO_DISCOVERY', change: { VIRTIO_MMIO_CMDLINE_DEVICES: undefined } },
  { code: 'KL_VIRTIO_MMIO_NO_DISCOVERY', change: { VIRTIO_MMIO_CMDLINE_DEVICES: undefined }, opts: { vmm: 'qemu-microvm' } },
  { code: 'KL_VIRTIO_MMIO_NO_DISCOVERY', opts: { vmm: 'qemu-microvm', acpi: true } },
  { code: 'KL_ACPI_WITHOUT_PCI', change: { ACPI: 'y' } },
  { code: 'KL_ACPI_WITHOUT_PCI', change: { ACPI: 'y' }, opts: { vmm: 'qemu-microvm', acpi: true } },
  { code: 'KL_DEVICES_ANNOUNCED_TWICE', change: { ACPI: 'y', PCI: 'y' } },
  { code: 'KL_FC_LEGACY_BOOT_DEPRECATED', change: {} },
  { code: 'KL_SERIAL_CONSOLE', change: { SERIAL_8250_CONSOLE: undefined } },
  { code: 'KL_SERIAL_CONSOLE', change: { SERIAL_8250: 'm', SERIAL_8250_CONSOLE: undefined } },
  { code: 'KL_PRINTK', change: { PRINTK: undefined } },
  { code: 'KL_KVM_GUEST', change: { KVM_GUEST: undefined } },
  { code: 'KL_KVM_GUEST_QEMU', change: { KVM_GUEST: undefined }, opts: { vmm: 'qemu-microvm' } },
  { code: 'KL_CMDLINE_OVERRIDE', change: { CMDLINE_BOOL: 'y', CMDLINE_OVERRIDE: 'y' } },
  ...['BINFMT_ELF', 'BINFMT_SCRIPT', 'DEVTMPFS', 'PROC_FS', 'SYSFS', 'FUTEX', 'EPOLL', 'NET', 'INET', 'UNIX', 'TMPFS', 'UNIX98_PTYS']
    .map((k): Toggle => ({ code: `KL_${k}`, change: { [k]: 'n' } })),
  { code: 'KL_DEVTMPFS_MOUNT', change: { DEVTMPFS_MOUNT: undefined } },
  { code: 'KL_INITRD_UNSUPPORTED', change: { BLK_DEV_INITRD: undefined }, opts: { initrd: true } },
  { code: 'KL_INITRD_MUST_LOAD_MODULES', change: { VIRTIO_BLK: 'm' }, opts: { initrd: true } },
  { code: 'KL_IP_PNP', change: { IP_PNP: undefined } },
  { code: 'KL_IP_PNP_NET_MODULE', change: { VIRTIO_NET: 'm' }, opts: { initrd: true } },
  { code: 'KL_IP_PNP_NET_MODULE', change: { VIRTIO_MMIO: 'm' }, opts: { initrd: true } },
  { code: 'KL_QEMU_PVH_CONFIG', change: { PVH: undefined }, opts: { vmm: 'qemu-microvm' } },
  { code: 'KL_FC_GUEST_KERNEL_UNSUPPORTED', version: '4.14.336', opts: { vmmVersion: '1.13' } },
  { code: 'KL_FC_GUEST_KERNEL_UNSUPPORTED', version: '4.19.100', opts: { vmmVersion: '1.13' } },
  { code: 'KL_FC_GUEST_KERNEL_DEPRECATED', version: '4.14.336', opts: { vmmVersion: '1.9' } },
  { code: 'KL_FC_GUEST_KERNEL_UNVALIDATED', version: '5.15.10' },
  { code: 'KL_FC_GUEST_KERNEL_UNVALIDATED', version: '6.18.2', opts: { vmmVersion: '1.13' } },
  { code: 'KL_KERNEL_VERSION_UNKNOWN', version: null },
  { code: 'KL_VMM_VERSION_NEWER', opts: { vmmVersion: '1.17' } },
];
/** Codes only an image can trigger; tested below with synthetic ELFs and in image-reader.test.ts. */
const IMAGE_CODES = ['KL_NO_IKCONFIG', 'KL_IMAGE_NOT_X86_64', 'KL_FC_BZIMAGE', 'KL_FC_BOOT_PROTOCOL', 'KL_QEMU_ELF_NO_PVH'];
/** Fires on every config (it explains, never judges). */
const ALWAYS = ['KL_SWIOTLB_NOT_REQUIRED'];

const baseOf = (t: Toggle): KernelConfig => withOptions(good, t.base ?? {});
function mutate(t: Toggle): KernelConfig {
  const cfg = withOptions(baseOf(t), t.change ?? {});
  return t.version === undefined ? cfg : { ...cfg, version: t.version };
}

test('the baseline config passes for both VMMs and every known Firecracker release', () => {
  for (const vmmVersion of ['1.9', '1.10', '1.12', '1.13', '1.16']) assert.deepEqual(errors(lintConfig(good, { vmm: 'firecracker', vmmVersion })), [], vmmVersion);
  assert.equal(lintConfig(good, { vmm: 'qemu-microvm' }).ok, true);
  assert.deepEqual(codes(lintConfig(good, { vmm: 'qemu-microvm' })), ['KL_SWIOTLB_NOT_REQUIRED']);
});

for (const t of TOGGLES) {
  const show = (o: object | undefined): string => JSON.stringify(o ?? {}, (_k, v: unknown) => (v === undefined ? 'unset' : v));
  const label = `${t.code} fires for ${show(t.change)}${t.version !== undefined ? ` version ${t.version}` : ''} ${show(t.opts)}`;
  test(label, () => {
    const opts = { ...FC, ...t.opts } as LintOptions;
    const rule = RULES.find((r) => r.code === t.code);
    assert.ok(rule, `no rule ${t.code}`);
    const isBaselineFinding = Object.keys(t.change ?? {}).length === 0 && t.version === undefined;
    if (!isBaselineFinding) assert.ok(!codes(lintConfig(baseOf(t), opts)).includes(t.code), 'the baseline must not already have it');
    const r = lintConfig(mutate(t), opts);
    const f = r.findings.find((x) => x.code === t.code);
    assert.ok(f, `${t.code} not in ${JSON.stringify(codes(r))}`);
    assert.equal(f.severity, rule.severity);
    assert.equal(f.option, rule.option);
    assert.ok(f.message.length > 10 && !f.message.includes('\n'), 'a one-line message');
    assert.ok(f.fix.length > 5 && !f.fix.includes('\n'), 'a one-line fix');
    assert.equal(r.ok, !r.findings.some((x) => x.severity === 'error'));
  });
}

test('synthetic images: boot protocol findings per VMM and release', async () => {
  const pvh = await identifyKernel('vmlinux', makeElf({ pvh: true, ikconfig: GOOD_CONFIG }));
  const plain = await identifyKernel('vmlinux', makeElf({ pvh: false, ikconfig: GOOD_CONFIG }));
  const msg = (r: LintReport): string => r.findings.find((f) => f.code === 'KL_FC_BOOT_PROTOCOL')!.message;
  assert.match(msg(lintImage(pvh, { vmm: 'firecracker', vmmVersion: '1.12' })), /PVH entry/);
  assert.match(msg(lintImage(pvh, { vmm: 'firecracker', vmmVersion: '1.9' })), /ignores the PVH note/);
  assert.match(msg(lintImage(plain, { vmm: 'firecracker' })), /Linux 64-bit boot protocol/);
  assert.equal(lintImage(plain, { vmm: 'firecracker' }).ok, true, 'Firecracker does not need PVH');
  assert.deepEqual(errors(lintImage(plain, { vmm: 'qemu-microvm' })), ['KL_QEMU_ELF_NO_PVH']);
  assert.equal(lintImage(pvh, { vmm: 'qemu-microvm' }).ok, true);
  const r = lintImage(pvh, { vmm: 'qemu-microvm' });
  assert.deepEqual(r.kernel, { version: '6.1.99', source: 'ikconfig', format: 'elf', pvh: true });
});

test('every rule has a stable KL_ code, a severity, and is exercised by a test', () => {
  const seen = new Set<string>();
  for (const r of RULES) {
    assert.match(r.code, /^KL_[A-Z0-9_]+$/);
    assert.ok(!seen.has(r.code), `duplicate ${r.code}`);
    seen.add(r.code);
    assert.ok(['error', 'warning', 'info'].includes(r.severity));
    assert.ok(r.option === null || /^CONFIG_[A-Z0-9_]+(, CONFIG_[A-Z0-9_]+)*$/.test(r.option), `${r.code} option ${r.option}`);
  }
  const covered = new Set([...TOGGLES.map((t) => t.code), ...IMAGE_CODES, ...ALWAYS]);
  assert.deepEqual([...seen].filter((c) => !covered.has(c)), [], 'rules without a test');
  assert.deepEqual([...covered].filter((c) => !seen.has(c)), [], 'tests for rules that do not exist');
});

test('findings come errors first, then warnings, then info', () => {
  const r = lintConfig(withOptions(good, { VIRTIO_BLK: undefined, PRINTK: undefined }), FC);
  const order = r.findings.map((f) => f.severity);
  assert.deepEqual(order, [...order].sort((a, b) => ['error', 'warning', 'info'].indexOf(a) - ['error', 'warning', 'info'].indexOf(b)));
  assert.equal(order[0], 'error');
});

test('SWIOTLB is explained, never required', () => {
  for (const value of ['y', undefined]) {
    const r = lintConfig(withOptions(good, { SWIOTLB: value }), FC);
    assert.equal(r.ok, true);
    const f = r.findings.find((x) => x.code === 'KL_SWIOTLB_NOT_REQUIRED')!;
    assert.equal(f.severity, 'info');
    assert.match(f.message, /VIRTIO_F_ACCESS_PLATFORM/);
    assert.match(f.message, /Failed to enable 64-bit or 32-bit DMA/);
  }
});

// ---- targets and the Firecracker knowledge tables

test('resolveTarget applies defaults and validates the release', () => {
  assert.deepEqual(resolveTarget({ vmm: 'firecracker' }), { vmm: 'firecracker', vmmVersion: NEWEST_FIRECRACKER, initrd: false, ipBoot: true, acpi: true, pci: false });
  assert.deepEqual(resolveTarget({ vmm: 'firecracker', vmmVersion: 'v1.7.2' }).acpi, false);
  assert.equal(resolveTarget({ vmm: 'firecracker', vmmVersion: '1.13.1' }).vmmVersion, '1.13');
  assert.deepEqual(resolveTarget({ vmm: 'qemu-microvm', vmmVersion: '9.9' }), { vmm: 'qemu-microvm', vmmVersion: null, initrd: false, ipBoot: true, acpi: false, pci: false });
  const invalid = (e: unknown): boolean => isHangarError(e, 'INVALID_ARGUMENT');
  assert.throws(() => resolveTarget({ vmm: 'cloud-hypervisor' as 'firecracker' }), invalid);
  assert.throws(() => resolveTarget({ vmm: 'firecracker', vmmVersion: '1' }), invalid);
  assert.throws(() => resolveTarget({ vmm: 'firecracker', vmmVersion: '1.13; rm -rf /' }), invalid);
  assert.throws(() => resolveTarget({ vmm: 'firecracker', vmmVersion: '0.25' }), invalid);
  assert.throws(() => resolveTarget({ vmm: 'firecracker', vmmVersion: '1.12', pci: true }), /--enable-pci came in 1\.13/);
});

test('lintKernel validates options before reading the file', async () => {
  await assert.rejects(lintKernel('/nonexistent', { vmm: 'firecracker', vmmVersion: 'x' }), (e) => isHangarError(e, 'INVALID_ARGUMENT'));
  await assert.rejects(lintKernel('/nonexistent', { vmm: 'firecracker' }), (e) => isHangarError(e, 'KERNEL_UNREADABLE'));
});

test('guest kernel series per Firecracker release follow the kernel policy', () => {
  const series = (v: string): string => supportedGuestSeries(v).map((s) => s.series + (s.deprecated ? '(d)' : '')).join(' ');
  assert.equal(series('1.8'), '4.14 5.10');
  assert.equal(series('1.9'), '4.14(d) 5.10 6.1');
  assert.equal(series('1.10'), '5.10 6.1');
  assert.equal(series('1.13'), '5.10 6.1');
  assert.equal(series('1.16'), '5.10 6.1 6.18');
  const v = (exact: string | null, below: string | null = null) => ({ exact, min: null, below, basis: null });
  assert.deepEqual(guestKernelVerdict('1.13', v('4.14.1')), { kind: 'removed', removedIn: '1.10' });
  assert.deepEqual(guestKernelVerdict('1.13', v('4.9.1')), { kind: 'too-old', oldest: '5.10' });
  assert.deepEqual(guestKernelVerdict('1.13', v('6.6.1')), { kind: 'unvalidated' });
  assert.deepEqual(guestKernelVerdict('1.9', v('4.14.1')), { kind: 'deprecated' });
  assert.deepEqual(guestKernelVerdict('1.16', v('6.18.0')), { kind: 'supported' });
  assert.deepEqual(guestKernelVerdict('1.13', v(null, '4.18')), { kind: 'dated-too-old', below: '4.18', oldest: '5.10' });
  assert.deepEqual(guestKernelVerdict('1.9', v(null, '4.18')), { kind: 'unknown' });
});
