// The E2B REST API the `e2b` SDK calls, under /e2b (E2B_API_URL=http://HOST:PORT/e2b), over Hangar's VMs:
//   POST   /e2b/v2/sandboxes                       create (template = profile or snapshot id), waits until running
//   GET    /e2b/v2/sandboxes                       list (?metadata=, ?state=, ?limit=, ?nextToken=; x-next-token)
//   GET    /e2b/sandboxes/:sandboxID               info
//   DELETE /e2b/sandboxes/:sandboxID               kill
//   POST   /e2b/sandboxes/:sandboxID/timeout       set timeout {timeout: s}
//   POST   /e2b/sandboxes/:sandboxID/pause         pause (hibernation: memory and processes kept); 409 when paused
//   POST   /e2b/v2/sandboxes/:sandboxID/connect    connect (resumes a paused sandbox) → the envd access token
//   POST   /e2b/sandboxes/:sandboxID/resume        the older resume
//   GET    /e2b/sandboxes/:sandboxID/metrics       [] (no samples)
// The SDK's X-API-KEY is a Hangar API key (e2b/auth.ts makes it the bearer), so tenancy is Hangar's: another tenant's
// sandbox is 404 exactly as a missing one. Errors are E2B's body {code: <HTTP status>, message}, which the SDK maps
// (404 → NotFoundError, 401 → AuthenticationError, 409 on pause → false).
import type { FastifyReply, FastifyRequest } from 'fastify';
import { principalOf, canSee } from '../api/tenancy.js';
import type { ApiContext, ApiRoute } from '../api/routes.js';
import { httpError } from '../api/server.js';
import type { VmRecord } from '../domain/vm.js';
import { HangarError } from '../errors.js';
import { isSnapshotId } from '../snapshot/manifest.js';
import { isAdmin } from '../tenancy/keys.js';
import { normalizeCreate, type VmLimits } from '../vm/input.js';
import { createInputOf, listPage, newAccessToken, parseMetadataQuery, parseStateQuery, sandboxCreated, sandboxState, sandboxView, timeoutSeconds, type E2bCreateBody, type E2bFields } from './model.js';
import { createBody, e2bErrors, listQuery, sandboxCreatedSchema, sandboxParams, sandboxSchema, timeoutBody, connectBody } from './schemas.js';
import type { E2bState } from './state.js';

export interface E2bRestDeps {
  state: E2bState;
  limits: VmLimits;
  /** How long create and connect wait for the VM to be running. */
  readyTimeoutMs?: number;
  /** Where a pool claim would go: a ready VM for this request, or null to boot one (issue: warm pools). */
  claim?: (input: ReturnType<typeof createInputOf>, tenant: string) => Promise<VmRecord | null>;
}

type Req<P = unknown, B = unknown, Q = unknown> = FastifyRequest<{ Params: P; Body: B; Querystring: Q }>;

const waitFor = <T>(p: Promise<T>, ms: number, what: string): Promise<T> => new Promise((resolve, reject) => {
  const t = setTimeout(() => reject(new HangarError('VM_BOOT_TIMEOUT', `${what} did not finish within ${ms} ms`, { timeoutMs: ms })), ms);
  p.then((v) => { clearTimeout(t); resolve(v); }, (e: unknown) => { clearTimeout(t); reject(e as Error); });
});

/** Answers a failed call as E2B does: {code: status, message}. */
async function e2bAnswer(reply: FastifyReply, run: () => Promise<unknown>): Promise<unknown> {
  try {
    return await run();
  } catch (e) {
    const { status, body } = httpError(e);
    return reply.code(status).send({ code: status, message: body.error.message });
  }
}

