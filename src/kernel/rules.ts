// The kernel lint rules: data plus pure predicates. Each rule has a stable KL_ code, one severity, the option(s) it
// is about, a one-line message and a fix. What each VMM release offers is kept as data here too, with the source it
// was taken from, so a new Firecracker release is a table edit, not new logic.
//
// Sources: Firecracker docs/kernel-policy.md (guest kernel table, "Minimal boot requirements", "Booting with ACPI",
// "Booting with PCI", "Kernel command line parameters"), docs/pvh.md, CHANGELOG (1.8 ACPI #4428, 1.9 6.1 guests and
// 4.14 deprecation, 1.10 4.14 removal #4804, 1.12 PVH #5048, 1.13 PCI #5364), firecracker#4688 (ACPI without
// CONFIG_PCI panics), firecracker#6037 (bzImage loading, after 1.16); QEMU hw/i386/x86 loader ("Error loading
// uncompressed kernel without PVH ELF Note") and microvm (devices on the command line only with acpi=off).
import type { Finding, Severity } from '../findings.js';
import { compareVersions, describeOption, isBuiltin, isEnabled, isModule, seriesOf, type KernelConfig, type KernelVersionInfo } from './config.js';
import { EM_X86_64, type KernelFormat } from './image-reader.js';

export type Vmm = 'firecracker' | 'qemu-microvm';

/** The machine the kernel must boot on, fully resolved (defaults applied, version validated). */
export interface LintTarget {
  vmm: Vmm;
  /** Firecracker release 'X.Y' the rules are evaluated for; null for QEMU (microvm rules do not vary by release). */
  vmmVersion: string | null;
  /** An initrd is booted (it can load drivers built as modules). */
  initrd: boolean;
  /** The kernel's ip= parameter configures the guest network. */
  ipBoot: boolean;
  /** The VMM provides ACPI tables (Firecracker from 1.8; QEMU microvm with acpi=on). */
  acpi: boolean;
  /** virtio devices sit on PCI instead of virtio-mmio (Firecracker --enable-pci from 1.13; microvm pcie=on). */
  pci: boolean;
}

/** Everything a rule may look at. `config` is empty (and configKnown false) when an image carries no IKCONFIG. */
export interface RuleContext {
  config: KernelConfig;
  configKnown: boolean;
  format: KernelFormat;
  pvh: boolean | null;
  elfMachine: number | null;
  version: KernelVersionInfo;
  target: LintTarget;
  /** The Firecracker release asked for, when newer than the rules know (target.vmmVersion is then the newest known). */
  requestedVmmVersion: string | null;
}

/** Which boot argument a rule guards; the boot-args builder refuses an argument whose rule fails. */
export type BootArgKey = 'console' | 'root' | 'ip' | 'any';

export interface Rule {
  code: string;
  severity: Severity;
  /** Option(s) the rule is about, e.g. 'CONFIG_IP_PNP'; null when none. */
  option: string | null;
  /** 'config' rules need the kernel's config; 'image' rules judge the file, version and target. */
  scope: 'config' | 'image';
  bootArg?: BootArgKey;
  /** True when the rule's finding applies. */
  when: (c: RuleContext) => boolean;
  message: string | ((c: RuleContext) => string);
  fix: string | ((c: RuleContext) => string);
}

// ---- VMM knowledge (data)

export const NEWEST_FIRECRACKER = '1.16';
export const OLDEST_FIRECRACKER = '1.0';

export const FIRECRACKER_FEATURES = {
  /** ACPI tables describing vCPUs, interrupt controllers and virtio-mmio devices (CHANGELOG 1.8.0, #4428). */
  acpi: '1.8',
  /** PVH entry when the ELF carries XEN_ELFNOTE_PHYS32_ENTRY (CHANGELOG 1.12.0, #5048). */
  pvh: '1.12',
  /** Optional virtio-pci transport with --enable-pci (CHANGELOG 1.13.0, #5364). */
  pci: '1.13',
} as const;

