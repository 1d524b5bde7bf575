// The E2B fields of Hangar's sandboxes (metadata, envs, envd access token, timeout and what it does), kept beside
// their VMs, and the loop that acts on timeouts: a sandbox past its end is killed, or hibernated when it asked for
// auto-pause (a paused sandbox's clock stops; connect gives it a new timeout). Kept in memory and, with a
// persistence (src/e2b/persist.ts), written through to the database and loaded back at start.
import { timingSafeEqual } from 'node:crypto';
import type { E2bFields } from './model.js';
import type { E2bPersistence } from './persist.js';

export class E2bState {
  private readonly byVm = new Map<string, E2bFields>();

  constructor(private readonly persist?: E2bPersistence) {
    for (const [id, f] of persist?.load() ?? []) this.byVm.set(id, f);
  }

  get(vmId: string): E2bFields | undefined {
    return this.byVm.get(vmId);
  }

  set(vmId: string, f: E2bFields): void {
    this.byVm.set(vmId, f);
    this.persist?.save(vmId, f);
  }

  update(vmId: string, patch: Partial<E2bFields>): E2bFields | undefined {
    const f = this.byVm.get(vmId);
    if (!f) return undefined;
    const next = { ...f, ...patch };
    this.byVm.set(vmId, next);
    this.persist?.save(vmId, next);
    return next;
  }

  forget(vmId: string): void {
    this.byVm.delete(vmId);
    this.persist?.remove(vmId);
  }

  ids(): string[] {
    return [...this.byVm.keys()];
  }

  /** Whether `token` is the sandbox's envd access token (constant time). */
  tokenMatches(vmId: string, token: string | undefined): boolean {
    const f = this.byVm.get(vmId);
    if (!f || token === undefined) return false;
    const a = Buffer.from(f.envdAccessToken);
    const b = Buffer.from(token);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  /** Sandboxes whose timeout has passed at `now` and are not paused, with what to do. Pure over the state. */
  due(now: number, paused: (vmId: string) => boolean): { vmId: string; action: 'kill' | 'pause' }[] {
    return [...this.byVm].filter(([id, f]) => f.endAt <= now && !paused(id)).map(([vmId, f]) => ({ vmId, action: f.autoPause ? 'pause' : 'kill' }));
  }
}

export interface TimeoutLoopDeps {
  state: E2bState;
  paused(vmId: string): boolean;
  kill(vmId: string): Promise<void>;
  pause(vmId: string): Promise<void>;
  log?(msg: string, data: Record<string, unknown>): void;
}

/** Acts on due timeouts every `intervalMs`; stop() ends it. */
export function startTimeoutLoop(d: TimeoutLoopDeps, intervalMs = 1000): { stop(): void; tick(now?: number): Promise<void> } {
  const busy = new Set<string>();
  const tick = async (now = Date.now()): Promise<void> => {
    await Promise.all(d.state.due(now, d.paused).filter((x) => !busy.has(x.vmId)).map(async ({ vmId, action }) => {
      busy.add(vmId);
      try {
        if (action === 'kill') {
          await d.kill(vmId);
          d.state.forget(vmId);
        } else {
          await d.pause(vmId);
        }
        d.log?.('e2b sandbox timed out', { vm: vmId, action });
      } catch (e) {
        d.log?.('e2b sandbox timeout action failed', { vm: vmId, action, err: String(e) });
      } finally {
        busy.delete(vmId);
      }
    }));
  };
  const t = setInterval(() => { void tick(); }, intervalMs);
  t.unref();
  return { stop: () => clearInterval(t), tick };
}