export function e2bRestRoutes(ctx: ApiContext, d: E2bRestDeps): ApiRoute[] {
  const readyMs = d.readyTimeoutMs ?? 300_000;
  /** The caller's sandbox by id: VM_NOT_FOUND for a missing one, another tenant's, or a VM that is not a sandbox. */
  const sandbox = (req: FastifyRequest, ref: string): { vm: VmRecord; fields: E2bFields } => {
    const p = principalOf(req);
    const hit = ctx.tenancy ? ctx.tenancy.findVm(ref, p, isAdmin(p)) : { id: ref };
    const fields = hit ? d.state.get(hit.id) : undefined;
    if (!hit || !fields || hit.id !== ref) throw new HangarError('VM_NOT_FOUND', `sandbox ${ref} not found`, { id: ref });
    return { vm: ctx.vms.get(hit.id), fields };
  };
  const resume = async (vm: VmRecord): Promise<VmRecord> => {
    if (sandboxState(vm) !== 'paused') return vm;
    const { ready } = await ctx.vms.act(vm.id, 'resume');
    return waitFor(ready, readyMs, `resuming sandbox ${vm.id}`);
  };
  return [
    {
      method: 'POST', url: '/e2b/v2/sandboxes', auth: 'bearer', scope: 'write',
      summary: 'E2B: create a sandbox (template: a Hangar profile, "base" for the default, or a snapshot id); answers once it runs',
      schema: { body: createBody, response: { 201: sandboxCreatedSchema, ...e2bErrors } },
      handler: (req, reply) => e2bAnswer(reply, async () => {
        const body = (req as Req<unknown, E2bCreateBody>).body;
        const tenant = principalOf(req).tenant;
        const snapshots = new Set((await ctx.snapshots.list()).map((s) => s.manifest.id));
        const input = createInputOf(body, (t) => isSnapshotId(t) && snapshots.has(t));
        if (input.fromSnapshot && ctx.tenancy && !canSee(req, ctx.tenancy.snapshotOwner(input.fromSnapshot))) {
          throw new HangarError('SNAPSHOT_NOT_FOUND', `no snapshot ${input.fromSnapshot}`, { id: input.fromSnapshot });
        }
        const timeout = timeoutSeconds(body.timeout);
        const fields = (): E2bFields => ({
          templateId: body.templateID ?? 'base', metadata: body.metadata ?? {}, envs: body.envVars ?? {}, envdAccessToken: newAccessToken(),
          startedAt: new Date().toISOString(), endAt: Date.now() + timeout * 1000, autoPause: body.autoPause === true,
        });
        // The hook where a warm pool's ready VM would be claimed instead of booting one.
        const claimed = d.claim ? await d.claim(input, tenant) : null;
        if (claimed) {
          const f = fields();
          d.state.set(claimed.id, f);
          return reply.code(201).send(sandboxCreated(claimed, f));
        }
        const { vm, ready } = await ctx.vms.create(normalizeCreate(input, d.limits), { tenant });
        d.state.set(vm.id, fields());
        try {
          const up = await waitFor(ready, readyMs, `sandbox ${vm.id}'s boot`);
          const f = d.state.update(vm.id, { startedAt: new Date().toISOString(), endAt: Date.now() + timeout * 1000 })!;
          return reply.code(201).send(sandboxCreated(up, f));
        } catch (e) {
          d.state.forget(vm.id);
          await ctx.vms.destroy(vm.id).catch(() => undefined);
          throw e;
        }
      }),
    },
    {
      method: 'GET', url: '/e2b/v2/sandboxes', auth: 'bearer', scope: 'read',
      summary: "E2B: list the key's tenant's sandboxes (metadata and state filters; paging by x-next-token)",
      schema: { querystring: listQuery, response: { 200: { type: 'array', items: sandboxSchema }, ...e2bErrors } },
      handler: (req, reply) => e2bAnswer(reply, async () => {
        const q = (req as Req<unknown, unknown, { metadata?: string; state?: string; limit?: number; nextToken?: string }>).query;
        const items = ctx.vms.list().filter((vm) => canSee(req, vm.tenantId)).flatMap((vm) => {
          const fields = d.state.get(vm.id);
          return fields ? [{ vm, fields }] : [];
        });
        const { page, nextToken } = listPage(items, {
          metadata: parseMetadataQuery(q.metadata), states: parseStateQuery(q.state),
          ...(q.limit !== undefined ? { limit: q.limit } : {}), ...(q.nextToken ? { nextToken: q.nextToken } : {}),
        });
        if (nextToken) reply.header('x-next-token', nextToken);
        return page.map((i) => sandboxView(i.vm, i.fields));
      }),
    },
    {
      method: 'GET', url: '/e2b/sandboxes/:sandboxID', auth: 'bearer', scope: 'read', summary: 'E2B: a sandbox',
      schema: { params: sandboxParams, response: { 200: sandboxSchema, ...e2bErrors } },
      handler: (req, reply) => e2bAnswer(reply, async () => {
        const { vm, fields } = sandbox(req, (req as Req<{ sandboxID: string }>).params.sandboxID);
        return sandboxView(vm, fields);
      }),
    },
    {
      method: 'DELETE', url: '/e2b/sandboxes/:sandboxID', auth: 'bearer', scope: 'write', summary: 'E2B: kill a sandbox (its VM is destroyed)',
      schema: { params: sandboxParams, response: { 204: { type: 'null' }, ...e2bErrors } },
      handler: (req, reply) => e2bAnswer(reply, async () => {
        const { vm } = sandbox(req, (req as Req<{ sandboxID: string }>).params.sandboxID);
        await ctx.vms.destroy(vm.id);
        d.state.forget(vm.id);
        return reply.code(204).send();
      }),
    },
    {
      method: 'POST', url: '/e2b/sandboxes/:sandboxID/timeout', auth: 'bearer', scope: 'write', summary: 'E2B: set the timeout (seconds from now)',
      schema: { params: sandboxParams, body: timeoutBody, response: { 204: { type: 'null' }, ...e2bErrors } },
      handler: (req, reply) => e2bAnswer(reply, async () => {
        const r = req as Req<{ sandboxID: string }, { timeout: number }>;
        const { vm } = sandbox(req, r.params.sandboxID);
        d.state.update(vm.id, { endAt: Date.now() + timeoutSeconds(r.body.timeout) * 1000 });
        return reply.code(204).send();
      }),
    },
    {
      method: 'POST', url: '/e2b/sandboxes/:sandboxID/pause', auth: 'bearer', scope: 'write', summary: 'E2B: pause a sandbox (hibernated: memory and processes kept); 409 when already paused',
      schema: { params: sandboxParams, response: { 204: { type: 'null' }, ...e2bErrors } },
      handler: (req, reply) => e2bAnswer(reply, async () => {
        const { vm } = sandbox(req, (req as Req<{ sandboxID: string }>).params.sandboxID);
        if (sandboxState(vm) === 'paused') return reply.code(409).send({ code: 409, message: `sandbox ${vm.id} is already paused` });
        await ctx.vms.hibernate(vm.id);
        return reply.code(204).send();
      }),
    },
    ...(['/e2b/v2/sandboxes/:sandboxID/connect', '/e2b/sandboxes/:sandboxID/resume'] as const).map((url): ApiRoute => ({
      method: 'POST', url, auth: 'bearer', scope: 'write',
      summary: url.endsWith('connect') ? 'E2B: connect to a sandbox (a paused one is resumed); its envd access token' : 'E2B: resume a paused sandbox',
      schema: { params: sandboxParams, body: connectBody, response: { 200: sandboxCreatedSchema, 201: sandboxCreatedSchema, ...e2bErrors } },
      handler: (req, reply) => e2bAnswer(reply, async () => {
        const r = req as Req<{ sandboxID: string }, { timeout?: number } | undefined>;
        const { vm, fields } = sandbox(req, r.params.sandboxID);
        const wasPaused = sandboxState(vm) === 'paused';
        const t = r.body?.timeout;
        const endAtFrom = (now: number): number => (t !== undefined ? now + timeoutSeconds(t) * 1000 : wasPaused || fields.endAt <= now ? now + timeoutSeconds(undefined) * 1000 : fields.endAt);
        // The new timeout holds from before the restore: once the guest runs on (mid-restore) the sandbox is running,
        // and with its old, past end the timeout loop would pause it again the moment it is ready.
        d.state.update(vm.id, { endAt: endAtFrom(Date.now()) + readyMs });
        const up = await resume(vm);
        const f = d.state.update(vm.id, { endAt: endAtFrom(Date.now()) })!;
        return reply.code(wasPaused ? 201 : 200).send(sandboxCreated(up, f));
      }),
    })),
    {
      method: 'GET', url: '/e2b/sandboxes/:sandboxID/metrics', auth: 'bearer', scope: 'read', summary: 'E2B: sandbox metrics (none are sampled: an empty list)',
      schema: { params: sandboxParams, response: { 200: { type: 'array', items: { type: 'object' } }, ...e2bErrors } },
      handler: (req, reply) => e2bAnswer(reply, async () => {
        sandbox(req, (req as Req<{ sandboxID: string }>).params.sandboxID);
        return [];
      }),
    },
  ];
}
