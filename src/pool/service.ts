// Warm pools, the executor: keeps each pool's ready members (clones of its golden snapshot, restored, checked,
// given their own machine-id, and paused) topped up in the background within the memory budget, and hands one out on a claim (src/pool/claim.ts)
// — or, when none is ready, counts a miss and creates a plain clone instead. Pools and members live in the store
// (migration 6); at start, members a controller restart left half-made are removed and refilling resumes.
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { AgentPort } from '../agent/port.js';
import type { VmRecord } from '../domain/vm.js';
import { HangarError, isHangarError } from '../errors.js';
import type { StoredSnapshot } from '../snapshot/store.js';
import type { PoolStore } from '../store/pools.js';
import { runSteps, type StepTiming } from '../util/steps.js';
import { normalizeCreate } from '../vm/input.js';
import type { ResumeSync } from '../vmm/driver.js';
import type { VmOwner } from '../vm/service.js';
import type { CreateVmRequest } from '../vm/input.js';
import { claimSteps, type ClaimCtx, type ClaimPorts, type ClaimVolume } from './claim.js';
import { machineIdFrom, normalizePool, pickMember, POOL_TENANT, refillCount, toPoolView, type PoolRecord, type PoolView } from './plan.js';
import type { PoolMetrics } from './metrics.js';

/** What pools need of the VM layer (VmManager is one). */
export interface PoolVms {
  create(req: CreateVmRequest, owner?: VmOwner): Promise<{ vm: VmRecord; ready: Promise<VmRecord> }>;
  find(idOrName: string): VmRecord | null;
  action(idOrName: string, action: 'pause' | 'resume'): Promise<VmRecord>;
  destroy(idOrName: string): Promise<void>;
  resync(idOrName: string, hostname: string): Promise<ResumeSync | null>;
  isBooting?(id: string): boolean;
}

export interface PoolSnapshots {
  create(req: { image: string }, owner?: VmOwner): Promise<StoredSnapshot>;
  get(id: string): Promise<StoredSnapshot>;
  remove(id: string, force?: 'convert' | 'destroy'): Promise<unknown>;
}

export interface PoolAgents extends AgentPort {
  invalidate?(vmId: string, forget?: boolean): void;
}

/** What a claim needs of the volume service (src/volume/service.ts is one): a narrow port, no import. */
export interface PoolVolumes {
  /** Throws VOLUME_NOT_FOUND / VOLUME_IN_USE before anything changes. */
  precheck(tenant: string, mounts: readonly ClaimVolume[]): void;
  attach(vmId: string, mount: ClaimVolume, tenant?: string): Promise<unknown>;
}

export interface PoolOptions {
  /** Guest memory all pools' members may hold, MiB (null: no budget beyond each pool's size). */
  memoryBudgetMiB: number | null;
  /** Members restored at once across all pools (default 1: restores are CPU-bound). */
  parallel?: number;
  /** How often the refill loop looks (default 2 s); a claim or a create also wakes it. */
  intervalMs?: number;
  /** A pool whose fill failed waits this long before the next try (default 30 s). */
  backoffMs?: number;
}

export interface ClaimResult {
  vm: VmRecord;
  /** Whether a ready member was taken (false: a miss, a plain clone was created). */
  hit: boolean;
  ready: Promise<VmRecord>;
  timings: StepTiming[];
  /** Settles when the guest has applied its hostname, clock and entropy (hits only; never rejects). */
  identity: Promise<{ synced: boolean; ms: number }>;
}

export class PoolService {
  private timer: NodeJS.Timeout | null = null;
  private inFlight = new Map<string, Promise<void>>();
  private making = new Map<string, Promise<void>>();
  private failedAt = new Map<string, number>();
  private stopped = false;

  constructor(
    private readonly store: PoolStore,
    private readonly vms: PoolVms,
    private readonly snapshots: PoolSnapshots,
    private readonly agents: PoolAgents | null,
    private readonly opts: PoolOptions,
    private readonly log: (msg: string, data?: Record<string, unknown>) => void = () => undefined,
  ) {}

  list(): PoolView[] {
    const members = this.store.members();
    return this.store.list().map((p) => toPoolView(p, members));
  }

  get(name: string): PoolView {
    return toPoolView(this.store.must(name), this.store.members(name));
  }

  /** A new pool: a snapshot template must exist; a profile's snapshot is made in the background. */
  async create(body: unknown): Promise<PoolView> {
    const req = normalizePool(body);
    let snapshotId: string | null = null;
    if ('snapshot' in req.template) snapshotId = (await this.snapshots.get(req.template.snapshot)).manifest.id;
    this.store.create({ name: req.name, template: req.template, size: req.size, snapshotId });
    this.wake();
    return this.get(req.name);
  }

  /**
   * Removes a pool: its waiting members are destroyed, and the snapshot it made for a profile template — VMs
   * claimed from it are converted first (each gets its own kernel; a running clone keeps its RAM mapping), never
   * destroyed: they are their tenants' now.
   */
  async remove(name: string): Promise<void> {
    const p = this.store.must(name);
    const members = this.store.members(name);
    this.store.remove(name);
    for (const m of members) await this.vms.destroy(m.vmId).catch((e: unknown) => { if (!isHangarError(e, 'VM_NOT_FOUND')) throw e; });
    if ('profile' in p.template && p.snapshotId) await this.snapshots.remove(p.snapshotId, 'convert').catch((e: unknown) => this.log('pool snapshot not removed', { pool: name, error: (e as Error).message }));
  }

