// The controller's core routes: VMs, images, host, console, events, metrics, health; snapshots and hibernation.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { HangarError } from '../errors.js';
import type { VmRecord } from '../store/store.js';
import { snapshotRoutes } from '../snapshot/routes.js';
import { VmManager } from '../vm/manager.js';
import { normalizeCreate, type CreateVmInput } from '../vm/input.js';
import type { LifecycleAction } from '../vm/service.js';
import { tailFile } from '../util/tail.js';
import type { ApiContext, ApiRoute } from './routes.js';
import { toVmView, type VmView } from './routes.js';
import { consoleQuery, createVmBody, errorSchema, eventsQuery, hostSchema, idParams, imageSchema, vmSchema, waitQuery } from './schemas.js';

type IdReq = FastifyRequest<{ Params: { id: string } }>;

const vmResponse = { 200: vmSchema, 201: vmSchema, 202: vmSchema, '4xx': errorSchema, '5xx': errorSchema };
const listResponse = { 200: { type: 'object', properties: { vms: { type: 'array', items: vmSchema } } } };

async function waitFor<T>(p: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, rej) => { timer = setTimeout(() => rej(new HangarError('VM_BOOT_TIMEOUT', `not ready within ${timeoutMs} ms`)), timeoutMs); })]);
  } finally {
    if (timer) clearTimeout(timer);
  }
}

/** The VM view plus what snapshots add: hibernation and, for a clone, where its guest really lives. */
export function vmView(r: VmRecord): VmView & { hibernated: boolean; clone: { snapshot: string; netns: string; guestIp: string } | null } {
  const clone = (r.net as { clone?: { netns: string; guest: { ip: string } } } | null)?.clone;
  return {
    ...toVmView(r),
    hibernated: !!r.hibernation,
    clone: clone && r.snapshotId ? { snapshot: r.snapshotId, netns: clone.netns, guestIp: clone.guest.ip } : null,
  };
}

export function coreRoutes(ctx: ApiContext): ApiRoute[] {
  const { service, store, metrics } = ctx;
  let listCache = { version: -1, body: '' };
  const action = (a: LifecycleAction): ApiRoute => ({
    method: 'POST', url: `/v1/vms/:id/${a}`, summary: `${a[0]!.toUpperCase()}${a.slice(1)} a VM`, auth: 'bearer',
    schema: { params: idParams, response: vmResponse },
    handler: async (req) => vmView(await service.action((req as IdReq).params.id, a)),
  });
  return [
    {
      method: 'GET', url: '/healthz', summary: 'Liveness (no auth)', auth: 'none',
      schema: { response: { 200: { type: 'object', properties: { ok: { type: 'boolean' } } } } },
      handler: () => ({ ok: true }),
    },
    {
      method: 'POST', url: '/v1/vms', summary: 'Create a VM (boots in the background; ?wait=true waits until ready)', auth: 'bearer',
      schema: { body: createVmBody, querystring: waitQuery, response: vmResponse },
      handler: async (req, reply) => {
        const q = req.query as { wait?: boolean; timeoutMs?: number };
        const { vm, ready } = await service.create(normalizeCreate((req.body ?? {}) as CreateVmInput));
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
        if (listCache.version !== store.version) listCache = { version: store.version, body: JSON.stringify({ vms: service.list().map(vmView) }) };
        return reply.type('application/json; charset=utf-8').send(listCache.body);
      },
    },
    {
      method: 'GET', url: '/v1/vms/:id', summary: 'Show a VM', auth: 'bearer', schema: { params: idParams, response: vmResponse },
      handler: (req) => vmView(service.get((req as IdReq).params.id)),
    },
    action('start'), action('stop'), action('pause'), action('resume'),
    {
      method: 'POST', url: '/v1/vms/:id/hibernate', summary: 'Save the VM to disk and stop it (start/resume restores it)', auth: 'bearer',
      schema: { params: idParams, response: vmResponse },
      handler: async (req) => {
        if (!(service instanceof VmManager)) throw new HangarError('VMM_NOT_AVAILABLE', 'this controller cannot hibernate VMs');
        return vmView(await service.hibernate((req as IdReq).params.id));
      },
    },
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
        const q = req.query as { lines?: number; follow?: boolean };
        const path = service.consolePath(id);
        const text = await tailFile(path, q.lines ?? 200);
        if (!q.follow) return reply.type('text/plain; charset=utf-8').send(text);
        return followFile(path, text, reply, () => { try { service.get(id); return true; } catch { return false; } });
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
      method: 'GET', url: '/v1/events', summary: 'Lifecycle events as Server-Sent Events (Last-Event-ID or ?since= resumes)', auth: 'bearer',
      produces: 'text/event-stream',
      schema: { querystring: eventsQuery },
      handler: (req, reply) => {
        const q = req.query as { since?: number; vm?: string };
        const last = Number(req.headers['last-event-id'] ?? q.since ?? 0) || 0;
        reply.hijack();
        const res = reply.raw;
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
        const send = (e: { seq: number; type: string; vmId: string | null }, full: unknown): void => {
          if (q.vm && e.vmId !== q.vm) return;
          res.write(`id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify(full)}\n\n`);
        };
        for (const e of store.events({ since: last, ...(q.vm ? { vmId: q.vm } : {}) })) send(e, e);
        const off = store.onEvent((e) => send(e, e));
        const ping = setInterval(() => res.write(': ping\n\n'), 15_000);
        req.raw.on('close', () => { off(); clearInterval(ping); });
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

/** Streams a growing file as chunked text until the client leaves or `alive()` turns false. */
function followFile(path: string, initial: string, reply: FastifyReply, alive: () => boolean): void {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-cache' });
  res.write(initial);
  let pos = -1;
  let closed = false;
  let busy = false;
  const tick = async (): Promise<void> => {
    if (busy || closed) return;
    busy = true;
    try {
      const st = await stat(path).catch(() => null);
      if (!st || !alive()) { res.end(); closed = true; return; }
      if (pos < 0) pos = st.size;
      if (st.size > pos) {
        const end = st.size - 1;
        await new Promise<void>((resolve) => {
          createReadStream(path, { start: pos, end }).on('data', (c) => res.write(c)).on('close', () => resolve()).on('error', () => resolve());
        });
        pos = st.size;
      }
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(() => void tick(), 250);
  res.on('close', () => { closed = true; clearInterval(timer); });
}
