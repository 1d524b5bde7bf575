// An API server over real parts (SQLite store, VM manager, image cache) for route tests that never boot a VM:
// the network config is normalised but never applied, and only error paths that fail before any side effect
// (or rows inserted directly) are exercised. Boots are covered by the *.int tests. Tenancy is on, as in the
// controller: TEST_TOKEN is the default tenant's admin key (the token file's), and tests add tenants and keys.
import type { Duplex } from 'node:stream';
import { Agents } from '../../src/agent/agents.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildServer, type ServerOptions } from '../../src/api/server.js';
import type { ApiContext } from '../../src/api/routes.js';
import { desktopRoutes } from '../../src/desktop/routes.js';
import { newViewerSecret } from '../../src/desktop/token.js';
import { HangarError } from '../../src/errors.js';
import { hashKey, newApiKey, newKeyId, type Scope } from '../../src/tenancy/keys.js';
import { doctorRoutes } from '../../src/doctor/routes.js';
import { listImages, resolveImage } from '../../src/image/store.js';
import { HangarMetrics } from '../../src/metrics.js';
import { normaliseNetConfig } from '../../src/net/config.js';
import { Store, type NewVm } from '../../src/store/store.js';
import { VmManager } from '../../src/vm/manager.js';
import { QemuDriver } from '../../src/vmm/qemu/driver.js';

export const TEST_TOKEN = 'test-token-0123456789abcdef0123456789abcdef';

export interface ApiHarness {
  app: FastifyInstance;
  ctx: ApiContext;
  store: Store;
  manager: VmManager;
  stateDir: string;
  /** Inserts a VM row in the given state (no VMM behind it), of `tenant` (default: the default tenant). */
  insertVm(id: string, state: NewVm['state'], tenant?: string): void;
  /** A new key of `tenant` (created when missing) with `scope`: its Authorization header, id and secret. */
  key(tenant: string, scope: Scope, expiresAt?: string | null): { headers: { authorization: string }; id: string; secret: string };
  close(): Promise<void>;
}

/** A real VM manager whose network configuration is valid but never applied (no VM is booted through it). */
export function offlineManager(store: Store, stateDir: string, metrics: HangarMetrics): VmManager {
  const net = normaliseNetConfig({ mode: 'netns', netns: 'hgt-unused', bridge: 'hgbr0', cidr: '10.215.0.0/29', hostNetns: 'hgt-unused-host' });
  return new VmManager({
    store, stateDir, net, drivers: { qemu: new QemuDriver() }, defaultVmm: 'qemu',
    images: { resolve: (r) => resolveImage(r), list: () => listImages() }, metrics,
  });
}

export interface HarnessOptions extends ServerOptions {
  withDoctor?: boolean;
  /** The desktop routes too (viewer tokens; the bridge's dial always fails). */
  withDesktop?: boolean;
  /** Another VM manager over the harness's store (e.g. with a FAKE driver and network). */
  manager?: (store: Store, stateDir: string, metrics: HangarMetrics) => VmManager;
}

export async function createApiHarness(opts: HarnessOptions = {}): Promise<ApiHarness> {
  const stateDir = mkdtempSync(join(tmpdir(), 'hangar-api-'));
  const store = new Store(join(stateDir, 'state.db'));
  store.tenancy.syncTokenFileKey(hashKey(TEST_TOKEN), newKeyId());
  const metrics = new HangarMetrics();
  const { withDoctor, withDesktop, manager: makeManager, ...server } = opts;
  const manager = makeManager ? makeManager(store, stateDir, metrics) : offlineManager(store, stateDir, metrics);
  const ctx: ApiContext = { vms: manager, snapshots: manager.snapshots, events: store, metrics, token: TEST_TOKEN, tenancy: store.tenancy, agents: new Agents({ channel: () => null }) };
  const desk = {
    lookup: (id: string) => {
      const vm = store.getVm(id);
      const viewerNonce = store.viewerNonce(id);
      return vm && vm.id === id && viewerNonce ? { state: vm.state, viewerNonce } : null;
    },
    rotateNonce: (id: string) => store.rotateViewerNonce(id) !== null,
    dial: (): Promise<Duplex> => Promise.reject(new HangarError('VM_UNREACHABLE', 'no VM behind this harness')),
    metrics, secret: newViewerSecret(),
  };
  const app = await buildServer(ctx, {
    ...server,
    extraRoutes: (c) => [...(server.extraRoutes?.(c) ?? []), ...(withDesktop ? desktopRoutes(c, desk) : []), ...(withDoctor ? doctorRoutes(manager) : [])],
  });
  return {
    app, ctx, store, manager, stateDir,
    key: (tenant, scope, expiresAt = null) => {
      if (!store.tenancy.getTenant(tenant)) store.tenancy.createTenant(tenant);
      const k = newApiKey();
      store.tenancy.createKey({ id: k.id, tenant, scope, hash: k.hash, expiresAt });
      return { headers: { authorization: `Bearer ${k.secret}` }, id: k.id, secret: k.secret };
    },
    insertVm: (id, state, tenant) => {
      store.insertVm({ id, name: id, state: 'creating', imageId: 'img', profile: 'desktop', vmm: 'qemu', vcpus: 1, memMiB: 512, ttlS: null, expiresAt: null, runDir: join(stateDir, 'vms', id), spec: null, net: null, ...(tenant ? { tenantId: tenant } : {}) });
      const path: Record<string, NewVm['state'][]> = { creating: [], booting: ['booting'], ready: ['booting', 'ready'], paused: ['booting', 'ready', 'paused'], stopped: ['booting', 'ready', 'stopping', 'stopped'], failed: ['failed'] };
      for (const s of path[state] ?? []) store.setState(id, s);
    },
    close: async () => { await app.close(); store.close(); rmSync(stateDir, { recursive: true, force: true }); },
  };
}

export const auth = { authorization: `Bearer ${TEST_TOKEN}` };
