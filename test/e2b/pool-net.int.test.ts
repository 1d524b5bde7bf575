// The REAL e2b SDK's create against a warm pool and with network options, on real VMs (QEMU, TCG here): one golden
// snapshot of the desktop (a boot), a pool of it with one member, clones of it, and one booted sandbox. Sandbox.create of
// the pool's template claims the waiting member (the pool's claim counter moves, the sandbox answers commands); a
// create WITH network options never takes a member (members run the default policy): it restores its own clone with
// the policy from the start, and the policy is enforced, probed from inside the sandbox through commands.run toward
// the test world (test/support/world.ts, joined to this test's VM namespace as the uplink; nothing leaves the
// namespaces this file creates): allowInternetAccess false reaches nothing, allowOut reaches only what it names,
// denyOut blocks what it names; setTimeout and auto-pause at the timeout (hibernation), resumed by connect. Its
// own file (not sdk.int's VM): the world must be the controller's uplink.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CommandExitError, Sandbox } from 'e2b';
import { resolvePaths } from '../../src/config.js';
import { imageSkipReason } from '../support/controller.js';
import { skipUnlessRoot } from '../support/env.js';
import { startLiveController, type LiveController } from '../support/live-controller.js';
import { httpGet, resolve, tcpOpen } from '../support/probes.js';
import { createWorld, UPLINK, WORLD, type Runner, type World } from '../support/world.js';

process.env.HANGAR_IMAGES_DIR ??= resolvePaths().imagesDir;
const skip = skipUnlessRoot() || (await imageSkipReason()) || false;
const POOL = 'e2b';
interface PoolView { ready: number; claims: number; misses: number }

