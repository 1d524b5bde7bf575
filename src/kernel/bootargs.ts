// The kernel command line every driver passes. Pure: every value is validated before it is joined, because the
// command line is a flat, space-separated string in which one smuggled space, quote or separator becomes a new
// argument (init=/bin/sh, a second ip=, everything after '--' going to init). When the kernel's config is given,
// arguments the lint knows cannot work on that kernel are refused too.
import { HangarError } from '../errors.js';
import { maskOf, parseIpv4 } from '../net/ipv4.js';
import type { KernelConfig } from './config.js';
import { lintConfig, resolveTarget } from './lint.js';
import { ruleByCode, type BootArgKey, type LintTarget, type Vmm } from './rules.js';

export interface BootArgsNet {
  /** Guest IPv4 address, dotted quad. */
  guest: string;
  /** Gateway IPv4 address (the host side of the TAP/bridge), dotted quad, same subnet as guest. */
  gateway: string;
  /** Contiguous netmask, dotted quad (e.g. 255.255.255.252). */
  netmask: string;
  /** Guest interface; default eth0. */
  device?: string;
  /** Optional guest hostname (lowercase letters, digits, '-'). */
  hostname?: string;
}

export interface BootArgsOptions {
  vmm: Vmm;
  /** Firecracker release 'X.Y' (as for the lint); default the newest known. */
  vmmVersion?: string;
  /** Serial console device; default ttyS0 (the only UART Firecracker has). */
  console?: string;
  /** Root block device; default /dev/vda. null boots without root= (an initrd that finds its own root). */
  root?: string | null;
  /** Mount the root read-only; default false (rw). */
  readOnly?: boolean;
  /** Absolute path of init inside the root filesystem. */
  init?: string;
  /** Static guest network through the kernel's ip= parameter; absent means no ip=. */
  net?: BootArgsNet;
  /** The VMM exposes virtio over PCI; default false, which adds pci=off (nothing to probe). */
  pci?: boolean;
  /** An initrd is booted (affects which kernel configs can honour the arguments). */
  initrd?: boolean;
  /** Extra arguments, one token each ('quiet', 'loglevel=4'). */
  extra?: string[];
}

/** x86 COMMAND_LINE_SIZE is 2048; the VMM appends virtio_mmio.device=... per device, so leave it room. */
export const MAX_BOOT_ARGS_LENGTH = 2048 - 512;

/** Arguments Hangar sets itself; an extra argument may not repeat or contradict them. */
const MANAGED = new Set(['console', 'reboot', 'panic', 'pci', 'root', 'rootfstype', 'rw', 'ro', 'init', 'ip', 'nfsaddrs', 'virtio_mmio.device']);

const bad = (field: string, message: string, value?: unknown): HangarError =>
  new HangarError('BOOT_ARGS_INVALID', `${field}: ${message}`, { field, ...(value === undefined ? {} : { value }) });

/** A dotted quad (no leading zeros, which some parsers read as octal) as a 32-bit number, or BOOT_ARGS_INVALID. */
function ipv4(value: unknown, field: string): number {
  const n = typeof value === 'string' ? parseIpv4(value) : null;
  if (n === null) throw bad(field, 'must be an IPv4 dotted quad like 10.0.0.2', value);
  return n;
}

/** Prefix length of a contiguous netmask; throws for holes (255.0.255.0), /0 and /32 (no room for two hosts). */
export function netmaskPrefix(value: unknown, field = 'net.netmask'): number {
  const m = ipv4(value, field);
  const inverted = (~m >>> 0);
  if ((inverted & (inverted + 1)) !== 0) throw bad(field, 'must be a contiguous netmask (ones then zeros)', value);
  const prefix = 32 - Math.log2(inverted + 1);
  if (prefix < 1 || prefix > 31) throw bad(field, 'must leave room for a guest and a gateway (/1 to /31)', value);
  return prefix;
}

function validateNet(net: BootArgsNet): string {
  const guest = ipv4(net.guest, 'net.guest');
  const gateway = ipv4(net.gateway, 'net.gateway');
  const prefix = netmaskPrefix(net.netmask);
  const mask = maskOf(prefix);
  for (const [field, a] of [['net.guest', guest], ['net.gateway', gateway]] as const) {
    const first = a >>> 24;
    if (first === 0 || first === 127 || first >= 224) throw bad(field, 'must be a unicast address outside 0/8, 127/8 and 224/3', field === 'net.guest' ? net.guest : net.gateway);
  }
  if (guest === gateway) throw bad('net.gateway', 'must differ from the guest address', net.gateway);
  if (((guest & mask) >>> 0) !== ((gateway & mask) >>> 0)) throw bad('net.gateway', `must be in the guest's subnet (${net.guest}/${prefix})`, net.gateway);
  if (prefix <= 30) {
    const host = (a: number): number => (a & ~mask) >>> 0;
    const broadcast = (~mask) >>> 0;
    for (const [field, a, v] of [['net.guest', guest, net.guest], ['net.gateway', gateway, net.gateway]] as const) {
      if (host(a) === 0 || host(a) === broadcast) throw bad(field, `is the network or broadcast address of /${prefix}`, v);
    }
  }
  const device = net.device ?? 'eth0';
  if (typeof device !== 'string' || !/^[a-z][a-z0-9]{0,14}$/.test(device)) throw bad('net.device', 'must be an interface name like eth0', device);
  const hostname = net.hostname ?? '';
  if (typeof hostname !== 'string' || (hostname !== '' && !/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(hostname))) {
    throw bad('net.hostname', 'must be lowercase letters, digits and inner hyphens, at most 63', hostname);
  }
  // ip=<client>:<server>:<gateway>:<netmask>:<hostname>:<device>:<autoconf>:<dns0> (Documentation/admin-guide/nfs/
  // nfsroot.rst). The gateway is the guest's resolver (Hangar's DNS, src/net/netd): the kernel writes it to
  // /proc/net/pnp, which the image's /etc/resolv.conf links to.
  return `ip=${net.guest}::${net.gateway}:${net.netmask}:${hostname}:${device}:off:${net.gateway}`;
}

