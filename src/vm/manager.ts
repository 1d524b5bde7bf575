// The VM lifecycle: golden image → running, networked VM → nothing, without leaking anything.
//
// Resources and their lifetimes:
//   row + allocations (IP, MAC, TAP name) + run directory (disk, console log)  — from create to destroy
//   TAP device + VMM process                                                   — while the VM runs
// create() validates and allocates synchronously (bad input changes nothing), then boots in the background as
// named steps whose undos run in reverse on failure. Every state change goes through the store's state machine.
//
// Snapshots (src/snapshot/): a VM can also start from saved state instead of booting — a clone of a golden
// snapshot (its own disk copy and its own network namespace recreating the snapshot's guest network, see
// src/net/clone.ts), or itself after hibernation. Hibernation is not a state of its own: a hibernated VM is
// 'stopped' with `hibernation` set (where its saved state is); start/resume restores it (stopped → booting →
// ready, the usual transitions), destroy removes the state with the run directory.
import { randomBytes } from 'node:crypto';
import { appendFile, mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { HangarError, isHangarError, toHangarError } from '../errors.js';
import { CONSOLE_RESTORED_MARKER, GUEST_INIT_PATH, READY_MARKER, VNC_PORT } from '../guest-protocol.js';
import type { ImageInfo } from '../image/store.js';
import { buildBootArgs } from '../kernel/bootargs.js';
import type { HangarMetrics } from '../metrics.js';
import type { NetConfig } from '../net/config.js';
import { createDialer, readBanner, type DialOptions, type Dialer } from '../net/dial.js';
import { gatewayMac, listCloneNetns, planCloneNetwork, removeCloneNetwork, setupCloneNetwork, type CloneNetPlan, type GuestNetIdentity } from '../net/clone.js';
import { attachVm, detachVm, listHangarTaps } from '../net/host.js';
import { planVmNetwork, poolCapacity, type NetAllocation, type VmNetPlan } from '../net/plan.js';
import { backendFor, firecrackerDiskRefusal, hashFile, type FileInfo } from '../snapshot/backend.js';
import { SNAPSHOT_DISK, type SnapshotManifest } from '../snapshot/manifest.js';
import { SnapshotService } from '../snapshot/service.js';
import { SnapshotStore } from '../snapshot/store.js';
import type { Allocation, Store, VmRecord } from '../store/store.js';
import { run } from '../util/exec.js';
import { silentProgress, type Progress } from '../util/progress.js';
import { runSteps, UndoStack, type Step, type Undo } from '../util/steps.js';
import { tailFile } from '../util/tail.js';
import { waitForMarker } from '../vmm/console.js';
import type { VmmDriver, VmmHandle } from '../vmm/driver.js';
import { FirecrackerDriver } from '../vmm/firecracker/driver.js';
import type { MachineSpec, ProcessExit, VmmKind } from '../vmm/types.js';
import { DEFAULT_LIMITS, type CreateVmRequest, type VmLimits } from './input.js';
import type { HostInfo, ImageSummary, LifecycleAction, VmService } from './service.js';
import { assertAction, type VmState } from './states.js';

export interface ImageSource {
  resolve(ref: string): Promise<ImageInfo>;
  list(): Promise<ImageInfo[]>;
}

export interface ManagerOptions {
  store: Store;
  /** VM run directories live under `${stateDir}/vms`. */
  stateDir: string;
  net: NetConfig;
  drivers: Partial<Record<VmmKind, VmmDriver>>;
  defaultVmm: VmmKind;
  images: ImageSource;
  readyTimeoutMs?: number;
  maxVms?: number;
  limits?: VmLimits;
  metrics?: HangarMetrics;
  dialer?: Dialer;
  /** Boot phases of every VM (CLI/foreground); silent by default. */
  progress?: Progress;
  log?: (msg: string, data?: Record<string, unknown>) => void;
  /** Golden snapshots live here (default `${stateDir}/snapshots`; the controller uses the cache's snapshots dir). */
  snapshotsDir?: string;
  /** Link-local pool for the clones' veth /30s (default DEFAULT_CLONE_LINK_CIDR). */
  cloneLinkCidr?: string;
  /** Test seam (fault injection): rewrites a cold-booted VM's machine spec just before its VMM starts. */
  specOverride?: (spec: MachineSpec, vm: VmRecord) => MachineSpec;
}

/** A VM's network record: the pool plan, plus the clone's own network when it was cloned from a snapshot. */
export type VmNet = VmNetPlan & { clone?: CloneNetPlan };

/** What `hibernation` holds on a hibernated VM's record. */
export interface Hibernation {
  dir: string;
  files: Record<string, FileInfo>;
  vmmVersion: string;
  diskPathInVmm?: string;
  guestAgent?: boolean;
  at: string;
  saveMs: number;
}

/** Where a boot starts from. */
type BootFrom =
  | { kind: 'cold'; image: ImageInfo; fresh: boolean }
  | {
    kind: 'restore';
    /** The machine as the state was saved (device set, memory), re-homed to this VM's run directory. */
    spec: MachineSpec;
    stateDir: string;
    /** Verify the state files against these (golden snapshots). */
    files?: Record<string, FileInfo>;
    diskPathInVmm?: string;
    guestAgent?: boolean;
    /** A fresh clone copies its disk from here; a hibernated VM keeps its own. */
    diskFrom?: string;
    /** Runs once the guest has been resumed: from then on the saved state no longer matches the disk. */
    consumed?: () => Promise<void>;
    what: string;
  };

/** What captureVm returns: everything a snapshot manifest needs from the VM. */
export interface CapturedVm {
  vm: VmRecord;
  guestNet: GuestNetIdentity;
  machine: SnapshotManifest['machine'];
  vmm: SnapshotManifest['vmm'];
  files: Record<string, FileInfo>;
  diskPathInVmm?: string;
  durationsMs: SnapshotManifest['durationsMs'];
}

interface Live {
  handle: VmmHandle;
  /** Set when Hangar itself stops the VMM, so the exit is not taken for a crash. */
  stopping: boolean;
  undo: UndoStack;
}

const CONSOLE_TAIL_LINES = 60;
const newId = (): string => `vm-${randomBytes(4).toString('hex')}`;

/** Groups allocation rows into the planner's per-VM view; the TAP name carries the index. */
function netAllocations(rows: readonly Allocation[]): NetAllocation[] {
  const byVm = new Map<string, Partial<NetAllocation>>();
  for (const r of rows) {
    const a = byVm.get(r.vmId) ?? { vmId: r.vmId };
    if (r.kind === 'tap') {
      a.tap = r.value;
      a.index = Number(/(\d+)$/.exec(r.value)?.[1] ?? -1);
    } else {
      a[r.kind] = r.value;
    }
    byVm.set(r.vmId, a);
  }
  return [...byVm.values()].filter((a): a is NetAllocation => !!a.tap && !!a.ip && !!a.mac);
}

export class VmManager implements VmService {
  private readonly live = new Map<string, Live>();
  /** Per-VM operation chain: actions on one VM never interleave. */
  private readonly locks = new Map<string, Promise<unknown>>();
  /** Boots in progress, abortable by destroy/stop. */
  private readonly booting = new Map<string, { abort: AbortController; done: Promise<unknown> }>();
  private readonly dialer: Dialer;
  private readonly limits: VmLimits;
  private readonly readyTimeoutMs: number;
  private readonly progress: Progress;
  /** Last activity per VM (API action, viewer traffic): the hibernator's idleness clock. */
  private readonly activity = new Map<string, number>();
  /** Open viewers per VM: a VM with one is never idle. */
  private readonly holds = new Map<string, number>();
  private readonly startedAt = Date.now();
  /** Golden snapshots: create/list/delete (API and CLI go through this). */
  readonly snapshots: SnapshotService;

  constructor(private readonly o: ManagerOptions) {
    this.dialer = o.dialer ?? createDialer(o.net);
    this.limits = o.limits ?? DEFAULT_LIMITS;
    this.readyTimeoutMs = o.readyTimeoutMs ?? 180_000;
    this.progress = o.progress ?? silentProgress;
    this.snapshots = new SnapshotService(this, new SnapshotStore(o.snapshotsDir ?? join(o.stateDir, 'snapshots')), o.images);
    o.metrics?.wire({
      vmsByState: () => o.store.countByState(),
      poolFree: () => poolCapacity(o.net) - o.store.allocations('ip').length,
      poolSize: () => poolCapacity(o.net),
    });
  }

  get netConfig(): NetConfig {
    return this.o.net;
  }

  get vmDialer(): Dialer {
    return this.dialer;
  }

  /** Where images resolve (the doctor checks the image a VM boots from). */
  get imageSource(): ImageSource {
    return this.o.images;
  }

  /** Run directories live under `${stateDir}/vms` (the doctor looks for orphans there). */
  get stateDir(): string {
    return this.o.stateDir;
  }

  private log(msg: string, data?: Record<string, unknown>): void {
    this.o.log?.(msg, data);
  }

  private serial<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(id) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.locks.set(id, tail);
    void tail.then(() => { if (this.locks.get(id) === tail) this.locks.delete(id); });
    return next;
  }

  private runDir(id: string): string {
    return join(this.o.stateDir, 'vms', id);
  }

  private driver(kind: VmmKind): VmmDriver {
    const d = this.o.drivers[kind];
    if (!d) throw new HangarError('VMM_NOT_AVAILABLE', `no ${kind} driver is configured on this controller`, { vmm: kind });
    return d;
  }

  // ---------------------------------------------------------------- create

  async create(req: CreateVmRequest): Promise<{ vm: VmRecord; ready: Promise<VmRecord> }> {
    if (req.fromSnapshot) return this.createClone(req, req.fromSnapshot);
    const vmm = req.vmm ?? this.o.defaultVmm;
    const driver = this.driver(vmm);
    const image = await this.o.images.resolve(req.image);
    if (image.profile !== req.profile && req.image !== image.id && !image.id.startsWith(req.image)) {
      throw new HangarError('IMAGE_NOT_FOUND', `no ${req.profile} image matches ${req.image}`, { image: req.image });
    }
    const max = this.o.maxVms ?? 64;
    if (this.o.store.listVms().length >= max) throw new HangarError('VM_LIMIT_REACHED', `this host runs at most ${max} VMs`, { max });

    const id = newId();
    const name = req.name ?? id;
    const runDir = this.runDir(id);
    const expiresAt = req.ttlSeconds ? new Date(Date.now() + req.ttlSeconds * 1000).toISOString() : null;
    // Synchronous part: row and allocations in one go, undone on any error (a taken name, an exhausted pool).
    const vm = this.o.store.db.transaction(() => {
      this.o.store.insertVm({
        id, name, state: 'creating', imageId: image.id, profile: image.profile, vmm, vcpus: req.vcpus, memMiB: req.memMiB,
        ttlS: req.ttlSeconds, expiresAt, runDir, spec: {}, net: null,
      });
      const plan = this.o.store.allocate(id, (taken) => {
        const p = planVmNetwork(this.o.net, netAllocations(taken), id);
        return { result: p, allocations: [{ kind: 'ip', value: p.ip }, { kind: 'mac', value: p.mac }, { kind: 'tap', value: p.tap }] };
      });
      this.o.store.patchVm(id, { net: plan as unknown as Record<string, unknown> });
      return this.o.store.mustGetVm(id);
    })();
    this.log('vm created', { id, name, image: image.id, vmm });
    this.touch(id);
    const ready = this.serial(id, () => this.boot(id, driver, { kind: 'cold', image, fresh: true }));
    return { vm, ready };
  }

  /**
   * A clone of a golden snapshot: its own row, pool address (the address the host reaches it at), disk copy and
   * network namespace; the guest inside keeps the snapshot's identity. vcpus and memory are the snapshot's (the
   * saved state fixes them); the request's are ignored.
   */
  private async createClone(req: CreateVmRequest, snapshotId: string): Promise<{ vm: VmRecord; ready: Promise<VmRecord> }> {
    const snap = await this.snapshots.store.get(snapshotId);
    const m = snap.manifest;
    if (req.vmm && req.vmm !== m.vmm.kind) {
      throw new HangarError('INVALID_ARGUMENT', `snapshot ${m.id} was taken on ${m.vmm.kind}; it cannot be restored on ${req.vmm}`, { field: 'vmm' });
    }
    const driver = this.driver(m.vmm.kind);
    const max = this.o.maxVms ?? 64;
    if (this.o.store.listVms().length >= max) throw new HangarError('VM_LIMIT_REACHED', `this host runs at most ${max} VMs`, { max });
    const id = newId();
    const name = req.name ?? id;
    const runDir = this.runDir(id);
    const base: MachineSpec = {
      id, kernelPath: m.machine.kernelPath, rootfsPath: join(runDir, 'rootfs.ext4'), bootArgs: m.machine.bootArgs,
      vcpus: m.machine.vcpus, memMiB: m.machine.memMiB, consoleLogPath: join(runDir, 'console.log'), runDir,
    };
    if (driver instanceof FirecrackerDriver) {
      // Firecracker reopens the disk where its snapshot recorded it: refused here, before any record or network.
      const refused = await firecrackerDiskRefusal(driver, base, m.diskPathInVmm);
      if (refused) throw refused;
    }
    const expiresAt = req.ttlSeconds ? new Date(Date.now() + req.ttlSeconds * 1000).toISOString() : null;
    const g = m.guestNet;
    const vm = this.o.store.db.transaction(() => {
      this.o.store.insertVm({
        id, name, state: 'creating', imageId: m.image.id, profile: m.image.profile, vmm: m.vmm.kind, vcpus: m.machine.vcpus,
        memMiB: m.machine.memMiB, ttlS: req.ttlSeconds, expiresAt, runDir, spec: {}, net: null, snapshotId: m.id,
      });
      const pool = this.o.store.allocate(id, (taken) => {
        const p = planVmNetwork(this.o.net, netAllocations(taken), id);
        return { result: p, allocations: [{ kind: 'ip', value: p.ip }, { kind: 'mac', value: p.mac }, { kind: 'tap', value: p.tap }] };
      });
      const clone = planCloneNetwork(this.o.net, pool, g, this.o.cloneLinkCidr);
      // The record shows what the host sees (the pool address) and what the guest has (MAC, gateway); a cold boot of
      // the clone's disk later gets the snapshot's address again, inside the clone's namespace.
      const net: VmNet = {
        ...pool, mac: g.mac, gateway: g.gateway, netmask: g.netmask, prefix: g.prefix,
        bootIp: { address: g.ip, gateway: g.gateway, netmask: g.netmask }, clone,
      };
      this.o.store.patchVm(id, { net: net as unknown as Record<string, unknown> });
      return this.o.store.mustGetVm(id);
    })();
    const plan = vm.net as unknown as VmNet;
    const spec: MachineSpec = { ...base, net: { tap: g.tap, mac: g.mac }, netns: plan.clone!.netns };
    const stateFiles = Object.fromEntries(Object.entries(m.files).filter(([k]) => backendFor(m.vmm.kind).stateFiles.includes(k)));
    this.log('vm created', { id, name, snapshot: m.id, vmm: m.vmm.kind, address: plan.ip });
    this.touch(id);
    const ready = this.serial(id, () => this.boot(id, driver, {
      kind: 'restore', spec, stateDir: snap.dir, files: stateFiles, diskFrom: join(snap.dir, SNAPSHOT_DISK), what: `snapshot ${m.id}`,
      ...(m.diskPathInVmm ? { diskPathInVmm: m.diskPathInVmm } : {}),
      ...(m.machine.guestAgent !== undefined ? { guestAgent: m.machine.guestAgent } : {}),
    }));
    return { vm, ready };
  }

  // ---------------------------------------------------------------- boot

  private machineSpec(vm: VmRecord, image: ImageInfo, plan: VmNetPlan, vmm: VmmKind): MachineSpec {
    const bootArgs = buildBootArgs({
      vmm: vmm === 'qemu' ? 'qemu-microvm' : 'firecracker',
      init: GUEST_INIT_PATH,
      net: { guest: plan.bootIp.address, gateway: plan.bootIp.gateway, netmask: plan.bootIp.netmask, hostname: vm.name },
    });
    return {
      id: vm.id,
      kernelPath: image.kernelPath,
      rootfsPath: join(vm.runDir, 'rootfs.ext4'),
      bootArgs,
      vcpus: vm.vcpus,
      memMiB: vm.memMiB,
      net: this.vmmNet(plan),
      consoleLogPath: join(vm.runDir, 'console.log'),
      runDir: vm.runDir,
      ...this.vmmNetns(plan),
    };
  }

  /** The TAP and MAC the VMM is given: a clone's are the snapshot's, inside its own namespace. */
  private vmmNet(plan: VmNet): { tap: string; mac: string } {
    return plan.clone ? { tap: plan.clone.guest.tap, mac: plan.clone.guest.mac } : { tap: plan.tap, mac: plan.mac };
  }

  private vmmNetns(plan: VmNet): { netns?: string } {
    if (plan.clone) return { netns: plan.clone.netns };
    return this.o.net.mode === 'netns' ? { netns: this.o.net.netns! } : this.o.net.hostNetns ? { netns: this.o.net.hostNetns } : {};
  }

  /** A VM's network while it runs: its TAP on the bridge, or a clone's namespace. Returns the undo. */
  private attachNet(plan: VmNet): Promise<Undo> {
    return plan.clone ? setupCloneNetwork(plan.clone) : attachVm(this.o.net, plan);
  }

  /** Removes it whatever is left of it (idempotent). */
  private async detachNet(plan: VmNet | null): Promise<void> {
    if (plan?.clone) await removeCloneNetwork(plan.clone);
    else if (plan?.tap) await detachVm(this.o.net, plan.tap);
  }

  /**
   * Boots a VM in state creating/stopped/failed through to ready — cold from its image, or from saved state (a
   * snapshot for a clone, its own for a hibernated VM); on failure the VM is failed with evidence.
   */
  private async boot(id: string, driver: VmmDriver, from: BootFrom): Promise<VmRecord> {
    const abort = new AbortController();
    const t0 = performance.now();
    let vm = this.o.store.mustGetVm(id);
    const plan = vm.net as unknown as VmNet;
    const cold = from.kind === 'cold' ? this.machineSpec(vm, from.image, plan, driver.kind) : null;
    const spec = cold ? (this.o.specOverride?.(cold, vm) ?? cold) : (from as { spec: MachineSpec }).spec;
    const backend = backendFor(driver.kind);
    const ctx: { handle?: VmmHandle; sync?: unknown; copiedDisk?: boolean } = {};
    const steps: Step<typeof ctx>[] = [
      {
        name: `${id}: disk`,
        run: async (c) => {
          await mkdir(vm.runDir, { recursive: true, mode: 0o750 });
          const source = from.kind === 'cold' ? (from.fresh ? from.image.rootfsPath : null) : from.diskFrom ?? null;
          if (source === null && (await stat(spec.rootfsPath).catch(() => null))) return;
          if (source === null && from.kind === 'restore') throw new HangarError('SNAPSHOT_FAILED', `${spec.rootfsPath} is gone: the saved state cannot be restored without its disk`, { path: spec.rootfsPath });
          // A sparse copy (a reflink where the filesystem can): the VM writes to its own disk, never the image.
          await run('cp', ['--reflink=auto', '--sparse=always', source ?? (from as { image: ImageInfo }).image.rootfsPath, spec.rootfsPath], { timeoutMs: 120_000 });
          // Not an undo on the stack the running VM keeps: a stop keeps the disk. A failed boot removes it (below).
          c.copiedDisk = true;
        },
      },
      { name: plan.clone ? `${id}: clone network ${plan.clone.netns}` : `${id}: tap ${plan.tap}`, run: () => this.attachNet(plan) },
      {
        name: from.kind === 'cold' ? `${id}: start ${driver.kind}` : `${id}: restore ${driver.kind} from ${from.what}`,
        run: async (c) => {
          vm = this.o.store.setState(id, 'booting', { spec: spec as unknown as Record<string, unknown> });
          // A cold boot starts a new log; a restore appends to the history after a marker (the doctor reads both).
          if (from.kind === 'cold') await rm(spec.consoleLogPath, { force: true });
          else await appendFile(spec.consoleLogPath, `\n${CONSOLE_RESTORED_MARKER} ${from.what.replace(/\s+/g, '_')} ${new Date().toISOString()}\n`, { mode: 0o600 });
          c.handle = from.kind === 'cold'
            ? await driver.start(spec)
            : (await backend.restore(driver, spec, from.stateDir, {
              ...(from.files ? { files: from.files } : {}), ...(from.diskPathInVmm ? { diskPathInVmm: from.diskPathInVmm } : {}),
              ...(from.guestAgent !== undefined ? { guestAgent: from.guestAgent } : {}),
            })).handle;
          this.o.store.patchVm(id, { pid: c.handle.pid });
          const handle = c.handle;
          return async () => { await handle.stop({ graceMs: 0 }).catch(() => undefined); };
        },
      },
      from.kind === 'cold'
        ? {
          name: `${id}: guest ready`,
          run: async (c) => {
            await waitForMarker(spec.consoleLogPath, READY_MARKER, { timeoutMs: this.readyTimeoutMs, signal: abort.signal, exited: c.handle!.exited });
            await this.waitVnc(plan.ip, abort.signal);
          },
        }
        : {
          name: `${id}: resume and resync`,
          run: async (c) => {
            await c.handle!.resume();
            // The guest has run on from the saved instant: its disk no longer matches that state.
            await from.consumed?.();
            // Clock and entropy (the agent answers within ~1 s) while the desktop's port is checked from the host side.
            const [sync] = await Promise.all([
              backend.afterResume(c.handle!).catch((e: unknown) => ({ error: (e as Error).message })),
              this.waitVnc(plan.ip, abort.signal),
            ]);
            c.sync = sync;
          },
        },
    ];
    const done = (async (): Promise<VmRecord> => {
      try {
        const { stack } = await runSteps(steps, ctx, this.progress);
        const bootMs = Math.round(performance.now() - t0);
        this.live.set(id, { handle: ctx.handle!, stopping: false, undo: stack });
        this.watchExit(id, ctx.handle!);
        this.touch(id);
        const how = from.kind === 'cold' ? {} : { restoredFrom: from.what, sync: ctx.sync ?? null };
        if (from.kind === 'cold') this.o.metrics?.bootSeconds.observe(bootMs / 1000);
        this.log('vm ready', { id, bootMs, ...how });
        return this.o.store.setState(id, 'ready', { bootMs }, { bootMs, ...how });
      } catch (e) {
        const err = toHangarError(e, 'VM_BOOT_TIMEOUT');
        if (ctx.copiedDisk) await rm(spec.rootfsPath, { force: true });
        const consoleTail = await tailFile(spec.consoleLogPath, CONSOLE_TAIL_LINES);
        const cur = this.o.store.getVm(id);
        const lastError = { code: err.code, message: err.message, details: { ...err.details, consoleTail } };
        // A start that failed before the VMM was started (disk, network) leaves a stopped VM stopped, with the reason.
        if (cur?.state === 'stopped') this.o.store.patchVm(id, { lastError });
        else if (cur && cur.state !== 'failed' && cur.state !== 'destroyed') this.o.store.setState(id, 'failed', { lastError, pid: null }, { code: err.code });
        this.o.metrics?.errors.inc({ code: err.code });
        this.log('vm failed', { id, code: err.code, message: err.message });
        throw err;
      }
    })();
    this.booting.set(id, { abort, done });
    try {
      return await done;
    } finally {
      this.booting.delete(id);
    }
  }

  /** The guest printed READY; the VNC port must also answer from the host side (through the veth). */
  private async waitVnc(ip: string, signal: AbortSignal): Promise<void> {
    const deadline = Date.now() + 15_000;
    let last: unknown;
    while (Date.now() < deadline && !signal.aborted) {
      try {
        const banner = await readBanner(this.dialer, ip, VNC_PORT, 3000);
        if (banner.startsWith('RFB ')) return;
        last = new Error(`unexpected banner ${JSON.stringify(banner.slice(0, 16))}`);
      } catch (e) {
        last = e;
      }
      await new Promise((r) => setTimeout(r, 300));
    }
    throw new HangarError('VM_UNREACHABLE', `the guest is ready but VNC ${ip}:${VNC_PORT} does not answer from the host side: ${last instanceof Error ? last.message : String(last)}`, { ip, port: VNC_PORT });
  }

  /** A VMM that ends without Hangar stopping it makes the VM failed, with how it ended. */
  private watchExit(id: string, handle: VmmHandle): void {
    void handle.exited.then(async (exit) => {
      const l = this.live.get(id);
      if (!l || l.handle !== handle || l.stopping) return;
      this.live.delete(id);
      await l.undo.unwind(); // TAP (the VMM is already gone)
      const cur = this.o.store.getVm(id);
      if (!cur || !['ready', 'paused', 'booting'].includes(cur.state)) return;
      const consoleTail = await tailFile(join(cur.runDir, 'console.log'), CONSOLE_TAIL_LINES);
      this.o.store.setState(id, 'failed', {
        pid: null, exit: exit as unknown as Record<string, unknown>,
        lastError: { code: 'VMM_CRASHED', message: `the VMM exited unexpectedly (${exit.signal ?? `code ${exit.code}`}, by ${exit.by})`, details: { exit, consoleTail } },
      }, { exit });
      this.log('vm crashed', { id, exit });
    });
  }

  // ---------------------------------------------------------------- actions

  list(): VmRecord[] {
    return this.o.store.listVms();
  }

  get(idOrName: string): VmRecord {
    return this.o.store.mustGetVm(idOrName);
  }

  consolePath(idOrName: string): string {
    return join(this.get(idOrName).runDir, 'console.log');
  }

  action(idOrName: string, action: LifecycleAction): Promise<VmRecord> {
    const id = this.get(idOrName).id;
    this.touch(id);
    if (action === 'stop') this.booting.get(id)?.abort.abort();
    return this.serial(id, async () => {
      const vm = this.get(id);
      if (vm.hibernation && (vm.state === 'stopped' || vm.state === 'failed') && (action === 'start' || action === 'resume')) {
        // Transparent: a hibernated VM starts (or resumes) from its saved state. resume waits until it is ready.
        const ready = this.restoreHibernated(vm);
        if (action === 'resume') return ready;
        ready.catch(() => undefined);
        return this.get(id);
      }
      assertAction(id, vm.state, action);
      switch (action) {
        case 'pause': {
          await this.mustLive(id).handle.pause();
          return this.o.store.setState(id, 'paused');
        }
        case 'resume': {
          await this.mustLive(id).handle.resume();
          return this.o.store.setState(id, 'ready');
        }
        case 'stop':
          return this.stopVm(vm);
        case 'start': {
          const image = await this.o.images.resolve(vm.imageId);
          if (vm.state === 'failed') await this.stopVm(vm);
          const ready = this.boot(id, this.driver(vm.vmm as VmmKind), { kind: 'cold', image, fresh: false });
          ready.catch(() => undefined);
          return this.get(id);
        }
      }
    });
  }

  private mustLive(id: string): Live {
    const l = this.live.get(id);
    if (!l) throw new HangarError('VM_INVALID_STATE', `VM ${id} has no running VMM attached`, { id });
    return l;
  }

  /** Stops the VMM and removes the TAP; the disk, allocations and row stay. */
  private async stopVm(vm: VmRecord): Promise<VmRecord> {
    const id = vm.id;
    const l = this.live.get(id);
    if (vm.state !== 'failed') this.o.store.setState(id, 'stopping');
    let exit: ProcessExit | null = null;
    if (l) {
      l.stopping = true;
      exit = await l.handle.stop({ graceMs: 2000 });
      this.live.delete(id);
      await l.undo.unwind();
    }
    await this.detachNet(vm.net as unknown as VmNet | null);
    return this.o.store.setState(id, 'stopped', { pid: null, ...(exit ? { exit: exit as unknown as Record<string, unknown> } : {}) });
  }

  destroy(idOrName: string): Promise<void> {
    const id = this.get(idOrName).id;
    this.booting.get(id)?.abort.abort();
    return this.serial(id, async () => {
      const vm = this.o.store.getVm(id);
      if (!vm) throw new HangarError('VM_NOT_FOUND', `no VM ${idOrName}`, { id: idOrName });
      if (vm.state === 'creating') throw new HangarError('VM_INVALID_STATE', `VM ${id} is creating: destroy is not allowed in state creating`, { id });
      if (!['stopped', 'failed'].includes(vm.state) || this.live.has(id)) await this.stopVm(this.get(id));
      await this.detachNet(vm.net as unknown as VmNet | null);
      // The run directory holds the disk and, for a hibernated VM, its saved state.
      await rm(vm.runDir, { recursive: true, force: true });
      this.o.store.deleteVm(id);
      this.activity.delete(id);
      this.holds.delete(id);
      this.log('vm destroyed', { id });
    });
  }

  // ---------------------------------------------------------------- reaching a VM, idleness

  /**
   * A TCP connection to a VM's port from the host side (the viewer bridge's RFB, health probes): to the pool
   * address, which for a clone is its own host-visible address, translated inside its namespace.
   */
  async dialVm(idOrName: string, port: number, opts: DialOptions = {}): Promise<Duplex> {
    const vm = this.get(idOrName);
    if (vm.hibernation) throw new HangarError('VM_INVALID_STATE', `VM ${vm.id} is hibernated: ensureRunning() restores it`, { id: vm.id, state: vm.state, hibernated: true });
    const ip = (vm.net as VmNet | null)?.ip;
    if (!ip) throw new HangarError('VM_UNREACHABLE', `VM ${vm.id} has no address`, { id: vm.id });
    this.touch(vm.id);
    return this.dialer.connect(ip, port, opts);
  }

  /** Records activity on a VM (API action, viewer input): it is not idle for the hibernator. */
  touch(idOrName: string): void {
    const vm = this.o.store.getVm(idOrName);
    if (vm) this.activity.set(vm.id, Date.now());
  }

  /** A viewer is attached: the VM is never idle until the returned release is called. */
  hold(idOrName: string): () => void {
    const id = this.get(idOrName).id;
    this.holds.set(id, (this.holds.get(id) ?? 0) + 1);
    this.touch(id);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const n = (this.holds.get(id) ?? 1) - 1;
      if (n > 0) this.holds.set(id, n);
      else this.holds.delete(id);
      this.touch(id);
    };
  }

  /** Ready VMs with no viewer and no activity for afterS seconds (activity before this manager started is unknown). */
  idleVms(afterS: number, now = Date.now()): VmRecord[] {
    return this.list().filter((vm) => vm.state === 'ready' && !this.holds.get(vm.id)
      && now - (this.activity.get(vm.id) ?? this.startedAt) >= afterS * 1000);
  }

  /**
   * Whatever it takes for a viewer to connect: a hibernated VM is restored, a paused one resumed, a booting one
   * awaited. Resolves with the ready VM; VM_INVALID_STATE for a VM that is stopped (not hibernated) or failed.
   * A viewer should hold() the VM first, so the hibernator cannot pick it between this and its connection.
   */
  async ensureRunning(idOrName: string): Promise<VmRecord> {
    const id = this.get(idOrName).id;
    this.touch(id);
    await this.booting.get(id)?.done.catch(() => undefined);
    // After whatever is in flight on this VM (a boot, a hibernation that started a moment ago).
    const vm = await this.serial(id, async () => this.get(id));
    if (vm.state === 'ready') return vm;
    if (vm.state === 'paused' || vm.hibernation) return this.action(vm.id, 'resume');
    throw new HangarError('VM_INVALID_STATE', `VM ${vm.id} is ${vm.state}: start it first`, { id: vm.id, state: vm.state });
  }

  // ---------------------------------------------------------------- hibernation and capture

  /**
   * Saves a ready (or paused) VM's memory and device state into its run directory and stops its VMM: the VM is
   * 'stopped' with `hibernation` set. Its disk stays where it is (it is part of the saved instant), its addresses
   * stay allocated. start/resume restores it; destroy deletes the state with the run directory.
   */
  hibernate(idOrName: string): Promise<VmRecord> {
    const id = this.get(idOrName).id;
    return this.serial(id, async () => {
      const vm = this.get(id);
      if (vm.state !== 'ready' && vm.state !== 'paused') {
        throw new HangarError('VM_INVALID_STATE', `VM ${id} is ${vm.state}: only a ready or paused VM can hibernate`, { id, state: vm.state });
      }
      const l = this.mustLive(id);
      const backend = backendFor(vm.vmm as VmmKind);
      const dir = join(vm.runDir, 'hibernation');
      await rm(dir, { recursive: true, force: true });
      await mkdir(dir, { mode: 0o700 });
      const t0 = performance.now();
      if (vm.state === 'ready') await l.handle.pause();
      let saved;
      try {
        saved = await backend.save(l.handle, dir);
      } catch (e) {
        await rm(dir, { recursive: true, force: true });
        if (vm.state === 'ready') await l.handle.resume().catch(() => undefined);
        throw e;
      }
      // From here the saved state and the disk describe one instant: the guest must not run on. Quit, no shutdown.
      this.o.store.setState(id, 'stopping');
      l.stopping = true;
      const exit = await l.handle.stop({ graceMs: 0 });
      this.live.delete(id);
      await l.undo.unwind();
      await this.detachNet(vm.net as unknown as VmNet | null).catch(() => undefined);
      const hibernation: Hibernation = {
        dir, files: saved.files, vmmVersion: saved.vmmVersion, at: new Date().toISOString(), saveMs: saved.ms,
        ...(saved.diskPathInVmm ? { diskPathInVmm: saved.diskPathInVmm } : {}),
        ...(saved.guestAgent !== undefined ? { guestAgent: saved.guestAgent } : {}),
      };
      const ms = Math.round(performance.now() - t0);
      this.log('vm hibernated', { id, ms, bytes: Object.values(saved.files).reduce((a, f) => a + f.size, 0) });
      return this.o.store.setState(id, 'stopped', {
        pid: null, exit: exit as unknown as Record<string, unknown>, hibernation: hibernation as unknown as Record<string, unknown>,
      }, { hibernated: true, ms });
    });
  }

  /** Restores a hibernated VM (called with its lock held); the saved state is deleted once the guest runs on. */
  private async restoreHibernated(vm: VmRecord): Promise<VmRecord> {
    const h = vm.hibernation as unknown as Hibernation;
    if (vm.state === 'failed') await this.stopVm(vm);
    const id = vm.id;
    return this.boot(id, this.driver(vm.vmm as VmmKind), {
      kind: 'restore', spec: vm.spec as unknown as MachineSpec, stateDir: h.dir, what: `hibernation of ${h.at}`,
      ...(h.diskPathInVmm ? { diskPathInVmm: h.diskPathInVmm } : {}),
      ...(h.guestAgent !== undefined ? { guestAgent: h.guestAgent } : {}),
      consumed: async () => {
        this.o.store.patchVm(id, { hibernation: null });
        await rm(h.dir, { recursive: true, force: true });
      },
    });
  }

  /**
   * A golden snapshot's capture: pauses a ready VM, writes its state into dir, copies its disk beside it while
   * still paused (memory and disk from one instant), and lets it run on. The VM's own guest identity (the
   * snapshot's, for a clone) is what clones of this snapshot will recreate.
   */
  captureVm(idOrName: string, dir: string): Promise<CapturedVm> {
    const id = this.get(idOrName).id;
    this.touch(id);
    return this.serial(id, async () => {
      const vm = this.get(id);
      if (vm.state !== 'ready') throw new HangarError('VM_INVALID_STATE', `VM ${id} is ${vm.state}: a snapshot is taken of a ready VM`, { id, state: vm.state });
      const l = this.mustLive(id);
      const spec = vm.spec as unknown as MachineSpec;
      const plan = vm.net as unknown as VmNet;
      const backend = backendFor(vm.vmm as VmmKind);
      const t0 = performance.now();
      await l.handle.pause();
      this.o.store.setState(id, 'paused', {}, { reason: 'snapshot' });
      const tPaused = performance.now();
      let saved;
      let tState = tPaused;
      const disk = join(dir, SNAPSHOT_DISK);
      try {
        saved = await backend.save(l.handle, dir);
        tState = performance.now();
        await run('cp', ['--reflink=auto', '--sparse=always', spec.rootfsPath, disk], { timeoutMs: 300_000 });
      } finally {
        await l.handle.resume().catch((e: unknown) => this.log('resume after snapshot failed', { id, error: (e as Error).message }));
        if (this.get(id).state === 'paused') this.o.store.setState(id, 'ready', {}, { reason: 'snapshot' });
      }
      const tDisk = performance.now();
      const guestNet: GuestNetIdentity = plan.clone?.guest ?? {
        ip: plan.ip, mac: plan.mac, tap: plan.tap, gateway: plan.gateway, netmask: plan.netmask, prefix: plan.prefix,
        gatewayMac: await gatewayMac(this.o.net),
      };
      return {
        vm: this.get(id),
        guestNet,
        machine: {
          vcpus: spec.vcpus, memMiB: spec.memMiB, kernelPath: spec.kernelPath, bootArgs: spec.bootArgs,
          ...(saved.guestAgent !== undefined ? { guestAgent: saved.guestAgent } : {}),
        },
        vmm: { kind: vm.vmm as VmmKind, version: saved.vmmVersion },
        files: { ...saved.files, [SNAPSHOT_DISK]: await hashFile(disk) },
        ...(saved.diskPathInVmm ? { diskPathInVmm: saved.diskPathInVmm } : {}),
        durationsMs: {
          pause: Math.round(tPaused - t0), state: Math.round(tState - tPaused), disk: Math.round(tDisk - tState), total: Math.round(tDisk - t0),
        },
      };
    });
  }

  // ---------------------------------------------------------------- host

  async host(): Promise<HostInfo> {
    const drivers = await Promise.all(Object.values(this.o.drivers).map((d) => d!.probe()));
    const qemu = drivers.find((d) => d.kind === 'qemu');
    const size = poolCapacity(this.o.net);
    const used = this.o.store.allocations('ip').length;
    return {
      accel: { accel: qemu?.accel ?? 'none', reason: qemu?.reason ?? 'no QEMU driver' },
      drivers: drivers.map((d) => ({ kind: d.kind, available: d.available, ...(d.version ? { version: d.version } : {}), reason: d.reason })),
      network: { mode: this.o.net.mode, netns: this.o.net.netns ?? null, cidr: this.o.net.cidr, gateway: this.o.net.gateway, hostNetns: this.o.net.hostNetns ?? null },
      pool: { size, used, free: size - used },
      vms: this.o.store.countByState(),
    };
  }

  async images(): Promise<ImageSummary[]> {
    return (await this.o.images.list()).map((i) => ({
      id: i.id, profile: i.profile, kernelVersion: i.kernelVersion, createdAt: i.created, sizes: { ...i.sizes },
    }));
  }

  // ---------------------------------------------------------------- restart

  /**
   * Run once at controller start: adopt VMMs still running, fail VMs whose VMM died while we were away, roll back
   * half-created VMs, and reclaim orphans (TAPs, run directories) that no VM owns. Every action is an event.
   */
  async reconcile(): Promise<ReconcileReport> {
    const report: ReconcileReport = { adopted: [], failed: [], rolledBack: [], orphanTaps: [], orphanDirs: [], orphanCloneNetns: [] };
    for (const vm of this.o.store.listVms()) {
      if (vm.state === 'creating') {
        await rm(vm.runDir, { recursive: true, force: true });
        this.o.store.deleteVm(vm.id);
        report.rolledBack.push(vm.id);
        continue;
      }
      if (!['booting', 'ready', 'paused', 'stopping'].includes(vm.state)) continue;
      const driver = this.o.drivers[vm.vmm as VmmKind];
      let handle: VmmHandle | null = null;
      try {
        handle = driver ? await driver.adopt(vm.spec as unknown as MachineSpec) : null;
      } catch (e) {
        this.log('adopt failed', { id: vm.id, error: (e as Error).message });
      }
      if (handle && vm.state !== 'stopping') {
        const undo = new UndoStack();
        const plan = vm.net as unknown as VmNet;
        undo.push(plan.clone ? `clone network ${plan.clone.netns}` : `tap ${plan.tap}`, () => this.detachNet(plan));
        this.live.set(vm.id, { handle, stopping: false, undo });
        this.watchExit(vm.id, handle);
        let state: VmState = vm.state;
        if (state === 'booting') {
          // It may have become ready while we were away; otherwise it never will be watched again: fail it.
          const text = await tailFile(join(vm.runDir, 'console.log'), 2000);
          state = text.includes(READY_MARKER) ? 'ready' : 'failed';
          this.o.store.setState(vm.id, state, state === 'failed' ? { lastError: { code: 'VM_BOOT_TIMEOUT', message: 'the controller restarted while the VM was booting' } } : {});
        }
        this.o.store.patchVm(vm.id, { pid: handle.pid });
        this.touch(vm.id);
        report.adopted.push(vm.id);
      } else {
        if (handle) await handle.stop({ graceMs: 0 }).catch(() => undefined);
        await this.detachNet(vm.net as unknown as VmNet | null).catch(() => undefined);
        const to: VmState = vm.state === 'stopping' ? 'stopped' : 'failed';
        this.o.store.setState(vm.id, to, to === 'failed' ? { pid: null, lastError: { code: 'VMM_CRASHED', message: 'the VMM was gone when the controller started' } } : { pid: null });
        report.failed.push(vm.id);
      }
    }
    const liveTaps = new Set([...this.live.keys()].map((id) => (this.o.store.getVm(id)?.net as { tap?: string } | null)?.tap));
    for (const t of await listHangarTaps(this.o.net)) {
      if (!liveTaps.has(t.name)) {
        await detachVm(this.o.net, t.name);
        report.orphanTaps.push(t.name);
      }
    }
    const liveNetns = new Set([...this.live.keys()].map((id) => (this.o.store.getVm(id)?.net as VmNet | null)?.clone?.netns));
    for (const ns of await listCloneNetns(this.o.net)) {
      if (liveNetns.has(ns)) continue;
      // Deleting the namespace takes the clone's veth pair (both ends) and its /32 route with it.
      await run('ip', ['netns', 'del', ns], { allowFailure: true, timeoutMs: 15_000 });
      report.orphanCloneNetns.push(ns);
    }
    const known = new Set(this.o.store.listVms().map((v) => v.id));
    const vmsDir = join(this.o.stateDir, 'vms');
    for (const d of await readdir(vmsDir).catch(() => [] as string[])) {
      if (!known.has(d)) {
        await rm(join(vmsDir, d), { recursive: true, force: true });
        report.orphanDirs.push(d);
      }
    }
    this.o.store.appendEvent(null, 'controller.reconciled', { ...report });
    return report;
  }

  /** Controller shutdown: stop watching, leave VMs running (adopted at next start). */
  async detachAll(): Promise<void> {
    for (const b of this.booting.values()) b.abort.abort();
    await Promise.allSettled([...this.booting.values()].map((b) => b.done));
    for (const l of this.live.values()) l.handle.release?.();
    this.live.clear();
  }

  /** Stops and destroys every VM (tests, `hangar down --destroy`). */
  async destroyAll(): Promise<void> {
    for (const vm of this.o.store.listVms()) {
      await this.destroy(vm.id).catch((e: unknown) => {
        if (!isHangarError(e, 'VM_NOT_FOUND')) throw e;
      });
    }
  }
}

export interface ReconcileReport {
  adopted: string[];
  failed: string[];
  rolledBack: string[];
  orphanTaps: string[];
  orphanDirs: string[];
  orphanCloneNetns: string[];
}