/** Guest kernel series per Firecracker release, from docs/kernel-policy.md at each release and the CHANGELOG. */
export const FIRECRACKER_GUEST_KERNELS: readonly { series: string; from: string; deprecated?: string; removed?: string }[] = [
  { series: '4.14', from: '1.0', deprecated: '1.9', removed: '1.10' },
  { series: '5.10', from: '1.0' },
  { series: '6.1', from: '1.9' },
  { series: '6.18', from: '1.16' },
];

const atLeast = (v: string | null, min: string): boolean => v !== null && compareVersions(v, min) >= 0;
export const fcHas = (t: LintTarget, feature: keyof typeof FIRECRACKER_FEATURES): boolean =>
  t.vmm === 'firecracker' && atLeast(t.vmmVersion, FIRECRACKER_FEATURES[feature]);

/** Guest kernel series supported by a Firecracker release, oldest first. */
export function supportedGuestSeries(fcVersion: string): { series: string; deprecated: boolean }[] {
  return FIRECRACKER_GUEST_KERNELS
    .filter((k) => atLeast(fcVersion, k.from) && !(k.removed && atLeast(fcVersion, k.removed)))
    .map((k) => ({ series: k.series, deprecated: !!k.deprecated && atLeast(fcVersion, k.deprecated) }))
    .sort((a, b) => compareVersions(a.series, b.series));
}

export type GuestKernelVerdict =
  | { kind: 'supported' }
  | { kind: 'deprecated' }
  | { kind: 'removed'; removedIn: string }
  | { kind: 'too-old'; oldest: string }
  | { kind: 'unvalidated' }
  | { kind: 'dated-too-old'; below: string; oldest: string }
  | { kind: 'unknown' };

/** Judges the guest kernel's release against what a Firecracker release supports. */
export function guestKernelVerdict(fcVersion: string, v: KernelVersionInfo): GuestKernelVerdict {
  const supported = supportedGuestSeries(fcVersion);
  const oldest = supported[0]?.series ?? '0.0';
  if (v.exact) {
    const series = seriesOf(v.exact)!;
    const hit = supported.find((s) => s.series === series);
    if (hit) return { kind: hit.deprecated ? 'deprecated' : 'supported' };
    const dropped = FIRECRACKER_GUEST_KERNELS.find((k) => k.series === series && k.removed && atLeast(fcVersion, k.removed));
    if (dropped) return { kind: 'removed', removedIn: dropped.removed! };
    if (compareVersions(series, oldest) < 0) return { kind: 'too-old', oldest };
    return { kind: 'unvalidated' };
  }
  if (v.below && compareVersions(v.below, oldest) <= 0) return { kind: 'dated-too-old', below: v.below, oldest };
  return { kind: 'unknown' };
}

// ---- helpers for messages

const vmmName = (t: LintTarget): string => (t.vmm === 'firecracker' ? `Firecracker ${t.vmmVersion}` : 'QEMU microvm');
const seriesList = (t: LintTarget): string =>
  supportedGuestSeries(t.vmmVersion!).map((s) => (s.deprecated ? `${s.series} (deprecated)` : s.series)).join(', ');
/** '5.10 or 6.1': the supported, not deprecated series, for fixes. */
const seriesChoice = (t: LintTarget): string => {
  const s = supportedGuestSeries(t.vmmVersion!).filter((x) => !x.deprecated).map((x) => x.series);
  return s.length > 1 ? `${s.slice(0, -1).join(', ')} or ${s[s.length - 1]}` : (s[0] ?? 'supported');
};
const versionText = (v: KernelVersionInfo): string => {
  if (v.exact) return v.exact;
  if (v.min && v.below) return `between ${v.min} and ${v.below} (dated from Kconfig symbols)`;
  if (v.below) return `before ${v.below} (dated from Kconfig symbols)`;
  if (v.min) return `${v.min} or later (dated from Kconfig symbols)`;
  return 'unknown';
};

