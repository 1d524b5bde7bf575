// HTTP routes of warm pools over the pool port: create and remove are the operator's (admin: a pool holds host
// memory for everyone), listing and showing are read. A claim is POST /v1/vms { "pool": NAME } (src/api/core-routes.ts).
import type { FastifyRequest } from 'fastify';
import type { ApiRoute } from '../api/routes.js';
import { errorSchema } from '../api/schemas.js';
import type { PoolView } from './plan.js';
import { POOL_MAX_SIZE } from './plan.js';

/** What the routes need (PoolService is one). */
export interface PoolPort {
  list(): PoolView[];
  get(name: string): PoolView;
  create(body: unknown): Promise<PoolView>;
  remove(name: string): Promise<void>;
}

export const poolNameSchema = { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,31}$' } as const;

export const poolSchema = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    template: { type: 'object', properties: { snapshot: { type: 'string' }, profile: { type: 'string' } } },
    snapshot: { type: ['string', 'null'], description: 'the golden snapshot members are cloned from (a profile template: made by the pool)' },
    size: { type: 'integer', description: 'ready members kept' },
    ready: { type: 'integer', description: 'members restored, checked and paused: claimable now' },
    filling: { type: 'integer', description: 'members being restored' },
    claims: { type: 'integer' },
    misses: { type: 'integer', description: 'claims that found no ready member (served by a plain clone)' },
    refillMs: { type: ['integer', 'null'], description: 'the last member\'s create → ready-and-paused time' },
    createdAt: { type: 'string' },
  },
} as const;

const createBody = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'size'],
  properties: {
    name: poolNameSchema,
    size: { type: 'integer', minimum: 0, maximum: POOL_MAX_SIZE },
    snapshot: { type: 'string', description: 'a golden snapshot id (exactly one of snapshot and profile)' },
    profile: { type: 'string', description: 'a profile: the pool snapshots a VM booted from its newest image' },
  },
} as const;

const nameParams = { type: 'object', additionalProperties: false, required: ['name'], properties: { name: poolNameSchema } } as const;
const one = { 200: poolSchema, 201: poolSchema, '4xx': errorSchema, '5xx': errorSchema };
type NameReq = FastifyRequest<{ Params: { name: string } }>;

export function poolRoutes(pools: PoolPort): ApiRoute[] {
  return [
    {
      method: 'POST', url: '/v1/pools', summary: 'Create a warm pool of N ready VMs of a template (a snapshot, or a profile the pool snapshots)', auth: 'bearer', scope: 'admin',
      schema: { body: createBody, response: one },
      handler: async (req, reply) => reply.code(201).send(await pools.create(req.body)),
    },
    {
      method: 'GET', url: '/v1/pools', summary: 'List warm pools with their size, ready members, claims, misses and refill time', auth: 'bearer', scope: 'read',
      schema: { response: { 200: { type: 'object', properties: { pools: { type: 'array', items: poolSchema } } } } },
      handler: () => ({ pools: pools.list() }),
    },
    {
      method: 'GET', url: '/v1/pools/:name', summary: 'Show a warm pool', auth: 'bearer', scope: 'read',
      schema: { params: nameParams, response: one },
      handler: (req) => pools.get((req as NameReq).params.name),
    },
    {
      method: 'DELETE', url: '/v1/pools/:name', summary: 'Remove a warm pool: its waiting members are destroyed (claimed VMs are not)', auth: 'bearer', scope: 'admin',
      schema: { params: nameParams, response: { 204: { type: 'null' }, '4xx': errorSchema, '5xx': errorSchema } },
      handler: async (req, reply) => {
        await pools.remove((req as NameReq).params.name);
        return reply.code(204).send();
      },
    },
  ];
}
