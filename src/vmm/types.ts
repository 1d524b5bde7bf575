// What every VMM driver is given and reports. Drivers differ in how they start a machine, not in what it is.
import type { LimitsView, VmResources } from './cgroup/plan.js';

/** Every VMM Hangar drives. The one list: schemas, config, manifests and the doctor derive theirs from it. */
export const VMM_KINDS = ['qemu', 'firecracker'] as const;
export type VmmKind = (typeof VMM_KINDS)[number];

export function isVmmKind(x: unknown): x is VmmKind {
  return typeof x === 'string' && (VMM_KINDS as readonly string[]).includes(x);
}

export interface MachineSpec {
  /** Hangar's VM id (validated name). */
  id: string;
  kernelPath: string;
  /** The VM's own writable root disk (raw ext4). */
  rootfsPath: string;
  /** Full kernel command line, built by src/kernel/bootargs.ts. */
  bootArgs: string;
  vcpus: number;
  memMiB: number;
  /** Host TAP and guest MAC; absent means no network device. */
  net?: { tap: string; mac: string };
  /** Serial console is written here. */
  consoleLogPath: string;
  /** Per-VM directory for sockets and pidfile. */
  runDir: string;
  /** Run the VMM inside this network namespace (netns mode). */
  netns?: string;
  /** The VM's own resource limits (create's `resources`); the rest derive from vcpus and memMiB. */
  resources?: VmResources;
  /**
   * QEMU: what backs each volume slot at start (index = slot; null or absent: empty). Recorded with the spec, so a
   * restore of a hibernated VM reopens the volumes its guest has mounted (src/volume/).
   */
  volumes?: ({ file: string; readOnly: boolean } | null)[];
  /** The cgroup limits its VMM was started under (recorded after the start for `vm show`; not an input). */
  limits?: LimitsView | null;
}

export interface ProcessExit {
  code: number | null;
  signal: string | null;
  /** Who ended it: 'hangar' (stop/destroy), 'guest' (shutdown/panic), 'unknown' (crash or outside kill). */
  by: 'hangar' | 'guest' | 'unknown';
  at: string;
  /** The kernel's OOM killer ended it inside its cgroup (its memory limit). */
  oomKilled?: boolean;
}
