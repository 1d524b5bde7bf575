// HTTP routes of tenants, API keys and the audit log: admin keys only. A key's secret is in the answer that creates
// it and nowhere else (stored as its hash, never logged, never listed, never in the audit log).
import type { FastifyRequest } from 'fastify';
import { Type, type Static } from 'typebox';
import { HangarError } from '../errors.js';
import type { ApiContext, ApiRoute, TenancyPort } from '../api/routes.js';
import { errorSchema } from '../api/schemas.js';
import type { KeyRecord, TenantRecord } from '../store/tenancy.js';
import { SCOPES, TENANT_ID_RE, newApiKey, type Quotas } from './keys.js';

const quota = (what: string) => Type.Optional(Type.Union([Type.Integer({ minimum: 0, maximum: 1_000_000_000, description: what }), Type.Null()]));
const quotasSchema = Type.Object({
  vms: quota('VMs at once'), vcpus: quota('vCPUs over all its VMs'), memMiB: quota('memory over all its VMs, MiB'),
  diskMiB: quota('VM disks over all its VMs, MiB'), viewers: quota('concurrent desktop viewers over all its VMs'),
}, { additionalProperties: false, description: 'null or absent: no limit' });

const tenantId = Type.String({ minLength: 1, maxLength: 32, pattern: TENANT_ID_RE.source, description: 'lower-case letters, digits and -, starting with a letter' });
const tenantParams = Type.Object({ id: tenantId }, { additionalProperties: false });
const keyParams = Type.Object({ id: Type.String({ pattern: '^key-[0-9a-f]{8}$', description: 'key-0123abcd' }) }, { additionalProperties: false });
const createTenantBody = Type.Object({ id: tenantId, quotas: Type.Optional(quotasSchema) }, { additionalProperties: false });
const patchTenantBody = Type.Object({ quotas: Type.Optional(quotasSchema) }, { additionalProperties: false });
const createKeyBody = Type.Object({
  tenant: tenantId,
  scope: Type.Enum([...SCOPES], { description: 'admin: everything, fleet-wide; write: the tenant\'s resources; read: look only; viewer: viewer tokens only' }),
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9 ._-]*$' })),
  expiresInSeconds: Type.Optional(Type.Integer({ minimum: 60, maximum: 10 * 365 * 86400, description: 'the key stops working this long after creation (default: never)' })),
}, { additionalProperties: false });
const keysQuery = Type.Object({ tenant: Type.Optional(tenantId) }, { additionalProperties: false });
const auditQuery = Type.Object({
  tenant: Type.Optional(tenantId),
  key: Type.Optional(Type.String({ pattern: '^key-[0-9a-f]{8}$|^token$' })),
  resource: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  since: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'entries at or after this ISO time' })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000, description: 'the newest N (default 100)' })),
}, { additionalProperties: false });

const quotaView = { type: 'object', properties: Object.fromEntries(['vms', 'vcpus', 'memMiB', 'diskMiB', 'viewers'].map((k) => [k, { type: ['integer', 'null'] }])) };
const tenantSchema = {
  type: 'object', required: ['id', 'createdAt', 'quotas', 'usage'],
  properties: {
    id: { type: 'string' }, createdAt: { type: 'string' }, quotas: quotaView,
    usage: { type: 'object', properties: { vms: { type: 'integer' }, vcpus: { type: 'integer' }, memMiB: { type: 'integer' }, diskMiB: { type: 'integer' } } },
  },
} as const;
const keyProps = {
  id: { type: 'string' }, tenant: { type: 'string' }, name: { type: ['string', 'null'] }, scope: { type: 'string', enum: [...SCOPES] },
  source: { type: 'string', enum: ['api', 'token-file'] }, createdAt: { type: 'string' }, expiresAt: { type: ['string', 'null'] }, revokedAt: { type: ['string', 'null'] },
} as const;
const keySchema = { type: 'object', required: ['id', 'tenant', 'scope', 'createdAt'], properties: keyProps } as const;
const newKeySchema = { type: 'object', required: ['id', 'tenant', 'scope', 'createdAt', 'secret'], properties: { ...keyProps, secret: { type: 'string', description: 'the key: shown here once, never again' } } } as const;
const auditSchema = {
  type: 'object',
  properties: Object.fromEntries(Object.entries({ seq: 'integer', at: 'string', keyId: ['string', 'null'], tenant: ['string', 'null'], method: 'string', route: 'string', action: 'string', resource: ['string', 'null'], status: 'integer', code: ['string', 'null'], requestId: ['string', 'null'] }).map(([k, t]) => [k, { type: t }])),
} as const;
const errors = { '4xx': errorSchema, '5xx': errorSchema };

export const tenantView = (t: TenantRecord, tenancy: Pick<TenancyPort, 'usage'>): TenantRecord & { usage: ReturnType<TenancyPort['usage']> } => ({ ...t, usage: tenancy.usage(t.id) });
export const keyView = (k: KeyRecord): KeyRecord => ({ ...k });

