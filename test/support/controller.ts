// A VM manager wired to real parts for tests: a real SQLite store in a temp dir, the real QEMU driver, images from
// the image cache, and a private test network (namespaces the test creates and removes).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listImages, resolveImage } from '../../src/image/store.js';
import { HangarMetrics } from '../../src/metrics.js';
import { Store } from '../../src/store/store.js';
import { VmManager, type ManagerOptions } from '../../src/vm/manager.js';
import { QemuDriver } from '../../src/vmm/qemu/driver.js';
import { createTestNetwork, type TestNetwork, type TestNetworkOptions } from './net.js';

export interface TestController {
  manager: VmManager;
  store: Store;
  net: TestNetwork;
  stateDir: string;
  metrics: HangarMetrics;
  /** A second manager on the same store and network: a controller restart. */
  restart(): VmManager;
  /** Destroys every VM, the network and the state directory. */
  destroy(): Promise<void>;
}

/** Why image-backed tests must skip, or null when a desktop image exists. */
export async function imageSkipReason(profile = 'desktop'): Promise<string | null> {
  const images = await listImages().catch(() => []);
  return images.some((i) => i.profile === profile)
    ? null
    : `no ${profile} image in the image cache: build one with 'hangar image build --profile ${profile}' (scripts/test.sh does)`;
}

/** Why the newest desktop image cannot serve agent tests (it has no hangar-agent, or there is none), or false. */
export async function agentImageReason(): Promise<string | false> {
  try {
    const i = await resolveImage('desktop');
    return i.manifest.inputs.rootfs.agentSources?.length ? false : `image ${i.id} predates hangar-agent: rebuild it with 'hangar image build'`;
  } catch (e) {
    return (e as Error).message;
  }
}

export async function createTestController(opts: { net?: TestNetworkOptions; manager?: Partial<ManagerOptions> } = {}): Promise<TestController> {
  const stateDir = mkdtempSync(join(tmpdir(), 'hangar-ctl-'));
  const net = await createTestNetwork(opts.net);
  let store: Store;
  try {
    store = new Store(join(stateDir, 'state.db'));
  } catch (e) {
    await net.destroy();
    throw e;
  }
  const metrics = new HangarMetrics();
  const make = (): VmManager => new VmManager({
    store, stateDir, net: net.cfg, drivers: { qemu: new QemuDriver() }, defaultVmm: 'qemu',
    images: { resolve: (ref) => resolveImage(ref), list: () => listImages() },
    readyTimeoutMs: 120_000, metrics, ...opts.manager,
  });
  const managers: VmManager[] = [make()];
  return {
    manager: managers[0]!, store, net, stateDir, metrics,
    restart: () => { const m = make(); managers.push(m); return m; },
    destroy: async () => {
      try {
        await managers.at(-1)!.destroyAll();
      } finally {
        for (const m of managers) await m.detachAll();
        store.close();
        await net.destroy();
        rmSync(stateDir, { recursive: true, force: true });
      }
    },
  };
}