function validateExtra(token: unknown, index: number, target: LintTarget): string {
  const field = `extra[${index}]`;
  // A key, optionally '=value'; the value may hold '.', ',', ':', '/', '@', '+', '-' and '=' but nothing that splits
  // the line or is parsed as quoting: no whitespace, quotes, backslashes, control or non-ASCII characters.
  if (typeof token !== 'string' || !/^[A-Za-z0-9_][A-Za-z0-9_.-]*(=[A-Za-z0-9_.,:/@+=-]*)?$/.test(token) || token.length > 256) {
    throw bad(field, 'must be one token: key or key=value, without spaces, quotes or control characters', token);
  }
  const key = token.split('=')[0]!;
  if (MANAGED.has(key)) throw bad(field, `${key}= is set by Hangar; use the matching option instead`, token);
  if (key === 'noapic' && target.vmm === 'firecracker' && target.acpi) {
    // Guests stopped booting with noapic once Firecracker described the machine through ACPI (firecracker#4816).
    throw bad(field, 'noapic stops the boot on Firecracker 1.8 and later (firecracker#4816)', token);
  }
  if (token === 'acpi=off' && target.pci) {
    // The PCI host's ECAM window is described by the ACPI MCFG table; without ACPI no PCI device is found.
    throw bad(field, 'acpi=off hides the PCI devices (their ECAM window is in the ACPI MCFG table)', token);
  }
  return token;
}

/**
 * Builds the kernel command line. Throws BOOT_ARGS_INVALID for any invalid or unsafe value, and, when `kernel` is
 * given, for an argument the kernel cannot honour (e.g. ip= without CONFIG_IP_PNP).
 */
export function buildBootArgs(opts: BootArgsOptions, kernel?: KernelConfig): string {
  let target: LintTarget;
  try {
    target = resolveTarget({ vmm: opts.vmm, vmmVersion: opts.vmmVersion, initrd: opts.initrd ?? false, ipBoot: opts.net !== undefined, pci: opts.pci ?? false });
  } catch (e) {
    throw bad('vmm', (e as Error).message, opts.vmm);
  }
  const consoleDev = opts.console ?? 'ttyS0';
  if (typeof consoleDev !== 'string' || !/^ttyS[0-3]$/.test(consoleDev)) throw bad('console', 'must be ttyS0 to ttyS3', consoleDev);
  const args = [`console=${consoleDev}`, 'reboot=k', 'panic=1'];
  if (!opts.pci) args.push('pci=off');

  const root = opts.root === undefined ? '/dev/vda' : opts.root;
  if (root !== null) {
    if (typeof root !== 'string' || !/^\/dev\/vd[a-z]([1-9][0-9]?)?$/.test(root)) throw bad('root', 'must be a virtio block device like /dev/vda or /dev/vda1', root);
    args.push(`root=${root}`, opts.readOnly ? 'ro' : 'rw');
  }
  if (opts.init !== undefined) {
    const init = opts.init;
    if (typeof init !== 'string' || !/^(\/[A-Za-z0-9._-]+)+$/.test(init) || init.length > 255 || init.split('/').some((s) => s === '.' || s === '..')) {
      throw bad('init', 'must be an absolute path of letters, digits, ".", "_" and "-" without . or .. segments', init);
    }
    args.push(`init=${init}`);
  }
  if (opts.net !== undefined) args.push(validateNet(opts.net));
  (opts.extra ?? []).forEach((t, i) => args.push(validateExtra(t, i, target)));

  const line = args.join(' ');
  if (line.length > MAX_BOOT_ARGS_LENGTH) throw bad('extra', `the command line is ${line.length} characters; at most ${MAX_BOOT_ARGS_LENGTH} leaves room for the VMM's device arguments`);

  if (kernel) refuseWhatTheKernelCannotHonour(opts, kernel, root !== null);
  return line;
}

function refuseWhatTheKernelCannotHonour(opts: BootArgsOptions, kernel: KernelConfig, hasRoot: boolean): void {
  // Options were validated by resolveTarget above, so the lint cannot throw here.
  const report = lintConfig(kernel, { vmm: opts.vmm, vmmVersion: opts.vmmVersion, initrd: opts.initrd ?? false, ipBoot: opts.net !== undefined, pci: opts.pci ?? false });
  const requested = new Set<BootArgKey>(['console', 'any', ...(hasRoot ? ['root' as const] : []), ...(opts.net ? ['ip' as const] : [])]);
  const blocking = report.findings.filter((f) => {
    const key = ruleByCode(f.code)?.bootArg;
    return f.severity === 'error' && key !== undefined && requested.has(key);
  });
  if (blocking.length) {
    throw new HangarError('BOOT_ARGS_INVALID', `the kernel cannot honour these boot arguments: ${blocking.map((f) => `${f.code} (${f.message})`).join('; ')}`, {
      findings: blocking,
    });
  }
}