/** Options that must be 'y' or 'm' for the target, each needing an initrd to load it when 'm'. */
interface Driver {
  key: string;
  what: string;
  /** Kernel module names the initrd must load for it, in load order. */
  modules: string[];
  bootArg?: BootArgKey;
  when?: (t: LintTarget) => boolean;
}

// Module load order follows the dependencies (virtio before the transport before the drivers).
export const DRIVERS: readonly Driver[] = [
  { key: 'VIRTIO', what: 'virtio core, which every microVM device needs', modules: ['virtio', 'virtio_ring'] },
  { key: 'VIRTIO_MMIO', what: 'the virtio-mmio transport that microVM devices sit on', modules: ['virtio_mmio'], when: (t) => !t.pci },
  { key: 'VIRTIO_PCI', what: 'the virtio-pci transport the VMM uses with PCI enabled', modules: ['virtio_pci'], when: (t) => t.pci },
  { key: 'VIRTIO_BLK', what: 'the virtio block driver for the root disk /dev/vda', modules: ['virtio_blk'], bootArg: 'root' },
  { key: 'VIRTIO_NET', what: 'the virtio network driver the desktop is served through', modules: ['failover', 'net_failover', 'virtio_net'] },
  { key: 'EXT4_FS', what: 'ext4, the filesystem of the root disk', modules: ['crc16', 'mbcache', 'jbd2', 'ext4'], bootArg: 'root' },
];

const driverApplies = (d: Driver, t: LintTarget): boolean => !d.when || d.when(t);

function driverRules(d: Driver): Rule[] {
  const option = `CONFIG_${d.key}`;
  return [
    {
      code: `KL_${d.key}_MISSING`, severity: 'error', option, scope: 'config', bootArg: d.bootArg,
      when: (c) => driverApplies(d, c.target) && !isEnabled(c.config, d.key),
      message: `${option} is not set: no ${d.what}`,
      fix: `Set ${option}=y`,
    },
    {
      code: `KL_${d.key}_MODULE`, severity: 'error', option, scope: 'config', bootArg: d.bootArg,
      when: (c) => driverApplies(d, c.target) && !c.target.initrd && isModule(c.config, d.key),
      message: `${option}=m and no initrd loads it: the boot has no ${d.what}`,
      fix: `Set ${option}=y, or boot an initrd that loads ${d.modules.join(', ')} (lint with --initrd)`,
    },
  ];
}

/** Modules the initrd must load, in order, for the drivers built as modules. */
export function modulesForInitrd(c: RuleContext): string[] {
  const mods = DRIVERS.filter((d) => driverApplies(d, c.target) && isModule(c.config, d.key)).flatMap((d) => d.modules);
  return [...new Set(mods)];
}

/** Devices reachable through the command line (virtio_mmio.device=) or through ACPI on this target. */
function discoveryPaths(c: RuleContext): { cmdline: boolean; acpi: boolean } {
  const acpiTables = c.target.acpi;
  const cmdlineOffered = c.target.vmm === 'firecracker' || !c.target.acpi; // microvm puts devices on the cmdline only with acpi=off
  return {
    cmdline: cmdlineOffered && isBuiltin(c.config, 'VIRTIO_MMIO_CMDLINE_DEVICES'),
    acpi: acpiTables && isBuiltin(c.config, 'ACPI') && isBuiltin(c.config, 'PCI'),
  };
}

/** Options IP autoconfiguration needs before any initrd runs (it runs as a late initcall). */
function ipPathModules(c: RuleContext): string[] {
  const keys = ['VIRTIO', c.target.pci ? 'VIRTIO_PCI' : 'VIRTIO_MMIO', 'VIRTIO_NET'];
  return keys.filter((k) => isModule(c.config, k)).map((k) => `CONFIG_${k}`);
}

// ---- the rules

