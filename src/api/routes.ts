// The route table: every HTTP route is declared here (or in a module that returns more ApiRoutes), with the schemas
// that validate it. The server registers exactly this list and /openapi.json is generated from it.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { HangarMetrics } from '../metrics.js';
import type { Store, VmRecord } from '../store/store.js';
import type { VmService } from '../vm/service.js';

export interface ApiContext {
  service: VmService;
  store: Store;
  metrics: HangarMetrics;
  /** The bearer token (never logged). */
  token: string;
}

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
  const net = r.net as { ip?: string; mac?: string; tap?: string; gateway?: string } | null;
  return {
    id: r.id, name: r.name, state: r.state, image: r.imageId, profile: r.profile, vmm: r.vmm, vcpus: r.vcpus,
    memMiB: r.memMiB, ttlSeconds: r.ttlS, expiresAt: r.expiresAt, createdAt: r.createdAt, updatedAt: r.updatedAt,
    pid: r.pid, bootMs: r.bootMs,
    network: net && net.ip ? { ip: net.ip, mac: net.mac ?? '', tap: net.tap ?? '', gateway: net.gateway ?? '' } : null,
    lastError: r.lastError,
  };
}
