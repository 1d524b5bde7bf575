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
  const { vms: service, events, metrics } = ctx;
  const gate = new StreamGate(streams);
  let listCache = { version: -1, body: '' };
  const summaries: Record<LifecycleAction, string> = {
    start: 'Start a VM (boots from its disk, or restores a hibernated one; ?wait=true waits until ready; a running VM is already started)',
    stop: 'Stop a VM (a stopped VM is already stopped)',
    pause: 'Pause a VM',
    resume: 'Resume a paused VM, or restore a hibernated one',
    hibernate: 'Save the VM to disk and stop it (start/resume restores it)',
  };
  const action = (a: LifecycleAction): ApiRoute => ({
    method: 'POST', url: `/v1/vms/:id/${a}`, summary: summaries[a], auth: 'bearer',
    schema: { params: idParams, querystring: waitQuery, response: vmResponse },
    handler: async (req) => {
      const q = req.query as { wait?: boolean; timeoutMs?: number };
      const { vm, ready } = await service.act((req as IdReq).params.id, a);
      return vmView(q.wait ? await waitFor(ready, q.timeoutMs ?? 300_000) : vm);
    },
  });
  return [
    {
      method: 'GET', url: '/healthz', summary: 'Liveness (no auth)', auth: 'none',
      schema: { response: { 200: { type: 'object', properties: { ok: { type: 'boolean' } } } } },
      handler: () => ({ ok: true }),
    },
    {
      method: 'POST', url: '/v1/vms', summary: 'Create a VM (boots in the background; ?wait=true waits until ready)', auth: 'bearer',
      schema: { body: createVmSchema(limits), querystring: waitQuery, response: vmResponse },
      handler: async (req, reply) => {
        const q = req.query as WaitQuery;
        const { vm, ready } = await service.create(normalizeCreate(req.body as CreateVmInput, limits));
        if (!q.wait) {
          ready.catch(() => undefined); // failures are recorded on the VM; nobody awaits here
          return reply.code(202).send(vmView(vm));
        }
        const done = await waitFor(ready, q.timeoutMs ?? 300_000);
        return reply.code(201).send(vmView(done));
      },
    },
    {
      method: 'GET', url: '/v1/vms', summary: 'List VMs', auth: 'bearer', schema: { response: listResponse },
      handler: (_req, reply) => {
        // The list is derived state: serialise it once per store version, not once per request.
        if (listCache.version !== events.version) listCache = { version: events.version, body: JSON.stringify({ vms: service.list().map(vmView) }) };
        return reply.type('application/json; charset=utf-8').send(listCache.body);
      },
    },
    {
      method: 'GET', url: '/v1/vms/:id', summary: 'Show a VM', auth: 'bearer', schema: { params: idParams, response: vmResponse },
      handler: (req) => vmView(service.get((req as IdReq).params.id)),
    },
    action('start'), action('stop'), action('pause'), action('resume'), action('hibernate'),
    {
      method: 'DELETE', url: '/v1/vms/:id', summary: 'Destroy a VM and everything it holds', auth: 'bearer',
      schema: { params: idParams, response: { 204: { type: 'null' }, '4xx': errorSchema, '5xx': errorSchema } },
      handler: async (req, reply) => {
        await service.destroy((req as IdReq).params.id);
        return reply.code(204).send();
      },
    },
    {
      method: 'GET', url: '/v1/vms/:id/console', summary: 'Serial console: the tail, or ?follow=true to stream', auth: 'bearer',
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
      method: 'GET', url: '/v1/images', summary: 'List built images', auth: 'bearer',
      schema: { response: { 200: { type: 'object', properties: { images: { type: 'array', items: imageSchema } } } } },
      handler: async () => ({ images: await service.images() }),
    },
    {
      method: 'GET', url: '/v1/host', summary: 'Accelerator, drivers, network mode, pool usage', auth: 'bearer',
      schema: { response: { 200: hostSchema } },
      handler: () => service.host(),
    },
    {
      method: 'GET', url: '/v1/events', summary: 'Lifecycle events as Server-Sent Events: live only, unless ?since=SEQ (0: all kept) or Last-Event-ID replays', auth: 'bearer',
      produces: 'text/event-stream',
      schema: { querystring: eventsQuery },
      handler: (req, reply) => {
        const q = req.query as EventsQuery;
        const last = eventsStart(q.since, req.headers['last-event-id'], events.lastEventSeq());
        streamEvents(startStream(gate, streams, req, reply, 'text/event-stream', sseComment), events, last, q.vm);
      },
    },
    ...snapshotRoutes(ctx),
    {
      method: 'GET', url: '/metrics', summary: 'Prometheus metrics', auth: 'bearer', produces: 'text/plain',
      schema: {},
      handler: async (_req, reply) => reply.type(metrics.contentType).send(await metrics.render()),
    },
  ];
}