/** argv as one shell line for commands.run (each word single-quoted). */
const shellLine = (argv: string[]): string => argv.map((a) => `'${a.replaceAll("'", `'"'"'`)}'`).join(' ');

describe('e2b Sandbox.create: a warm pool, and network options enforced (real VMs)', { skip, concurrency: false }, () => {
  let live: LiveController;
  let world: World;
  let cacheDir = '';
  let snap = '';
  let opts: { apiKey: string; apiUrl: string; sandboxUrl: string; requestTimeoutMs: number };
  const made: Sandbox[] = [];
  let claimed: Sandbox | undefined;
  let resumed: Sandbox | undefined;

  /** The probes' Runner over the SDK: the argv runs in the sandbox through commands.run (as root: no sudo needed). */
  const inside = (sbx: Sandbox): Runner => async (argv, timeoutMs = 15_000) => {
    try {
      const r = await sbx.commands.run(shellLine(argv), { user: 'root', timeoutMs });
      return { code: r.exitCode, stdout: r.stdout, stderr: r.stderr };
    } catch (e) {
      if (e instanceof CommandExitError) return { code: e.exitCode, stdout: e.stdout, stderr: e.stderr };
      return { code: 127, stdout: '', stderr: (e as Error).message };
    }
  };
  const api = async <T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> => {
    const r = await fetch(live.c.url + path, {
      method, headers: { authorization: `Bearer ${live.c.token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}),
    });
    return { status: r.status, body: (r.status === 204 ? null : await r.json()) as T };
  };
  const pool = async (): Promise<PoolView> => (await api<PoolView>('GET', `/v1/pools/${POOL}`)).body;
  const poolReady = async (n: number, ms = 240_000): Promise<void> => {
    const end = Date.now() + ms;
    for (let p = await pool(); p.ready < n; p = await pool()) {
      if (Date.now() > end) throw new Error(`pool not ready: ${JSON.stringify(p)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  };
  const create = async (o: Parameters<typeof Sandbox.create>[1] = {}): Promise<{ sbx: Sandbox; ms: number }> => {
    const t0 = performance.now();
    const sbx = await Sandbox.create(snap, { ...opts, timeoutMs: 600_000, ...o });
    made.push(sbx);
    return { sbx, ms: performance.now() - t0 };
  };
  const policyOf = (sbx: Sandbox): { mode: string } | undefined => live.c.store.getVm(sbx.sandboxId)?.netPolicy?.egress;

  before(async () => {
    cacheDir = mkdtempSync(join(tmpdir(), 'hangar-e2bpool-'));
    process.env.HANGAR_CACHE_DIR = cacheDir; // the snapshot goes under <cache>/snapshots
    live = await startLiveController({
      // The default policy is the internet, as E2B's is (Hangar's own default is none): what a create without
      // network options, and so a claimed pool member, runs with.
      net: { cidr: '10.236.0.0/28', overrides: { egress: { uplink: UPLINK, resolvers: [WORLD.dns], default: { egress: { mode: 'internet' } } } } },
      // Headroom for QEMU over guest RAM under TCG, as sdk.int's (a hibernation save, the auto-pause, can exceed
      // the default 256 MiB; the VM's cgroup then OOM-kills QEMU).
      config: { hibernateAfterS: 0, vmm: { resources: { overheadMiB: 1024 } } },
    });
    world = await createWorld(live.net.cfg);
    opts = { apiKey: live.c.token, apiUrl: `${live.c.url}/e2b`, sandboxUrl: `${live.c.url}/e2b/sandbox`, requestTimeoutMs: 240_000 };
    snap = (await live.c.manager.snapshots.create({ image: 'desktop' })).manifest.id;
    const p = await api('POST', '/v1/pools', { name: POOL, size: 1, snapshot: snap });
    assert.equal(p.status, 201, JSON.stringify(p.body));
    await poolReady(1);
  });
  after(async () => {
    try {
      // The pool first: else it would refill while its members are destroyed.
      if (live?.c.store.pools.get(POOL)) await api('DELETE', `/v1/pools/${POOL}`);
      await world?.destroy();
      await live?.destroy();
    } finally {
      if (cacheDir) rmSync(cacheDir, { recursive: true, force: true });
    }
  });

  test('Sandbox.create of a pool\'s template claims its waiting member: fast, counted, and the sandbox works (default policy)', async () => {
    const before = await pool();
    const { sbx, ms } = await create();
    console.log(`# Sandbox.create from the warm pool: ${ms.toFixed(0)} ms`);
    const after = await pool();
    assert.equal(after.claims, before.claims + 1, 'the pool\'s claim counter moved');
    assert.equal(after.misses, before.misses, 'a hit, not a miss');
    assert.equal(live.c.store.getVm(sbx.sandboxId)?.tenantId, 'default', 'the member is the caller\'s now');
    assert.equal((await sbx.commands.run('echo claimed-$((6*7))')).stdout, 'claimed-42\n');
    assert.equal((await sbx.getInfo()).state, 'running');
    claimed = sbx;
  });

  // The controller's default policy (here the internet) is what a member was made with and runs under once claimed.
  test('a claimed member reaches the world with the default policy', async () => {
    const g = inside(claimed!);
    const web = await httpGet(g, `http://${WORLD.web}/`);
    assert.equal(web.ok, true, `by address: ${web.body} ${web.stderr}`);
    assert.deepEqual(await resolve(g, 'world.test'), [WORLD.web], 'by name');
  });

  test('allowInternetAccess: false never takes a pool member; its own clone reaches nothing', async () => {
    await poolReady(1); // refilled after the claim
    const before = await pool();
    const { sbx, ms } = await create({ allowInternetAccess: false });
    console.log(`# Sandbox.create with allowInternetAccess false (its own clone): ${ms.toFixed(0)} ms`);
    const now = await pool();
    assert.deepEqual({ claims: now.claims, misses: now.misses }, { claims: before.claims, misses: before.misses }, 'no member taken, no miss');
    assert.equal(now.ready, 1, 'the waiting member still waits');
    assert.equal(policyOf(sbx)?.mode, 'none');
    const g = inside(sbx);
    assert.equal((await g(['true'])).code, 0, 'the sandbox runs commands');
    assert.deepEqual(await resolve(g, 'world.test'), [], 'no names');
    assert.equal(await tcpOpen(g, WORLD.web, 80, 1), false, 'no addresses');
    assert.equal((await httpGet(g, `http://${WORLD.web}/`, { timeoutS: 2 })).ok, false, 'no HTTP');
  });

  test('network.allowOut reaches only what it names; network.denyOut blocks what it names', async () => {
    const allow = (await create({ allowInternetAccess: false, network: { allowOut: ['allowed.test'] } })).sbx;
    assert.equal(policyOf(allow)?.mode, 'allowlist');
    const ga = inside(allow);
    assert.equal((await httpGet(ga, 'http://allowed.test/')).ok, true, 'allowOut: allowed.test');
    assert.equal(await tcpOpen(ga, WORLD.other, 80, 1), false, 'allowOut: not other.test\'s address');
    assert.equal(await tcpOpen(ga, WORLD.web, 80, 1), false, 'allowOut: not the world server');

    const deny = (await create({ network: { denyOut: [`${WORLD.other}/32`] } })).sbx;
    const gd = inside(deny);
    assert.equal((await httpGet(gd, 'http://world.test/')).ok, true, 'denyOut: the rest of the internet');
    assert.equal(await tcpOpen(gd, WORLD.other, 80, 1), false, 'denyOut: the denied address');
    assert.deepEqual(await pool().then((p) => [p.claims, p.misses]), [1, 0], 'neither touched the pool');
  });

  test('setTimeout, then lifecycle onTimeout "pause": the sandbox hibernates at its timeout; connect resumes it', async () => {
    // A booted sandbox ("desktop": no pool of that template), the path sdk.int's pause → resume takes: a claimed
    // member's first command once failed here with SandboxNotFoundError (see the todo above; not this layer's).
    const t0 = performance.now();
    const sbx = await Sandbox.create('desktop', { ...opts, timeoutMs: 600_000, lifecycle: { onTimeout: 'pause' } });
    made.push(sbx);
    console.log(`# Sandbox.create of "desktop" (a boot): ${(performance.now() - t0).toFixed(0)} ms`);
    await sbx.commands.run('echo before-timeout > /dev/shm/e2b-auto');
    await sbx.setTimeout(2_000);
    const end = Date.now() + 180_000;
    while ((await Sandbox.getInfo(sbx.sandboxId, opts)).state !== 'paused') {
      if (Date.now() > end) throw new Error('not paused at its timeout');
      await new Promise((r) => setTimeout(r, 500));
    }
    const back = await Sandbox.connect(sbx.sandboxId, opts);
    assert.equal((await back.getInfo()).state, 'running');
    resumed = back;
  });

  // Found by this file: the first command after that restore failed (SandboxNotFoundError: the agent was gone),
  // because the timeout loop paused the sandbox again as it came up (its old end had passed); connect now sets the
  // new end before it restores (test/e2b/rest.test.ts).
  test('the resumed sandbox kept its state', async () => {
    assert.equal((await resumed!.commands.run('cat /dev/shm/e2b-auto')).stdout, 'before-timeout\n');
  });

  test('kill: the sandboxes go', async () => {
    for (const s of made.splice(0)) await s.kill();
    assert.deepEqual(live.c.manager.list().filter((v) => v.tenantId === 'default'), []);
  });
});
