// When each VM was last used (API action, viewer traffic, agent use) and which VMs have a long-lived stream attached
// (viewers, exec and terminal sessions, CDP): the idleness clock of the idler (src/api/workers.ts). In memory:
// activity before this controller started is unknown and counts from its start.
import type { AgentPort, AgentSession, ExecHandle } from '../agent/port.js';

export class Activity {
  private readonly last = new Map<string, number>();
  private readonly holds = new Map<string, number>();
  private readonly startedAt: number;

  constructor(private readonly now: () => number = Date.now) {
    this.startedAt = now();
  }

  touch(id: string): void {
    this.last.set(id, this.now());
  }

  /** A viewer is attached: the VM is never idle until the returned release is called (idempotent). */
  hold(id: string): () => void {
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

  held(id: string): boolean {
    return (this.holds.get(id) ?? 0) > 0;
  }

  /** Whether id has had no activity and no viewer for afterS seconds. */
  idle(id: string, afterS: number, now = this.now()): boolean {
    return !this.held(id) && now - (this.last.get(id) ?? this.startedAt) >= afterS * 1000;
  }

  forget(id: string): void {
    this.last.delete(id);
    this.holds.delete(id);
  }
}

// ---------------------------------------------------------------- every access path counts

/**
 * Whether an API request counts as use of the VM it names: anything under /v1/vms/:id/… (exec, files, screenshots,
 * computer use, recordings, CDP, console…) and every change to the VM itself; a plain read of the VM's record
 * (GET /v1/vms/:id, a status poll) and its event stream do not (a dashboard must not keep every VM awake). Pure.
 */
export function countsAsActivity(method: string, routeUrl: string | undefined): boolean {
  if (!routeUrl?.startsWith('/v1/vms/:')) return false;
  const rest = routeUrl.replace(/^\/v1\/vms\/:[^/]+/, '');
  if (rest === '') return method !== 'GET' && method !== 'HEAD';
  return !/^\/(events|idle)(\/|$)/.test(rest) || method !== 'GET';
}

/** What the activity wrapper of the agents needs: wake a sleeping VM, touch it, hold it while a stream lives. */
export interface ActivityPort {
  /** Resumes a paused VM, restores a hibernated one (no-op for a running one). */
  wake(vmId: string): Promise<void>;
  touch(vmId: string): void;
  hold(vmId: string): () => void;
}

/**
 * The agents as every user of them sees them (exec and terminal WebSockets, file routes, CDP, the doctor): each
 * session() wakes the VM and counts as activity, and a long-lived stream (a process, a TCP stream such as CDP, a
 * file being read, a watcher) holds the VM awake until it ends, as a viewer does.
 */
export function activeAgents(agents: AgentPort, a: ActivityPort): AgentPort {
  return {
    status: (id) => agents.status(id),
    session: async (id, opts) => {
      await a.wake(id);
      a.touch(id);
      return holdingSession(await agents.session(id, opts), () => a.hold(id));
    },
  };
}

/** A property of `t` as a method bound to `t` (never to a proxy: private fields need their own `this`). */
function own<T extends object>(t: T, k: string | symbol): unknown {
  const v = Reflect.get(t, k, t) as unknown;
  return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
}

function holdingSession(s: AgentSession, hold: () => () => void): AgentSession {
  const exec = (h: ExecHandle): ExecHandle => {
    const release = hold();
    void h.exit.then(release, release);
    return new Proxy(h, {
      get: (t, k) => (k === 'detach' ? () => { release(); t.detach(); } : own(t, k)),
    });
  };
  const overrides: Partial<AgentSession> = {
    exec: async (req, o) => exec(await s.exec(req, o)),
    attach: async (proc) => exec(await s.attach(proc)),
    connectTcp: async (port, host) => {
      const d = await s.connectTcp(port, host);
      const release = hold();
      d.once('close', release);
      return d;
    },
    readFile: async (path, o) => {
      const r = await s.readFile(path, o);
      const release = hold();
      r.stream.once('close', release).once('end', release);
      return r;
    },
    watch: async (path, o) => {
      const w = await s.watch(path, o);
      const release = hold();
      return new Proxy(w, { get: (t, k) => (k === 'close' ? () => { release(); t.close(); } : own(t, k)) });
    },
  };
  return new Proxy(s, {
    get: (t, k) => (k in overrides ? overrides[k as keyof AgentSession] : own(t, k)),
  });
}
