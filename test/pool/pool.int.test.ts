// Warm pools through the real controller, real QEMU under TCG in a test network: a pool of a profile (the pool
// snapshots a VM booted for it) fills with paused members nobody sees; claims through POST /v1/vms { pool } are
// ready desktops at once (the viewer bridge answers RFB), each with its own address, hostname, machine-id,
// entropy and agent session; a controller restart keeps the pool and its waiting members. One pool for the file.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolvePaths } from '../../src/config.js';
import { skipUnlessRoot } from '../support/env.js';
import { agentImageReason, imageSkipReason } from '../support/controller.js';
import { collect } from '../support/agent-binary.js';
import { removeLeftoverClones } from '../snapshot/cleanup.js';
import { mustOpen, openVnc } from '../desktop/harness.js';
import { startLiveController, type LiveController } from '../support/live-controller.js';

process.env.HANGAR_IMAGES_DIR ??= resolvePaths().imagesDir;
const skip = skipUnlessRoot() || (await imageSkipReason()) || (await agentImageReason()) || false;

interface View { id: string; name: string; state: string; network: { ip: string } | null }
interface Pool { name: string; size: number; ready: number; filling: number; claims: number; misses: number; snapshot: string | null; refillMs: number | null }

describe('warm pools through the controller', { skip, concurrency: false }, () => {
  let live: LiveController;
  let cacheDir = '';
  before(async () => {
    cacheDir = mkdtempSync(join(tmpdir(), 'hangar-poolcache-'));
    process.env.HANGAR_CACHE_DIR = cacheDir; // the pool's snapshot goes under <cache>/snapshots
    live = await startLiveController({ net: { cidr: '10.229.0.0/29' } }); // 5 guest addresses
  });
  after(async () => {
    const cfg = live?.c.manager.netConfig;
    try {
      // The pool first: else it would refill while its members are destroyed.
      if (live?.c.store.pools.get('desk')) await fetch(`${live.c.url}/v1/pools/desk`, { method: 'DELETE', headers: { authorization: `Bearer ${live.c.token}` } });
      await live?.destroy();
    } finally {
      if (cacheDir) rmSync(cacheDir, { recursive: true, force: true });
    }
    if (cfg) assert.deepEqual(await removeLeftoverClones(cfg), [], 'no clone namespace left behind');
  });

  const api = async <T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> => {
    const r = await fetch(live.c.url + path, {
      method, headers: { authorization: `Bearer ${live.c.token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}),
    });
    return { status: r.status, body: (r.status === 204 ? null : await r.json()) as T };
  };
  const poolReady = async (n: number, ms = 240_000): Promise<Pool> => {
    const end = Date.now() + ms;
    for (;;) {
      const p = (await api<Pool>('GET', '/v1/pools/desk')).body;
      if (p.ready >= n) return p;
      if (Date.now() > end) throw new Error(`pool not ready: ${JSON.stringify(p)}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  };
  const sh = async (id: string, cmd: string): Promise<string> => {
    const s = await live.c.agents.session(id, { timeoutMs: 60_000 });
    const h = await s.exec({ argv: ['sh', '-c', cmd], user: 0 });
    return (await collect(h.stdout)).toString().trim();
  };

  test('claims are ready desktops at once, each with its own address, hostname, machine-id, entropy and agent session', async () => {
    const made = await api<Pool>('POST', '/v1/pools', { name: 'desk', size: 2, profile: 'desktop' });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const full = await poolReady(2);
    assert.match(full.snapshot ?? '', /^snap-[0-9a-f]{8}$/);
    assert.ok(full.refillMs !== null && full.refillMs > 0);
    assert.deepEqual((await api<{ vms: View[] }>('GET', '/v1/vms')).body.vms, [], 'waiting members are nobody\'s VMs');
    assert.equal(live.c.store.tenancy.snapshotOwner(full.snapshot!), 'hangar-pool', 'the pool\'s snapshot is the pool tenant\'s (a tenant key does not list it)');

    const claimed: View[] = [];
    for (const name of ['alpha', 'beta']) {
      const t0 = performance.now();
      // ?wait=true: also until the guest has applied its hostname, clock and entropy (bench/sessions times both).
      const r = await api<View>('POST', '/v1/vms?wait=true', { pool: 'desk', name });
      const ms = performance.now() - t0;
      assert.equal(r.status, 201, JSON.stringify(r.body));
      assert.deepEqual([r.body.name, r.body.state], [name, 'ready']);
      assert.ok(ms < 10_000, `a claim took ${Math.round(ms)} ms`);
      claimed.push(r.body);
    }
    const [a, b] = claimed as [View, View];
    assert.notEqual(a.network!.ip, b.network!.ip);
    // Through the controller's viewer bridge: the desktop answers.
    const { body: tok } = await api<{ token: string }>('POST', `/v1/vms/${a.id}/viewer`);
    const { ws, reader } = mustOpen(await openVnc(live.c.url, a.id, tok.token));
    try {
      assert.equal((await reader.read(12, 60_000)).toString('latin1'), 'RFB 003.008\n');
    } finally {
      ws.close();
    }
    const facts = async (v: View): Promise<{ host: string; mid: string; rnd: string; session: string }> => ({
      host: await sh(v.id, 'hostname'), mid: await sh(v.id, 'cat /etc/machine-id'), rnd: await sh(v.id, 'head -c 16 /dev/urandom | od -An -tx1 | tr -d " \\n"'),
      session: (await live.c.agents.session(v.id)).session,
    });
    const fa = await facts(a);
    const fb = await facts(b);
    assert.deepEqual([fa.host, fb.host], ['alpha', 'beta']);
    assert.match(fa.mid, /^[0-9a-f]{32}$/);
    assert.notEqual(fa.mid, fb.mid);
    assert.notEqual(fa.rnd, fb.rnd);
    assert.notEqual(fa.session, fb.session);
    // Both map the snapshot's RAM file privately: the pages neither has written are shared between them (with
    // anonymous RAM — the file backing broken — only the QEMU binary and libraries would be).
    for (const v of claimed) {
      const roll = readFileSync(`/proc/${live.c.store.mustGetVm(v.id).pid}/smaps_rollup`, 'utf8');
      const kib = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(roll)?.[1] ?? 0);
      const shared = kib('Shared_Clean') + kib('Shared_Dirty');
      assert.ok(shared > 0.25 * kib('Rss') && shared > 32 * 1024, `clone ${v.id}: ${shared} KiB shared of ${kib('Rss')} KiB resident`);
      assert.ok(kib('Pss') < kib('Rss') - shared / 4, `clone ${v.id}: PSS ${kib('Pss')} KiB counts its shared pages at a fraction`);
    }
    const names = (await api<{ vms: View[] }>('GET', '/v1/vms')).body.vms.map((v) => v.name).sort();
    assert.deepEqual(names, ['alpha', 'beta']);
    const p = (await api<Pool>('GET', '/v1/pools/desk')).body;
    assert.deepEqual([p.claims, p.misses], [2, 0]);
    const metrics = await (await fetch(`${live.c.url}/metrics`, { headers: { authorization: `Bearer ${live.c.token}` } })).text();
    assert.match(metrics, /^hangar_pool_claims_total\{pool="desk"\} 2$/m);
    for (const v of claimed) assert.equal((await api('DELETE', `/v1/vms/${v.id}`)).status, 204);
  });

  test('a controller restart keeps the pool and adopts its waiting members; a claim after it is a hit', async () => {
    await poolReady(2);
    const before = live.c.store.pools.members('desk').map((m) => m.vmId).sort();
    await live.restart();
    const after = live.c.store.pools.members('desk');
    assert.deepEqual(after.map((m) => m.vmId).sort(), before, 'the same members, adopted');
    for (const m of after) assert.equal(live.c.store.mustGetVm(m.vmId).state, 'paused');
    // A claim with a volume: swapped into the running member and mounted, no reboot; a missing one changes nothing.
    assert.equal((await api('POST', '/v1/volumes', { name: 'gdata', sizeMiB: 64 })).status, 201);
    const missing = await api<{ error: { code: string } }>('POST', '/v1/vms', { pool: 'desk', name: 'nope', volumes: [{ name: 'absent', path: '/mnt/x' }] });
    assert.equal(missing.body.error.code, 'VOLUME_NOT_FOUND');
    assert.equal((await api<Pool>('GET', '/v1/pools/desk')).body.ready, 2, 'a refused claim took no member');
    const r = await api<View>('POST', '/v1/vms?wait=true', { pool: 'desk', name: 'gamma', volumes: [{ name: 'gdata', path: '/home/hangar/data' }] });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.ok(before.includes(r.body.id));
    assert.equal(await sh(r.body.id, 'hostname'), 'gamma');
    assert.equal(await sh(r.body.id, 'grep -q " /home/hangar/data " /proc/mounts && echo mounted; echo hi > /home/hangar/data/f && cat /home/hangar/data/f'), 'mounted\nhi');
    assert.equal((await api('DELETE', '/v1/pools/desk')).status, 204);
    assert.deepEqual(live.c.store.pools.members(), []);
    assert.equal((await api<{ vms: View[] }>('GET', '/v1/vms')).body.vms.length, 1, 'the claimed VM stays');
    assert.equal((await api('DELETE', `/v1/vms/${r.body.id}`)).status, 204);
    assert.equal((await api('DELETE', '/v1/volumes/gdata')).status, 204, 'the volume is free once its VM is gone');
  });
});
