// hangar-agent in a real guest (QEMU under TCG, the real controller): ONE booted VM shared by these tests plus one
// snapshot and two clones of it. Exec works after boot; with eth0 down in the guest exec still works (the channel
// needs no guest network); after the VM is restored from its own saved state (hibernate, start) its agent answers
// with a new session and the guest's memory is the saved one; each clone answers with a new session and its own
// hostname. Needs an image built with the agent.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { resolvePaths } from '../../src/config.js';
import { skipUnlessRoot } from '../support/env.js';
import { agentImageReason, imageSkipReason } from '../support/controller.js';
import { collect } from '../support/agent-binary.js';
import { startLiveController, type LiveController } from '../support/live-controller.js';

process.env.HANGAR_IMAGES_DIR ??= resolvePaths().imagesDir;
const skip = skipUnlessRoot() || (await imageSkipReason()) || (await agentImageReason()) || false;

describe('hangar-agent in a booted guest', { skip, concurrency: false }, () => {
  let live: LiveController;
  let cacheDir = '';
  let vmId = '';
  const api = async <T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> => {
    const r = await fetch(live.c.url + path, {
      method, headers: { authorization: `Bearer ${live.c.token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}),
    });
    return { status: r.status, body: (r.status === 204 ? null : await r.json()) as T };
  };
  before(async () => {
    cacheDir = mkdtempSync(join(tmpdir(), 'hangar-agentcache-'));
    process.env.HANGAR_CACHE_DIR = cacheDir;
    live = await startLiveController({ net: { cidr: '10.221.0.0/29' }, config: { hibernateAfterS: 0 } });
    const r = await api<{ id: string }>('POST', '/v1/vms?wait=true', { image: 'desktop', name: 'agent-int' });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    vmId = r.body.id;
  });
  after(async () => {
    try { await live?.destroy(); } finally { if (cacheDir) rmSync(cacheDir, { recursive: true, force: true }); }
  });

  test('exec after boot: output, exit code, the desktop user by default; a 16 MiB round trip', async () => {
    const s = await live.c.agents.session(vmId, { timeoutMs: 60_000 });
    assert.equal(live.c.agents.status(vmId).state, 'ready');
    const t0 = performance.now();
    const t = await s.exec({ argv: ['true'] });
    await t.exit;
    console.log(`# exec round trip of true in the VM: ${(performance.now() - t0).toFixed(1)} ms`);
    const h = await s.exec({ cmd: 'id -un; exit 4' });
    assert.equal((await collect(h.stdout)).toString(), 'hangar\n');
    assert.equal((await h.exit).code, 4);
    const block = Buffer.alloc(1024 * 1024, 0x5a);
    const w0 = performance.now();
    await s.writeFile('/tmp/blob', Readable.from(Array.from({ length: 16 }, () => block)));
    const w = performance.now() - w0;
    const r0 = performance.now();
    const { stream } = await s.readFile('/tmp/blob');
    const hash = createHash('sha256');
    for await (const c of stream) hash.update(c as Buffer);
    const r = performance.now() - r0;
    const want = createHash('sha256');
    for (let i = 0; i < 16; i++) want.update(block);
    assert.equal(hash.digest('hex'), want.digest('hex'));
    console.log(`# in the VM: write ${(16 / (w / 1000)).toFixed(1)} MB/s, read ${(16 / (r / 1000)).toFixed(1)} MB/s`);
  });

  test('with eth0 down in the guest, exec still works', async () => {
    const s = await live.c.agents.session(vmId);
    // A link taken down loses its routes: the default route the kernel's ip= made is put back afterwards (the
    // clone below is made from this VM, and the host reaches a clone through its default route).
    const route = await s.exec({ argv: ['ip', 'route', 'show', 'default'] });
    const defaultRoute = (await collect(route.stdout)).toString().trim();
    assert.match(defaultRoute, /^default via \S+ dev eth0/);
    const down = await s.exec({ argv: ['ip', 'link', 'set', 'eth0', 'down'], user: 0 });
    assert.equal((await down.exit).code, 0);
    const h = await s.exec({ argv: ['cat', '/sys/class/net/eth0/operstate'] });
    assert.equal((await collect(h.stdout)).toString().trim(), 'down');
    const info = await s.info();
    assert.equal(info.ifaces.find((i) => i.name === 'eth0')?.up, false);
    const up = await s.exec({ argv: ['ip', 'link', 'set', 'eth0', 'up'], user: 0 });
    assert.equal((await up.exit).code, 0);
    const back = await s.exec({ argv: ['ip', 'route', 'replace', ...defaultRoute.split(/\s+/)], user: 0 });
    assert.equal((await back.exit).code, 0);
  });

  test('after the VM is restored from its saved state (hibernate, start), its agent answers with a new session', async () => {
    const first = await live.c.agents.session(vmId);
    // A marker in guest RAM (tmpfs): still there after the restore, so this is the saved guest, not a reboot.
    const mark = await first.exec({ cmd: 'echo restored-$$ > /dev/shm/hangar-marker; cat /dev/shm/hangar-marker' });
    const marker = (await collect(mark.stdout)).toString().trim();
    assert.match(marker, /^restored-\d+$/);
    const hib = await api<{ state: string }>('POST', `/v1/vms/${vmId}/hibernate`);
    assert.ok(hib.status < 300, JSON.stringify(hib.body));
    const start = await api<{ state: string }>('POST', `/v1/vms/${vmId}/start?wait=true`);
    assert.ok(start.status < 300, JSON.stringify(start.body));
    const s = await live.c.agents.session(vmId, { timeoutMs: 60_000 });
    assert.notEqual(s.session, first.session, 'a fresh session over the new VMM\'s channel');
    const h = await s.exec({ argv: ['cat', '/dev/shm/hangar-marker'] });
    assert.equal((await collect(h.stdout)).toString().trim(), marker);
    assert.equal((await h.exit).code, 0);
  });

  test('each clone of a snapshot answers with a new session and its own hostname', async () => {
    const first = await live.c.agents.session(vmId);
    const snap = await api<{ id: string }>('POST', '/v1/snapshots', { vm: vmId });
    assert.ok(snap.status === 201 || snap.status === 200, JSON.stringify(snap.body));
    const sessions = new Set([first.session]);
    for (const name of ['agent-clone', 'agent-clone2']) {
      const clone = await api<{ id: string }>('POST', '/v1/vms?wait=true', { fromSnapshot: snap.body.id, name });
      assert.equal(clone.status, 201, JSON.stringify(clone.body));
      const s = await live.c.agents.session(clone.body.id, { timeoutMs: 60_000 });
      assert.ok(!sessions.has(s.session), `${name}: a session of its own`);
      sessions.add(s.session);
      const h = await s.exec({ argv: ['hostname'] });
      assert.equal((await collect(h.stdout)).toString().trim(), name);
      assert.equal(live.c.agents.status(clone.body.id).state, 'ready');
    }
    // The original still answers on its own session beside its clones.
    const again = await live.c.agents.session(vmId);
    assert.equal(again.session, first.session);
    const h = await again.exec({ argv: ['hostname'] });
    assert.equal((await collect(h.stdout)).toString().trim(), 'agent-int');
  });
});
