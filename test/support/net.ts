// A private network for one test: a namespace that plays "the host" (hgt-host-XXXX) and, in netns mode, Hangar's
// VM namespace (hgt-vms-XXXX). The real root namespace is never configured. Everything is destroyed afterwards,
// also when the test fails, including processes a test left running inside these namespaces.
import { randomBytes } from 'node:crypto';
import { normaliseNetConfig, type NetConfig, type NetConfigInput } from '../../src/net/config.js';
import { listNetns, setupHostNetwork } from '../../src/net/host.js';
import { run } from '../../src/util/exec.js';
import type { Undo } from '../../src/util/steps.js';

export interface TestNetwork {
  /** Normalised config, hostNetns set to the fake host. */
  cfg: NetConfig;
  hostNetns: string;
  /** The VM namespace (netns mode), else undefined. */
  vmNetns?: string;
  /** Removes everything; safe to call twice. */
  destroy(): Promise<void>;
}

export interface TestNetworkOptions {
  mode?: 'bridge' | 'netns';
  cidr?: string;
  /** Run setupHostNetwork (default true); false leaves only the empty fake-host namespace. */
  setup?: boolean;
  overrides?: Partial<NetConfigInput>;
}

export const TEST_NETNS_PREFIX = 'hgt-';

async function nsPids(ns: string): Promise<number[]> {
  const r = await run('ip', ['netns', 'pids', ns], { allowFailure: true, timeoutMs: 10_000 });
  return r.stdout.split(/\s+/).filter(Boolean).map(Number).filter((n) => Number.isInteger(n) && n > 0);
}

/** Kills (by pid) whatever still runs inside a test namespace, then deletes the namespace. */
async function destroyNamespace(ns: string): Promise<void> {
  if (!ns.startsWith(TEST_NETNS_PREFIX)) throw new Error(`refusing to delete ${ns}: not a test namespace`);
  if (!(await listNetns()).includes(ns)) return;
  for (let i = 0; i < 20; i++) {
    const pids = await nsPids(ns);
    if (!pids.length) break;
    for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
    await new Promise((r) => setTimeout(r, 100));
  }
  await run('ip', ['netns', 'del', ns], { allowFailure: true, timeoutMs: 10_000 });
}

export async function createTestNetwork(opts: TestNetworkOptions = {}): Promise<TestNetwork> {
  const id = randomBytes(3).toString('hex');
  const mode = opts.mode ?? 'netns';
  const hostNetns = `${TEST_NETNS_PREFIX}host-${id}`;
  const vmNetns = mode === 'netns' ? `${TEST_NETNS_PREFIX}vms-${id}` : undefined;
  const cfg = normaliseNetConfig({
    mode,
    bridge: 'hgbr0',
    cidr: opts.cidr ?? '10.213.0.0/24',
    hostNetns,
    ...(vmNetns ? { netns: vmNetns } : {}),
    ...opts.overrides,
  });
  let undo: Undo | undefined;
  let destroyed = false;
  const destroy = async (): Promise<void> => {
    if (destroyed) return;
    destroyed = true;
    try { await undo?.(); } catch { /* the namespaces go below regardless */ }
    if (vmNetns) await destroyNamespace(vmNetns);
    await destroyNamespace(hostNetns);
  };
  try {
    await run('ip', ['netns', 'add', hostNetns], { timeoutMs: 10_000 });
    await run('ip', ['-n', hostNetns, 'link', 'set', 'lo', 'up'], { timeoutMs: 10_000 });
    if (opts.setup !== false) undo = await setupHostNetwork(cfg);
  } catch (e) {
    await destroy();
    throw e;
  }
  const net: TestNetwork = { cfg, hostNetns, destroy };
  if (vmNetns) net.vmNetns = vmNetns;
  return net;
}

export async function withTestNetwork<T>(fn: (net: TestNetwork) => Promise<T>, opts: TestNetworkOptions = {}): Promise<T> {
  const net = await createTestNetwork(opts);
  try {
    return await fn(net);
  } finally {
    await net.destroy();
  }
}

/**
 * Connects to host:port from inside a namespace and returns the first bytes the server sends (e.g. the RFB
 * banner). Runs this Node binary in the namespace with a fixed script; host and port are plain arguments.
 */
export async function tcpBanner(netns: string | undefined, host: string, port: number, opts: { timeoutMs?: number } = {}): Promise<string> {
  const script = `
    const [host, port, ms] = process.argv.slice(1);
    const s = require('node:net').connect({ host, port: Number(port) });
    const t = setTimeout(() => { console.error('timeout'); process.exit(2); }, Number(ms));
    s.once('data', (d) => { clearTimeout(t); process.stdout.write(d.toString('latin1')); s.destroy(); });
    s.once('error', (e) => { console.error(e.message); process.exit(1); });`;
  const timeoutMs = opts.timeoutMs ?? 5000;
  const r = await run(process.execPath, ['-e', script, host, String(port), String(timeoutMs)], { netns, timeoutMs: timeoutMs + 5000 });
  return r.stdout;
}
