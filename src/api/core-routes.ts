// The controller's core routes: VMs, images, host, console, events, metrics, health; snapshots and hibernation.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { HangarError } from '../errors.js';
import type { VmRecord } from '../domain/vm.js';
import { snapshotRoutes } from '../snapshot/routes.js';
import { DEFAULT_LIMITS, createVmSchema, normalizeCreate, type CreateVmInput, type VmLimits } from '../vm/input.js';
import type { LifecycleAction } from '../vm/service.js';
import { tailFile } from '../util/tail.js';
import { withTimeout } from '../util/timeout.js';
import type { ApiContext, ApiRoute } from './routes.js';
import { toVmView, type VmView } from './routes.js';
import { canSee, principalOf, tenantFilter } from './tenancy.js';
import { renderTenantMetrics, type TenantMetrics } from '../tenancy/metrics.js';
import { DEFAULT_STREAM_LIMITS, followFile, openStream, sseComment, StreamGate, streamEvents, streamKey, type StreamLimits, type StreamSink } from './streams.js';
import { consoleQuery, errorSchema, eventsQuery, hostSchema, idParams, imageSchema, vmSchema, waitQuery } from './schemas.js';
import type { ConsoleQuery, EventsQuery, IdParams, WaitQuery } from './schemas.js';

type IdReq = FastifyRequest<{ Params: IdParams }>;

const vmResponse = { 200: vmSchema, 201: vmSchema, 202: vmSchema, '4xx': errorSchema, '5xx': errorSchema };
const listResponse = { 200: { type: 'object', properties: { vms: { type: 'array', items: vmSchema } } } };

function waitFor<T>(p: Promise<T>, timeoutMs: number): Promise<T> {
  return withTimeout(() => p, timeoutMs, () => new HangarError('VM_BOOT_TIMEOUT', `not ready within ${timeoutMs} ms`));
}

/**
 * Where an event stream starts: after Last-Event-ID (a reconnecting client), else after ?since=SEQ (0 replays all
 * that is kept), else — and for since=now — after the newest event: live only. Pure.
 */
export function eventsStart(since: string | undefined, lastEventId: string | string[] | undefined, newest: number): number {
  const id = Array.isArray(lastEventId) ? lastEventId[0] : lastEventId;
  if (id !== undefined && /^[0-9]{1,15}$/.test(id)) return Number(id);
  if (since !== undefined && since !== 'now') return Number(since);
  return newest;
}

/** The VM view plus what snapshots add: hibernation and, for a clone, where its guest really lives. */
export function vmView(r: VmRecord): VmView & { hibernated: boolean; clone: { snapshot: string; netns: string; guestIp: string } | null } {
  const clone = r.net?.clone;
  return {
    ...toVmView(r),
    hibernated: !!r.hibernation,
    clone: clone && r.snapshotId ? { snapshot: r.snapshotId, netns: clone.netns, guestIp: clone.guest.ip } : null,
  };
}

/** Starts a stream for `req` (429 RATE_LIMITED past a cap, before anything is sent): hijacks the reply, sends the head. */
function startStream(gate: StreamGate, limits: StreamLimits, req: FastifyRequest, reply: FastifyReply, contentType: string, lastLine: (reason: string) => string | null): StreamSink {
  const release = gate.acquire(streamKey(req.headers.authorization));
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-cache', connection: 'keep-alive', 'x-request-id': req.id });
  res.flushHeaders(); // the client knows at once that its stream is open, even before the first event
  return openStream(res, limits, release, lastLine);
}

/**
 * The core routes; the create-VM body schema is built from `limits` (the controller config's), the event and
 * console streams are capped by `streams`.
 */
