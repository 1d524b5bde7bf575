// The driver interface every VMM implements. The VM lifecycle (src/vm/) speaks only this.
import type { HangarError } from '../errors.js';
import type { GuestChannel } from '../guest-protocol.js';
import type { FileInfo } from '../util/files.js';
import type { CgroupUsage } from './cgroup/host.js';
import type { LimitsView } from './cgroup/plan.js';
import type { MachineSpec, ProcessExit, VmmKind } from './types.js';

/** A paused guest written to disk by its VMM (hibernation, golden snapshots). */
export interface SavedState {
  /** File name (in the state directory) → hash and size. */
  files: Record<string, FileInfo>;
  /** The VMM's version, recorded so a restore on another version is explained, not attempted blindly. */
  vmmVersion: string;
  /** Firecracker reopens the disk at the path its snapshot recorded (as the VMM saw it). */
  diskPathInVmm?: string;
  /** QEMU: started with the agent channel and virtio-rng; a restore must have the same devices. */
  guestAgent?: boolean;
  ms: number;
}

export interface RestoreOptions {
  /** Verify the state files against these (golden snapshots); hibernation files are trusted by their size. */
  files?: Record<string, FileInfo>;
  diskPathInVmm?: string;
  guestAgent?: boolean;
}

/** What the guest was told right after a restore (clock, entropy), where the VMM does not do it itself. */
export interface ResumeSync {
  sentAt: number;
  /** The guest's clock after it set it (null: no agent answered). */
  guestTime: number | null;
  agent: boolean;
}

export type VmmRunState = 'running' | 'paused' | 'stopped';

export interface DriverProbe {
  kind: VmmKind;
  available: boolean;
  /** Binary path and version when available. */
  binary?: string;
  version?: string;
  /** Accelerator the driver will use ('kvm' | 'tcg'), and why. */
  accel?: string;
  reason: string;
}

export interface VmmHandle {
  readonly kind: VmmKind;
  readonly pid: number;
  readonly spec: MachineSpec;
  pause(): Promise<void>;
  resume(): Promise<void>;
  status(): Promise<VmmRunState>;
  /** Graceful stop (ACPI/Ctrl-Alt-Del/quit), then SIGTERM, then SIGKILL to the process group. */
  stop(opts?: { graceMs?: number }): Promise<ProcessExit>;
  /** Where the host reaches hangar-agent in this guest (null: this VMM was started without the channel). */
  readonly guestChannel?: GuestChannel | null;
  /** Resolves when the VMM process ends, however it ends (detected within 2 s). */
  readonly exited: Promise<ProcessExit>;
  /** Stops watching without stopping the VMM (controller shutdown: the VM keeps running and is adopted later). */
  release?(): void;
  /** The cgroup limits it runs under (null: none). */
  readonly limits?: LimitsView | null;
  /** Its cgroup's counters (null: no cgroup). */
  usage?(): Promise<CgroupUsage | null>;
  /** QEMU: a raw monitor (QMP) command, for the volume slots' block nodes (src/volume/). Absent elsewhere. */
  monitor?(command: string, args?: Record<string, unknown>): Promise<unknown>;
  /**
   * Writes the state of a PAUSED guest into dir. The VMM stays alive (the caller resumes or stops it).
   * shareMemory (golden snapshots): the guest RAM as a file clones can map privately, where the VMM can.
   */
  saveState(dir: string, opts?: { shareMemory?: boolean }): Promise<SavedState>;
  /**
   * Right after a restored guest is resumed: clock and entropy for it, and its own hostname where the VMM has a
   * channel for it (null when the VMM does the clock itself and has none).
   */
  afterResume(opts?: { hostname?: string }): Promise<ResumeSync | null>;
}

export interface VmmDriver {
  readonly kind: VmmKind;
  probe(): Promise<DriverProbe>;
  start(spec: MachineSpec): Promise<VmmHandle>;
  /** Re-attaches to a VMM still running from an earlier controller (pidfile + control socket); null if gone. */
  adopt(spec: MachineSpec): Promise<VmmHandle | null>;
  /** File names this VMM's saved state consists of. */
  readonly stateFiles: readonly string[];
  /**
   * Why `spec` cannot be restored from state saved with `opts`, or null. Pure of side effects: callers ask before
   * they create anything (a record, an address, a directory).
   */
  restoreRefusal(spec: MachineSpec, opts?: RestoreOptions): Promise<HangarError | null>;
  /** Starts a VMM for spec from the state in dir; the guest is left paused (the caller resumes it). */
  restore(spec: MachineSpec, dir: string, opts?: RestoreOptions): Promise<VmmHandle>;
}
