// The driver interface every VMM implements. The VM lifecycle (src/vm/) speaks only this.
import type { MachineSpec, ProcessExit, VmmKind } from './types.js';

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
  /** Resolves when the VMM process ends, however it ends (detected within 2 s). */
  readonly exited: Promise<ProcessExit>;
  /** Stops watching without stopping the VMM (controller shutdown: the VM keeps running and is adopted later). */
  release?(): void;
}

export interface VmmDriver {
  readonly kind: VmmKind;
  probe(): Promise<DriverProbe>;
  start(spec: MachineSpec): Promise<VmmHandle>;
  /** Re-attaches to a VMM still running from an earlier controller (pidfile + control socket); null if gone. */
  adopt(spec: MachineSpec): Promise<VmmHandle | null>;
}
