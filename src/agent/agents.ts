// The AgentPort the composition root owns: per VM one live session, opened on demand over the channel its driver
// exposes, re-opened with a fresh session when the old one ended (a restore, a clone, a hibernation resume start a
// new VMM process: its channel is new) or when told the VM changed (invalidate). status() says ready/failed.
import { HangarError } from '../errors.js';
import { AgentClient } from './client.js';
import type { AgentPort, AgentSession, AgentStatus } from './port.js';
import { DEFAULT_SESSION_LIMITS, Session, type SessionLimits } from './session.js';
import { connectChannel, type GuestChannel } from './transport.js';

export interface AgentsDeps {
  /** The VM's agent channel while its VMM runs; null when it has none or is not running (AGENT_UNAVAILABLE). */
  channel(vmId: string): GuestChannel | null;
  /** Before connecting: wake the VM if it sleeps (hibernated, paused); throws if it cannot be used. */
  prepare?(vmId: string): Promise<void>;
  limits?: SessionLimits;
  /** How long a connect + HELLO may take by default. */
  connectTimeoutMs?: number;
  log?: (msg: string, data?: Record<string, unknown>) => void;
}

interface Entry {
  client?: AgentClient;
  connecting?: Promise<AgentClient>;
  status: AgentStatus;
}

export class Agents implements AgentPort {
  private readonly vms = new Map<string, Entry>();

  constructor(private readonly deps: AgentsDeps) {}

  status(vmId: string): AgentStatus {
    return this.vms.get(vmId)?.status ?? { state: 'absent' };
  }

  async session(vmId: string, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<AgentSession> {
    const e = this.vms.get(vmId) ?? { status: { state: 'absent' } as AgentStatus };
    this.vms.set(vmId, e);
    if (e.client?.s.alive) return e.client;
    if (!e.connecting) {
      e.connecting = this.open(vmId, e, opts.timeoutMs ?? this.deps.connectTimeoutMs ?? 10_000).finally(() => { e.connecting = undefined; });
    }
    if (!opts.signal) return e.connecting;
    const signal = opts.signal;
    return Promise.race([e.connecting, new Promise<never>((_, reject) => {
      const f = (): void => reject(new HangarError('CANCELLED', 'cancelled while connecting to the agent', {}));
      if (signal.aborted) f(); else signal.addEventListener('abort', f, { once: true });
    })]);
  }

  /** The VM changed under its session (restored, cloned, stopped, destroyed): drop it; the next use reconnects. */
  invalidate(vmId: string, forget = false): void {
    const e = this.vms.get(vmId);
    e?.client?.close();
    if (forget) this.vms.delete(vmId);
  }

  closeAll(): void {
    for (const id of [...this.vms.keys()]) this.invalidate(id, true);
  }

  private async open(vmId: string, e: Entry, timeoutMs: number): Promise<AgentClient> {
    await this.deps.prepare?.(vmId);
    const ch = this.deps.channel(vmId);
    if (!ch) {
      e.status = { state: 'absent' };
      throw new HangarError('AGENT_UNAVAILABLE', `VM ${vmId} has no agent channel (not running, or its VMM has none)`, { vmId });
    }
    if (e.status.state !== 'failed') e.status = { state: 'connecting' };
    const t0 = Date.now();
    const sock = await connectChannel(ch, timeoutMs);
    const session = new Session(sock, this.deps.limits ?? DEFAULT_SESSION_LIMITS);
    try {
      await session.start(Math.max(1000, timeoutMs - (Date.now() - t0)));
    } catch (err) {
      this.closed(e, session, err instanceof HangarError ? err : new HangarError('AGENT_UNAVAILABLE', String(err), {}));
      throw err;
    }
    const client = new AgentClient(session);
    e.client = client;
    e.status = { state: 'ready', session: session.id, since: Date.now() };
    session.onClose((err) => this.closed(e, session, err));
    this.deps.log?.('agent session', { vmId, session: session.id, hostname: client.hostname });
    return client;
  }

  private closed(e: Entry, session: Session, err: HangarError): void {
    if (e.client && e.client.s !== session) return; // an older session
    e.client = undefined;
    if (err.code === 'AGENT_FAILED') {
      e.status = { state: 'failed', code: err.code, message: err.message, since: Date.now() };
      this.deps.log?.('agent failed', { session: session.id, reason: err.details.reason });
    } else if (e.status.state !== 'failed') {
      e.status = err.code === 'AGENT_TIMEOUT' ? { state: 'failed', code: err.code, message: err.message, since: Date.now() } : { state: 'absent' };
    }
  }
}
