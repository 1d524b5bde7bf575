// The VM lifecycle: golden image → running, networked VM → nothing, without leaking anything.
//
// Resources and their lifetimes:
//   row + allocations (IP, MAC, TAP name) + run directory (disk, console log)  — from create to destroy
//   TAP device + VMM process                                                   — while the VM runs
// create() validates and allocates synchronously (bad input changes nothing), then boots in the background as
// named steps whose undos run in reverse on failure. Every state change goes through the store's state machine.
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { HangarError, isHangarError, toHangarError } from '../errors.js';
import { GUEST_INIT_PATH, READY_MARKER, VNC_PORT } from '../guest-protocol.js';
import type { ImageInfo } from '../image/store.js';
import { buildBootArgs } from '../kernel/bootargs.js';
import type { HangarMetrics } from '../metrics.js';
import type { NetConfig } from '../net/config.js';
import { createDialer, readBanner, type Dialer } from '../net/dial.js';
import { attachVm, detachVm, listHangarTaps } from '../net/host.js';
import { planVmNetwork, poolCapacity, type NetAllocation, type VmNetPlan } from '../net/plan.js';
import type { Allocation, Store, VmRecord } from '../store/store.js';
import { run } from '../util/exec.js';
import { silentProgress, type Progress } from '../util/progress.js';
import { runSteps, UndoStack, type Step } from '../util/steps.js';
import { tailFile } from '../util/tail.js';
import { waitForMarker } from '../vmm/console.js';
import type { VmmDriver, VmmHandle } from '../vmm/driver.js';
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

  constructor(private readonly o: ManagerOptions) {
    this.dialer = o.dialer ?? createDialer(o.net);
    this.limits = o.limits ?? DEFAULT_LIMITS;
    this.readyTimeoutMs = o.readyTimeoutMs ?? 180_000;
    this.progress = o.progress ?? silentProgress;
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
    if (req.fromSnapshot) throw new HangarError('SNAPSHOT_NOT_FOUND', `snapshot ${req.fromSnapshot} not found`, { id: req.fromSnapshot });
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
    const ready = this.serial(id, () => this.boot(id, driver, image, true));
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
      net: { tap: plan.tap, mac: plan.mac },
      consoleLogPath: join(vm.runDir, 'console.log'),
      runDir: vm.runDir,
      ...(this.o.net.mode === 'netns' ? { netns: this.o.net.netns! } : this.o.net.hostNetns ? { netns: this.o.net.hostNetns } : {}),
    };
  }

  /** Boots a VM in state creating/stopped/failed through to ready; on failure the VM is failed with evidence. */
  private async boot(id: string, driver: VmmDriver, image: ImageInfo, fresh: boolean): Promise<VmRecord> {
    const abort = new AbortController();
    const t0 = performance.now();
    let vm = this.o.store.mustGetVm(id);
    const plan = vm.net as unknown as VmNetPlan;
    const spec = this.machineSpec(vm, image, plan, driver.kind);
    const ctx: { handle?: VmmHandle } = {};
    const steps: Step<typeof ctx>[] = [
      {
        name: `${id}: disk`,
        run: async () => {
          await mkdir(vm.runDir, { recursive: true, mode: 0o750 });
          if (!fresh && (await stat(spec.rootfsPath).catch(() => null))) return;
          // A sparse copy (a reflink where the filesystem can): the VM writes to its own disk, never the image.
          await run('cp', ['--reflink=auto', '--sparse=always', image.rootfsPath, spec.rootfsPath], { timeoutMs: 120_000 });
          return () => rm(spec.rootfsPath, { force: true });
        },
      },
      { name: `${id}: tap ${plan.tap}`, run: () => attachVm(this.o.net, plan) },
      {
        name: `${id}: start ${driver.kind}`,
        run: async (c) => {
          vm = this.o.store.setState(id, 'booting', { spec: spec as unknown as Record<string, unknown> });
          await rm(spec.consoleLogPath, { force: true });
          c.handle = await driver.start(spec);
          this.o.store.patchVm(id, { pid: c.handle.pid });
          const handle = c.handle;
          return async () => { await handle.stop({ graceMs: 0 }).catch(() => undefined); };
        },
      },
      {
        name: `${id}: guest ready`,
        run: async (c) => {
          await waitForMarker(spec.consoleLogPath, READY_MARKER, { timeoutMs: this.readyTimeoutMs, signal: abort.signal, exited: c.handle!.exited });
          await this.waitVnc(plan.ip, abort.signal);
        },
      },
    ];
    const done = (async (): Promise<VmRecord> => {
      try {
        const { stack } = await runSteps(steps, ctx, this.progress);
        const bootMs = Math.round(performance.now() - t0);
        this.live.set(id, { handle: ctx.handle!, stopping: false, undo: stack });
        this.watchExit(id, ctx.handle!);
        this.o.metrics?.bootSeconds.observe(bootMs / 1000);
        this.log('vm ready', { id, bootMs });
        return this.o.store.setState(id, 'ready', { bootMs }, { bootMs });
      } catch (e) {
        const err = toHangarError(e, 'VM_BOOT_TIMEOUT');
        const consoleTail = await tailFile(spec.consoleLogPath, CONSOLE_TAIL_LINES);
        const cur = this.o.store.getVm(id);
        if (cur && cur.state !== 'failed' && cur.state !== 'destroyed') {
          this.o.store.setState(id, 'failed', { lastError: { code: err.code, message: err.message, details: { ...err.details, consoleTail } }, pid: null }, { code: err.code });
        }
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
    if (action === 'stop') this.booting.get(id)?.abort.abort();
    return this.serial(id, async () => {
      const vm = this.get(id);
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
          const ready = this.boot(id, this.driver(vm.vmm as VmmKind), image, false);
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
    const plan = vm.net as unknown as VmNetPlan | null;
    if (plan?.tap) await detachVm(this.o.net, plan.tap);
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
      const plan = vm.net as unknown as VmNetPlan | null;
      if (plan?.tap) await detachVm(this.o.net, plan.tap);
      await rm(vm.runDir, { recursive: true, force: true });
      this.o.store.deleteVm(id);
      this.log('vm destroyed', { id });
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
    const report: ReconcileReport = { adopted: [], failed: [], rolledBack: [], orphanTaps: [], orphanDirs: [] };
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
        const plan = vm.net as unknown as VmNetPlan;
        undo.push(`tap ${plan.tap}`, () => detachVm(this.o.net, plan.tap));
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
        report.adopted.push(vm.id);
      } else {
        if (handle) await handle.stop({ graceMs: 0 }).catch(() => undefined);
        const plan = vm.net as unknown as VmNetPlan | null;
        if (plan?.tap) await detachVm(this.o.net, plan.tap).catch(() => undefined);
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
}