export function coreRoutes(ctx: ApiContext, limits: VmLimits = DEFAULT_LIMITS, streams: StreamLimits = DEFAULT_STREAM_LIMITS): ApiRoute[] {
  const { vms: service, events, metrics, tenancy } = ctx;
  const gate = new StreamGate(streams);
  const listCache = new Map<string, { version: number; body: string }>();
  const tenantRows = (ids: string[]): TenantMetrics[] => (tenancy ? ids.map((t) => ({ tenant: t, vmsByState: tenancy.vmsByState(t), usage: tenancy.usage(t), quotas: tenancy.mustGetTenant(t).quotas })) : []);
  const summaries: Record<LifecycleAction, string> = {
    start: 'Start a VM (boots from its disk, or restores a hibernated one; ?wait=true waits until ready; a running VM is already started)',
    stop: 'Stop a VM (a stopped VM is already stopped)',
    pause: 'Pause a VM',
    resume: 'Resume a paused VM, or restore a hibernated one',
    hibernate: 'Save the VM to disk and stop it (start/resume restores it)',
  };
  const action = (a: LifecycleAction): ApiRoute => ({
    method: 'POST', url: `/v1/vms/:id/${a}`, summary: summaries[a], auth: 'bearer', scope: 'write',
    schema: { params: idParams, querystring: waitQuery, response: vmResponse },
    handler: async (req) => {
      const q = req.query as { wait?: boolean; timeoutMs?: number };
      const { vm, ready } = await service.act((req as IdReq).params.id, a);
      return vmView(q.wait ? await waitFor(ready, q.timeoutMs ?? 300_000) : vm);
    },
  });
  /** POST /v1/vms { pool }: a ready member of the pool, given the caller's name and TTL (src/pool/). */
  const claimFromPool = async (req: FastifyRequest, reply: FastifyReply, body: CreateVmInput, q: WaitQuery): Promise<unknown> => {
    const { pool, name, ttlSeconds, volumes, ...rest } = body;
    const fixed = Object.keys(rest).filter((k) => (rest as Record<string, unknown>)[k] !== undefined);
    if (fixed.length) throw new HangarError('INVALID_ARGUMENT', `a claim from pool ${pool} takes only name, ttlSeconds and volumes (the pool's template fixes ${fixed.join(', ')})`, { field: fixed[0], reason: 'fixed' });
    if (!ctx.pools) throw new HangarError('POOL_NOT_FOUND', `no pool ${pool}: this controller has no pools`, { name: pool });
    if (name !== undefined) normalizeCreate({ name }, limits); // the same name rules as any create
    const r = await ctx.pools.claim(pool!, { tenant: principalOf(req).tenant }, { ...(name ? { name } : {}), ...(ttlSeconds ? { ttlSeconds } : {}), ...(volumes?.length ? { volumes } : {}) });
    // ?wait=true also waits until the guest has applied its hostname, clock and entropy.
    if (r.hit) {
      if (q.wait) await r.identity;
      return reply.code(201).send(vmView(r.vm));
    }
    if (!q.wait) {
      r.ready.catch(() => undefined);
      return reply.code(202).send(vmView(r.vm));
    }
    return reply.code(201).send(vmView(await waitFor(r.ready, q.timeoutMs ?? 300_000)));
  };
  return [
    {
      method: 'GET', url: '/healthz', summary: 'Liveness (no auth)', auth: 'none',
      schema: { response: { 200: { type: 'object', properties: { ok: { type: 'boolean' } } } } },
      handler: () => ({ ok: true }),
    },
    {
      method: 'POST', url: '/v1/vms', summary: 'Create a VM in the key\'s tenant, within its quotas (boots in the background; ?wait=true waits until ready)', auth: 'bearer', scope: 'write',
      schema: { body: createVmSchema(limits), querystring: waitQuery, response: vmResponse },
      handler: async (req, reply) => {
        const q = req.query as WaitQuery;
        const body = req.body as CreateVmInput;
        if (body.pool !== undefined) return claimFromPool(req, reply, body, q);
        const create = normalizeCreate(body, limits);
        // Another tenant's snapshot is as missing as one that does not exist.
        if (create.fromSnapshot && tenancy && !canSee(req, tenancy.snapshotOwner(create.fromSnapshot))) {
          throw new HangarError('SNAPSHOT_NOT_FOUND', `no snapshot ${create.fromSnapshot}`, { id: create.fromSnapshot });
        }
        const { vm, ready } = await service.create(create, { tenant: principalOf(req).tenant });
        if (!q.wait) {
          ready.catch(() => undefined); // failures are recorded on the VM; nobody awaits here
          return reply.code(202).send(vmView(vm));
        }
        const done = await waitFor(ready, q.timeoutMs ?? 300_000);
        return reply.code(201).send(vmView(done));
      },
    },
    {
      method: 'GET', url: '/v1/vms', summary: 'List VMs (a tenant key: its tenant\'s; an admin key: all)', auth: 'bearer', scope: 'read', schema: { response: listResponse },
      handler: (req, reply) => {
        // The list is derived state: serialise it once per store version (and tenant), not once per request.
        const tenant = tenantFilter(req);
        const key = tenant ?? '';
        let c = listCache.get(key);
        if (c?.version !== events.version) {
          c = { version: events.version, body: JSON.stringify({ vms: service.list().filter((vm) => tenant === null || (vm.tenantId ?? 'default') === tenant).map(vmView) }) };
          listCache.set(key, c);
        }
        return reply.type('application/json; charset=utf-8').send(c.body);
      },
    },
    {
      method: 'GET', url: '/v1/vms/:id', summary: 'Show a VM', auth: 'bearer', scope: 'read', schema: { params: idParams, response: vmResponse },
      handler: (req) => vmView(service.get((req as IdReq).params.id)),
    },
    action('start'), action('stop'), action('pause'), action('resume'), action('hibernate'),
    {
      method: 'DELETE', url: '/v1/vms/:id', summary: 'Destroy a VM and everything it holds', auth: 'bearer', scope: 'write',
      schema: { params: idParams, response: { 204: { type: 'null' }, '4xx': errorSchema, '5xx': errorSchema } },
      handler: async (req, reply) => {
        await service.destroy((req as IdReq).params.id);
        return reply.code(204).send();
      },
    },
    {
      method: 'GET', url: '/v1/vms/:id/console', summary: 'Serial console: the tail, or ?follow=true to stream', auth: 'bearer', scope: 'read',
      produces: 'text/plain',
      schema: { params: idParams, querystring: consoleQuery },
      handler: async (req, reply) => {
        const { id } = (req as IdReq).params;
        const q = req.query as ConsoleQuery;
        const path = service.consolePath(id);
        const text = await tailFile(path, q.lines ?? 200);
        if (!q.follow) return reply.type('text/plain; charset=utf-8').send(text);
        const sink = startStream(gate, streams, req, reply, 'text/plain; charset=utf-8', () => null);
        followFile(sink, path, text, () => { try { service.get(id); return true; } catch { return false; } });
      },
    },
    {
      method: 'GET', url: '/v1/images', summary: 'List built images (shared by every tenant)', auth: 'bearer', scope: 'read',
      schema: { response: { 200: { type: 'object', properties: { images: { type: 'array', items: imageSchema } } } } },
      handler: async () => ({ images: await service.images() }),
    },
    {
      method: 'GET', url: '/v1/host', summary: 'Accelerator, drivers, network mode, pool usage (a tenant key: VM counts of its tenant only)', auth: 'bearer', scope: 'read',
      schema: { response: { 200: hostSchema } },
      handler: async (req) => {
        const host = await service.host();
        const tenant = tenantFilter(req);
        return tenant === null || !tenancy ? host : { ...host, vms: tenancy.vmsByState(tenant) };
      },
    },
    {
      method: 'GET', url: '/v1/events', summary: 'Lifecycle events as Server-Sent Events (a tenant key: its tenant\'s): live only, unless ?since=SEQ (0: all kept) or Last-Event-ID replays', auth: 'bearer', scope: 'read',
      produces: 'text/event-stream',
      schema: { querystring: eventsQuery },
      handler: (req, reply) => {
        const q = req.query as EventsQuery;
        const last = eventsStart(q.since, req.headers['last-event-id'], events.lastEventSeq());
        const tenant = tenantFilter(req);
        streamEvents(startStream(gate, streams, req, reply, 'text/event-stream', sseComment), events, last, q.vm, tenant ?? undefined);
      },
    },
    ...snapshotRoutes(ctx),
    {
      method: 'GET', url: '/metrics', summary: 'Prometheus metrics: fleet-wide and per tenant for an admin key, the key\'s tenant only for others', auth: 'bearer', scope: 'read', produces: 'text/plain',
      schema: {},
      handler: async (req, reply) => {
        const tenant = tenantFilter(req);
        if (tenant !== null) return reply.type(metrics.contentType).send(renderTenantMetrics(tenantRows([tenant])));
        const fleet = await metrics.render();
        return reply.type(metrics.contentType).send(tenancy ? fleet + renderTenantMetrics(tenantRows(tenancy.listTenants().map((t) => t.id))) : fleet);
      },
    },
  ];
}
