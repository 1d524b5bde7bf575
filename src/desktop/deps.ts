// What the desktop module needs from the controller, its limits, and the per-VM viewer registry shared by the
// HTTP routes (status) and the WebSocket bridge (admission).
import type { Duplex } from 'node:stream';
import { HangarError } from '../errors.js';
import type { HangarMetrics } from '../metrics.js';
import { assertSecret } from './token.js';
import { quotaError } from '../tenancy/keys.js';

export interface DesktopLimits {
  /** Concurrent viewers per VM; the next one is refused with VIEWER_LIMIT (429) before the upgrade. */
  viewersPerVm: number;
  /** A bridge with no byte in either direction for this long is closed (close code 4000). */
  idleMs: number;
  /** Lifetime of a viewer token when the request does not ask for one. */
  tokenTtlMs: number;
  /** Longest lifetime a request may ask for. */
  maxTokenTtlMs: number;
  /** Time allowed for `dial` to reach the VM's RFB server. */
  dialTimeoutMs: number;
  /** Bytes queued towards the viewer above which reading from the VM pauses. */
  highWaterBytes: number;
  /** Largest single WebSocket message accepted from a viewer (RFB client messages are small). */
  maxMessageBytes: number;
  /**
   * Bytes per read from the VM (asked of `dial`): framebuffer updates arrive in large bursts, and reading them in
   * 256 KiB instead of Node's 64 KiB pieces means fewer system calls and fewer, larger WebSocket messages.
   */
  vmReadBufferBytes: number;
}

export const DEFAULT_DESKTOP_LIMITS: Readonly<DesktopLimits> = Object.freeze({
  viewersPerVm: 4,
  idleMs: 15 * 60_000,
  tokenTtlMs: 5 * 60_000,
  maxTokenTtlMs: 60 * 60_000,
  dialTimeoutMs: 5_000,
  highWaterBytes: 1024 * 1024,
  maxMessageBytes: 4 * 1024 * 1024,
  vmReadBufferBytes: 256 * 1024,
});

/** The part of a VM the desktop module looks at. */
export interface DesktopVm {
  state: string;
  /** The VM's viewer nonce (tokens are signed over it; see token.ts). */
  viewerNonce: Buffer;
  /** The VM's tenant and its quota of concurrent viewers (null: no limit), counted over all its VMs. */
  tenant?: { id: string; maxViewers: number | null };
}

/** pino-compatible; the bridge logs VM ids, sizes and close codes, never URLs or tokens. */
export interface DesktopLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface DesktopDeps {
  /**
   * The VM by id only, never by name (a token names the VM by its canonical id), or null when there is none.
   */
  lookup(vmId: string): DesktopVm | null;
  /** Gives the VM (by id only) a new viewer nonce, refusing every outstanding token; false when there is no such VM. */
  rotateNonce(vmId: string): boolean;
  /**
   * A byte stream to the VM's RFB server (in production a TCP connection to guest-ip:5900 — the guest network is
   * internal, so this is the only way in). Resolve once connected; the bridge treats it as an opaque Duplex.
   */
  dial(vmId: string, opts?: { readBufferBytes?: number }): Promise<Duplex>;
  metrics: HangarMetrics;
  /** HMAC key for viewer tokens, at least 32 bytes (see newViewerSecret). */
  secret: Buffer;
  limits?: Partial<DesktopLimits>;
  log?: DesktopLog;
  /**
   * Browser origins besides the controller's own that may open the bridge (e.g. the public origin of a reverse
   * proxy in front of the controller), as `scheme://host[:port]`. See originAllowed in bridge.ts.
   */
  allowedOrigins?: readonly string[];
  /**
   * The controller's own origins (its listen address, e.g. http://127.0.0.1:7070 and http://localhost:7070),
   * asked at each request (known once the server listens). With allowedOrigins they are the public origins: the
   * only browser Origins accepted, and (when there is any) the only Host values served to viewers.
   */
  ownOrigins?(): readonly string[];
  /** Viewer input reached the VM (at most once a second per viewer): it is in use, not idle (e.g. manager.touch). */
  touch?(vmId: string): void;
  /**
   * A viewer is attached (taken before the dial, released when it leaves): the VM is never idle meanwhile, so the
   * hibernator cannot take it from under a person watching (e.g. manager.hold).
   */
  hold?(vmId: string): () => void;
  /**
   * A recorder for one viewer session's VM → viewer stream (write each chunk as it is forwarded, end when the
   * session ends), or null when this session is not recorded.
   */
  record?(vmId: string, viewer: string): SessionRecorder | null;
}

export interface SessionRecorder {
  write(chunk: Buffer): void;
  end(): void;
}

export function resolveLimits(partial: Partial<DesktopLimits> = {}): DesktopLimits {
  const l = { ...DEFAULT_DESKTOP_LIMITS, ...partial };
  for (const [k, v] of Object.entries(l)) {
    if (!Number.isFinite(v) || v <= 0) throw new HangarError('INVALID_ARGUMENT', `desktop limit ${k} must be a positive number`, { [k]: v });
  }
  if (l.tokenTtlMs > l.maxTokenTtlMs) throw new HangarError('INVALID_ARGUMENT', 'tokenTtlMs exceeds maxTokenTtlMs');
  return l;
}

export function checkDeps(deps: DesktopDeps): DesktopLimits {
  assertSecret(deps.secret);
  for (const o of deps.allowedOrigins ?? []) normaliseOrigin(o);
  return resolveLimits(deps.limits);
}

