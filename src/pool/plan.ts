// Warm pools, the pure part: what a pool is, the request that makes one, the refill policy (how many members to
// start now, within the pool's size, the parallelism the host affords and the memory budget), which member a
// claim takes, and the API view. No I/O: src/pool/service.ts executes what these decide.
//
// Members are kept restored-and-paused: a clone of the pool's golden snapshot is restored, resynced and checked
// (its desktop answers), then paused. Measured on this host (TCG, bench/sessions): a paused member costs no CPU —
// N running desktops under TCG would eat the two cores between them — and the same memory as a running one (its
// RAM is the snapshot file mapped privately: unchanged pages are shared with every other member), and `cont` is
// ~1 ms, so a claim is resume + identity, not a restore. Each member gets its own machine-id when it is made.
import { HangarError } from '../errors.js';

/** The tenant members wait in until claimed (migration 6 creates it; no quotas; never listed as anyone's VM). */
export const POOL_TENANT = 'hangar-pool';
export const POOL_NAME_RE = /^[a-z0-9][a-z0-9-]{0,31}$/;
export const POOL_MAX_SIZE = 64;

export type PoolTemplate = { snapshot: string } | { profile: string };

export interface PoolRecord {
  name: string;
  template: PoolTemplate;
  /** The golden snapshot members are cloned from (for a profile template, made by the pool; null until it is). */
  snapshotId: string | null;
  size: number;
  createdAt: string;
  claims: number;
  misses: number;
  /** The last member's create → ready-and-paused time, ms. */
  refillMs: number | null;
}

export interface PoolMember {
  vmId: string;
  pool: string;
  state: 'filling' | 'ready';
  since: string;
}

export interface CreatePoolRequest {
  name: string;
  template: PoolTemplate;
  size: number;
}

function invalid(field: string, message: string): HangarError {
  return new HangarError('INVALID_ARGUMENT', message, { field });
}

/** Validates a create body once, at the edge. */
export function normalizePool(body: unknown): CreatePoolRequest {
  const b = (body ?? {}) as Record<string, unknown>;
  if (typeof b.name !== 'string' || !POOL_NAME_RE.test(b.name)) throw invalid('name', 'name must be 1-32 of [a-z0-9-], starting with a letter or digit');
  if (!Number.isInteger(b.size) || (b.size as number) < 0 || (b.size as number) > POOL_MAX_SIZE) throw invalid('size', `size must be an integer from 0 to ${POOL_MAX_SIZE}`);
  const hasSnap = b.snapshot !== undefined;
  const hasProfile = b.profile !== undefined;
  if (hasSnap === hasProfile) throw invalid('snapshot', 'give exactly one template: snapshot (a golden snapshot id) or profile (the pool snapshots a VM booted from its image)');
  const ref = hasSnap ? b.snapshot : b.profile;
  if (typeof ref !== 'string' || !/^[a-z0-9][a-z0-9._-]{0,127}$/.test(ref)) throw invalid(hasSnap ? 'snapshot' : 'profile', `${hasSnap ? 'snapshot' : 'profile'} must be an id or a name`);
  return { name: b.name, size: b.size as number, template: hasSnap ? { snapshot: ref } : { profile: ref } };
}

export interface RefillInput {
  size: number;
  ready: number;
  filling: number;
  /** Members started at once across all pools (restores are CPU-bound: the host has few cores). */
  parallel: { max: number; inFlight: number };
  /** Memory budget for all pools' members, MiB (null: none), what members use now, and one member's. */
  budget: { maxMiB: number | null; usedMiB: number; memberMiB: number };
}

export interface RefillDecision {
  start: number;
  /** Why fewer than the pool lacks: the budget, the parallelism, or nothing held it back. */
  heldBy: 'budget' | 'parallel' | null;
}

/** How many members to start now. Pure. */
export function refillCount(i: RefillInput): RefillDecision {
  const lacking = Math.max(0, i.size - i.ready - i.filling);
  if (lacking === 0) return { start: 0, heldBy: null };
  const byParallel = Math.max(0, i.parallel.max - i.parallel.inFlight);
  const byBudget = i.budget.maxMiB === null ? Infinity : Math.max(0, Math.floor((i.budget.maxMiB - i.budget.usedMiB) / Math.max(1, i.budget.memberMiB)));
  const start = Math.min(lacking, byParallel, byBudget);
  if (start === lacking) return { start, heldBy: null };
  return { start, heldBy: byBudget <= byParallel ? 'budget' : 'parallel' };
}

/** The member a claim takes: the longest-waiting ready one (its page cache is the warmest), or null. Pure. */
export function pickMember(members: readonly PoolMember[]): PoolMember | null {
  return members.filter((m) => m.state === 'ready').sort((a, b) => a.since.localeCompare(b.since) || a.vmId.localeCompare(b.vmId))[0] ?? null;
}

/** A fresh machine-id for a claimed guest (32 lowercase hex digits, /etc/machine-id's format). Pure. */
export function machineIdFrom(bytes: Uint8Array): string {
  if (bytes.length < 16) throw invalid('bytes', 'a machine-id needs 16 random bytes');
  return Buffer.from(bytes.subarray(0, 16)).toString('hex');
}

export interface PoolView {
  name: string;
  template: PoolTemplate;
  snapshot: string | null;
  size: number;
  ready: number;
  filling: number;
  claims: number;
  misses: number;
  refillMs: number | null;
  createdAt: string;
}

export function toPoolView(p: PoolRecord, members: readonly PoolMember[]): PoolView {
  const mine = members.filter((m) => m.pool === p.name);
  return {
    name: p.name, template: p.template, snapshot: p.snapshotId, size: p.size,
    ready: mine.filter((m) => m.state === 'ready').length, filling: mine.filter((m) => m.state === 'filling').length,
    claims: p.claims, misses: p.misses, refillMs: p.refillMs, createdAt: p.createdAt,
  };
}

/**
 * The pool a create of this template can claim from instead of booting (the E2B create, src/e2b/rest.ts): one of
 * that snapshot, or of that profile (default desktop), with a ready member now; null: none. Pure.
 */
export function poolForTemplate(pools: readonly PoolView[], t: { fromSnapshot?: string | undefined; profile?: string | undefined }): string | null {
  const wanted = (p: PoolView): boolean => t.fromSnapshot !== undefined
    ? 'snapshot' in p.template && p.template.snapshot === t.fromSnapshot
    : 'profile' in p.template && p.template.profile === (t.profile ?? 'desktop');
  return pools.find((p) => p.ready > 0 && wanted(p))?.name ?? null;
}