  /**
   * A VM for `owner` from pool `name`: the longest-waiting ready member, given its identity (claim.ts); none
   * ready: a miss, counted, and a plain clone of the pool's snapshot instead (ready when its restore is).
   */
  async claim(name: string, owner: VmOwner, opts: { name?: string; ttlSeconds?: number; volumes?: readonly ClaimVolume[] } = {}): Promise<ClaimResult> {
    const pool = this.store.must(name);
    const volumes = opts.volumes ?? [];
    // Volumes are checked before a member is taken: a missing or busy one changes nothing.
    if (volumes.length) {
      if (!this.volumes) throw new HangarError('INVALID_ARGUMENT', 'this controller attaches no volumes at claim', { field: 'volumes' });
      this.volumes.precheck(owner.tenant, volumes);
    }
    const t0 = performance.now();
    for (;;) {
      const m = pickMember(this.store.members(name));
      if (!m) break;
      const vmName = opts.name ?? m.vmId;
      const ctx: ClaimCtx = {};
      try {
        const { timings } = await runSteps(claimSteps({ vmId: m.vmId, tenant: owner.tenant, name: vmName, ...(opts.ttlSeconds ? { ttlSeconds: opts.ttlSeconds } : {}), volumes }, this.claimPorts()), ctx);
        this.metrics?.claimed(name, (performance.now() - t0) / 1000);
        this.log('pool claim', { pool: name, vm: m.vmId, tenant: owner.tenant, ms: Math.round(performance.now() - t0) });
        this.wake();
        const vm = this.vms.find(m.vmId)!;
        const identity = ctx.identity ?? Promise.resolve({ synced: false, ms: 0 });
        void identity.then((i) => this.log('pool claim identity', { pool: name, vm: m.vmId, ...i }));
        return { vm, hit: true, ready: Promise.resolve(vm), timings, identity };
      } catch (e) {
        // Another claim took it first: try the next one. Anything else is this claim's failure.
        if (isHangarError(e, 'POOL_EMPTY')) continue;
        this.wake();
        throw e;
      }
    }
    this.store.countMiss(name);
    this.metrics?.missed(name);
    this.wake();
    if (!pool.snapshotId) throw new HangarError('POOL_EMPTY', `pool ${name} has no snapshot yet (its template is still being made)`, { pool: name });
    const { vm, ready: restored } = await this.vms.create(normalizeCreate({ fromSnapshot: pool.snapshotId, ...(opts.name ? { name: opts.name } : {}), ...(opts.ttlSeconds ? { ttlSeconds: opts.ttlSeconds } : {}) }), owner);
    // A miss's volumes are attached once its restore is ready, as a hit's are after its resume.
    const ready = volumes.length === 0 ? restored : restored.then(async (r) => {
      for (const v of volumes) await this.volumes!.attach(r.id, v, owner.tenant);
      return this.vms.find(r.id) ?? r;
    });
    return { vm, hit: false, ready, timings: [], identity: ready.then(() => ({ synced: true, ms: 0 }), () => ({ synced: false, ms: 0 })) };
  }

  private claimPorts(): ClaimPorts {
    return {
      take: (id, tenant, name) => this.store.claim(id, tenant, name),
      resume: async (id) => { await this.vms.action(id, 'resume'); },
      resync: async (id, hostname) => {
        const r = await this.vms.resync(id, hostname);
        return r !== null && r.agent && r.guestTime !== null;
      },
      freshSession: (id) => this.agents?.invalidate?.(id),
      setExpiry: (id, expiresAt) => this.setExpiry(id, expiresAt),
      attachVolume: async (id, mount, tenant) => {
        if (!this.volumes) throw new HangarError('INVALID_ARGUMENT', 'this controller attaches no volumes at claim', { field: 'volumes' });
        await this.volumes.attach(id, mount, tenant);
      },
      discard: async (id) => { await this.vms.destroy(id).catch(() => undefined); },
      now: () => performance.now(),
    };
  }

  /** Set by the composition root: the volume service, for volumes asked for at claim (src/volume/service.ts). */
  volumes: PoolVolumes | null = null;
  /** Set by the composition root (the store's patch): a claimed VM's TTL counts from its claim. */
  setExpiry: (id: string, expiresAt: string | null) => void = () => undefined;
  /** Set by the composition root: a snapshot the pool made belongs to the pool tenant (no user lists it). */
  onSnapshot: (id: string) => void = () => undefined;
  metrics: PoolMetrics | null = null;

  // ------------------------------------------------------------------ refill

