// A VM's own idle settings: GET and PATCH /v1/vms/:id/idle (also given at create: idleTimeoutS, idleAction). The
// idler (src/api/workers.ts) reads them each round, so a change applies at once, without a restart.
import { Type, type Static } from 'typebox';
import type { FastifyRequest } from 'fastify';
import type { ApiRoute } from '../api/routes.js';
import { errorSchema, idParams, type IdParams } from '../api/schemas.js';
import { idleFields } from './input.js';

export interface IdleSettingsView { timeoutS: number | null; action: 'hibernate' | 'pause' | null }

/** What the routes need: the VM by id or name, its own settings, and the config's defaults. */
export interface IdlePort {
  vmId(idOrName: string): string;
  get(vmId: string): IdleSettingsView;
  set(vmId: string, patch: Partial<IdleSettingsView>): IdleSettingsView;
  defaults: { timeoutS: number; action: 'hibernate' | 'pause' };
}

export const idlePatchSchema = Type.Object(idleFields, { additionalProperties: false });

const idleView = {
  type: 'object',
  required: ['vm', 'idleTimeoutS', 'idleAction', 'effective'],
  properties: {
    vm: { type: 'string' },
    idleTimeoutS: { type: ['integer', 'null'], description: 'the VM\'s own (null: the default)' },
    idleAction: { type: ['string', 'null'], enum: ['hibernate', 'pause', null] },
    effective: { type: 'object', properties: { timeoutS: { type: 'integer', description: '0: never idle' }, action: { type: 'string' } } },
  },
} as const;

/** The view of a VM's settings over the defaults. Pure. */
export function viewIdle(vm: string, own: IdleSettingsView, d: IdlePort['defaults']): Record<string, unknown> {
  return { vm, idleTimeoutS: own.timeoutS, idleAction: own.action, effective: { timeoutS: own.timeoutS ?? d.timeoutS, action: own.action ?? d.action } };
}

export function idleRoutes(port: IdlePort): ApiRoute[] {
  return [
    {
      method: 'GET', url: '/v1/vms/:id/idle', summary: 'The VM\'s idle timeout and action (its own, and in effect)', auth: 'bearer', scope: 'read',
      schema: { params: idParams, response: { 200: idleView, '4xx': errorSchema } },
      handler: (req) => {
        const id = port.vmId((req as FastifyRequest<{ Params: IdParams }>).params.id);
        return viewIdle(id, port.get(id), port.defaults);
      },
    },
    {
      method: 'PATCH', url: '/v1/vms/:id/idle', summary: 'Set the VM\'s idle timeout (0: never) and action (hibernate or pause); null: back to the default', auth: 'bearer', scope: 'write',
      schema: { params: idParams, body: idlePatchSchema, response: { 200: idleView, '4xx': errorSchema } },
      handler: (req) => {
        const r = req as FastifyRequest<{ Params: IdParams; Body: Static<typeof idlePatchSchema> }>;
        const id = port.vmId(r.params.id);
        const patch: Partial<IdleSettingsView> = {
          ...(r.body.idleTimeoutS !== undefined ? { timeoutS: r.body.idleTimeoutS } : {}),
          ...(r.body.idleAction !== undefined ? { action: r.body.idleAction } : {}),
        };
        return viewIdle(id, port.set(id, patch), port.defaults);
      },
    },
  ];
}
