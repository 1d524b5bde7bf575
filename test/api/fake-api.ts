// The controller's HTTP server (buildServer, every route module) over a fake VM service that records each call and
// never touches the host: what reaches the service, and whether a refused request reached it at all. The fake
// passes for the VM manager (hibernate and snapshot routes need it); its mutating methods always succeed, so a 4xx
// answer can only come from the edge (schemas, router), and must come with no mutating call.
import { Agents } from '../../src/agent/agents.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { ApiContext, ApiRoute, PoolClaims, SnapshotPort } from '../../src/api/routes.js';
import { buildServer } from '../../src/api/server.js';
import { agentRoutes } from '../../src/api/agent-routes.js';
import { desktopRoutes } from '../../src/desktop/routes.js';
import { terminalRoutes } from '../../src/desktop/terminal.js';
import { createFakeAgent } from '../support/fake-agent.js';
import { newViewerSecret } from '../../src/desktop/token.js';
import { doctorRoutes } from '../../src/doctor/routes.js';
import { HangarError } from '../../src/errors.js';
import { HangarMetrics } from '../../src/metrics.js';
import type { SnapshotManifest } from '../../src/snapshot/manifest.js';
import { Store, type VmRecord } from '../../src/store/store.js';
import type { CreateVmRequest, VmLimits } from '../../src/vm/input.js';
import type { VmService } from '../../src/vm/service.js';
import { networkRoutes, type NetworkPolicyPort } from '../../src/api/network-routes.js';
import { DEFAULT_POLICY } from '../../src/net/egress/policy.js';
import type { DoctorTarget } from '../../src/doctor/doctor.js';
import { normaliseNetConfig } from '../../src/net/config.js';
import { hashKey, newKeyId } from '../../src/tenancy/keys.js';

export const FAKE_TOKEN = 'fake-token-0123456789abcdef0123456789abcdef';
export const fakeAuth = { authorization: `Bearer ${FAKE_TOKEN}` };

/** Methods that change something: none may run for a request answered 4xx. */
export const MUTATING = new Set(['create', 'action', 'destroy', 'hibernate', 'snapshots.create', 'snapshots.remove', 'setNetworkPolicy']);

export interface Call {
  method: string;
  args: unknown[];
}

export interface FakeApi {
  app: FastifyInstance;
  calls: Call[];
  /** Calls of mutating methods since `since` (an index into calls). */
  mutations(since?: number): Call[];
  /** The requests create() received. */
  created(): CreateVmRequest[];
  close(): Promise<void>;
}

export function fakeVm(id: string, over: Partial<VmRecord> = {}): VmRecord {
  const now = new Date(0).toISOString();
  return {
    id, name: id, state: 'ready', imageId: 'img', profile: 'desktop', vmm: 'qemu', vcpus: 1, memMiB: 512, ttlS: null,
    createdAt: now, updatedAt: now, expiresAt: null, pid: null, runDir: '/nonexistent', spec: null, net: null, bootMs: null,
    lastError: null, exit: null, snapshotId: null, hibernation: null, ...over,
  };
}

const manifest: SnapshotManifest = {
  schema: 1, id: 'snap-00000001', created: new Date(0).toISOString(), source: { kind: 'vm', vmId: 'vm-a', vmName: 'a' },
  image: { id: 'img', profile: 'desktop', rootfsSha256: null, kernelSha256: null }, vmm: { kind: 'qemu', version: '7.2' },
  machine: { vcpus: 1, memMiB: 512, kernelPath: '/k', bootArgs: '' },
  guestNet: { ip: '10.0.0.2', mac: '02:48:0a:00:00:02', tap: 'hgtap0', gateway: '10.0.0.1', netmask: '255.255.255.0', prefix: 24, gatewayMac: null },
  files: { 'disk.ext4': { sha256: 'x', size: 1 } }, durationsMs: { pause: 0, state: 0, disk: 0, total: 0 },
};

/**
 * `stubStreams`: the routes that stream until the client leaves (events, console ?follow, doctor runs real host
 * checks) answer 200 'stub' once their request passed validation, so a fuzz run can await every answer.
 */
