// The VMM registry: one entry per kind with everything the rest of Hangar needs to know about that VMM — its
// kernel lint target, its driver, how its processes are recognised, how to install it, its limits. Saving and
// restoring guests is on the driver and handle interfaces (src/vmm/driver.ts), so nothing outside a VMM's own
// folder branches on its kind. Adding a VMM: its folder (driver + state), one entry here, its kind in types.ts.
import type { Vmm as LintTarget } from '../kernel/rules.js';
import type { VmmDriver } from './driver.js';
import { FirecrackerDriver, type FirecrackerDriverOptions } from './firecracker/driver.js';
import { FIRECRACKER_LIMITS } from './firecracker/requests.js';
import { QEMU_LIMITS } from './qemu/argv.js';
import { QemuDriver, type QemuDriverOptions } from './qemu/driver.js';
import { VMM_KINDS, type VmmKind } from './types.js';

/** Per-VMM driver settings from the controller's config. */
export interface VmmSettings {
  qemu?: QemuDriverOptions;
  firecracker?: FirecrackerDriverOptions;
}

export interface VmmEntry {
  readonly kind: VmmKind;
  readonly title: string;
  /** What the kernel lint and the boot-argument builder call this VMM. */
  readonly lintTarget: LintTarget;
  /** The vCPU and memory ranges its driver accepts (the driver's own constants; config limits must fit inside). */
  readonly limits: { readonly vcpus: { min: number; max: number }; readonly memMiB: { min: number; max: number } };
  /** What to do when it is missing (doctor, VMM_NOT_AVAILABLE). */
  readonly installHint: string;
  /** argv[0] of this VMM's processes (and its helpers'), for the doctor's orphan scan and leak counts. */
  readonly processName: RegExp;
  createDriver(settings: VmmSettings): VmmDriver;
}

export const VMM_REGISTRY: Readonly<Record<VmmKind, VmmEntry>> = {
  qemu: {
    kind: 'qemu',
    title: 'QEMU microvm',
    lintTarget: 'qemu-microvm',
    limits: QEMU_LIMITS,
    installHint: 'Install qemu-system-x86 (QEMU 7.2 or later with -M microvm).',
    processName: /(^|\/)qemu-system-[\w-]+$/,
    createDriver: (s) => new QemuDriver(s.qemu ?? {}),
  },
  firecracker: {
    kind: 'firecracker',
    title: 'Firecracker',
    lintTarget: 'firecracker',
    limits: FIRECRACKER_LIMITS,
    installHint: 'Install the Firecracker release binary (and jailer) and point the controller at it (FIRECRACKER_BIN, JAILER_BIN).',
    processName: /(^|\/)(firecracker|jailer)$/,
    createDriver: (s) => new FirecrackerDriver(s.firecracker ?? {}),
  },
};

export function vmmEntry(kind: VmmKind): VmmEntry {
  return VMM_REGISTRY[kind];
}

/** One driver per registered kind. */
export function createDrivers(settings: VmmSettings): Record<VmmKind, VmmDriver> {
  return Object.fromEntries(VMM_KINDS.map((k) => [k, VMM_REGISTRY[k].createDriver(settings)])) as Record<VmmKind, VmmDriver>;
}

/** Whether argv[0] is a process of any registered VMM. */
export function isVmmProcess(argv0: string): boolean {
  return VMM_KINDS.some((k) => VMM_REGISTRY[k].processName.test(argv0));
}
