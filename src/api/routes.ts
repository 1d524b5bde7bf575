// The route table: every HTTP route is declared here (or in a module that returns more ApiRoutes), with the schemas
// that validate it. The server registers exactly this list and /openapi.json is generated from it.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AgentPort } from '../agent/port.js';
import type { VmRecord } from '../domain/vm.js';
import type { HangarMetrics } from '../metrics.js';
import type { SnapshotService } from '../snapshot/service.js';
import type { StateStore } from '../store/store.js';
import type { TenancyStore } from '../store/tenancy.js';
import type { RouteScope } from '../tenancy/keys.js';
import type { VmService } from '../vm/service.js';
import type { LimitsView } from '../vmm/cgroup/plan.js';

/** What the controller's golden snapshots offer the API. */
export type SnapshotPort = Pick<SnapshotService, 'list' | 'get' | 'create' | 'remove' | 'dependants'>;

/** The event log and the store's change counter (list caching). */
export type EventPort = Pick<StateStore, 'events' | 'onEvent' | 'lastEventSeq' | 'version'>;

/** Tenants, keys, snapshot owners, the audit log (the store's TenancyStore). */
export type TenancyPort = Pick<TenancyStore,
  | 'keyByHash' | 'findVm' | 'snapshotOwner' | 'setSnapshotOwner' | 'forgetSnapshot' | 'usage' | 'vmsByState'
  | 'createTenant' | 'getTenant' | 'mustGetTenant' | 'listTenants' | 'setQuotas' | 'removeTenant'
  | 'createKey' | 'mustGetKey' | 'listKeys' | 'revokeKey' | 'appendAudit' | 'audit'>;

/**
 * The typed ports every route module receives, the one way routes reach the rest of Hangar. The composition root
 * (api/controller.ts) builds them; modules that need more (desktop, doctor) are closures it makes over theirs.
 */
export interface ApiContext {
  vms: VmService;
  snapshots: SnapshotPort;
  events: EventPort;
  metrics: HangarMetrics;
  /** The bearer token (never logged): the admin key when there is no `tenancy` (route tests over fakes). */
  token: string;
  /**
   * API keys and tenants: with it, every bearer request is authenticated against the stored keys (no cache) and
   * resources are filtered by the key's tenant (src/api/tenancy.ts).
   */
  tenancy?: TenancyPort;
  /** Sessions with the VMs' guest agents (src/agent/port.ts). */
  agents: AgentPort;
  /** Warm pools: claims from POST /v1/vms { pool } (absent: no pools on this controller). */
  pools?: PoolClaims;
}

/** What a create from a pool needs (src/pool/service.ts's PoolService is one). */
export interface PoolClaims {
  claim(pool: string, owner: { tenant: string }, opts: { name?: string; ttlSeconds?: number }): Promise<{ vm: VmRecord; hit: boolean; ready: Promise<VmRecord>; identity: Promise<unknown> }>;
}

/** A route module: its routes, given the ports. */
export type ApiRouteModule = (ctx: ApiContext) => ApiRoute[];

export interface ApiRoute {
  method: 'GET' | 'POST' | 'DELETE' | 'PUT' | 'PATCH';
  url: string;
  summary: string;
  /** Routes without auth: only /healthz (and routes that carry their own token check, e.g. the viewer). */
  auth: 'bearer' | 'none' | 'viewer-token';
  /**
   * The scope a bearer route needs (src/tenancy/keys.ts: read, write, admin, viewer), checked by one hook before
   * the handler. Every bearer route declares one (test/api/tenancy-matrix.test.ts fails naming a route that does
   * not); an undeclared route is admin-only.
   */
  scope?: RouteScope;
  schema: {
    body?: object;
    params?: object;
    querystring?: object;
    response?: Record<number | string, object>;
  };
  /** Content type of a non-JSON 200 answer (for the OpenAPI document). */
  produces?: string;
  websocket?: boolean;
  /**
   * The body is an application/octet-stream handed to the handler as a stream (req.body), with no body limit and
   * no buffering (file uploads). Other routes refuse octet-stream bodies.
   */
  rawBody?: boolean;
  handler: (req: FastifyRequest, reply: FastifyReply) => Promise<unknown> | unknown;
}

export interface VmView {
  id: string;
  name: string;
  state: string;
  image: string;
  profile: string;
  vmm: string;
  vcpus: number;
  memMiB: number;
  ttlSeconds: number | null;
  expiresAt: string | null;
  createdAt: string;
  updatedAt: string;
  pid: number | null;
  bootMs: number | null;
  network: { ip: string; mac: string; tap: string; gateway: string } | null;
  lastError: VmRecord['lastError'];
  /** The cgroup limits its VMM runs (or last ran) under; null without cgroups. */
  limits?: LimitsView | null;
  /** The tenant that owns the VM. */
  tenant?: string;
}

export function toVmView(r: VmRecord): VmView {
  const net = r.net;
  return {
    id: r.id, name: r.name, state: r.state, image: r.imageId, profile: r.profile, vmm: r.vmm, vcpus: r.vcpus,
    memMiB: r.memMiB, ttlSeconds: r.ttlS, expiresAt: r.expiresAt, createdAt: r.createdAt, updatedAt: r.updatedAt,
    pid: r.pid, bootMs: r.bootMs,
    network: net && net.ip ? { ip: net.ip, mac: net.mac, tap: net.tap, gateway: net.gateway } : null,
    lastError: r.lastError, tenant: r.tenantId ?? 'default',
    limits: r.spec?.limits ?? null,
  };
}