type TenantReq = FastifyRequest<{ Params: Static<typeof tenantParams> }>;

/** The tenancy routes; none without a tenancy port (route tests over fakes). */
export function tenancyRoutes(ctx: ApiContext): ApiRoute[] {
  const t = ctx.tenancy;
  if (!t) return [];
  return [
    {
      method: 'POST', url: '/v1/tenants', summary: 'Create a tenant, with its quotas', auth: 'bearer', scope: 'admin',
      schema: { body: createTenantBody, response: { 201: tenantSchema, ...errors } },
      handler: (req, reply) => {
        const b = req.body as Static<typeof createTenantBody>;
        return reply.code(201).send(tenantView(t.createTenant(b.id, (b.quotas ?? {}) as Partial<Quotas>), t));
      },
    },
    {
      method: 'GET', url: '/v1/tenants', summary: 'List tenants with their quotas and usage', auth: 'bearer', scope: 'admin',
      schema: { response: { 200: { type: 'object', properties: { tenants: { type: 'array', items: tenantSchema } } }, ...errors } },
      handler: () => ({ tenants: t.listTenants().map((x) => tenantView(x, t)) }),
    },
    {
      method: 'GET', url: '/v1/tenants/:id', summary: 'Show a tenant: quotas and usage', auth: 'bearer', scope: 'admin',
      schema: { params: tenantParams, response: { 200: tenantSchema, ...errors } },
      handler: (req) => tenantView(t.mustGetTenant((req as TenantReq).params.id), t),
    },
    {
      method: 'PATCH', url: '/v1/tenants/:id', summary: 'Change a tenant\'s quotas (null lifts one; a quota below today\'s usage refuses only what comes next)', auth: 'bearer', scope: 'admin',
      schema: { params: tenantParams, body: patchTenantBody, response: { 200: tenantSchema, ...errors } },
      handler: (req) => tenantView(t.setQuotas((req as TenantReq).params.id, ((req.body as Static<typeof patchTenantBody>).quotas ?? {}) as Partial<Quotas>), t),
    },
    {
      method: 'DELETE', url: '/v1/tenants/:id', summary: 'Remove a tenant and its keys (TENANT_IN_USE while it owns VMs or snapshots; never the default tenant)', auth: 'bearer', scope: 'admin',
      schema: { params: tenantParams, response: { 204: { type: 'null' }, ...errors } },
      handler: (req, reply) => {
        t.removeTenant((req as TenantReq).params.id);
        return reply.code(204).send();
      },
    },
    {
      method: 'POST', url: '/v1/keys', summary: 'Create an API key for a tenant; the answer holds the key, shown this once', auth: 'bearer', scope: 'admin',
      schema: { body: createKeyBody, response: { 201: newKeySchema, ...errors } },
      handler: (req, reply) => {
        const b = req.body as Static<typeof createKeyBody>;
        const k = newApiKey();
        const rec = t.createKey({
          id: k.id, tenant: b.tenant, scope: b.scope, hash: k.hash, name: b.name ?? null,
          expiresAt: b.expiresInSeconds ? new Date(Date.now() + b.expiresInSeconds * 1000).toISOString() : null,
        });
        reply.header('cache-control', 'no-store');
        return reply.code(201).send({ ...keyView(rec), secret: k.secret });
      },
    },
    {
      method: 'GET', url: '/v1/keys', summary: 'List API keys (never their secrets), of one ?tenant or all', auth: 'bearer', scope: 'admin',
      schema: { querystring: keysQuery, response: { 200: { type: 'object', properties: { keys: { type: 'array', items: keySchema } } }, ...errors } },
      handler: (req) => {
        const q = req.query as Static<typeof keysQuery>;
        if (q.tenant !== undefined) t.mustGetTenant(q.tenant);
        return { keys: t.listKeys(q.tenant).map(keyView) };
      },
    },
    {
      method: 'DELETE', url: '/v1/keys/:id', summary: 'Revoke an API key: refused from the next request on', auth: 'bearer', scope: 'admin',
      schema: { params: keyParams, response: { 200: keySchema, ...errors } },
      handler: (req) => keyView(t.revokeKey((req.params as Static<typeof keyParams>).id)),
    },
    {
      method: 'GET', url: '/v1/audit', summary: 'The audit log (append-only): which key did what to which resource, when, with what result', auth: 'bearer', scope: 'admin',
      schema: { querystring: auditQuery, response: { 200: { type: 'object', properties: { entries: { type: 'array', items: auditSchema } } }, ...errors } },
      handler: (req) => {
        const q = req.query as Static<typeof auditQuery>;
        if (q.since !== undefined && Number.isNaN(Date.parse(q.since))) throw new HangarError('INVALID_ARGUMENT', 'since must be an ISO time', { field: 'since', in: 'query', reason: 'format' });
        return { entries: t.audit({ ...q, ...(q.since !== undefined ? { since: new Date(q.since).toISOString() } : {}) }) };
      },
    },
  ];
}
