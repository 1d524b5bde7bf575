// The volume routes: /v1/volumes (create, list, show, remove, resize, snapshot) and a VM's volumes
// (POST /v1/vms/:id/volumes attaches to a running VM without a reboot, DELETE …/:volume detaches). A volume belongs
// to the key's tenant: another tenant's is as missing as one that does not exist (VOLUME_NOT_FOUND).
import { Type, type Static } from 'typebox';
import type { FastifyRequest } from 'fastify';
import type { ApiRoute } from '../api/routes.js';
import { errorSchema, idParams, type IdParams } from '../api/schemas.js';
import { principalOf, tenantFilter } from '../api/tenancy.js';
import { REF_MAX_LENGTH } from '../util/validate.js';
import { createVolumeSchema, resizeVolumeSchema, snapshotVolumeSchema, volumeMountSchema, type VolumeMount } from './input.js';
import type { VolumeService } from './service.js';

const nameParams = Type.Object({ name: Type.String({ minLength: 1, maxLength: REF_MAX_LENGTH, description: 'volume id or name' }) }, { additionalProperties: false });
const vmVolumeParams = Type.Object({
  id: Type.String({ minLength: 1, maxLength: REF_MAX_LENGTH, description: 'VM id or name' }),
  volume: Type.String({ minLength: 1, maxLength: REF_MAX_LENGTH, description: 'volume id or name' }),
}, { additionalProperties: false });

export const volumeSchema = {
  type: 'object',
  required: ['id', 'name', 'tenant', 'sizeMiB', 'attachments'],
  properties: {
    id: { type: 'string' }, name: { type: 'string' }, tenant: { type: 'string' },
    sizeMiB: { type: 'integer', description: 'the size limit' },
    usedBytes: { type: ['integer', 'null'], description: 'what the sparse file takes on the host' },
    source: { type: ['string', 'null'], description: 'the volume this one is a snapshot of' },
    createdAt: { type: 'string' }, updatedAt: { type: 'string' },
    attachments: {
      type: 'array',
      items: { type: 'object', properties: { vm: { type: 'string' }, path: { type: 'string' }, readOnly: { type: 'boolean' }, slot: { type: 'integer' } } },
    },
  },
} as const;

const attachmentSchema = {
  type: 'object',
  properties: { volume: { type: 'string' }, vm: { type: 'string' }, path: { type: 'string' }, readOnly: { type: 'boolean' }, slot: { type: 'integer' } },
} as const;

const one = { 200: volumeSchema, 201: volumeSchema, '4xx': errorSchema, '5xx': errorSchema };
type NameReq = FastifyRequest<{ Params: Static<typeof nameParams> }>;
/** The tenant whose volumes a request sees (undefined: an admin key, any tenant's). */
const scope = (req: FastifyRequest): string | undefined => tenantFilter(req) ?? undefined;

export function volumeRoutes(svc: VolumeService): ApiRoute[] {
  return [
    {
      method: 'POST', url: '/v1/volumes', summary: 'Create a volume: a sparse ext4 disk of sizeMiB that outlives VMs (counts against the tenant\'s disk quota)', auth: 'bearer', scope: 'write',
      schema: { body: createVolumeSchema, response: one },
      handler: async (req, reply) => reply.code(201).send(await svc.view(await svc.create(principalOf(req).tenant, req.body as Static<typeof createVolumeSchema>))),
    },
    {
      method: 'GET', url: '/v1/volumes', summary: 'List volumes (a tenant key: its tenant\'s; an admin key: all)', auth: 'bearer', scope: 'read',
      schema: { response: { 200: { type: 'object', properties: { volumes: { type: 'array', items: volumeSchema } } } } },
      handler: async (req) => ({ volumes: await Promise.all(svc.list(scope(req)).map((v) => svc.view(v))) }),
    },
    {
      method: 'GET', url: '/v1/volumes/:name', summary: 'Show a volume and where it is attached', auth: 'bearer', scope: 'read',
      schema: { params: nameParams, response: one },
      handler: async (req) => svc.view(svc.get(scope(req), (req as NameReq).params.name)),
    },
    {
      method: 'DELETE', url: '/v1/volumes/:name', summary: 'Remove a volume and its data (VOLUME_IN_USE while attached)', auth: 'bearer', scope: 'write',
      schema: { params: nameParams, response: { 204: { type: 'null' }, '4xx': errorSchema, '5xx': errorSchema } },
      handler: async (req, reply) => {
        await svc.remove(scope(req), (req as NameReq).params.name);
        return reply.code(204).send();
      },
    },
    {
      method: 'POST', url: '/v1/volumes/:name/resize', summary: 'Grow a volume (offline when unattached, online in a ready VM)', auth: 'bearer', scope: 'write',
      schema: { params: nameParams, body: resizeVolumeSchema, response: one },
      handler: async (req) => svc.view(await svc.resize(scope(req), (req as NameReq).params.name, (req.body as { sizeMiB: number }).sizeMiB)),
    },
    {
      method: 'POST', url: '/v1/volumes/:name/snapshot', summary: 'Copy a volume under a new name (a reflink where the filesystem has them)', auth: 'bearer', scope: 'write',
      schema: { params: nameParams, body: snapshotVolumeSchema, response: one },
      handler: async (req, reply) => reply.code(201).send(await svc.view(await svc.snapshot(principalOf(req).tenant, (req as NameReq).params.name, req.body as { name: string }))),
    },
    {
      method: 'POST', url: '/v1/vms/:id/volumes', summary: 'Attach a volume to a ready VM without a reboot and mount it at path (one writer at a time)', auth: 'bearer', scope: 'write',
      schema: { params: idParams, body: volumeMountSchema, response: { 201: attachmentSchema, '4xx': errorSchema, '5xx': errorSchema } },
      handler: async (req, reply) => {
        const r = req as FastifyRequest<{ Params: IdParams; Body: VolumeMount }>;
        const a = await svc.attach(r.params.id, r.body, scope(req));
        return reply.code(201).send({ volume: a.volumeId, vm: a.vmId, path: a.path, readOnly: a.readOnly, slot: a.slot });
      },
    },
    {
      method: 'DELETE', url: '/v1/vms/:id/volumes/:volume', summary: 'Unmount and detach a volume from a VM (it is free for another writer)', auth: 'bearer', scope: 'write',
      schema: { params: vmVolumeParams, response: { 204: { type: 'null' }, '4xx': errorSchema, '5xx': errorSchema } },
      handler: async (req, reply) => {
        const r = req as FastifyRequest<{ Params: Static<typeof vmVolumeParams> }>;
        await svc.detach(r.params.id, r.params.volume, scope(req));
        return reply.code(204).send();
      },
    },
  ];
}
