// Tenancy at the HTTP edge, in one place for every route, including routes added later:
// - authentication: the bearer key is looked up by its hash at every request (no cache: a revoked or expired key is
//   refused at once), giving the request its principal (key id, tenant, scope);
// - the route's declared scope (ApiRoute.scope; undeclared: admin) is checked before anything else runs;
// - ownership: the resource a route names in its path (/v1/vms/:id…, /v1/snapshots/:id…) is looked up in the
//   caller's tenant; another tenant's answers exactly as a missing one (404, same code and message), and the
//   parameter is replaced by the canonical id, so handlers act on that VM and no other;
// - the audit log: every mutating call by a key (its id, never the key), with route, action, resource and result.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { HangarError } from '../errors.js';
import { isSnapshotId } from '../snapshot/manifest.js';
import { DEFAULT_TENANT, allows, auditAction, hashKey, isAdmin, type Principal, type RouteScope } from '../tenancy/keys.js';
import { bearer, tokenMatches } from './auth.js';
import type { ApiContext, ApiRoute } from './routes.js';

const principals = new WeakMap<FastifyRequest, Principal>();

/** The caller of an authenticated request (bearer routes only: INTERNAL elsewhere, a bug). */
export function principalOf(req: FastifyRequest): Principal {
  const p = principals.get(req);
  if (!p) throw new HangarError('INTERNAL', 'no principal on this request (not a bearer route?)');
  return p;
}

/** The tenant whose resources a request may see: null for an admin key (every tenant's). */
export function tenantFilter(req: FastifyRequest): string | null {
  const p = principalOf(req);
  return isAdmin(p) ? null : p.tenant;
}

/** Whether the caller may see a resource of `tenant` (absent: the default tenant's). */
export function canSee(req: FastifyRequest, tenant: string | null | undefined): boolean {
  const t = tenantFilter(req);
  return t === null || (tenant ?? DEFAULT_TENANT) === t;
}

const unauthorized = (message = 'a valid bearer token is required (Authorization: Bearer …)', details: Record<string, unknown> = {}): HangarError =>
  new HangarError('UNAUTHORIZED', message, details);

/** The principal of an Authorization header at time `now`, or UNAUTHORIZED (revoked and expired keys at once). */
export function authenticate(ctx: Pick<ApiContext, 'token' | 'tenancy'>, header: string | undefined, now: number): Principal {
  const token = bearer(header);
  if (token === undefined) throw unauthorized();
  if (!ctx.tenancy) {
    if (tokenMatches(token, ctx.token)) return { keyId: 'token', tenant: DEFAULT_TENANT, scope: 'admin' };
    throw unauthorized();
  }
  const k = ctx.tenancy.keyByHash(hashKey(token));
  if (!k) throw unauthorized();
  if (k.revokedAt) throw unauthorized(`API key ${k.id} was revoked at ${k.revokedAt}`, { key: k.id, reason: 'revoked' });
  if (k.expiresAt && Date.parse(k.expiresAt) <= now) throw unauthorized(`API key ${k.id} expired at ${k.expiresAt}`, { key: k.id, reason: 'expired' });
  return { keyId: k.id, tenant: k.tenant, scope: k.scope };
}

/**
 * A bearer on a path the onRequest hook does not authenticate (raw WebSockets; routes that also take a viewer
 * token): the key's principal with its scope checked, and the VM `ref` resolved in the key's tenant (another
 * tenant's VM is VM_NOT_FOUND, exactly as a missing one). Answers the canonical VM id (`ref` without tenancy).
 */
export function authorizeBearerForVm(ctx: Pick<ApiContext, 'token' | 'tenancy'>, header: string | undefined, ref: string, need: RouteScope, now = Date.now()): { principal: Principal; vmId: string } {
  const p = authenticate(ctx, header, now);
  if (!allows(p.scope, need)) throw new HangarError('FORBIDDEN', `this API key (scope ${p.scope}) may not do this: it needs scope ${need}`, { scope: p.scope, need });
  if (!ctx.tenancy) return { principal: p, vmId: ref };
  const hit = ctx.tenancy.findVm(ref, p, isAdmin(p));
  if (hit) return { principal: p, vmId: hit.id };
  if (!isAdmin(p)) throw new HangarError('VM_NOT_FOUND', `no VM ${ref}`, { id: ref });
  return { principal: p, vmId: ref };
}