/** `scheme://host[:port]` of an http(s) origin, lower-cased, default port dropped; anything else is refused. */
export function normaliseOrigin(origin: string, field = 'allowedOrigins'): string {
  let u: URL | undefined;
  try {
    u = new URL(origin);
  } catch {
    u = undefined;
  }
  if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:') || u.pathname !== '/' || u.search || u.hash || u.username) {
    throw new HangarError('INVALID_ARGUMENT', `${field}: ${JSON.stringify(origin)} is not an origin (scheme://host[:port], no path)`, { field, origin });
  }
  return u.origin;
}

const LOOPBACK_HOSTS = ['127.0.0.1', 'localhost', '[::1]'];

/**
 * The controller's own origins for a listen address: that address (and the configured host name, if it is one)
 * plus the loopback names; on a wildcard address (0.0.0.0, ::) every address of the host's interfaces, as given.
 * Pure: the caller lists the interface addresses.
 */
export function listenOrigins(listen: { host: string; address: string; port: number }, interfaceAddrs: readonly string[] = []): string[] {
  const bracket = (h: string): string => (h.includes(':') && !h.startsWith('[') ? `[${h}]` : h);
  const wildcard = listen.address === '0.0.0.0' || listen.address === '::';
  const hosts = new Set<string>(LOOPBACK_HOSTS);
  for (const h of [listen.host, ...(wildcard ? interfaceAddrs : [listen.address])]) {
    if (h && h !== '0.0.0.0' && h !== '::') hosts.add(bracket(h.toLowerCase()));
  }
  return [...hosts].map((h) => `http://${h}:${listen.port}`);
}

/** The public origins of the desktop (own + allowed, normalised) and the Host values they stand for. */
export interface PublicOrigins {
  origins: ReadonlySet<string>;
  /** `host[:port]` lower-cased, with and without the scheme's default port. Empty: no Host check. */
  hosts: ReadonlySet<string>;
}

export function publicOrigins(deps: Pick<DesktopDeps, 'ownOrigins' | 'allowedOrigins'>): PublicOrigins {
  const origins = new Set<string>();
  for (const o of [...(deps.ownOrigins?.() ?? []), ...(deps.allowedOrigins ?? [])]) origins.add(normaliseOrigin(o));
  const hosts = new Set<string>();
  for (const o of origins) {
    const u = new URL(o);
    hosts.add(u.host);
    hosts.add(`${u.hostname}:${u.port || (u.protocol === 'https:' ? '443' : '80')}`);
  }
  return { origins, hosts };
}

/**
 * Whether a request's Host header names this controller. DNS rebinding points a name the attacker controls at the
 * controller: the browser then sends Origin and Host both with that name, so Host must be one of the public
 * origins' (when none are known there is nothing to compare with, and the check is skipped).
 */
export function hostAllowed(host: string | undefined, pub: PublicOrigins): boolean {
  if (pub.hosts.size === 0) return true;
  return host !== undefined && pub.hosts.has(host.toLowerCase());
}

/** VIEWER_ORIGIN_REFUSED for a Host that is not one of the public origins'. */
export function hostRefused(host: string | undefined, vmId: string): HangarError {
  return new HangarError('VIEWER_ORIGIN_REFUSED', 'this controller is not served under that host name (add its origin to viewerOrigins)',
    { vmId, host: host ?? null, reason: 'host' });
}

/** Live viewers per VM. One registry per DesktopDeps object, so routes and bridge built from it agree. */
export class ViewerRegistry {
  private readonly counts = new Map<string, number>();
  private readonly perTenant = new Map<string, number>();
  private readonly revokeListeners = new Set<(vmId: string) => void>();
  /** Called when a VM's viewer access is revoked (the bridge closes its live viewers); returns the unsubscribe. */
  onRevoke(listener: (vmId: string) => void): () => void {
    this.revokeListeners.add(listener);
    return () => this.revokeListeners.delete(listener);
  }
  revoked(vmId: string): void {
    for (const l of this.revokeListeners) l(vmId);
  }
  count(vmId: string): number {
    return this.counts.get(vmId) ?? 0;
  }
  /** Live viewers of all of a tenant's VMs. */
  tenantCount(tenant: string): number {
    return this.perTenant.get(tenant) ?? 0;
  }
  /**
   * Takes a slot, or refuses with VIEWER_LIMIT (the VM's) or QUOTA_EXCEEDED (its tenant's concurrent viewers).
   * Synchronous, so two racing upgrades cannot both take the last one.
   */
  reserve(vmId: string, limit: number, tenant?: DesktopVm['tenant']): () => void {
    const n = this.count(vmId);
    if (n >= limit) throw new HangarError('VIEWER_LIMIT', `VM ${vmId} already has ${n} viewer(s), the limit is ${limit}`, { vmId, viewers: n, limit });
    const t = tenant?.id;
    const used = t === undefined ? 0 : this.tenantCount(t);
    if (t !== undefined && tenant!.maxViewers !== null && used >= tenant!.maxViewers) throw quotaError(t, { limit: 'viewers', used, max: tenant!.maxViewers });
    this.counts.set(vmId, n + 1);
    if (t !== undefined) this.perTenant.set(t, used + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (t !== undefined) {
        const rest = this.tenantCount(t) - 1;
        if (rest > 0) this.perTenant.set(t, rest);
        else this.perTenant.delete(t);
      }
      const left = this.count(vmId) - 1;
      if (left > 0) this.counts.set(vmId, left);
      else this.counts.delete(vmId);
    };
  }
}

const registries = new WeakMap<DesktopDeps, ViewerRegistry>();
export function registryFor(deps: DesktopDeps): ViewerRegistry {
  let r = registries.get(deps);
  if (!r) registries.set(deps, (r = new ViewerRegistry()));
  return r;
}