export async function createFakeApi(opts: { limits?: VmLimits; stubStreams?: boolean; pools?: PoolClaims } = {}): Promise<FakeApi> {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-fake-api-'));
  const consoleLog = join(dir, 'console.log');
  writeFileSync(consoleLog, 'line 1\nline 2\n');
  const store = new Store(join(dir, 'state.db'));
  const metrics = new HangarMetrics();
  const calls: Call[] = [];
  const rec = <A extends unknown[], R>(method: string, fn: (...a: A) => R) => (...a: A): R => { calls.push({ method, args: a }); return fn(...a); };
  const known = (id: string): VmRecord => {
    if (id.startsWith('missing')) throw new HangarError('VM_NOT_FOUND', `no VM ${id}`, { id });
    return fakeVm(id);
  };

  const snapshots: SnapshotPort = {
    list: rec('snapshots.list', async () => [{ manifest, dir }]),
    get: rec('snapshots.get', async () => ({ manifest, dir })),
    create: rec('snapshots.create', async () => ({ manifest, dir })),
    remove: rec('snapshots.remove', async () => ({ converted: [], destroyed: [] })),
    dependants: rec('snapshots.dependants', async () => []),
  };
  const service: VmService & DoctorTarget = {
    netConfig: normaliseNetConfig({ mode: 'netns', netns: 'hgt-fake', bridge: 'hgbr9', cidr: '10.219.0.0/28', hostNetns: 'hgt-fake-host' }),
    vmDialer: { connect: () => Promise.reject(new HangarError('VM_UNREACHABLE', 'fake')), via: 'direct' },
    create: rec('create', async (req: CreateVmRequest) => ({ vm: fakeVm('vm-new', { vcpus: req.vcpus, memMiB: req.memMiB }), ready: Promise.resolve(fakeVm('vm-new')) })),
    list: rec('list', () => [fakeVm('vm-a')]),
    get: rec('get', known),
    action: rec('action', async (id: string) => fakeVm(id)),
    act: rec('act', async (id: string) => ({ vm: fakeVm(id), ready: Promise.resolve(fakeVm(id)) })),
    destroy: rec('destroy', async () => undefined),
    hibernate: rec('hibernate', async (id: string) => fakeVm(id, { state: 'stopped' })),
    consolePath: rec('consolePath', () => consoleLog),
    host: rec('host', async () => ({ accel: { accel: 'tcg', reason: 'fake' }, drivers: [], network: { mode: 'netns', netns: 'x', cidr: '10.0.0.0/24', gateway: '10.0.0.1', hostNetns: null }, pool: { size: 1, used: 0, free: 1 }, vms: {} })),
    images: rec('images', async () => []),
  };

  // Tenancy over the real store (so the tenant, key and audit routes are served and fuzzed); FAKE_TOKEN is the admin key.
  store.tenancy.syncTokenFileKey(hashKey(FAKE_TOKEN), newKeyId());
  const ctx: ApiContext = { vms: service, snapshots, events: store, metrics, token: FAKE_TOKEN, tenancy: store.tenancy, agents: new Agents({ channel: () => null }), ...(opts.pools ? { pools: opts.pools } : {}) };
  const desk = {
    lookup: (id: string) => (id.startsWith('missing') ? null : { state: 'ready', viewerNonce: Buffer.alloc(16, 1) }),
    rotateNonce: (id: string) => !id.startsWith('missing'),
    dial: (): Promise<Duplex> => Promise.reject(new HangarError('VM_UNREACHABLE', 'fake')),
    metrics, secret: newViewerSecret(),
  };
  // A FAKE agent that runs nothing (spawn: false): fuzzed commands never reach the host; files stay under `dir`.
  const agent = createFakeAgent({ root: join(dir, 'agent'), spawn: false });
  const netPort: NetworkPolicyPort = {
    get: known,
    networkPolicy: rec('networkPolicy', () => DEFAULT_POLICY),
    setNetworkPolicy: rec('setNetworkPolicy', async (id: string) => fakeVm(id)),
  };
  const extra = (c: ApiContext): ApiRoute[] => [...desktopRoutes(c, desk), ...terminalRoutes(c, desk), ...agentRoutes({ ...c, agents: agent }), ...doctorRoutes(service), ...networkRoutes(netPort)];
  const app = await buildServer(ctx, { extraRoutes: extra, ...(opts.limits ? { limits: opts.limits } : {}) });
  if (opts.stubStreams) {
    // Hooks added now still apply: Fastify builds each route's hooks when the server becomes ready.
    app.addHook('preHandler', async (req, reply) => {
      const url = req.routeOptions.url;
      const q = req.query as { follow?: boolean };
      if (url === '/v1/events' || url === '/v1/doctor' || url === '/v1/vms/:id/files/watch' || (url === '/v1/vms/:id/console' && q.follow)) {
        calls.push({ method: `stream ${url}`, args: [req.query] });
        return reply.code(200).send('stub');
      }
    });
  }
  return {
    app, calls,
    mutations: (since = 0) => calls.slice(since).filter((c) => MUTATING.has(c.method)),
    created: () => calls.filter((c) => c.method === 'create').map((c) => c.args[0] as CreateVmRequest),
    close: async () => { await app.close(); store.close(); rmSync(dir, { recursive: true, force: true }); },
  };
}
