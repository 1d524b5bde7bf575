// The tenancy matrix over EVERY route the server declares (its route table, not a hand list): tenant A's key never
// reads, lists, opens or changes tenant B's resources — B's ids answer exactly as missing ones (404, same body),
// lists and streams exclude them, metrics are A's only —; every bearer route declares a scope; read keys cannot
// mutate; viewer-only keys can only mint viewer tokens; revoked and expired keys are refused at once. A route added
// later is covered by its path (/v1/vms/:id…, /v1/snapshots/:id…) or fails here, named, until it is classified.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ApiRoute } from '../../src/api/routes.js';
import { authorizeBearerForVm, pathResource, routeScope } from '../../src/api/tenancy.js';
import type { SnapshotManifest } from '../../src/snapshot/manifest.js';
import { allows } from '../../src/tenancy/keys.js';
import { networkRoutes } from '../../src/api/network-routes.js';
import { agentRoutes } from '../../src/api/agent-routes.js';
import { ComputerService } from '../../src/control/computer.js';
import { recordingRoutes } from '../../src/control/recording-routes.js';
import { controlRoutes } from '../../src/control/routes.js';
import { RecordingStore } from '../../src/desktop/recordings.js';
import { newViewerSecret } from '../../src/desktop/token.js';
import { HangarError } from '../../src/errors.js';
import { createE2b } from '../../src/e2b/index.js';
import { newAccessToken } from '../../src/e2b/model.js';
import { DEFAULT_LIMITS } from '../../src/vm/input.js';
import { auth, createApiHarness, type ApiHarness } from '../support/api.js';
import { createFakeAgent } from '../support/fake-agent.js';

type Headers = { authorization: string };
const A_VM = 'vm-aaaaaaaa';
const B_VM = 'vm-bbbbbbbb';
const A_SNAP = 'snap-aaaaaaaa';
const B_SNAP = 'snap-bbbbbbbb';
const MISSING: Record<'vm' | 'snapshot', string> = { vm: 'vm-00000000', snapshot: 'snap-00000000' };

/** Routes without a path resource, each with what tenant A's write key gets from it (checked below). */
const CLASSIFIED: Record<string, 'list-vms' | 'list-snapshots' | 'create-vm' | 'create-snapshot' | 'events' | 'metrics' | 'host' | 'shared'> = {
  'GET /v1/vms': 'list-vms',
  'POST /v1/vms': 'create-vm',
  'GET /v1/snapshots': 'list-snapshots',
  'POST /v1/snapshots': 'create-snapshot',
  'GET /v1/events': 'events',
  'GET /metrics': 'metrics',
  'GET /v1/host': 'host',
  'GET /v1/images': 'shared', // images are the host's, not a tenant's
  'GET /openapi.json': 'shared',
};

/** The E2B routes (src/e2b/rest.ts): their :sandboxID is a VM id, looked up in the key's tenant like /v1/vms/:id. */
const E2B_SANDBOX = /^\/e2b\/(?:v2\/)?sandboxes\/:sandboxID/;
const E2B_CLASSIFIED: Record<string, 'list' | 'create'> = { 'GET /e2b/v2/sandboxes': 'list', 'POST /e2b/v2/sandboxes': 'create' };

function manifest(id: string): SnapshotManifest {
  return {
    schema: 1, id, created: new Date(0).toISOString(), source: { kind: 'vm', vmId: 'vm-x', vmName: 'x' },
    image: { id: 'img', profile: 'desktop', rootfsSha256: null, kernelSha256: null }, vmm: { kind: 'qemu', version: '7.2' },
    machine: { vcpus: 1, memMiB: 512, kernelPath: '/k', bootArgs: '' },
    guestNet: { ip: '10.0.0.2', mac: '02:48:0a:00:00:02', tap: 'hgtap0', gateway: '10.0.0.1', netmask: '255.255.255.0', prefix: 24, gatewayMac: null },
    files: { 'disk.ext4': { sha256: 'x', size: 1 } }, durationsMs: { pause: 0, state: 0, disk: 0, total: 0 },
  };
}

