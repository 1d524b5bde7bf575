// The route table: every HTTP route is declared here (or in a module that returns more ApiRoutes), with the schemas
// that validate it. The server registers exactly this list and /openapi.json is generated from it.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AgentPort } from '../agent/port.js';
import type { VmRecord } from '../domain/vm.js';
import type { HangarMetrics } from '../metrics.js';
import type { SnapshotService } from '../snapshot/service.js';
import type { StateStore } from '../store/store.js';
import type { VmService } from '../vm/service.js';

/** What the controller's golden snapshots offer the API. */
export type SnapshotPort = Pick<SnapshotService, 'list' | 'get' | 'create' | 'remove' | 'dependants'>;

/** The event log and the store's change counter (list caching). */
export type EventPort = Pick<StateStore, 'events' | 'onEvent' | 'lastEventSeq' | 'version'>;

/**
 * The typed ports every route module receives, the one way routes reach the rest of Hangar. The composition root
 * (api/controller.ts) builds them; modules that need more (desktop, doctor) are closures it makes over theirs.
 */
export interface ApiContext {
  vms: VmService;
  snapshots: SnapshotPort;
  events: EventPort;
  metrics: HangarMetrics;
  /** The bearer token (never logged). */
  token: string;
  /** Sessions with the VMs' guest agents (src/agent/port.ts). */
  agents: AgentPort;
}

/** A route module: its routes, given the ports. */
export type ApiRouteModule = (ctx: ApiContext) => ApiRoute[];

export interface ApiRoute {
  method: 'GET' | 'POST' | 'DELETE' | 'PUT' | 'PATCH';
  url: string;
  summary: string;
  /** Routes without auth: only /healthz (and routes that carry their own token check, e.g. the viewer). */
  auth: 'bearer' | 'none' | 'viewer-token';
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
}

export function toVmView(r: VmRecord): VmView {
  const net = r.net;
  return {
    id: r.id, name: r.name, state: r.state, image: r.imageId, profile: r.profile, vmm: r.vmm, vcpus: r.vcpus,
    memMiB: r.memMiB, ttlSeconds: r.ttlS, expiresAt: r.expiresAt, createdAt: r.createdAt, updatedAt: r.updatedAt,
    pid: r.pid, bootMs: r.bootMs,
    network: net && net.ip ? { ip: net.ip, mac: net.mac, tap: net.tap, gateway: net.gateway } : null,
    lastError: r.lastError,
  };
}
