// The VM lifecycle: golden image → running, networked VM → nothing, without leaking anything. This file is the
// facade the controller's front ends use (VmService); the work is in parts with one job each:
//   create.ts      what a request becomes, refused before anything exists      boot.ts     cold / restore step lists
//   network.ts     the VM's network behind one port                            disks.ts    the VM's disk copy
//   saved-state.ts hibernation and golden capture                              live.ts     running VMMs, crash watch
//   reconcile.ts   adoption at controller start                                activity.ts idleness
//   host-info.ts   host and image summaries                                    lock.ts     the per-VM lock
// Every action goes through the per-VM lock and the action table of src/domain/states.ts, so "not allowed in
// state X" comes from one place; every state change through the store's state machine.
import type { GuestChannel } from '../guest-protocol.js';
import { randomBytes } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { actionState, checkAction, type LifecycleAction, type VmAction } from '../domain/states.js';
import { specOf, type VmNet, type VmRecord } from '../domain/vm.js';
import { HangarError, isHangarError } from '../errors.js';
import type { HangarMetrics } from '../metrics.js';
import type { NetConfig } from '../net/config.js';
import { createDialer, type DialOptions, type Dialer } from '../net/dial.js';
import { SnapshotService } from '../snapshot/service.js';
import { SnapshotStore } from '../snapshot/store.js';
import type { StateStore } from '../store/store.js';
import { silentProgress, type Progress } from '../util/progress.js';
import { tailFile } from '../util/tail.js';
import type { ResumeSync, VmmDriver } from '../vmm/driver.js';
import type { MachineSpec, VmmKind } from '../vmm/types.js';
import { Activity } from './activity.js';
import { Booter } from './booter.js';
import { coldMachineSpec, planClone, planColdCreate, type CreateContext } from './create.js';
import { hostDisks, type Disks } from './disks.js';
import { hostInfo, imageSummaries } from './host-info.js';
import type { CreateVmRequest } from './input.js';
import { CONSOLE_TAIL_LINES, LiveVms } from './live.js';
import { KeyedLock } from './lock.js';
import { hostVmNetwork, type VmNetwork } from './network.js';
import { changeNetworkPolicy, currentPolicy } from './network-policy.js';
import type { Egress, VmEgressFacts } from '../net/egress/egress.js';
import type { NetworkPolicy } from '../net/egress/policy.js';
import type { NetworkPolicyBody } from '../net/egress/schema.js';
import { reconcile, stopVmmIn, type ReconcileReport } from './reconcile.js';
import { POOL_TENANT } from '../pool/plan.js';
import { captureVm, hibernateVm, hibernationBoot, type CapturedVm, type SavedStateDeps } from './saved-state.js';
import type { HostInfo, ImageSource, ImageSummary, VmOwner, VmService } from './service.js';

export type { CapturedVm } from './saved-state.js';
export type { ReconcileReport } from './reconcile.js';
export type { VmNet, Hibernation } from '../domain/vm.js';

export type { ImageSource } from './service.js';

export interface ManagerOptions {
  store: StateStore;
  /** VM run directories live under `${stateDir}/vms`. */
  stateDir: string;
  net: NetConfig;
  drivers: Partial<Record<VmmKind, VmmDriver>>;
  defaultVmm: VmmKind;
  images: ImageSource;
  readyTimeoutMs?: number;
  maxVms?: number;
  metrics?: HangarMetrics;
  dialer?: Dialer;
  /** Boot phases of every VM (CLI/foreground); silent by default. */
  progress?: Progress;
  log?: (msg: string, data?: Record<string, unknown>) => void;
  /** Golden snapshots (default: a store in `${stateDir}/snapshots`; the controller passes the cache's). */
  snapshotStore?: SnapshotStore;
  /** @deprecated use snapshotStore: golden snapshots live here. */
  snapshotsDir?: string;
  /** Link-local pool for the clones' veth /30s (default DEFAULT_CLONE_LINK_CIDR). */
  cloneLinkCidr?: string;
  /** The VM's network (default: the host's, from `net`); tests pass a fake. */
  network?: VmNetwork;
  /** Walls and door (src/net/egress/): with it, each VM's policy is enforced on its network. */
  egress?: Egress;
  disks?: Disks;
  /** Test seam (fault injection): rewrites a cold-booted VM's machine spec just before its VMM starts. */
  specOverride?: (spec: MachineSpec, vm: VmRecord) => MachineSpec;
}

