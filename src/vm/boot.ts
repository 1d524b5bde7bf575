// Boot plans: how a VM gets from a record to a running guest, as named step lists — one for a cold boot from an
// image's disk, one for a restore from saved state (a clone's snapshot, a hibernated VM's own) — the way
// firecracker-go-sdk names its handler lists. The plans are pure: they only arrange calls on `BootPorts`, so
// tests run them with fakes and check the order of steps and of their undos. The executor is runSteps.
import { CONSOLE_RESTORED_MARKER } from '../guest-protocol.js';
import { HangarError } from '../errors.js';
import type { VmNet } from '../domain/vm.js';
import type { Step, Undo } from '../util/steps.js';
import type { ResumeSync, RestoreOptions, VmmDriver, VmmHandle } from '../vmm/driver.js';
import type { LimitsView } from '../vmm/cgroup/plan.js';
import type { MachineSpec } from '../vmm/types.js';
import type { Disks } from './disks.js';
import { describeNet, type VmNetwork } from './network.js';

/** Where a boot starts from. */
export type BootFrom =
  | {
    kind: 'cold';
    /** The image's disk. */
    imageDisk: string;
    /** A fresh copy of it (the first boot); else the VM boots the disk it has (copied anew only if it is gone). */
    fresh: boolean;
  }
  | {
    kind: 'restore';
    stateDir: string;
    restore: RestoreOptions;
    /** A fresh clone copies its disk from here; a hibernated VM keeps its own (null). */
    diskFrom: string | null;
    /** Runs once the guest has been resumed: from then on the saved state no longer matches the disk. */
    consumed?: () => Promise<void>;
    /** For logs and the console marker: "snapshot snap-…", "hibernation of …". */
    what: string;
    /** The guest's own hostname, told after resume (a clone's guest otherwise keeps its snapshot's). */
    hostname?: string;
  };

/** What a boot does to the world, one call per effect. */
export interface BootPorts {
  disks: Disks;
  network: VmNetwork;
  driver: VmmDriver;
  /** The VM goes 'booting' with this spec (recorded before the VMM starts, so a crash can be adopted or failed). */
  recordBooting(spec: MachineSpec): void;
  /** The VMM runs: its pid, and the cgroup limits it runs under (null: none). */
  recordPid(pid: number, limits?: LimitsView | null): void;
  /** A cold boot starts a new console log. */
  resetConsole(path: string): Promise<void>;
  /** A restore appends to the log after a marker line: the boot's history stays. */
  appendConsole(path: string, line: string): Promise<void>;
  /** The guest printed READY (or the VMM exited, or the signal aborted). */
  waitGuestReady(spec: MachineSpec, handle: VmmHandle, signal: AbortSignal): Promise<void>;
  /** The guest's desktop answers from the host side. */
  waitDesktop(ip: string, signal: AbortSignal): Promise<void>;
  now(): Date;
}

/** What the steps leave for the caller. */
export interface BootCtx {
  handle?: VmmHandle;
  sync?: ResumeSync | { error: string } | null;
}

export function consoleRestoredLine(what: string, at: Date): string {
  return `\n${CONSOLE_RESTORED_MARKER} ${what.replace(/\s+/g, '_')} ${at.toISOString()}\n`;
}

/** The source of the VM's disk copy, or null when it boots the disk it has. */
function diskSource(from: BootFrom): string | null {
  return from.kind === 'cold' ? (from.fresh ? from.imageDisk : null) : from.diskFrom;
}

function diskStep(id: string, spec: MachineSpec, from: BootFrom, p: BootPorts): Step<BootCtx> {
  return {
    name: `${id}: disk`,
    // A failed boot removes a disk it copied; a stop of the running VM keeps it.
    rollbackOnly: true,
    run: async (): Promise<Undo | void> => {
      const source = diskSource(from);
      if (source === null) {
        if (await p.disks.exists(spec.rootfsPath)) return;
        if (from.kind === 'restore') throw new HangarError('SNAPSHOT_FAILED', `${spec.rootfsPath} is gone: the saved state cannot be restored without its disk`, { path: spec.rootfsPath });
      }
      return p.disks.copy(source ?? (from.kind === 'cold' ? from.imageDisk : spec.rootfsPath), spec.rootfsPath);
    },
  };
}

function networkStep(id: string, net: VmNet, p: BootPorts): Step<BootCtx> {
  return { name: `${id}: ${describeNet(net)}`, run: () => p.network.attach(net) };
}

function vmmUndo(handle: VmmHandle): Undo {
  return async () => { await handle.stop({ graceMs: 0 }).catch(() => undefined); };
}

/** Cold boot: disk → network → start the VMM → the guest says READY → its desktop answers from the host. */
export function coldBootSteps(id: string, spec: MachineSpec, net: VmNet, from: Extract<BootFrom, { kind: 'cold' }>, p: BootPorts, signal: AbortSignal): Step<BootCtx>[] {
  return [
    diskStep(id, spec, from, p),
    networkStep(id, net, p),
    {
      name: `${id}: start ${p.driver.kind}`,
      run: async (c) => {
        p.recordBooting(spec);
        await p.resetConsole(spec.consoleLogPath);
        c.handle = await p.driver.start(spec);
        p.recordPid(c.handle.pid, c.handle.limits ?? null);
        return vmmUndo(c.handle);
      },
    },
    { name: `${id}: guest ready`, run: (c) => p.waitGuestReady(spec, c.handle!, signal) },
    { name: `${id}: desktop answers`, run: () => p.waitDesktop(net.ip, signal) },
  ];
}

/**
 * Restore: disk → network → a VMM loads the saved state (guest paused) → resume, then the state is consumed →
 * clock and entropy resync while the desktop is checked from the host.
 */
export function restoreSteps(id: string, spec: MachineSpec, net: VmNet, from: Extract<BootFrom, { kind: 'restore' }>, p: BootPorts, signal: AbortSignal): Step<BootCtx>[] {
  return [
    diskStep(id, spec, from, p),
    networkStep(id, net, p),
    {
      name: `${id}: restore ${p.driver.kind} from ${from.what}`,
      run: async (c) => {
        p.recordBooting(spec);
        await p.appendConsole(spec.consoleLogPath, consoleRestoredLine(from.what, p.now()));
        c.handle = await p.driver.restore(spec, from.stateDir, from.restore);
        p.recordPid(c.handle.pid, c.handle.limits ?? null);
        return vmmUndo(c.handle);
      },
    },
    {
      name: `${id}: resume`,
      run: async (c) => {
        await c.handle!.resume();
        // The guest has run on from the saved instant: its disk no longer matches that state.
        await from.consumed?.();
      },
    },
    {
      name: `${id}: resync and desktop answers`,
      run: async (c) => {
        // Clock and entropy (the agent answers within ~1 s) while the desktop's port is checked from the host side.
        const [sync] = await Promise.all([
          c.handle!.afterResume(from.hostname ? { hostname: from.hostname } : {}).catch((e: unknown) => ({ error: (e as Error).message })),
          p.waitDesktop(net.ip, signal),
        ]);
        c.sync = sync;
      },
    },
  ];
}

export function bootSteps(id: string, spec: MachineSpec, net: VmNet, from: BootFrom, p: BootPorts, signal: AbortSignal): Step<BootCtx>[] {
  return from.kind === 'cold' ? coldBootSteps(id, spec, net, from, p, signal) : restoreSteps(id, spec, net, from, p, signal);
}
