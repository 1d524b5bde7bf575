// The boot executor: runs a VM's boot plan (src/vm/boot.ts) with the real ports, records the outcome (ready with
// its boot time, or failed with its evidence), takes the running VMM under watch, and keeps the boots in flight
// abortable (stop, destroy, controller shutdown). Console logs are 0600 (a guest's console can show secrets).
import { constants } from 'node:fs';
import { mkdir, open, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { VmRecord } from '../domain/vm.js';
import { HangarError, toHangarError } from '../errors.js';
import { READY_MARKER, VNC_PORT } from '../guest-protocol.js';
import type { HangarMetrics } from '../metrics.js';
import { readBanner, type Dialer } from '../net/dial.js';
import type { StateStore } from '../store/store.js';
import type { Progress } from '../util/progress.js';
import { runSteps } from '../util/steps.js';
import { tailFile } from '../util/tail.js';
import { sleep } from '../util/timeout.js';
import { waitForMarker } from '../vmm/console.js';
import type { VmmDriver } from '../vmm/driver.js';
import type { MachineSpec } from '../vmm/types.js';
import type { Activity } from './activity.js';
import { bootSteps, type BootCtx, type BootFrom, type BootPorts } from './boot.js';
import type { Disks } from './disks.js';
import { CONSOLE_TAIL_LINES, oomMessage, type LiveVms } from './live.js';
import type { VmNetwork } from './network.js';

export const CONSOLE_MODE = 0o600;

/**
 * An empty console log, 0600, made before the VMM starts: QEMU's file chardev and Firecracker's stdout log open an
 * existing file without touching its mode, where one they created would get whatever the umask allows.
 */
export async function resetConsoleFile(path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await rm(path, { force: true });
  const fh = await open(path, 'wx', CONSOLE_MODE);
  try {
    await fh.chmod(CONSOLE_MODE);
  } finally {
    await fh.close();
  }
}

/** Appends a line to a console log, leaving it 0600 (also one an older Hangar left readable). */
export async function appendConsoleLine(path: string, line: string): Promise<void> {
  // Not through a symlink: a confined VMM owns its log and could have replaced it with one.
  const fh = await open(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, CONSOLE_MODE);
  try {
    await fh.write(line);
    await fh.chmod(CONSOLE_MODE);
  } finally {
    await fh.close();
  }
}

/** The boot failed because the kernel killed the VMM in its cgroup (memory limit): that, not the symptom, is the error. */
async function outOfMemory(ctx: BootCtx): Promise<HangarError | null> {
  const h = ctx.handle;
  if (!h) return null;
  const exit = await Promise.race([h.exited, sleep(2000).then(() => null)]);
  if (!exit?.oomKilled) return null;
  return new HangarError('VMM_OUT_OF_MEMORY', oomMessage(h.limits ?? null), { exit, limits: h.limits ?? null });
}

export interface BooterDeps {
  store: StateStore;
  live: LiveVms;
  activity: Activity;
  network: VmNetwork;
  disks: Disks;
  dialer: Dialer;
  progress: Progress;
  readyTimeoutMs: number;
  metrics?: HangarMetrics;
  log(msg: string, data?: Record<string, unknown>): void;
  /** Test seam (fault injection): rewrites a cold-booted VM's machine spec just before its VMM starts. */
  specOverride?: (spec: MachineSpec, vm: VmRecord) => MachineSpec;
}

export class Booter {
  /** Boots in progress, abortable by stop, destroy and shutdown. */
  private readonly inFlight = new Map<string, { abort: AbortController; done: Promise<unknown> }>();

  constructor(private readonly d: BooterDeps) {}

  /** Aborts a boot in flight (its steps see the signal; the failure is recorded as usual). */
  abort(id: string): void {
    this.inFlight.get(id)?.abort.abort();
  }

  /** Resolves when the boot in flight, if any, has ended (however it ended). */
  async settled(id: string): Promise<void> {
    await this.inFlight.get(id)?.done.catch(() => undefined);
  }

  isBooting(id: string): boolean {
    return this.inFlight.has(id);
  }

  async abortAll(): Promise<void> {
    for (const b of this.inFlight.values()) b.abort.abort();
    await Promise.allSettled([...this.inFlight.values()].map((b) => b.done));
  }
  private bootPorts(id: string, driver: VmmDriver): BootPorts {
    return {
      disks: this.d.disks,
      network: this.d.network,
      driver,
      recordBooting: (spec) => { this.d.store.setState(id, 'booting', { spec }); },
      recordPid: (pid, limits) => {
        const spec = this.d.store.getVm(id)?.spec;
        this.d.store.patchVm(id, { pid, ...(spec ? { spec: { ...spec, limits: limits ?? null } } : {}) });
      },
      resetConsole: resetConsoleFile,
      appendConsole: appendConsoleLine,
      waitGuestReady: async (spec, handle, signal) => {
        await waitForMarker(spec.consoleLogPath, READY_MARKER, { timeoutMs: this.d.readyTimeoutMs, signal, exited: handle.exited });
      },
      waitDesktop: (ip, signal) => this.waitVnc(ip, signal),
      now: () => new Date(),
    };
  }

  /**
   * Boots a VM in state creating/stopped/failed through to ready — cold from its image, or from saved state (a
   * snapshot for a clone, its own for a hibernated VM); on failure the VM is failed with evidence. Called with the
   * VM's lock held.
   */
  async boot(id: string, driver: VmmDriver, cold: MachineSpec, from: BootFrom): Promise<VmRecord> {
    const abort = new AbortController();
    const t0 = performance.now();
    const vm = this.d.store.mustGetVm(id);
    const spec = from.kind === 'cold' ? (this.d.specOverride?.(cold, vm) ?? cold) : cold;
    const ctx: BootCtx = {};
    const steps = bootSteps(id, spec, vm.net!, from, this.bootPorts(id, driver), abort.signal);
    const done = (async (): Promise<VmRecord> => {
      try {
        const { stack } = await runSteps(steps, ctx, this.d.progress);
        const bootMs = Math.round(performance.now() - t0);
        this.d.live.add(id, ctx.handle!, stack);
        this.d.activity.touch(id);
        const how = from.kind === 'cold' ? {} : { restoredFrom: from.what, sync: ctx.sync ?? null };
        if (from.kind === 'cold') this.d.metrics?.bootSeconds.observe(bootMs / 1000);
        this.d.log('vm ready', { id, bootMs, ...how });
        return this.d.store.setState(id, 'ready', { bootMs }, { bootMs, ...how });
      } catch (e) {
        const err = (await outOfMemory(ctx)) ?? toHangarError(e, 'VM_BOOT_TIMEOUT');
        const consoleTail = await tailFile(spec.consoleLogPath, CONSOLE_TAIL_LINES);
        const cur = this.d.store.getVm(id);
        const lastError = { code: err.code, message: err.message, details: { ...err.details, consoleTail } };
        // A start that failed before the VMM was started (disk, network) leaves a stopped VM stopped, with the reason.
        if (cur?.state === 'stopped') this.d.store.patchVm(id, { lastError });
        else if (cur && cur.state !== 'failed' && cur.state !== 'destroyed') this.d.store.setState(id, 'failed', { lastError, pid: null }, { code: err.code });
        this.d.metrics?.errors.inc({ code: err.code });
        this.d.log('vm failed', { id, code: err.code, message: err.message });
        throw err;
      }
    })();
    this.inFlight.set(id, { abort, done });
    try {
      return await done;
    } finally {
      this.inFlight.delete(id);
    }
  }

  /** The guest printed READY; the VNC port must also answer from the host side (through the veth). */
  private async waitVnc(ip: string, signal: AbortSignal): Promise<void> {
    const deadline = Date.now() + 15_000;
    let last: unknown;
    while (Date.now() < deadline && !signal.aborted) {
      try {
        const banner = await readBanner(this.d.dialer, ip, VNC_PORT, 3000);
        if (banner.startsWith('RFB ')) return;
        last = new Error(`unexpected banner ${JSON.stringify(banner.slice(0, 16))}`);
      } catch (e) {
        last = e;
      }
      await sleep(300, signal).catch(() => undefined);
    }
    throw new HangarError('VM_UNREACHABLE', `the guest is ready but VNC ${ip}:${VNC_PORT} does not answer from the host side: ${last instanceof Error ? last.message : String(last)}`, { ip, port: VNC_PORT });
  }
}
