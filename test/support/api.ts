// An API server over real parts (SQLite store, VM manager, image cache) for route tests that never boot a VM:
// the network config is normalised but never applied, and only error paths that fail before any side effect
// (or rows inserted directly) are exercised. Boots are covered by the *.int tests.
import { Agents } from '../../src/agent/agents.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildServer, type ServerOptions } from '../../src/api/server.js';
import type { ApiContext } from '../../src/api/routes.js';
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
  /** Inserts a VM row in the given state (no VMM behind it). */
  insertVm(id: string, state: NewVm['state']): void;
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

export async function createApiHarness(opts: ServerOptions & { withDoctor?: boolean } = {}): Promise<ApiHarness> {
  const stateDir = mkdtempSync(join(tmpdir(), 'hangar-api-'));
  const store = new Store(join(stateDir, 'state.db'));
  const metrics = new HangarMetrics();
  const manager = offlineManager(store, stateDir, metrics);
  const ctx: ApiContext = { vms: manager, snapshots: manager.snapshots, events: store, metrics, token: TEST_TOKEN, agents: new Agents({ channel: () => null }) };
  const { withDoctor, ...server } = opts;
  const app = await buildServer(ctx, withDoctor ? { ...server, extraRoutes: (c) => [...(server.extraRoutes?.(c) ?? []), ...doctorRoutes(manager)] } : server);
  return {
    app, ctx, store, manager, stateDir,
    insertVm: (id, state) => {
      store.insertVm({ id, name: id, state: 'creating', imageId: 'img', profile: 'desktop', vmm: 'qemu', vcpus: 1, memMiB: 512, ttlS: null, expiresAt: null, runDir: join(stateDir, 'vms', id), spec: null, net: null });
      const path: Record<string, NewVm['state'][]> = { creating: [], booting: ['booting'], ready: ['booting', 'ready'], paused: ['booting', 'ready', 'paused'], stopped: ['booting', 'ready', 'stopping', 'stopped'], failed: ['failed'] };
      for (const s of path[state] ?? []) store.setState(id, s);
    },
    close: async () => { await app.close(); store.close(); rmSync(stateDir, { recursive: true, force: true }); },
  };
}

export const auth = { authorization: `Bearer ${TEST_TOKEN}` };