const fill = (url: string, id: string): string => url.replace(/:\w+/g, id).replace(/\*$/, 'app.js');
const bodyFor = (r: ApiRoute): object | undefined => (['POST', 'PUT', 'PATCH'].includes(r.method) ? {} : undefined);
const key = (r: Pick<ApiRoute, 'method' | 'url'>): string => `${r.method} ${r.url}`;

describe('tenancy: the route matrix', () => {
  let h: ApiHarness;
  let routes: ApiRoute[];
  let A: Headers; let aRead: Headers; let aViewer: Headers; let B: Headers;
  const req = (method: string, url: string, headers: Headers, payload?: object) =>
    h.app.inject({ method: method as 'GET', url, headers, ...(payload !== undefined ? { payload } : {}) });

  before(async () => {
    // Every route module the controller serves (the agent's over a FAKE agent that runs nothing, computer use over
    // a dial that never connects): their routes are in the table the matrix walks.
    const scratch = join(tmpdir(), `hangar-matrix-${process.pid}`);
    const agent = createFakeAgent({ root: join(scratch, 'agent'), spawn: false });
    const secret = newViewerSecret();
    const lookup = (id: string) => {
      const vm = h.store.getVm(id);
      const viewerNonce = h.store.viewerNonce(id);
      return vm && viewerNonce ? { state: vm.state, viewerNonce, profile: vm.profile } : null;
    };
    const dial = () => Promise.reject(new HangarError('VM_UNREACHABLE', 'no VM behind this harness'));
    const e2b = createE2b({ limits: DEFAULT_LIMITS });
    h = await createApiHarness({
      withDesktop: true, withDoctor: true,
      extraRoutes: (c) => [
        ...e2b.routes(c),
        ...agentRoutes({ ...c, agents: agent }),
        ...networkRoutes({ get: (id) => h.manager.get(id), networkPolicy: (id) => h.manager.networkPolicy(id), setNetworkPolicy: (id, b) => h.manager.setNetworkPolicy(id, b) }),
        ...controlRoutes(c, { lookup, secret, computer: new ComputerService({ dial }), agents: agent }),
        ...recordingRoutes(c, { lookup, secret, recordings: new RecordingStore(join(scratch, 'recordings')), dial }),
      ],
    });
    routes = h.app.getDecorator<ApiRoute[]>('apiRoutes');
    A = h.key('acme', 'write').headers;
    aRead = h.key('acme', 'read').headers;
    aViewer = h.key('acme', 'viewer').headers;
    B = h.key('bravo', 'write').headers;
    h.insertVm(A_VM, 'ready', 'acme');
    h.insertVm(B_VM, 'ready', 'bravo');
    for (const id of [A_VM, B_VM]) e2b.state.set(id, { templateId: 'base', metadata: {}, envs: {}, envdAccessToken: newAccessToken(), startedAt: new Date(0).toISOString(), endAt: Date.now() + 3_600_000, autoPause: false });
    h.store.insertVm({ id: 'vm-b0000002', name: 'bonly', state: 'creating', imageId: 'img', profile: 'desktop', vmm: 'qemu', vcpus: 1, memMiB: 512, ttlS: null, expiresAt: null, runDir: '/nonexistent', tenantId: 'bravo' });
    for (const [id, t] of [[A_SNAP, 'acme'], [B_SNAP, 'bravo']] as const) {
      const dir = join(h.stateDir, 'snapshots', id);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest(id)));
      writeFileSync(join(dir, 'disk.ext4'), 'x');
      h.store.tenancy.setSnapshotOwner(id, t);
    }
  });
  after(async () => { await h.close(); });

  test('keys outside the hooks (raw WebSockets, routes that also take viewer tokens): scope, then the VM in the key\'s tenant', () => {
    const code = (f: () => unknown): string => { try { f(); return 'ok'; } catch (e) { return (e as HangarError).code; } };
    assert.equal(authorizeBearerForVm(h.ctx, A.authorization, A_VM, 'write').vmId, A_VM);
    assert.equal(code(() => authorizeBearerForVm(h.ctx, A.authorization, B_VM, 'write')), 'VM_NOT_FOUND', "B's VM is not found for A");
    assert.equal(code(() => authorizeBearerForVm(h.ctx, A.authorization, 'bonly', 'write')), 'VM_NOT_FOUND', "nor by B's name");
    assert.equal(code(() => authorizeBearerForVm(h.ctx, aRead.authorization, A_VM, 'write')), 'FORBIDDEN', 'a read key may not exec');
    assert.equal(code(() => authorizeBearerForVm(h.ctx, aViewer.authorization, A_VM, 'write')), 'FORBIDDEN');
    assert.equal(code(() => authorizeBearerForVm(h.ctx, 'Bearer nope', A_VM, 'write')), 'UNAUTHORIZED');
    assert.equal(authorizeBearerForVm(h.ctx, B.authorization, 'bonly', 'write').vmId, 'vm-b0000002', 'B by its own name: the canonical id');
  });

  test('the route table is enumerated, and every bearer route declares its scope', () => {
    assert.ok(routes.length >= 25, `only ${routes.length} routes`);
    const undeclared = routes.filter((r) => r.auth === 'bearer' && r.scope === undefined).map(key);
    assert.deepEqual(undeclared, [], `routes without a scope (add scope: 'read' | 'write' | 'admin' | 'viewer'): ${undeclared.join(', ')}`);
  });

  test("every route: tenant A's key gets nothing of tenant B's (404 exactly as missing; lists, streams, metrics scoped)", async () => {
    const bBefore = h.store.getVm(B_VM)!;
    const unclassified: string[] = [];
    for (const r of routes) {
      // Upgraded on the raw server, not through Fastify's hooks: they check keys with authorizeBearerForVm (below).
      if (r.websocket) continue;
      if (r.auth !== 'bearer') {
        // Viewer-token routes: the token is bound to one VM's id and nonce, and only a key that sees the VM mints one.
        if (r.auth === 'viewer-token' || r.url === '/healthz' || r.url.endsWith('*')) continue;
        unclassified.push(key(r));
        continue;
      }
      if (E2B_SANDBOX.test(r.url)) {
        // E2B's sandbox routes answer B's sandbox exactly as a missing one (its error body: {code, message}).
        const body = r.url.endsWith('/timeout') ? { timeout: 10 } : bodyFor(r);
        const got = await req(r.method, fill(r.url, B_VM), A, body);
        const missing = await req(r.method, fill(r.url, MISSING.vm), A, body);
        assert.equal(got.statusCode, 404, `${key(r)} with B's id: ${got.body}`);
        assert.deepEqual(JSON.parse(got.body.replaceAll(B_VM, 'X')), JSON.parse(missing.body.replaceAll(MISSING.vm, 'X')), key(r));
        continue;
      }
      if (E2B_CLASSIFIED[key(r)] === 'list') {
        assert.deepEqual((await req('GET', r.url, A)).json<{ sandboxID: string }[]>().map((s) => s.sandboxID), [A_VM]);
        continue;
      }
      if (E2B_CLASSIFIED[key(r)] === 'create') {
        const got = await req('POST', r.url, A, { templateID: B_SNAP });
        const missing = await req('POST', r.url, A, { templateID: MISSING.snapshot });
        assert.equal(got.statusCode, 404, got.body);
        assert.deepEqual(JSON.parse(got.body.replaceAll(B_SNAP, 'X')), JSON.parse(missing.body.replaceAll(MISSING.snapshot, 'X')));
        continue;
      }
      const res = pathResource(r.url);
      if (res) {
        const theirs = res.kind === 'vm' ? B_VM : B_SNAP;
        const got = await req(r.method, fill(r.url, theirs), A, bodyFor(r));
        const missing = await req(r.method, fill(r.url, MISSING[res.kind]), A, bodyFor(r));
        if (!allows('write', routeScope(r))) {
          assert.equal(got.statusCode, 403, `${key(r)}: ${got.body}`);
        } else {
          assert.equal(got.statusCode, 404, `${key(r)} with B's id: ${got.statusCode} ${got.body}`);
        }
        assert.deepEqual(JSON.parse(got.body.replaceAll(theirs, 'X')), JSON.parse(missing.body.replaceAll(MISSING[res.kind], 'X')), `${key(r)}: B's id answers as a missing one`);
        if (res.kind === 'vm') {
          // By name too (names are per tenant).
          const byName = await req(r.method, fill(r.url, 'bonly'), A, bodyFor(r));
          assert.equal(byName.statusCode, got.statusCode, key(r));
        }
        continue;
      }
      const what = CLASSIFIED[key(r)];
      if (what === undefined) {
        // Not a tenant's resource: it must be admin-only.
        if (routeScope(r) === 'admin') {
          const got = await req(r.method, fill(r.url, 'x'), A, bodyFor(r));
          assert.equal(got.statusCode, 403, `${key(r)} is admin-only: ${got.body}`);
          continue;
        }
        unclassified.push(key(r));
        continue;
      }
      if (what === 'list-vms') {
        const ids = (await req('GET', r.url, A)).json<{ vms: { id: string; tenant: string }[] }>().vms.map((v) => v.id);
        assert.deepEqual(ids, [A_VM]);
      } else if (what === 'list-snapshots') {
        assert.deepEqual((await req('GET', r.url, A)).json<{ snapshots: { id: string }[] }>().snapshots.map((s) => s.id), [A_SNAP]);
      } else if (what === 'create-vm') {
        const got = await req('POST', r.url, A, { fromSnapshot: B_SNAP });
        const missing = await req('POST', r.url, A, { fromSnapshot: MISSING.snapshot });
        assert.equal(got.statusCode, 404, got.body);
        assert.deepEqual(got.json().error.code, missing.json().error.code);
        assert.equal(got.json().error.message.replace(B_SNAP, 'X'), missing.json().error.message.replace(MISSING.snapshot, 'X'));
      } else if (what === 'create-snapshot') {
        const got = await req('POST', r.url, A, { vm: B_VM });
        const missing = await req('POST', r.url, A, { vm: MISSING.vm });
        assert.equal(got.statusCode, 404, got.body);
        assert.deepEqual(JSON.parse(got.body.replaceAll(B_VM, 'X')), JSON.parse(missing.body.replaceAll(MISSING.vm, 'X')));
      } else if (what === 'metrics') {
        const text = (await req('GET', r.url, A)).body;
        assert.match(text, /hangar_tenant_vms\{tenant="acme",state="ready"\} 1/);
        assert.doesNotMatch(text, /bravo|process_cpu|hangar_http_requests_total|hangar_vms\{/, 'no fleet-wide or other tenant metrics');
        const fleet = (await req('GET', r.url, auth)).body;
        assert.match(fleet, /hangar_tenant_vms\{tenant="bravo",state="ready"\} 1/);
        assert.match(fleet, /process_cpu/);
      } else if (what === 'host') {
        assert.deepEqual((await req('GET', r.url, A)).json<{ vms: object }>().vms, { ready: 1 });
      } else if (what === 'shared') {
        const got = await req('GET', r.url, A);
        assert.equal(got.statusCode, 200);
        assert.ok(!got.body.includes(B_VM) && !got.body.includes('bravo'));
      }
      // events: below, over a real connection
    }
    assert.deepEqual(unclassified, [], `routes the matrix does not cover (classify them in CLASSIFIED, or put them under /v1/vms/:id): ${unclassified.join(', ')}`);
    const bAfter = h.store.getVm(B_VM)!;
    assert.deepEqual(bAfter, bBefore, "B's VM is untouched");
    assert.equal(h.store.tenancy.snapshotOwner(B_SNAP), 'bravo');
  });

  test("names are per tenant: A's VM named like B's resolves to A's", async () => {
    h.store.insertVm({ id: 'vm-a0000001', name: 'shared', state: 'creating', imageId: 'img', profile: 'desktop', vmm: 'qemu', vcpus: 1, memMiB: 512, ttlS: null, expiresAt: null, runDir: '/nonexistent', tenantId: 'acme' });
    h.store.insertVm({ id: 'vm-b0000001', name: 'shared', state: 'creating', imageId: 'img', profile: 'desktop', vmm: 'qemu', vcpus: 1, memMiB: 512, ttlS: null, expiresAt: null, runDir: '/nonexistent', tenantId: 'bravo' });
    assert.equal((await req('GET', '/v1/vms/shared', A)).json<{ id: string }>().id, 'vm-a0000001');
    assert.equal((await req('GET', '/v1/vms/shared', B)).json<{ id: string }>().id, 'vm-b0000001');
    for (const id of ['vm-a0000001', 'vm-b0000001']) h.store.deleteVm(id);
  });

  test("the event stream of A's key carries A's events only, replayed and live", async () => {
    await h.app.listen({ host: '127.0.0.1', port: 0 });
    const url = `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}/v1/events?since=0`;
    const read = async (headers: Headers): Promise<string> => {
      const ctl = new AbortController();
      const res = await fetch(url, { headers, signal: ctl.signal });
      const reader = res.body!.getReader();
      let text = '';
      setTimeout(() => {
        h.store.appendEvent(B_VM, 'test.live', {});
        h.store.appendEvent(A_VM, 'test.live', {});
      }, 100);
      const stop = setTimeout(() => ctl.abort(), 600);
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          text += Buffer.from(value).toString();
        }
      } catch { /* aborted */ }
      clearTimeout(stop);
      return text;
    };
    const mine = await read(A);
    const frames = mine.split('\n\n').filter((f) => f.includes('data: ')).map((f) => JSON.parse(f.slice(f.indexOf('data: ') + 6)) as { vmId: string; tenant: string; type: string });
    assert.ok(frames.length >= 3, mine);
    assert.ok(frames.every((e) => e.tenant === 'acme' && e.vmId !== B_VM), mine);
    assert.ok(frames.some((e) => e.type === 'test.live'), 'a live event of A arrived');
    const all = await read({ authorization: auth.authorization });
    assert.ok(all.includes(B_VM) && all.includes(A_VM), 'an admin key sees every tenant');
  });

  test('a read key cannot mutate; a viewer-only key can only mint viewer tokens', async () => {
    for (const r of routes.filter((x) => x.auth === 'bearer')) {
      const url = fill(r.url, pathResource(r.url)?.kind === 'snapshot' ? A_SNAP : A_VM);
      if (!allows('read', routeScope(r))) {
        const got = await req(r.method, url, aRead, bodyFor(r));
        assert.equal(got.statusCode, 403, `read key on ${key(r)}: ${got.body}`);
        assert.equal(got.json().error.code, 'FORBIDDEN');
      }
      if (routeScope(r) !== 'viewer') {
        const got = await req(r.method, url, aViewer, bodyFor(r));
        assert.equal(got.statusCode, 403, `viewer key on ${key(r)}: ${got.body}`);
      }
    }
    const minted = await req('POST', `/v1/vms/${A_VM}/viewer`, aViewer, {});
    assert.equal(minted.statusCode, 200, minted.body);
    assert.match(minted.json<{ url: string }>().url, /^\/view\/vm-aaaaaaaa\?token=/);
    assert.equal((await req('POST', `/v1/vms/${B_VM}/viewer`, aViewer, {})).statusCode, 404);
    assert.equal(h.store.getVm(A_VM)!.state, 'ready', 'nothing the read and viewer keys asked for happened');
  });

  test('a revoked key and an expired key are refused at once (no cache)', async () => {
    const k = h.key('acme', 'write');
    assert.equal((await req('GET', '/v1/vms', k.headers)).statusCode, 200);
    const rm = await req('DELETE', `/v1/keys/${k.id}`, auth);
    assert.equal(rm.statusCode, 200, rm.body);
    const refused = await req('GET', '/v1/vms', k.headers);
    assert.equal(refused.statusCode, 401);
    assert.equal(refused.json().error.details.reason, 'revoked');
    const soon = h.key('acme', 'write', new Date(Date.now() + 300).toISOString());
    assert.equal((await req('GET', '/v1/vms', soon.headers)).statusCode, 200);
    await new Promise((r) => setTimeout(r, 350));
    const late = await req('GET', '/v1/vms', soon.headers);
    assert.equal(late.statusCode, 401);
    assert.equal(late.json().error.details.reason, 'expired');
    assert.equal((await req('GET', '/v1/vms', { authorization: 'Bearer hgk_' + 'x'.repeat(43) })).statusCode, 401);
  });
});
