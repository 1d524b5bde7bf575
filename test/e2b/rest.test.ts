// The E2B REST routes over a stub VM service (no VM, no host): what create asks Hangar for (profile, snapshot,
// network policy), what it answers (the envd token, version), a boot that fails leaves nothing, pause of a paused
// sandbox is 409, connect resumes a paused one with a new timeout, errors in E2B's {code, message} body.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Validator } from '@seriousme/openapi-schema-validator';
import { Agents } from '../../src/agent/agents.js';
import { openApiPath } from '../../src/api/openapi.js';
import type { ApiContext, SnapshotPort, EventPort } from '../../src/api/routes.js';
import { buildServer } from '../../src/api/server.js';
import type { VmRecord } from '../../src/domain/vm.js';
import { createE2b } from '../../src/e2b/index.js';
import { HangarError } from '../../src/errors.js';
import { HangarMetrics } from '../../src/metrics.js';
import { DEFAULT_LIMITS, type CreateVmRequest } from '../../src/vm/input.js';
import type { VmService } from '../../src/vm/service.js';
import { fakeVm } from '../api/fake-api.js';

const TOKEN = 'e2b-rest-token-0123456789abcdef0123456789';
const auth = { authorization: `Bearer ${TOKEN}` };

async function harness(opts: { bootFails?: boolean } = {}) {
  const vms = new Map<string, VmRecord>();
  const calls: string[] = [];
  const created: CreateVmRequest[] = [];
  let n = 0;
  const service = {
    create: async (req: CreateVmRequest) => {
      const vm = fakeVm(`vm-0000000${++n}`, { state: 'booting', profile: req.profile });
      vms.set(vm.id, vm);
      created.push(req);
      const ready = opts.bootFails ? Promise.reject(new HangarError('VM_BOOT_TIMEOUT', 'the guest did not boot')) : Promise.resolve({ ...vm, state: 'ready' as const });
      ready.catch(() => undefined);
      return { vm, ready };
    },
    get: (id: string) => { const v = vms.get(id); if (!v) throw new HangarError('VM_NOT_FOUND', `no VM ${id}`); return v; },
    list: () => [...vms.values()],
    destroy: async (id: string) => { calls.push(`destroy ${id}`); vms.delete(id); },
    hibernate: async (id: string) => { calls.push(`hibernate ${id}`); const v = { ...vms.get(id)!, state: 'stopped' as const, hibernation: {} as NonNullable<VmRecord['hibernation']> }; vms.set(id, v); return v; },
    act: async (id: string, a: string) => { calls.push(`${a} ${id}`); const v = { ...vms.get(id)!, state: 'ready' as const, hibernation: null }; vms.set(id, v); return { vm: v, ready: Promise.resolve(v) }; },
  } as Partial<VmService> as VmService;
  const ctx: ApiContext = {
    vms: service, snapshots: { list: async () => [] } as Partial<SnapshotPort> as SnapshotPort,
    events: { onEvent: () => () => undefined, version: 0 } as Partial<EventPort> as EventPort,
    metrics: new HangarMetrics(), token: TOKEN, agents: new Agents({ channel: () => null }),
  };
  const e2b = createE2b({ limits: DEFAULT_LIMITS });
  const app = await buildServer(ctx, { extraRoutes: (c) => e2b.routes(c) });
  return { app, ctx, calls, created, e2b, vms };
}

test('create: a profile with its network options; answers the sandbox with an envd token; list and info show it', async () => {
  const h = await harness();
  const r = await h.app.inject({ method: 'POST', url: '/e2b/v2/sandboxes', headers: auth, payload: { templateID: 'browser', timeout: 60, metadata: { k: 'v' }, envVars: { A: 'b' }, allow_internet_access: false, mcp: null } });
  assert.equal(r.statusCode, 201, r.body);
  const b = r.json<{ sandboxID: string; envdAccessToken: string; envdVersion: string; templateID: string }>();
  assert.equal(b.templateID, 'browser');
  assert.equal(b.envdVersion, '0.5.7');
  assert.ok(b.envdAccessToken.length >= 20);
  assert.equal(h.created[0]!.profile, 'browser');
  assert.deepEqual(h.created[0]!.network, { egress: { mode: 'none' } });
  const f = h.e2b.state.get(b.sandboxID)!;
  assert.deepEqual([f.metadata, f.envs], [{ k: 'v' }, { A: 'b' }]);
  assert.ok(Math.abs(f.endAt - (Date.now() + 60_000)) < 5000);
  const info = (await h.app.inject({ method: 'GET', url: `/e2b/sandboxes/${b.sandboxID}`, headers: auth })).json<{ state: string; metadata: object; envdVersion: string }>();
  assert.deepEqual([info.state, info.metadata, info.envdVersion], ['running', { k: 'v' }, '0.5.7']);
  const list = await h.app.inject({ method: 'GET', url: '/e2b/v2/sandboxes?state=running&limit=10', headers: auth });
  assert.deepEqual(list.json<{ sandboxID: string }[]>().map((s) => s.sandboxID), [b.sandboxID]);
  const bad = await h.app.inject({ method: 'POST', url: '/e2b/v2/sandboxes', headers: auth, payload: { templateID: 'nope' } });
  assert.equal(bad.statusCode, 400);
  assert.equal(bad.json<{ code: number }>().code, 400);
  await h.app.close();
});