/** The scope a route needs: its declaration, else admin (a route that forgot to declare one is not opened to tenants). */
export const routeScope = (r: Pick<ApiRoute, 'scope'>): RouteScope => r.scope ?? 'admin';

const VM_PARAM = /^\/v1\/vms\/:(\w+)/;
const SNAPSHOT_PARAM = /^\/v1\/snapshots\/:(\w+)/;

/** The kind of resource a route names in its path, and the parameter that names it. Pure. */
export function pathResource(url: string): { kind: 'vm' | 'snapshot'; param: string } | null {
  const vm = VM_PARAM.exec(url);
  if (vm) return { kind: 'vm', param: vm[1]! };
  const snap = SNAPSHOT_PARAM.exec(url);
  return snap ? { kind: 'snapshot', param: snap[1]! } : null;
}

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

interface RouteConfig { auth?: ApiRoute['auth']; scope?: RouteScope }

/** Installs authentication, scope checks, ownership and the audit log on `app` (before the routes are added). */
export function installTenancy(app: FastifyInstance, ctx: ApiContext): void {
  app.addHook('onRequest', async (req) => {
    const config = (req.routeOptions.config ?? {}) as RouteConfig;
    if ((config.auth ?? 'bearer') !== 'bearer') return;
    const p = authenticate(ctx, req.headers.authorization, Date.now());
    principals.set(req, p);
    const need = routeScope(config);
    if (!allows(p.scope, need)) {
      throw new HangarError('FORBIDDEN', `this API key (scope ${p.scope}) may not do this: it needs scope ${need}`, { scope: p.scope, need });
    }
  });

  // Before validation: another tenant's resource is 404 whatever the body, exactly as a missing one is.
  app.addHook('preValidation', async (req) => {
    const p = principals.get(req);
    const res = req.routeOptions.url ? pathResource(req.routeOptions.url) : null;
    if (!p || !res || !ctx.tenancy) return;
    const params = req.params as Record<string, string>;
    const ref = params[res.param];
    if (ref === undefined) return;
    if (res.kind === 'vm') {
      const hit = ctx.tenancy.findVm(ref, p, isAdmin(p));
      if (hit) params[res.param] = hit.id;
      // The words a missing VM gets from the store (VmManager.get): another tenant's VM is indistinguishable.
      else if (!isAdmin(p)) throw new HangarError('VM_NOT_FOUND', `no VM ${ref}`, { id: ref });
    } else if (!isAdmin(p) && isSnapshotId(ref) && ctx.tenancy.snapshotOwner(ref) !== p.tenant) {
      throw new HangarError('SNAPSHOT_NOT_FOUND', `no snapshot ${ref}`, { id: ref });
    }
  });

  if (!ctx.tenancy) return;
  const tenancy = ctx.tenancy;
  // Written before the answer leaves (onSend), so a client that has its answer finds the entry.
  app.addHook('onSend', async (req: FastifyRequest, reply: FastifyReply, payload: unknown) => {
    const p = principals.get(req);
    if (!p || !MUTATING.has(req.method)) return payload;
    const text = typeof payload === 'string' ? payload : '';
    const route = req.routeOptions.url ?? 'unmatched';
    const res = pathResource(route);
    const params = (req.params ?? {}) as Record<string, string>;
    const named = (res ? params[res.param] : params.id) ?? (reply.statusCode < 300 ? /^\{"id":"([^"]{1,128})"/.exec(text)?.[1] : undefined);
    try {
      tenancy.appendAudit({
        keyId: p.keyId, tenant: p.tenant, method: req.method, route, action: auditAction(req.method, route), resource: named ?? null,
        status: reply.statusCode, code: reply.statusCode >= 400 ? (/"code":"([A-Z_]+)"/.exec(text)?.[1] ?? null) : null, requestId: String(req.id),
      });
    } catch (e) {
      req.log.error({ err: e }, 'audit entry not written');
    }
    return payload;
  });
}
