// A VM's network policy: GET and PATCH /v1/vms/:id/network. The PATCH takes effect on the VM's live network at once
// (one nft transaction and netd: tens of milliseconds), no restart. The proxy's password is never shown.
import type { FastifyRequest } from 'fastify';
import type { VmRecord } from '../domain/vm.js';
import { redactPolicy, type NetworkPolicy } from '../net/egress/policy.js';
import { networkPolicySchema, type NetworkPolicyBody } from '../net/egress/schema.js';
import type { ApiRoute } from './routes.js';
import { errorSchema, idParams, type IdParams } from './schemas.js';

/** What the routes need of the VM layer (the composition root passes the manager). */
export interface NetworkPolicyPort {
  get(idOrName: string): VmRecord;
  networkPolicy(idOrName: string): NetworkPolicy;
  setNetworkPolicy(idOrName: string, body: NetworkPolicyBody): Promise<VmRecord>;
}

const nullableInt = { type: ['integer', 'null'] } as const;
export const networkPolicyView = {
  type: 'object',
  required: ['vm', 'egress', 'group', 'limits', 'default'],
  properties: {
    vm: { type: 'string' },
    egress: {
      type: 'object',
      required: ['mode', 'allow', 'deny', 'proxy'],
      properties: {
        mode: { type: 'string', enum: ['none', 'internet', 'allowlist'] },
        allow: { type: 'array', items: { type: 'string' } },
        deny: { type: 'array', items: { type: 'string' } },
        proxy: { type: ['string', 'null'], description: 'the upstream proxy, password redacted' },
      },
    },
    group: { type: ['string', 'null'] },
    limits: { type: 'object', properties: { bandwidthMbit: nullableInt, connections: nullableInt } },
    default: { type: 'boolean', description: 'true: the VM has no policy of its own and runs under the configured default' },
  },
} as const;

type PatchReq = FastifyRequest<{ Params: IdParams; Body: NetworkPolicyBody }>;

function view(vm: VmRecord, p: NetworkPolicy): Record<string, unknown> {
  return { vm: vm.id, ...redactPolicy(p), default: !vm.netPolicy };
}

export function networkRoutes(port: NetworkPolicyPort): ApiRoute[] {
  return [
    {
      method: 'GET', url: '/v1/vms/:id/network', summary: 'The VM\'s network policy (egress, group, limits)', auth: 'bearer', scope: 'read',
      schema: { params: idParams, response: { 200: networkPolicyView, '4xx': errorSchema } },
      handler: (req) => {
        const id = (req as FastifyRequest<{ Params: IdParams }>).params.id;
        return view(port.get(id), port.networkPolicy(id));
      },
    },
    {
      method: 'PATCH', url: '/v1/vms/:id/network', summary: 'Change the VM\'s network policy; a running VM\'s takes effect at once', auth: 'bearer', scope: 'write',
      schema: { params: idParams, body: networkPolicySchema, response: { 200: networkPolicyView, '4xx': errorSchema, '5xx': errorSchema } },
      handler: async (req) => {
        const r = req as PatchReq;
        const vm = await port.setNetworkPolicy(r.params.id, r.body);
        return view(vm, port.networkPolicy(vm.id));
      },
    },
  ];
}