const newId = (): string => `vm-${randomBytes(4).toString('hex')}`;
/** A driver's probe is remembered this long: creates refuse an unusable VMM up front without a probe each. */
const PROBE_TTL_MS = 10_000;

export class VmManager implements VmService {
  private readonly lock = new KeyedLock();
  private readonly probes = new Map<VmmKind, { at: number; available: boolean; reason: string }>();
  private readonly live: LiveVms;
  private readonly activity = new Activity();
  private readonly network: VmNetwork;
  private readonly disks: Disks;
  private readonly dialer: Dialer;
  private readonly booter: Booter;
  /** Golden snapshots: create/list/delete (API and CLI go through this). */
  readonly snapshots: SnapshotService;

  constructor(private readonly o: ManagerOptions) {
    this.dialer = o.dialer ?? createDialer(o.net);
    this.network = o.network ?? hostVmNetwork(o.net, o.cloneLinkCidr, o.egress ? { egress: o.egress, policyOf: (id) => o.store.getVm(id)?.netPolicy ?? null } : undefined);
    this.disks = o.disks ?? hostDisks;
    this.live = new LiveVms(o.store, (id) => this.consoleTail(id), (m, d) => this.log(m, d));
    this.booter = new Booter({
      store: o.store, live: this.live, activity: this.activity, network: this.network, disks: this.disks, dialer: this.dialer,
      progress: o.progress ?? silentProgress, readyTimeoutMs: o.readyTimeoutMs ?? 180_000, log: (m, d) => this.log(m, d),
      ...(o.metrics ? { metrics: o.metrics } : {}), ...(o.specOverride ? { specOverride: o.specOverride } : {}),
    });
    const snapStore = o.snapshotStore ?? new SnapshotStore(o.snapshotsDir ?? join(o.stateDir, 'snapshots'));
    this.snapshots = new SnapshotService(this, snapStore, o.images, o.store);
    o.metrics?.wire({
      vmsByState: () => o.store.countByState(),
      poolFree: () => this.network.poolSize() - o.store.allocations('ip').length,
      poolSize: () => this.network.poolSize(),
      vmLimits: () => this.live.ids().flatMap((id) => {
        const l = this.live.get(id)?.handle.limits;
        return l ? [{ vm: id, cpuCores: l.cpuCores, memMiB: l.memMiB, pids: l.pids }] : [];
      }),
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

  private runDir(id: string): string {
    return join(this.o.stateDir, 'vms', id);
  }

  private consoleTail(id: string): Promise<string> {
    return tailFile(join(this.runDir(id), 'console.log'), CONSOLE_TAIL_LINES);
  }

  /** Refused up front (VMM_NOT_AVAILABLE) when the driver's probe says it cannot run here. */
  private async usable(d: VmmDriver): Promise<void> {
    const kind = d.kind;
    let p = this.probes.get(kind);
    if (!p || Date.now() - p.at > PROBE_TTL_MS) {
      const r = await d.probe();
      p = { at: Date.now(), available: r.available, reason: r.reason };
      this.probes.set(kind, p);
    }
    if (!p.available) throw new HangarError('VMM_NOT_AVAILABLE', `${kind} cannot run on this host: ${p.reason}`, { vmm: kind, reason: p.reason });
  }

  private driver(kind: VmmKind): VmmDriver {
    const d = this.o.drivers[kind];
    if (!d) throw new HangarError('VMM_NOT_AVAILABLE', `no ${kind} driver is configured on this controller`, { vmm: kind });
    return d;
  }

  // ---------------------------------------------------------------- create

  async create(req: CreateVmRequest, owner?: VmOwner): Promise<{ vm: VmRecord; ready: Promise<VmRecord> }> {
    const id = newId();
    const c: CreateContext = {
      id, runDir: this.runDir(id), now: Date.now(), network: this.network, driver: (k) => this.driver(k), usable: (d) => this.usable(d),
      ...(owner ? { tenant: owner.tenant } : {}),
    };
    // Everything that can be refused is refused here, before any record, address or directory exists.
    const plan = req.fromSnapshot
      ? await planClone(req, await this.snapshots.store.get(req.fromSnapshot), c)
      : await planColdCreate(req, await this.o.images.resolve(req.image), req.vmm ?? this.o.defaultVmm, c);
    const vm = this.o.store.createVm(plan.vm, { maxVms: this.o.maxVms ?? 64, plan: plan.plan });
    this.log('vm created', { id, name: vm.name, ...plan.what, address: vm.net?.ip });
    this.activity.touch(id);
    const { spec, from } = plan.boot(vm);
    const ready = this.lock.run(id, () => this.booter.boot(vm.id, plan.driver, spec, from));
    return { vm, ready };
  }

  // ---------------------------------------------------------------- actions

  /** The VMs users see: a warm pool's members wait in POOL_TENANT until a claim moves them (src/pool/). */
  list(): VmRecord[] {
    return this.o.store.listVms().filter((vm) => vm.tenantId !== POOL_TENANT);
  }

  /** A claimed pool member, just resumed: clock, entropy and its own hostname through the agent channel. */
  resync(idOrName: string, hostname: string): Promise<ResumeSync | null> {
    const id = this.get(idOrName).id;
    this.activity.touch(id);
    return this.lock.run(id, () => this.live.must(id).handle.afterResume({ hostname }));
  }

  get(idOrName: string): VmRecord {
    return this.o.store.mustGetVm(idOrName);
  }

  /** The VM, or null when there is none. */
  find(idOrName: string): VmRecord | null {
    return this.o.store.getVm(idOrName);
  }

  consolePath(idOrName: string): string {
    return join(this.get(idOrName).runDir, 'console.log');
  }

  /**
   * The one dispatch of user actions: the VM's lock, then the action table (not allowed → VM_INVALID_STATE, already
   * there → the VM as it is). start answers once the boot has begun (`started` resolves with the ready VM);
   * resume of a hibernated VM waits until it is ready.
   */
  action(idOrName: string, action: LifecycleAction): Promise<VmRecord> {
    return this.act(idOrName, action).then((r) => r.vm);
  }

  /** action() with the boot in flight, for callers that wait until the VM is ready (`start?wait=true`). */
  async act(idOrName: string, action: LifecycleAction): Promise<{ vm: VmRecord; ready: Promise<VmRecord> }> {
    const id = this.get(idOrName).id;
    this.activity.touch(id);
    if (action === 'stop') this.booter.abort(id);
    let ready: Promise<VmRecord> | undefined;
    const vm = await this.lock.run(id, async () => {
      const vm = this.get(id);
      const state = actionState(vm);
      if (checkAction(id, state, action) === 'done') {
        ready = state === 'booting' ? this.bootingDone(id) : undefined;
        return vm;
      }
      switch (action) {
        case 'pause':
          await this.live.must(id).handle.pause();
          return this.o.store.setState(id, 'paused');
        case 'resume':
          if (state === 'hibernated') return (ready = this.startBoot(vm));
          await this.live.must(id).handle.resume();
          return this.o.store.setState(id, 'ready');
        case 'stop':
          return this.stopVm(vm);
        case 'hibernate':
          return hibernateVm(vm, this.savedStateDeps());
        case 'start':
          ready = this.startBoot(vm);
          ready.catch(() => undefined);
          return this.get(id);
      }
    });
    // A resume of a hibernated VM answers with the ready VM.
    if (action === 'resume' && ready) return { vm: await ready, ready };
    return { vm, ready: ready ?? Promise.resolve(vm) };
  }

  private bootingDone(id: string): Promise<VmRecord> {
    return this.booter.settled(id).then(() => this.get(id));
  }

  /** Starts the boot of a stopped, failed or hibernated VM (the lock is held); resolves when it is ready. */
  private startBoot(vm: VmRecord): Promise<VmRecord> {
    const id = vm.id;
    return (async () => {
      if (vm.state === 'failed') await this.stopVm(vm);
      const driver = this.driver(vm.vmm);
      if (vm.hibernation) return this.booter.boot(id, driver, specOf(vm), hibernationBoot(vm, this.o.store));
      const image = await this.o.images.resolve(vm.imageId);
      return this.booter.boot(id, driver, coldMachineSpec(vm, image, this.network), { kind: 'cold', imageDisk: image.rootfsPath, fresh: false });
    })();
  }

  /** Stops the VMM and removes the VM's network; the disk, allocations and row stay. */
  private async stopVm(vm: VmRecord): Promise<VmRecord> {
    if (vm.state !== 'failed') this.o.store.setState(vm.id, 'stopping');
    const exit = await this.live.stop(vm.id, 2000);
    await this.network.detach(vm.net);
    return this.o.store.setState(vm.id, 'stopped', { pid: null, ...(exit ? { exit } : {}) });
  }

  destroy(idOrName: string): Promise<void> {
    const id = this.get(idOrName).id;
    this.booter.abort(id);
    return this.lock.run(id, async () => {
      const vm = this.o.store.getVm(id);
      if (!vm) throw new HangarError('VM_NOT_FOUND', `no VM ${idOrName}`, { id: idOrName });
      checkAction(id, actionState(vm), 'destroy');
      if (!['stopped', 'failed'].includes(vm.state) || this.live.has(id)) await this.stopVm(this.get(id));
      await this.network.detach(vm.net);
      // The run directory holds the disk and, for a hibernated VM, its saved state.
      await rm(vm.runDir, { recursive: true, force: true });
      this.o.store.deleteVm(id);
      this.activity.forget(id);
      this.log('vm destroyed', { id });
    });
  }

  private savedStateDeps(): Parameters<typeof hibernateVm>[1] {
    const q = this.quiesceHook;
    return { store: this.o.store, live: this.live, network: this.network, log: (m, d) => this.log(m, d), ...(q ? { quiesce: q } : {}) };
  }

  private quiesceHook: SavedStateDeps['quiesce'];
  /** What closes the host's own connections into a guest before its state is saved (the controller's viewers and computer use). */
  setQuiesce(fn: NonNullable<SavedStateDeps['quiesce']>): void {
    this.quiesceHook = fn;
  }

  /** Records a VM's machine spec as changed outside a boot (a clone made independent of its snapshot). */
  updateSpec(id: string, spec: MachineSpec): void {
    this.o.store.patchVm(this.get(id).id, { spec });
  }

  /** PATCH /v1/vms/:id/network: not behind the per-VM lock (a boot holds it for minutes; this takes milliseconds). */
  setNetworkPolicy(idOrName: string, body: NetworkPolicyBody): Promise<VmRecord> {
    return changeNetworkPolicy({ store: this.o.store, network: this.network }, this.get(idOrName), body);
  }

  /** The policy a VM runs under (its own, or the config's default). */
  networkPolicy(idOrName: string): NetworkPolicy {
    return currentPolicy(this.get(idOrName), this.network);
  }

  /** The doctor's evidence of a VM's way out (null: no egress layer or no network). */
  async egressFacts(idOrName: string): Promise<VmEgressFacts | null> {
    const vm = this.get(idOrName);
    if (!this.o.egress || !vm.net) return null;
    return { vm: { id: vm.id, ip: vm.net.ip, policy: currentPolicy(vm, this.network) }, ...(await this.o.egress.evidence(vm.net.ip)) };
  }

  /** Hibernation as its own call (the hibernator, POST /v1/vms/:id/hibernate). */
  hibernate(idOrName: string): Promise<VmRecord> {
    return this.action(idOrName, 'hibernate');
  }

  /** A golden snapshot's capture of a ready VM (see saved-state.ts); through the same lock and action table. */
  captureVm(idOrName: string, dir: string): Promise<CapturedVm> {
    const id = this.get(idOrName).id;
    this.activity.touch(id);
    return this.lock.run(id, async () => {
      const vm = this.get(id);
      checkAction(id, actionState(vm), 'capture' satisfies VmAction);
      return captureVm(vm, dir, this.savedStateDeps());
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
    const ip = vm.net?.ip;
    if (!ip) throw new HangarError('VM_UNREACHABLE', `VM ${vm.id} has no address`, { id: vm.id });
    this.activity.touch(vm.id);
    return this.dialer.connect(ip, port, opts);
  }

  /** Where hangar-agent of a running VM is reached (its VMM's channel), or null (not running, no channel). */
  guestChannel(idOrName: string): GuestChannel | null {
    const vm = this.o.store.getVm(idOrName);
    return (vm && this.live.get(vm.id)?.handle.guestChannel) ?? null;
  }

  /** The running VMM's monitor (QEMU's QMP) for the volume slots, or null (not running, or a VMM without one). */
  monitor(idOrName: string): ((command: string, args?: Record<string, unknown>) => Promise<unknown>) | null {
    const h = this.live.get(this.get(idOrName).id)?.handle;
    return h?.monitor ? (c, a) => h.monitor!(c, a) : null;
  }

  /** Records activity on a VM (API action, viewer input): it is not idle for the hibernator. */
  touch(idOrName: string): void {
    const vm = this.o.store.getVm(idOrName);
    if (vm) this.activity.touch(vm.id);
  }

  /** A viewer is attached: the VM is never idle until the returned release is called. */
  hold(idOrName: string): () => void {
    return this.activity.hold(this.get(idOrName).id);
  }

  /** Ready VMs with no viewer and no activity for afterS seconds (activity before this manager started is unknown). */
  idleVms(afterS: number, now = Date.now()): VmRecord[] {
    return this.list().filter((vm) => vm.state === 'ready' && this.activity.idle(vm.id, afterS, now));
  }

  /**
   * Whatever it takes for a viewer to connect: a hibernated VM is restored, a paused one resumed, a booting one
   * awaited. Resolves with the ready VM; VM_INVALID_STATE for a VM that is stopped (not hibernated) or failed.
   */
  async ensureRunning(idOrName: string): Promise<VmRecord> {
    const id = this.get(idOrName).id;
    this.activity.touch(id);
    await this.booter.settled(id);
    // After whatever is in flight on this VM (a boot, a hibernation that started a moment ago).
    const vm = await this.lock.run(id, async () => this.get(id));
    if (vm.state === 'ready') return vm;
    if (vm.state === 'paused' || vm.hibernation) return this.action(vm.id, 'resume');
    throw new HangarError('VM_INVALID_STATE', `VM ${vm.id} is ${vm.state}: start it first`, { id: vm.id, state: vm.state });
  }

  // ---------------------------------------------------------------- host, restart

  host(): Promise<HostInfo> {
    return hostInfo(this.o.drivers, this.o.net, this.o.store, this.network.poolSize());
  }

  images(): Promise<ImageSummary[]> {
    return imageSummaries(this.o.images);
  }

  /** Run once at controller start (see reconcile.ts). */
  reconcile(): Promise<ReconcileReport> {
    const vmsDir = join(this.o.stateDir, 'vms');
    return reconcile({
      store: this.o.store, drivers: this.o.drivers, network: this.network,
      adopt: (vm, handle, undo) => { this.live.add(vm.id, handle, undo); this.activity.touch(vm.id); },
      liveNets: () => this.live.ids().map((id) => this.o.store.getVm(id)?.net).filter((n): n is VmNet => !!n),
      consoleTail: (vm, lines) => tailFile(join(vm.runDir, 'console.log'), lines),
      listRunDirs: () => readdir(vmsDir).catch(() => [] as string[]),
      removeRunDir: (v) => rm('runDir' in v ? v.runDir : join(vmsDir, v.id), { recursive: true, force: true }),
      stopRunDirVmm: (v) => stopVmmIn('runDir' in v ? v.runDir : join(vmsDir, v.id)),
      log: (m, d) => this.log(m, d),
    });
  }

  /** Controller shutdown: stop watching, leave VMs running (adopted at next start). */
  async detachAll(): Promise<void> {
    await this.booter.abortAll();
    this.live.releaseAll();
  }

  /** Stops and destroys every VM (tests, `hangar down --purge`). */
  async destroyAll(): Promise<void> {
    for (const vm of this.o.store.listVms()) {
      await this.destroy(vm.id).catch((e: unknown) => {
        if (!isHangarError(e, 'VM_NOT_FOUND')) throw e;
      });
    }
  }
}
