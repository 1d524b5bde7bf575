// Tenants and API keys, the pure parts: the key format, how a key is stored (its hash), scopes and what each
// allows, quotas, durations (--expires 30d) and the audit action of a route. No I/O beyond the random source.
//
// A key is `hgk_` + 43 base64url characters (32 random bytes). It is stored as sha256(key): the key has 256 bits of
// entropy, so a stolen hash cannot be reversed by guessing, and a slow hash (scrypt) would add nothing but tens of
// milliseconds of CPU to every request — every request authenticates against the store, with no cache, so a revoked
// key is refused at once — and a lever for denial of service. scrypt is for low-entropy secrets (passwords).
// The hash is the lookup key (a UNIQUE index): nothing about a stored key is compared byte by byte with input.
import { createHash, randomBytes } from 'node:crypto';
import { HangarError } from '../errors.js';

export const KEY_PREFIX = 'hgk_';
const KEY_RE = /^hgk_[A-Za-z0-9_-]{43}$/;
export const KEY_ID_RE = /^key-[0-9a-f]{8}$/;
export const TENANT_ID_RE = /^[a-z][a-z0-9-]{0,31}$/;
export const DEFAULT_TENANT = 'default';

/** What a key may do. admin: everything, fleet-wide; write: its tenant's resources; read: look only; viewer: viewer tokens only. */
export const SCOPES = ['admin', 'write', 'read', 'viewer'] as const;
export type Scope = (typeof SCOPES)[number];

/** What a route needs: declared on every bearer route (`scope` in src/api/routes.ts). */
export type RouteScope = 'admin' | 'write' | 'read' | 'viewer';

/** The scopes that may call a route needing `need`. viewer routes (mint a viewer token) are open to write keys too. */
const GRANTS: Record<RouteScope, readonly Scope[]> = {
  admin: ['admin'],
  write: ['admin', 'write'],
  read: ['admin', 'write', 'read'],
  viewer: ['admin', 'write', 'viewer'],
};

export function allows(scope: Scope, need: RouteScope): boolean {
  return GRANTS[need].includes(scope);
}

export function isScope(v: unknown): v is Scope {
  return typeof v === 'string' && (SCOPES as readonly string[]).includes(v);
}

/** Who is calling: the key (by id, never the secret), its tenant and scope. */
export interface Principal {
  keyId: string;
  tenant: string;
  scope: Scope;
}

export const isAdmin = (p: Principal): boolean => p.scope === 'admin';

/** A new key: the secret (shown once) and what the store keeps. */
export function newApiKey(): { secret: string; id: string; hash: Buffer } {
  const secret = KEY_PREFIX + randomBytes(32).toString('base64url');
  return { secret, id: newKeyId(), hash: hashKey(secret) };
}

export function newKeyId(): string {
  return `key-${randomBytes(4).toString('hex')}`;
}

/** The stored form of a key (or of the legacy token file's token, which is as random). */
export function hashKey(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

export function looksLikeKey(s: string): boolean {
  return KEY_RE.test(s);
}

/** Per-tenant limits; null: no limit. */
export interface Quotas {
  vms: number | null;
  vcpus: number | null;
  memMiB: number | null;
  diskMiB: number | null;
  viewers: number | null;
}

export const NO_QUOTAS: Quotas = { vms: null, vcpus: null, memMiB: null, diskMiB: null, viewers: null };
export type QuotaName = keyof Quotas;
export const QUOTA_NAMES: readonly QuotaName[] = ['vms', 'vcpus', 'memMiB', 'diskMiB', 'viewers'];

/** What a tenant holds, for the quotas that count stored VMs. */
export interface Usage {
  vms: number;
  vcpus: number;
  memMiB: number;
  diskMiB: number;
}

/**
 * The first quota that `add` (one more VM) would pass, or null. Pure: the store calls it inside the inserting
 * transaction with the usage it just read, so concurrent creates cannot pass a limit together.
 */
export function quotaBreach(q: Quotas, used: Usage, add: Omit<Usage, 'vms'>): { limit: QuotaName; used: number; max: number; adding: number } | null {
  const checks: [QuotaName, number, number][] = [['vms', used.vms, 1], ['vcpus', used.vcpus, add.vcpus], ['memMiB', used.memMiB, add.memMiB], ['diskMiB', used.diskMiB, add.diskMiB]];
  for (const [limit, u, a] of checks) {
    const max = q[limit];
    if (max !== null && u + a > max) return { limit, used: u, max, adding: a };
  }
  return null;
}

export function quotaError(tenant: string, b: { limit: QuotaName; used: number; max: number; adding?: number }): HangarError {
  return new HangarError('QUOTA_EXCEEDED', `tenant ${tenant} would pass its ${b.limit} quota (${b.used} used${b.adding !== undefined ? ` + ${b.adding} asked` : ''}, at most ${b.max})`, {
    tenant, limit: b.limit, used: b.used, max: b.max, ...(b.adding !== undefined ? { adding: b.adding } : {}),
  });
}

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 7 * 86400 };

/** '30d', '12h', '90m', '3600s' or '3600' → seconds; INVALID_ARGUMENT naming `field` otherwise. */
export function parseDuration(v: string, field = 'expires'): number {
  const m = /^([1-9][0-9]{0,8})([smhdw]?)$/.exec(v.trim());
  if (!m) throw new HangarError('INVALID_ARGUMENT', `${field} must be a duration such as 30d, 12h, 90m or 3600s (got ${JSON.stringify(v)})`, { field, reason: 'format' });
  return Number(m[1]) * UNITS[m[2] || 's']!;
}

/**
 * The audit action of a route: `vms.create` for POST /v1/vms, `vms.start` for POST /v1/vms/:id/start, `vms.delete`
 * for DELETE /v1/vms/:id, `vms.network.update` for PATCH /v1/vms/:id/network. Pure.
 */
export function auditAction(method: string, url: string): string {
  const parts = url.replace(/^\/v1\//, '').split('/').filter((p) => p !== '' && !p.startsWith(':') && p !== '*');
  const verb: Record<string, string> = { POST: 'create', DELETE: 'delete', PUT: 'replace', PATCH: 'update', GET: 'read' };
  // A POST under a resource (…/:id/start) names its action itself.
  const last = method === 'POST' && url.includes('/:') ? [] : [verb[method] ?? method.toLowerCase()];
  return [...parts, ...last].join('.');
}
