// HTTP routes of golden snapshots and hibernation. They need the VM manager itself (live VMMs), not only the
// VmService view; a controller whose service is something else answers them with VMM_NOT_AVAILABLE.
import type { FastifyRequest } from 'fastify';
import { HangarError } from '../errors.js';
import type { ApiContext, ApiRoute } from '../api/routes.js';
import { errorSchema, idParams, snapshotBody, snapshotSchema, type IdParams, type SnapshotBody } from '../api/schemas.js';
import { VmManager } from '../vm/manager.js';
import type { VmService } from '../vm/service.js';
import { toSnapshotView } from './manifest.js';
import { normalizeSnapshotRequest } from './service.js';

type IdReq = FastifyRequest<{ Params: IdParams }>;

function managerOf(service: VmService): VmManager {
  if (service instanceof VmManager) return service;
  throw new HangarError('VMM_NOT_AVAILABLE', 'this controller has no snapshot support', {});
}

const one = { 200: snapshotSchema, 201: snapshotSchema, '4xx': errorSchema, '5xx': errorSchema };

export function snapshotRoutes(ctx: ApiContext): ApiRoute[] {
  return [
    {
      method: 'POST', url: '/v1/snapshots', summary: 'Take a golden snapshot of a ready VM ({ vm }) or of a VM booted from an image for it ({ image })', auth: 'bearer',
      schema: { body: snapshotBody, response: one },
      handler: async (req, reply) => {
        const s = await managerOf(ctx.service).snapshots.create(normalizeSnapshotRequest(req.body as SnapshotBody));
        return reply.code(201).send(toSnapshotView(s.manifest));
      },
    },
    {
      method: 'GET', url: '/v1/snapshots', summary: 'List golden snapshots', auth: 'bearer',
      schema: { response: { 200: { type: 'object', properties: { snapshots: { type: 'array', items: snapshotSchema } } } } },
      handler: async () => ({ snapshots: (await managerOf(ctx.service).snapshots.list()).map((s) => toSnapshotView(s.manifest)) }),
    },
    {
      method: 'GET', url: '/v1/snapshots/:id', summary: 'Show a golden snapshot', auth: 'bearer',
      schema: { params: idParams, response: one },
      handler: async (req) => toSnapshotView((await managerOf(ctx.service).snapshots.get((req as IdReq).params.id)).manifest),
    },
    {
      method: 'DELETE', url: '/v1/snapshots/:id', summary: 'Delete a golden snapshot (running clones are not affected)', auth: 'bearer',
      schema: { params: idParams, response: { 204: { type: 'null' }, '4xx': errorSchema, '5xx': errorSchema } },
      handler: async (req, reply) => {
        await managerOf(ctx.service).snapshots.remove((req as IdReq).params.id);
        return reply.code(204).send();
      },
    },
  ];
}