export const RULES: readonly Rule[] = [
  // Architecture
  {
    code: 'KL_ARCH_NOT_X86_64', severity: 'error', option: 'CONFIG_X86_64', scope: 'config',
    when: (c) => !isBuiltin(c.config, 'X86_64'),
    message: (c) => `Not an x86_64 kernel (${describeOption(c.config, 'X86_64')}); Hangar's VMMs boot x86_64 guests`,
    fix: 'Build for ARCH=x86_64 with CONFIG_64BIT=y',
  },
  {
    code: 'KL_NO_IKCONFIG', severity: 'error', option: 'CONFIG_IKCONFIG', scope: 'image',
    when: (c) => !c.configKnown,
    message: 'The image carries no IKCONFIG blob, so none of its options can be checked',
    fix: (c) => `Lint the .config of the same build${c.version.exact ? ` (Debian installs it as /boot/config-${c.version.exact})` : ''}, or rebuild with CONFIG_IKCONFIG=y`,
  },
  {
    code: 'KL_IMAGE_NOT_X86_64', severity: 'error', option: null, scope: 'image',
    when: (c) => c.elfMachine !== null && c.elfMachine !== EM_X86_64,
    message: (c) => `The image is an ELF for machine ${c.elfMachine}, not x86_64 (62)`,
    fix: 'Boot an x86_64 kernel build',
  },

  // virtio core, transport, block, net, root filesystem
  ...DRIVERS.flatMap(driverRules),
  {
    code: 'KL_VIRTIO_MMIO_NO_DISCOVERY', severity: 'error', option: 'CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES', scope: 'config',
    when: (c) => !c.target.pci && isEnabled(c.config, 'VIRTIO_MMIO') && !discoveryPaths(c).cmdline && !discoveryPaths(c).acpi,
    message: (c) => {
      if (c.target.vmm === 'qemu-microvm' && c.target.acpi) return 'QEMU microvm with acpi=on describes virtio-mmio devices only in ACPI, and this kernel lacks CONFIG_ACPI=y with CONFIG_PCI=y: no device is found';
      if (c.target.vmm === 'qemu-microvm') return 'QEMU microvm with acpi=off announces virtio-mmio devices only as virtio_mmio.device= on the command line, which needs CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y: no device is found';
      if (!fcHas(c.target, 'acpi')) return `${vmmName(c.target)} announces virtio-mmio devices only on the command line (ACPI came in 1.8), which needs CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y: no device is found`;
      return `${vmmName(c.target)} announces virtio-mmio devices on the command line and in ACPI, but this kernel reads neither (CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES off, and ACPI discovery needs CONFIG_ACPI=y and CONFIG_PCI=y)`;
    },
    fix: (c) => (c.target.vmm === 'qemu-microvm' && c.target.acpi)
      ? 'Set CONFIG_ACPI=y and CONFIG_PCI=y, or run microvm with acpi=off and CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y'
      : (c.target.vmm === 'qemu-microvm' || !fcHas(c.target, 'acpi'))
        ? 'Set CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y'
        : 'Set CONFIG_ACPI=y and CONFIG_PCI=y (ACPI discovery), or CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y (legacy, deprecated by Firecracker)',
  },
  {
    code: 'KL_ACPI_WITHOUT_PCI', severity: 'error', option: 'CONFIG_PCI', scope: 'config',
    when: (c) => c.target.acpi && isBuiltin(c.config, 'ACPI') && !isBuiltin(c.config, 'PCI'),
    message: (c) => `CONFIG_ACPI=y without CONFIG_PCI while ${vmmName(c.target)} provides ACPI tables: x86 ACPI initialisation needs CONFIG_PCI (guests panic at init, firecracker#4688)`,
    fix: 'Set CONFIG_PCI=y (no PCI device is created; pci=off stays on the command line), or CONFIG_ACPI=n with CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y',
  },
  {
    code: 'KL_PCI_TRANSPORT_NEEDS_PCI', severity: 'error', option: 'CONFIG_PCI, CONFIG_PCI_MSI, CONFIG_ACPI', scope: 'config',
    when: (c) => c.target.pci && !['PCI', 'PCI_MSI', 'ACPI'].every((k) => isBuiltin(c.config, k)),
    message: (c) => `The VMM puts virtio devices on PCI (ECAM found through the ACPI MCFG table, MSI-X interrupts), but ${['PCI', 'PCI_MSI', 'ACPI'].filter((k) => !isBuiltin(c.config, k)).map((k) => describeOption(c.config, k)).join(', ')}`,
    fix: 'Set CONFIG_PCI=y, CONFIG_PCI_MSI=y and CONFIG_ACPI=y (and never pass pci=off or acpi=off), or run the VMM without PCI',
  },
  {
    code: 'KL_DEVICES_ANNOUNCED_TWICE', severity: 'info', option: 'CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES', scope: 'config',
    when: (c) => c.target.vmm === 'firecracker' && !c.target.pci && discoveryPaths(c).cmdline && discoveryPaths(c).acpi,
    message: 'Devices are announced twice (ACPI and virtio_mmio.device=); the second registration fails with harmless dmesg warnings',
    fix: 'Nothing to do; CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=n silences it (Firecracker deprecates the command-line path)',
  },
  {
    code: 'KL_FC_LEGACY_BOOT_DEPRECATED', severity: 'info', option: 'CONFIG_ACPI', scope: 'config',
    when: (c) => fcHas(c.target, 'acpi') && !isBuiltin(c.config, 'ACPI'),
    message: 'Boots through MPTable and command-line devices, which Firecracker deprecated in 1.8 (removal planned for 2.0)',
    fix: 'Plan a kernel with CONFIG_ACPI=y and CONFIG_PCI=y',
  },

  // Console: the ready marker and all boot evidence come from the serial console.
  {
    code: 'KL_SERIAL_CONSOLE', severity: 'error', option: 'CONFIG_SERIAL_8250_CONSOLE', scope: 'config', bootArg: 'console',
    when: (c) => !isBuiltin(c.config, 'SERIAL_8250_CONSOLE'),
    message: (c) => `No console on the 8250 UART (${describeOption(c.config, 'SERIAL_8250')}, ${describeOption(c.config, 'SERIAL_8250_CONSOLE')}): console=ttyS0 shows nothing, and Hangar reads readiness and boot evidence there`,
    fix: 'Set CONFIG_SERIAL_8250=y and CONFIG_SERIAL_8250_CONSOLE=y',
  },
  {
    code: 'KL_PRINTK', severity: 'warning', option: 'CONFIG_PRINTK', scope: 'config',
    when: (c) => !isBuiltin(c.config, 'PRINTK'),
    message: 'CONFIG_PRINTK is not set: the kernel prints nothing, so a failed boot leaves no evidence',
    fix: 'Set CONFIG_PRINTK=y',
  },
  {
    code: 'KL_KVM_GUEST', severity: 'error', option: 'CONFIG_KVM_GUEST', scope: 'config',
    when: (c) => c.target.vmm === 'firecracker' && !isBuiltin(c.config, 'KVM_GUEST'),
    message: 'CONFIG_KVM_GUEST is not set: Firecracker lists it as a minimal x86_64 boot requirement (kvm-clock timekeeping)',
    fix: 'Set CONFIG_HYPERVISOR_GUEST=y, CONFIG_PARAVIRT=y and CONFIG_KVM_GUEST=y',
  },
  {
    code: 'KL_KVM_GUEST_QEMU', severity: 'warning', option: 'CONFIG_KVM_GUEST', scope: 'config',
    when: (c) => c.target.vmm === 'qemu-microvm' && !isBuiltin(c.config, 'KVM_GUEST'),
    message: 'CONFIG_KVM_GUEST is not set: fine under TCG, but on a KVM host the guest lacks kvm-clock',
    fix: 'Set CONFIG_HYPERVISOR_GUEST=y, CONFIG_PARAVIRT=y and CONFIG_KVM_GUEST=y',
  },
  {
    code: 'KL_CMDLINE_OVERRIDE', severity: 'error', option: 'CONFIG_CMDLINE_OVERRIDE', scope: 'config', bootArg: 'any',
    when: (c) => isBuiltin(c.config, 'CMDLINE_OVERRIDE'),
    message: 'CONFIG_CMDLINE_OVERRIDE=y: the kernel ignores the command line the VMM passes (root=, ip=, virtio_mmio.device=)',
    fix: 'Set CONFIG_CMDLINE_OVERRIDE=n',
  },

  // Userspace: the guest init is a shell script that starts an X server and a VNC server.
  ...([
    ['BINFMT_ELF', 'error', 'no program can be executed'],
    ['BINFMT_SCRIPT', 'error', "the guest init (a #! script) cannot be executed"],
    ['DEVTMPFS', 'error', '/dev cannot be populated by the kernel'],
    ['PROC_FS', 'error', '/proc is missing, which the X server, shells and ps need'],
    ['SYSFS', 'error', '/sys is missing'],
    ['FUTEX', 'error', 'glibc threads and locks fail'],
    ['EPOLL', 'error', 'the X and VNC servers need epoll'],
    ['NET', 'error', 'no networking at all'],
    ['INET', 'error', 'no TCP/IP, so the VNC server cannot be reached'],
    ['UNIX', 'error', 'no Unix sockets, which X11 clients use to reach the X server'],
    ['TMPFS', 'warning', 'no tmpfs for /tmp and /run'],
    ['UNIX98_PTYS', 'warning', 'no pseudo-terminals for the desktop terminal'],
  ] as const).map(([key, severity, why]): Rule => ({
    code: `KL_${key}`, severity, option: `CONFIG_${key}`, scope: 'config',
    when: (c) => !isBuiltin(c.config, key),
    message: (c) => `${describeOption(c.config, key)}: ${why}`,
    fix: `Set CONFIG_${key}=y`,
  })),
  {
    code: 'KL_DEVTMPFS_MOUNT', severity: 'warning', option: 'CONFIG_DEVTMPFS_MOUNT', scope: 'config',
    when: (c) => !c.target.initrd && isBuiltin(c.config, 'DEVTMPFS') && !isBuiltin(c.config, 'DEVTMPFS_MOUNT'),
    message: 'CONFIG_DEVTMPFS_MOUNT is not set and no initrd mounts /dev: init starts with the rootfs\'s static /dev, and without /dev/console it has no console',
    fix: 'Set CONFIG_DEVTMPFS_MOUNT=y',
  },

  // Initrd
  {
    code: 'KL_INITRD_UNSUPPORTED', severity: 'error', option: 'CONFIG_BLK_DEV_INITRD', scope: 'config',
    when: (c) => c.target.initrd && !isBuiltin(c.config, 'BLK_DEV_INITRD'),
    message: 'An initrd is booted but CONFIG_BLK_DEV_INITRD is not set: the kernel ignores it',
    fix: 'Set CONFIG_BLK_DEV_INITRD=y (and the RD_* decompressor of the initrd)',
  },
  {
    code: 'KL_INITRD_MUST_LOAD_MODULES', severity: 'info', option: null, scope: 'config',
    when: (c) => c.target.initrd && modulesForInitrd(c).length > 0,
    message: (c) => `Drivers built as modules; the initrd must load, in this order: ${modulesForInitrd(c).join(', ')}`,
    fix: 'Check the initrd lists these modules (e.g. /etc/initramfs-tools/modules), or build them in (=y) and drop the initrd',
  },

  // Networking through the kernel's ip= parameter
  {
    code: 'KL_IP_PNP', severity: 'error', option: 'CONFIG_IP_PNP', scope: 'config', bootArg: 'ip',
    when: (c) => c.target.ipBoot && !isBuiltin(c.config, 'IP_PNP'),
    message: 'ip= on the command line needs kernel IP autoconfiguration (CONFIG_IP_PNP), which is not set: eth0 stays unconfigured',
    fix: 'Set CONFIG_IP_PNP=y, or configure the address in the guest\'s init and lint with --no-ip',
  },
  {
    code: 'KL_IP_PNP_NET_MODULE', severity: 'error', option: 'CONFIG_VIRTIO_NET', scope: 'config', bootArg: 'ip',
    when: (c) => c.target.ipBoot && isBuiltin(c.config, 'IP_PNP') && ipPathModules(c).length > 0,
    message: (c) => `ip= is applied before any initrd runs, but ${ipPathModules(c).join(', ')} ${ipPathModules(c).length > 1 ? 'are modules' : 'is a module'}: no network device exists yet`,
    fix: 'Build the network path in (=y), or configure the address from the initrd or init and lint with --no-ip',
  },

  // Boot protocol: what the VMM can load
  {
    code: 'KL_FC_BZIMAGE', severity: 'error', option: null, scope: 'image',
    when: (c) => c.target.vmm === 'firecracker' && c.format === 'bzimage',
    message: (c) => `${vmmName(c.target)} loads only an uncompressed ELF vmlinux on x86_64 ("Invalid Elf magic number"); bzImage loading landed upstream after 1.16`,
    fix: 'Boot the vmlinux from the kernel build (or extract it with scripts/extract-vmlinux)',
  },
  {
    code: 'KL_FC_BOOT_PROTOCOL', severity: 'info', option: 'CONFIG_PVH', scope: 'image',
    when: (c) => c.target.vmm === 'firecracker' && c.format === 'elf' && c.pvh !== null,
    message: (c) => c.pvh && fcHas(c.target, 'pvh')
      ? `${vmmName(c.target)} boots this vmlinux through its PVH entry (XEN_ELFNOTE_PHYS32_ENTRY present; PVH since 1.12)`
      : c.pvh
        ? `${vmmName(c.target)} ignores the PVH note (PVH came in 1.12) and uses the Linux 64-bit boot protocol`
        : `${vmmName(c.target)} boots this vmlinux through the Linux 64-bit boot protocol (no PVH note, which Firecracker does not need)`,
    fix: 'Nothing to do',
  },
  {
    code: 'KL_QEMU_ELF_NO_PVH', severity: 'error', option: 'CONFIG_PVH', scope: 'image',
    when: (c) => c.target.vmm === 'qemu-microvm' && c.format === 'elf' && c.pvh === false,
    message: 'QEMU refuses this vmlinux: "Error loading uncompressed kernel without PVH ELF Note"',
    fix: 'Build with CONFIG_PVH=y (the note XEN_ELFNOTE_PHYS32_ENTRY), or boot the bzImage',
  },
  {
    code: 'KL_QEMU_PVH_CONFIG', severity: 'warning', option: 'CONFIG_PVH', scope: 'config',
    when: (c) => c.target.vmm === 'qemu-microvm' && (c.format === 'config' || c.format === 'config.gz') && !isBuiltin(c.config, 'PVH'),
    message: 'CONFIG_PVH is not set: QEMU will refuse the vmlinux built from this config ("Error loading uncompressed kernel without PVH ELF Note"); only its bzImage boots',
    fix: 'Set CONFIG_PVH=y',
  },

  // Guest kernel release against Firecracker's kernel policy
  {
    code: 'KL_FC_GUEST_KERNEL_UNSUPPORTED', severity: 'error', option: null, scope: 'image',
    when: (c) => {
      if (c.target.vmm !== 'firecracker') return false;
      const k = guestKernelVerdict(c.target.vmmVersion!, c.version).kind;
      return k === 'removed' || k === 'too-old' || k === 'dated-too-old';
    },
    message: (c) => {
      const v = guestKernelVerdict(c.target.vmmVersion!, c.version);
      const base = `Guest kernel ${versionText(c.version)} is not supported by ${vmmName(c.target)}`;
      if (v.kind === 'removed') return `${base}: its support was removed in ${v.removedIn} (supported: ${seriesList(c.target)})`;
      return `${base}: older than ${'oldest' in v ? v.oldest : ''}, the oldest series it supports (supported: ${seriesList(c.target)})`;
    },
    fix: (c) => {
      const v = guestKernelVerdict(c.target.vmmVersion!, c.version);
      return `Use a ${seriesChoice(c.target)} guest kernel${v.kind === 'removed' ? `, or a Firecracker release before ${v.removedIn}` : ''}`;
    },
  },
  {
    code: 'KL_FC_GUEST_KERNEL_DEPRECATED', severity: 'warning', option: null, scope: 'image',
    when: (c) => c.target.vmm === 'firecracker' && guestKernelVerdict(c.target.vmmVersion!, c.version).kind === 'deprecated',
    message: (c) => `Guest kernel ${versionText(c.version)} is deprecated in ${vmmName(c.target)} and removed in the next release`,
    fix: (c) => `Move to a ${seriesChoice(c.target)} guest kernel`,
  },
  {
    code: 'KL_FC_GUEST_KERNEL_UNVALIDATED', severity: 'warning', option: null, scope: 'image',
    when: (c) => c.target.vmm === 'firecracker' && guestKernelVerdict(c.target.vmmVersion!, c.version).kind === 'unvalidated',
    message: (c) => `Guest kernel ${versionText(c.version)} is not a series ${vmmName(c.target)} validates (${seriesList(c.target)}); it may work`,
    fix: (c) => `Prefer a ${seriesChoice(c.target)} guest kernel`,
  },
  {
    code: 'KL_KERNEL_VERSION_UNKNOWN', severity: 'warning', option: null, scope: 'image',
    when: (c) => c.target.vmm === 'firecracker' && guestKernelVerdict(c.target.vmmVersion!, c.version).kind === 'unknown',
    message: (c) => `Kernel release ${versionText(c.version)}: no config header or version banner, so support by ${vmmName(c.target)} (${seriesList(c.target)}) cannot be checked`,
    fix: 'Lint the generated .config (it starts with "# Linux/x86 X.Y.Z Kernel Configuration") or the kernel image',
  },
  {
    code: 'KL_VMM_VERSION_NEWER', severity: 'warning', option: null, scope: 'image',
    when: (c) => c.target.vmm === 'firecracker' && c.requestedVmmVersion !== null && compareVersions(c.requestedVmmVersion, NEWEST_FIRECRACKER) > 0,
    message: (c) => `Rules know Firecracker up to ${NEWEST_FIRECRACKER}; ${c.requestedVmmVersion} is judged as ${NEWEST_FIRECRACKER}`,
    fix: 'Check the new release\'s CHANGELOG and docs/kernel-policy.md, then update src/kernel/rules.ts',
  },

  // SWIOTLB: the red herring the previous system chased.
  {
    code: 'KL_SWIOTLB_NOT_REQUIRED', severity: 'info', option: 'CONFIG_SWIOTLB', scope: 'config',
    when: () => true,
    message: (c) => `SWIOTLB is not a requirement (${describeOption(c.config, 'SWIOTLB')}; x86_64 always builds it): ${c.target.vmm === 'firecracker' ? 'Firecracker' : 'QEMU microvm'} does not offer VIRTIO_F_ACCESS_PLATFORM, so virtio bypasses the DMA API and "virtio-mmio: Failed to enable 64-bit or 32-bit DMA" at boot is harmless`,
    fix: 'Nothing to do; look elsewhere when a boot fails after that line',
  },
];

/** Evaluates every rule; pure. Config rules are skipped when the config is unknown. */
export function evaluate(c: RuleContext, rules: readonly Rule[] = RULES): Finding[] {
  const out: Finding[] = [];
  for (const r of rules) {
    if (r.scope === 'config' && !c.configKnown) continue;
    if (!r.when(c)) continue;
    out.push({
      code: r.code,
      severity: r.severity,
      option: r.option,
      message: typeof r.message === 'function' ? r.message(c) : r.message,
      fix: typeof r.fix === 'function' ? r.fix(c) : r.fix,
    });
  }
  return out;
}

const BY_CODE = new Map(RULES.map((r) => [r.code, r]));
/** The rule behind a finding code; undefined for unknown codes. */
export const ruleByCode = (code: string): Rule | undefined => BY_CODE.get(code);
