// Background work of the controller. Each worker is a loop with a `tick()` that does one round, so tests drive
// it directly; `start()`/`stop()` run it on an interval that never overlaps itself.
import { VNC_PORT } from '../guest-protocol.js';
import { readBanner, type Dialer } from '../net/dial.js';
import type { Store, VmRecord } from '../store/store.js';
import type { VmService } from '../vm/service.js';
import { trimConsoleLog } from '../vmm/console-trim.js';

export class Loop {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(readonly name: string, private readonly intervalMs: number, readonly tick: () => Promise<void>, private readonly onError: (e: unknown) => void = () => {}) {}

  start(): this {
    if (this.timer) return this;
    this.timer = setInterval(() => {
      if (this.running) return; // a slow round is not run twice at once
      this.running = this.tick().catch(this.onError).finally(() => { this.running = undefined; });
    }, this.intervalMs);
    this.timer.unref();
    return this;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }
}

/** Destroys VMs whose TTL has run out. */
export function ttlReaper(service: VmService, store: Store, intervalMs: number, now: () => number = Date.now): Loop {
  return new Loop('ttl-reaper', intervalMs, async () => {
    for (const vm of service.list()) {
      if (!vm.expiresAt || Date.parse(vm.expiresAt) > now()) continue;
      if (vm.state === 'creating') continue;
      store.appendEvent(vm.id, 'vm.expired', { expiresAt: vm.expiresAt });
      await service.destroy(vm.id).catch((e: unknown) => store.appendEvent(vm.id, 'vm.reap_failed', { message: (e as Error).message }));
    }
  });
}

/** Probes the desktop of every ready VM from the host side; records an event when a VM's health changes. */
export function healthLoop(service: VmService, store: Store, dialer: Dialer, intervalMs: number): Loop & { health: Map<string, boolean> } {
  const health = new Map<string, boolean>();
  const loop = new Loop('health', intervalMs, async () => {
    const seen = new Set<string>();
    for (const vm of service.list()) {
      if (vm.state !== 'ready') continue;
      seen.add(vm.id);
      const ip = (vm.net as { ip?: string } | null)?.ip;
      if (!ip) continue;
      const ok = await readBanner(dialer, ip, VNC_PORT, 3000).then((b) => b.startsWith('RFB '), () => false);
      if (health.get(vm.id) !== ok) store.appendEvent(vm.id, 'vm.health', { ok });
      health.set(vm.id, ok);
    }
    for (const id of health.keys()) if (!seen.has(id)) health.delete(id);
  });
  return Object.assign(loop, { health });
}

/** What idling needs of the manager: who is idle, and hibernation. */
export interface Hibernatable {
  idleVms(afterS: number, now?: number): VmRecord[];
  hibernate(id: string): Promise<VmRecord>;
}

/** What the idler needs of the manager: hibernate, and pause (through the one action dispatch). */
export interface Idleable extends Hibernatable {
  action(id: string, action: 'pause'): Promise<VmRecord>;
}

export type IdleAction = 'hibernate' | 'pause';

/** The idle rule of each VM: its own timeout and action over the config's defaults. */
export interface IdlePolicy {
  defaultS: number;
  defaultAction: IdleAction;
  /** The VMs' own settings (null fields: the default; timeoutS 0: never idle). */
  own(): Map<string, { timeoutS: number | null; action: IdleAction | null }>;
}

/** Each ready VM's effective timeout (seconds, > 0) and action; VMs that never idle are left out. Pure. */
export function idleRules(vms: readonly Pick<VmRecord, 'id'>[], p: Pick<IdlePolicy, 'defaultS' | 'defaultAction'>, own: ReadonlyMap<string, { timeoutS: number | null; action: IdleAction | null }>): Map<string, { afterS: number; action: IdleAction }> {
  const out = new Map<string, { afterS: number; action: IdleAction }>();
  for (const vm of vms) {
    const o = own.get(vm.id);
    const afterS = o?.timeoutS ?? p.defaultS;
    if (afterS > 0) out.set(vm.id, { afterS, action: o?.action ?? p.defaultAction });
  }
  return out;
}

/**
 * Hibernates or pauses each VM idle for its own timeout (no viewer, exec, terminal, CDP, computer-use or API
 * activity: src/vm/activity.ts). Any access wakes it again (viewers, agents and computer use resume a paused VM and
 * restore a hibernated one). One VM at a time: saving a guest's memory is I/O the host should not do for every idle VM at once.
 */
export function idler(manager: Idleable, store: Store, policy: IdlePolicy, intervalMs: number, now: () => number = Date.now): Loop {
  return new Loop('idler', intervalMs, async () => {
    const t = now();
    const rules = idleRules(manager.idleVms(0, t), policy, policy.own());
    const byTimeout = new Map<number, string[]>();
    for (const [id, r] of rules) byTimeout.set(r.afterS, [...(byTimeout.get(r.afterS) ?? []), id]);
    for (const [afterS, ids] of byTimeout) {
      const idle = new Set(manager.idleVms(afterS, t).map((v) => v.id));
      for (const id of ids.filter((i) => idle.has(i))) {
        const action = rules.get(id)!.action;
        const done = action === 'pause' ? manager.action(id, 'pause') : manager.hibernate(id);
        await done.then(
          () => store.appendEvent(id, 'vm.idle', { action, afterS }),
          (e: unknown) => store.appendEvent(id, action === 'pause' ? 'vm.pause_failed' : 'vm.hibernate_failed', { message: (e as Error).message }),
        );
      }
    }
  });
}

/**
 * Keeps every VM's console.log under `maxBytes` (the guest decides how much it writes; QEMU and the supervisor
 * append to the file themselves): a log past the cap keeps its newest part after a line saying what was dropped.
 */
export function consoleTrimmer(service: Pick<VmService, 'list' | 'consolePath'>, store: Pick<Store, 'appendEvent'>, maxBytes: number, intervalMs: number): Loop {
  return new Loop('console-trimmer', intervalMs, async () => {
    for (const vm of service.list()) {
      const r = await Promise.resolve().then(() => trimConsoleLog(service.consolePath(vm.id), maxBytes)).catch(() => null); // a VM gone meanwhile: skipped
      if (r) store.appendEvent(vm.id, 'vm.console_trimmed', { dropped: r.dropped, droppedTotal: r.droppedTotal, size: r.size });
    }
  });
}
