// HTTP routes of golden snapshots, over the snapshots port.
import type { FastifyRequest } from 'fastify';
import type { ApiContext, ApiRoute } from '../api/routes.js';
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
  return [
    {
      method: 'POST', url: '/v1/snapshots', summary: 'Take a golden snapshot of a ready VM ({ vm }) or of a VM booted from an image for it ({ image })', auth: 'bearer',
      schema: { body: snapshotBody, response: one },
      handler: async (req, reply) => {
        const s = await ctx.snapshots.create(normalizeSnapshotRequest(req.body as SnapshotBody));
        return reply.code(201).send(toSnapshotView(s.manifest));
      },
    },
    {
      method: 'GET', url: '/v1/snapshots', summary: 'List golden snapshots', auth: 'bearer',
      schema: { response: { 200: { type: 'object', properties: { snapshots: { type: 'array', items: snapshotSchema } } } } },
      handler: async () => ({ snapshots: (await ctx.snapshots.list()).map((s) => toSnapshotView(s.manifest)) }),
    },
    {
      method: 'GET', url: '/v1/snapshots/:id', summary: 'Show a golden snapshot', auth: 'bearer',
      schema: { params: idParams, response: one },
      handler: async (req) => toSnapshotView((await ctx.snapshots.get((req as IdReq).params.id)).manifest),
    },
    {
      method: 'DELETE', url: '/v1/snapshots/:id', summary: 'Delete a golden snapshot; SNAPSHOT_IN_USE while VMs depend on it, unless ?force=convert|destroy says what becomes of them', auth: 'bearer',
      schema: { params: idParams, querystring: removeQuery, response: { 204: { type: 'null' }, '4xx': errorSchema, '5xx': errorSchema } },
      handler: async (req, reply) => {
        const r = req as IdReq;
        await ctx.snapshots.remove(r.params.id, r.query.force);
        return reply.code(204).send();
      },
    },
  ];
}
