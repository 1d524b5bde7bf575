// HTTP routes of golden snapshots, over the snapshots port. A snapshot belongs to the tenant of the key that took
// it: lists show the caller's tenant's, and `{ vm }` names a VM of the caller's tenant (src/api/tenancy.ts).
import type { FastifyRequest } from 'fastify';
import { HangarError } from '../errors.js';
import type { ApiContext, ApiRoute } from '../api/routes.js';
import { canSee, principalOf } from '../api/tenancy.js';
import { isAdmin } from '../tenancy/keys.js';
import { errorSchema, idParams, snapshotBody, snapshotSchema, type IdParams, type SnapshotBody } from '../api/schemas.js';
import { toSnapshotView } from './manifest.js';
import { normalizeSnapshotRequest, type RemoveForce } from './service.js';

type IdReq = FastifyRequest<{ Params: IdParams; Querystring: { force?: RemoveForce } }>;

const removeQuery = {
  type: 'object',
  additionalProperties: false,
  properties: { force: { type: 'string', enum: ['convert', 'destroy'], description: 'what becomes of the VMs that depend on the snapshot: convert them to independent VMs, or destroy them' } },
} as const;

const one = { 200: snapshotSchema, 201: snapshotSchema, '4xx': errorSchema, '5xx': errorSchema };

export function snapshotRoutes(ctx: ApiContext): ApiRoute[] {
  const { tenancy } = ctx;
  /** The request with its `vm` resolved in the caller's tenant (another tenant's VM is as missing as none). */
  const scoped = (req: FastifyRequest, r: { vm: string } | { image: string }): { vm: string } | { image: string } => {
    if (!('vm' in r) || !tenancy) return r;
    const p = principalOf(req);
    const hit = tenancy.findVm(r.vm, p, isAdmin(p));
    if (hit) return { vm: hit.id };
    if (!isAdmin(p)) throw new HangarError('VM_NOT_FOUND', `no VM ${r.vm}`, { id: r.vm });
    return r;
  };
  return [
    {
      method: 'POST', url: '/v1/snapshots', summary: 'Take a golden snapshot of a ready VM ({ vm }) or of a VM booted from an image for it ({ image })', auth: 'bearer', scope: 'write',
      schema: { body: snapshotBody, response: one },
      handler: async (req, reply) => {
        const tenant = principalOf(req).tenant;
        const s = await ctx.snapshots.create(scoped(req, normalizeSnapshotRequest(req.body as SnapshotBody)), { tenant });
        tenancy?.setSnapshotOwner(s.manifest.id, tenant);
        return reply.code(201).send(toSnapshotView(s.manifest));
      },
    },
    {
      method: 'GET', url: '/v1/snapshots', summary: 'List golden snapshots (a tenant key: its tenant\'s)', auth: 'bearer', scope: 'read',
      schema: { response: { 200: { type: 'object', properties: { snapshots: { type: 'array', items: snapshotSchema } } } } },
      handler: async (req) => ({
        snapshots: (await ctx.snapshots.list()).filter((s) => !tenancy || canSee(req, tenancy.snapshotOwner(s.manifest.id))).map((s) => toSnapshotView(s.manifest)),
      }),
    },
    {
      method: 'GET', url: '/v1/snapshots/:id', summary: 'Show a golden snapshot', auth: 'bearer', scope: 'read',
      schema: { params: idParams, response: one },
      handler: async (req) => toSnapshotView((await ctx.snapshots.get((req as IdReq).params.id)).manifest),
    },
    {
      method: 'DELETE', url: '/v1/snapshots/:id', summary: 'Delete a golden snapshot; SNAPSHOT_IN_USE while VMs depend on it, unless ?force=convert|destroy says what becomes of them', auth: 'bearer', scope: 'write',
      schema: { params: idParams, querystring: removeQuery, response: { 204: { type: 'null' }, '4xx': errorSchema, '5xx': errorSchema } },
      handler: async (req, reply) => {
        const r = req as IdReq;
        await ctx.snapshots.remove(r.params.id, r.query.force);
        tenancy?.forgetSnapshot(r.params.id);
        return reply.code(204).send();
      },
    },
  ];
}