  /** Cleans up what a restart left, then refills every `intervalMs` (and whenever woken). */
  start(): this {
    this.stopped = false;
    for (const m of this.store.members()) {
      const vm = this.vms.find(m.vmId);
      const alive = vm && (m.state === 'ready' ? vm.state === 'paused' : false);
      if (!alive) {
        this.store.dropMember(m.vmId);
        if (vm) void this.vms.destroy(vm.id).catch(() => undefined);
        this.log('pool member dropped at start', { pool: m.pool, vm: m.vmId, state: vm?.state ?? null });
      }
    }
    this.timer = setInterval(() => this.tick(), this.opts.intervalMs ?? 2000);
    this.timer.unref();
    this.wake();
    return this;
  }

  /** Stops refilling and waits for fills in flight (members already made stay, paused, for the next start). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await Promise.allSettled([...this.inFlight.values(), ...this.making.values()]);
  }

  wake(): void {
    if (!this.stopped) setImmediate(() => this.tick());
  }

  /** One pass of the policy over every pool (refillCount decides; the fills run in the background). */
  tick(): void {
    if (this.stopped) return;
    const all = this.store.members();
    const pools = this.store.list();
    const memberMiB = (p: PoolRecord): number => this.memberMiB.get(p.name) ?? 512;
    const usedMiB = pools.reduce((a, p) => a + all.filter((m) => m.pool === p.name).length * memberMiB(p), 0);
    let inFlight = this.inFlight.size;
    for (const p of pools) {
      if (!p.snapshotId) { this.makeSnapshot(p); continue; }
      if (Date.now() - (this.failedAt.get(p.name) ?? 0) < (this.opts.backoffMs ?? 30_000)) continue;
      const mine = all.filter((m) => m.pool === p.name);
      const d = refillCount({
        size: p.size, ready: mine.filter((m) => m.state === 'ready').length, filling: mine.filter((m) => m.state === 'filling').length,
        parallel: { max: this.opts.parallel ?? 1, inFlight }, budget: { maxMiB: this.opts.memoryBudgetMiB, usedMiB, memberMiB: memberMiB(p) },
      });
      for (let i = 0; i < d.start; i++, inFlight++) this.fill(p);
    }
  }

  private readonly memberMiB = new Map<string, number>();

  private makeSnapshot(p: PoolRecord): void {
    if (this.making.has(p.name) || !('profile' in p.template)) return;
    const profile = p.template.profile;
    const job = (async () => {
      try {
        const s = await this.snapshots.create({ image: profile }, { tenant: POOL_TENANT });
        this.onSnapshot(s.manifest.id);
        if (this.store.get(p.name)) this.store.setSnapshot(p.name, s.manifest.id);
        else await this.snapshots.remove(s.manifest.id, 'destroy');
        this.log('pool snapshot made', { pool: p.name, snapshot: s.manifest.id });
      } catch (e) {
        this.failedAt.set(p.name, Date.now());
        this.log('pool snapshot failed', { pool: p.name, error: (e as Error).message });
      } finally {
        this.making.delete(p.name);
        this.wake();
      }
    })();
    this.making.set(p.name, job);
  }

  /**
   * A member's own /etc/machine-id (every clone of a snapshot has the snapshot's), through hangar-agent; the
   * session used is dropped, so the claimer's is a fresh one. Without an agent port: nothing to do.
   */
  private async giveMachineId(vmId: string): Promise<void> {
    if (!this.agents) return;
    const s = await this.agents.session(vmId, { timeoutMs: 30_000 });
    await s.writeFile('/etc/machine-id', Readable.from([Buffer.from(`${machineIdFrom(randomBytes(16))}\n`)]), { mode: 0o444, uid: 0, gid: 0 });
    this.agents.invalidate?.(vmId);
  }

  /** One member: a clone restored and checked, given its machine-id, then paused and marked ready. */
  private fill(p: PoolRecord): void {
    const key = `${p.name}:${randomBytes(4).toString('hex')}`;
    const job = (async () => {
      const t0 = performance.now();
      let vmId: string | null = null;
      try {
        const { vm, ready } = await this.vms.create(normalizeCreate({ fromSnapshot: p.snapshotId!, name: `pool-${p.name}-${key.slice(-8)}` }), { tenant: POOL_TENANT });
        vmId = vm.id;
        this.memberMiB.set(p.name, vm.memMiB);
        this.store.addMember(vm.id, p.name);
        await ready;
        await this.giveMachineId(vm.id);
        await this.vms.action(vm.id, 'pause');
        if (!this.store.get(p.name)) throw new HangarError('POOL_NOT_FOUND', `pool ${p.name} was removed while a member was made`, { pool: p.name });
        const ms = Math.round(performance.now() - t0);
        this.store.markReady(vm.id, ms);
        this.metrics?.refilled(p.name, ms / 1000);
        this.failedAt.delete(p.name);
      } catch (e) {
        if (!isHangarError(e, 'POOL_NOT_FOUND')) this.failedAt.set(p.name, Date.now());
        this.log('pool fill failed', { pool: p.name, vm: vmId, error: (e as Error).message });
        if (vmId) {
          this.store.dropMember(vmId);
          await this.vms.destroy(vmId).catch(() => undefined);
        }
      } finally {
        this.inFlight.delete(key);
        this.wake();
      }
    })();
    this.inFlight.set(key, job);
  }
}