test('a boot that fails leaves no sandbox and no VM', async () => {
  const h = await harness({ bootFails: true });
  const r = await h.app.inject({ method: 'POST', url: '/e2b/v2/sandboxes', headers: auth, payload: {} });
  assert.ok(r.statusCode >= 500, r.body);
  assert.deepEqual(h.calls, ['destroy vm-00000001']);
  assert.deepEqual(h.e2b.state.ids(), []);
  await h.app.close();
});

test('pause hibernates once (409 after); connect resumes with a new timeout; kill; missing sandboxes are 404 {code, message}', async () => {
  const h = await harness();
  const id = (await h.app.inject({ method: 'POST', url: '/e2b/v2/sandboxes', headers: auth, payload: { timeout: 30 } })).json<{ sandboxID: string }>().sandboxID;
  assert.equal((await h.app.inject({ method: 'POST', url: `/e2b/sandboxes/${id}/pause`, headers: auth, payload: {} })).statusCode, 204);
  assert.equal((await h.app.inject({ method: 'POST', url: `/e2b/sandboxes/${id}/pause`, headers: auth, payload: {} })).statusCode, 409);
  assert.equal((await h.app.inject({ method: 'GET', url: `/e2b/sandboxes/${id}`, headers: auth })).json<{ state: string }>().state, 'paused');
  const c = await h.app.inject({ method: 'POST', url: `/e2b/v2/sandboxes/${id}/connect`, headers: auth, payload: { timeout: 600 } });
  assert.equal(c.statusCode, 201, c.body);
  assert.ok(h.e2b.state.get(id)!.endAt > Date.now() + 500_000);
  assert.deepEqual(h.calls, [`hibernate ${id}`, `resume ${id}`]);
  assert.equal((await h.app.inject({ method: 'POST', url: `/e2b/v2/sandboxes/${id}/connect`, headers: auth, payload: {} })).statusCode, 200, 'already running');
  assert.equal((await h.app.inject({ method: 'POST', url: `/e2b/sandboxes/${id}/timeout`, headers: auth, payload: { timeout: 5 } })).statusCode, 204);
  assert.ok(h.e2b.state.get(id)!.endAt < Date.now() + 10_000);
  assert.equal((await h.app.inject({ method: 'DELETE', url: `/e2b/sandboxes/${id}`, headers: auth })).statusCode, 204);
  const gone = await h.app.inject({ method: 'DELETE', url: `/e2b/sandboxes/${id}`, headers: auth });
  assert.equal(gone.statusCode, 404);
  assert.deepEqual(Object.keys(gone.json<object>()).sort(), ['code', 'message']);
  assert.equal(gone.json<{ code: number }>().code, 404);
  assert.equal((await h.app.inject({ method: 'GET', url: '/e2b/v2/sandboxes', headers: { authorization: 'Bearer wrong' } })).statusCode, 401);
  await h.app.close();
});

test('/openapi.json lists every E2B REST route and validates; envd (/e2b/sandbox/*, connect-rpc and /files) is not JSON REST and is not listed', async () => {
  const h = await harness();
  const detach = await h.e2b.attach(h.app, h.ctx);
  const doc = (await h.app.inject({ method: 'GET', url: '/openapi.json', headers: auth })).json<{ paths: Record<string, Record<string, unknown>> }>();
  const res = await new Validator().validate(doc);
  assert.deepEqual(res, { valid: true }, JSON.stringify(res.errors));
  const listed = new Set(Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`)));
  const served = h.app.getDecorator<{ method: string; url: string }[]>('servedRoutes').filter((r) => r.url.startsWith('/e2b/'));
  assert.ok(served.length >= 10);
  for (const r of served) {
    if (r.url.startsWith('/e2b/sandbox/')) continue; // envd: connect-rpc and /files, as the SDK's envd client speaks them
    assert.ok(listed.has(`${r.method} ${openApiPath(r.url)}`), `${r.method} ${r.url} is in /openapi.json`);
  }
  detach();
  await h.app.close();
});

test('connect of a sandbox paused at its timeout: the new timeout holds from before the restore (the timeout loop cannot pause it again as it comes up)', async () => {
  const h = await harness();
  const id = (await h.app.inject({ method: 'POST', url: '/e2b/v2/sandboxes', headers: auth, payload: { timeout: 30, autoPause: true } })).json<{ sandboxID: string }>().sandboxID;
  assert.equal((await h.app.inject({ method: 'POST', url: `/e2b/sandboxes/${id}/pause`, headers: auth, payload: {} })).statusCode, 204);
  h.e2b.state.update(id, { endAt: Date.now() - 1000 }); // it timed out while paused
  const act = h.ctx.vms.act.bind(h.ctx.vms);
  let endAtDuringRestore = 0;
  h.ctx.vms.act = async (vmId, a) => { endAtDuringRestore = h.e2b.state.get(vmId)!.endAt; return act(vmId, a); };
  assert.equal((await h.app.inject({ method: 'POST', url: `/e2b/v2/sandboxes/${id}/connect`, headers: auth, payload: {} })).statusCode, 201);
  assert.ok(endAtDuringRestore > Date.now(), 'not due while it restores');
  const after = h.e2b.state.get(id)!.endAt;
  assert.ok(after > Date.now() && after <= Date.now() + 301_000, `then the default timeout from now: ${after - Date.now()} ms`);
  await h.app.close();
});
