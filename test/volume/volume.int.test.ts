// Volumes in real guests (QEMU under TCG, the real controller): a volume attached at create is mounted in VM A and
// written; a second writer is refused; a controller restart keeps the volume and its attachment; after A is
// destroyed, a clone B (restored from a golden snapshot, so running before the volume is given to it) gets the
// volume attached without a reboot and reads A's file; idle (its own 2 s timeout) B hibernates and opening its viewer
// wakes it with a typed line, a tmpfs file and the volume intact; it grows online, is copied, detached and removed.
// Two boots (A cold, the snapshot's VM), one restore and one hibernation in all.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolvePaths } from '../../src/config.js';
import { skipUnlessRoot } from '../support/env.js';
import { imageSkipReason } from '../support/controller.js';
import { guestSh, liveApi, startLiveController, type LiveController } from '../support/live-controller.js';
import { rfbConnect } from '../snapshot/rfb-client.js';
import { mustOpen, openVnc } from '../desktop/harness.js';

// The golden snapshot goes to a temporary cache (below); images stay where they are.
process.env.HANGAR_IMAGES_DIR ??= resolvePaths().imagesDir;
const skip = skipUnlessRoot() || (await imageSkipReason()) || false;

interface Vol { id: string; name: string; sizeMiB: number; attachments: { vm: string; path: string; readOnly: boolean; slot: number }[] }

describe('volumes in booted guests', { skip, concurrency: false }, () => {
  let live: LiveController;
  let cacheDir = '';
  let a = '';
  let b = '';
  const mark = `v${Date.now().toString(36)}`;
  const api = <T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> => liveApi<T>(live, method, path, body);
  /** A shell line in the guest as root: its stdout, and its exit code asserted 0. */
  const sh = (vm: string, cmd: string): Promise<string> => guestSh(live, vm, cmd);

  before(async () => {
    cacheDir = mkdtempSync(join(tmpdir(), 'hangar-volcache-'));
    process.env.HANGAR_CACHE_DIR = cacheDir; // the golden snapshot goes here
    live = await startLiveController({ net: { cidr: '10.223.0.0/29' }, config: { hibernateAfterS: 0 } });
  });
  after(async () => {
    try { await live?.destroy(); } finally { if (cacheDir) rmSync(cacheDir, { recursive: true, force: true }); }
  });

  test('attached at create: mounted at its path, written; bad input leaves no file', async () => {
    const bad = await api<{ error: { code: string } }>('POST', '/v1/volumes', { name: 'x', sizeMiB: 1 });
    assert.equal(bad.status, 400);
    const made = await api<Vol>('POST', '/v1/volumes', { name: 'data', sizeMiB: 64 });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    assert.equal((await api('POST', '/v1/volumes', { name: 'data', sizeMiB: 64 })).status, 409, 'a name is taken once');
    const volDir = join(live.stateDir, 'volumes');
    assert.equal(readdirSync(volDir).length, 1, 'only the one volume file exists');

    const r = await api<{ id: string; state: string }>('POST', '/v1/vms?wait=true', { image: 'desktop', name: 'vol-a', volumes: [{ name: 'data', path: '/mnt/data' }] });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    a = r.body.id;
    assert.match(await sh(a, 'grep " /mnt/data " /proc/mounts'), /^\/dev\/vd[bc] \/mnt\/data ext4 rw/);
    await sh(a, `echo ${mark} > /mnt/data/hello && sync`);
    assert.equal(await sh(a, 'stat -c %U /mnt/data'), 'hangar', 'the volume root belongs to the desktop user');
  });

  test('one writer: a second VM asking for the volume is refused, and nothing of it is left', async () => {
    const before = (await api<{ vms: unknown[] }>('GET', '/v1/vms')).body.vms.length;
    const r = await api<{ error: { code: string; details: { vm: string } } }>('POST', '/v1/vms', { image: 'desktop', name: 'vol-b', volumes: [{ name: 'data', path: '/data' }] });
    assert.equal(r.status, 409);
    assert.equal(r.body.error.code, 'VOLUME_IN_USE');
    assert.equal(r.body.error.details.vm, a);
    assert.equal((await api<{ vms: unknown[] }>('GET', '/v1/vms')).body.vms.length, before);
  });

  test('a controller restart keeps the volume and its attachment', async () => {
    await live.restart();
    const v = await api<Vol>('GET', '/v1/volumes/data');
    assert.equal(v.status, 200);
    assert.deepEqual(v.body.attachments.map((x) => [x.vm, x.path, x.readOnly]), [[a, '/mnt/data', false]]);
    assert.equal(await sh(a, 'cat /mnt/data/hello'), mark);
  });

  test('after A is destroyed, a clone restored from a snapshot gets the volume without a reboot and reads A\'s file', async () => {
    const snap = await api<{ id: string }>('POST', '/v1/snapshots', { image: 'desktop' });
    assert.equal(snap.status, 201, JSON.stringify(snap.body));
    assert.equal((await api('DELETE', `/v1/vms/${a}`)).status, 204);
    assert.deepEqual((await api<Vol>('GET', '/v1/volumes/data')).body.attachments, [], 'destroying the VM releases the volume');
    const c = await api<{ id: string; bootMs: number | null }>('POST', '/v1/vms?wait=true', { fromSnapshot: snap.body.id, name: 'vol-b' });
    assert.equal(c.status, 201, JSON.stringify(c.body));
    b = c.body.id;
    const bootId = await sh(b, 'cat /proc/sys/kernel/random/boot_id');
    const t0 = performance.now();
    const at = await api<{ slot: number; path: string }>('POST', `/v1/vms/${b}/volumes`, { name: 'data', path: '/mnt/data' });
    const attachMs = performance.now() - t0;
    assert.equal(at.status, 201, JSON.stringify(at.body));
    console.log(`# attach to a running VM (QMP swap + mount through the agent): ${attachMs.toFixed(0)} ms`);
    assert.equal(await sh(b, 'cat /mnt/data/hello'), mark);
    assert.equal(await sh(b, 'cat /proc/sys/kernel/random/boot_id'), bootId, 'no reboot');
    // A is gone, B writes: one writer at a time, and B is it now.
    const other = await api<{ error: { code: string } }>('POST', '/v1/vms', { image: 'desktop', volumes: [{ name: 'data', path: '/d' }] });
    assert.equal(other.body.error.code, 'VOLUME_IN_USE');
  });

  test('idle (its own short timeout) → hibernated; opening the viewer wakes it: the typed line, the tmpfs file and the volume are intact', async () => {
    await sh(b, `echo ${mark}-ram > /tmp/ram-marker`);
    // A line typed in the xterm over RFB (the manager's dial: a touch, no hold), Return not pressed yet.
    const rfb = await rfbConnect(await live.c.manager.dialVm(b, 5900, { timeoutMs: 10_000 }));
    rfb.pointer(300, 200);
    await new Promise((r) => setTimeout(r, 300));
    await rfb.type(`echo ${mark}-typed > /tmp/typed-marker`);
    await new Promise((r) => setTimeout(r, 1500));
    rfb.close();
    const set = await api<{ effective: { timeoutS: number; action: string } }>('PATCH', `/v1/vms/${b}/idle`, { idleTimeoutS: 2 });
    assert.deepEqual(set.body.effective, { timeoutS: 2, action: 'hibernate' });
    const t0 = Date.now();
    let hib = false;
    // GET /v1/vms/:id is not activity: polling it does not keep the VM awake.
    while (!hib && Date.now() - t0 < 60_000) {
      await new Promise((r) => setTimeout(r, 1000));
      hib = (await api<{ hibernated: boolean }>('GET', `/v1/vms/${b}`)).body.hibernated;
    }
    assert.ok(hib, 'the idle VM hibernated');
    await api('PATCH', `/v1/vms/${b}/idle`, { idleTimeoutS: 0 });
    // Opening the viewer (the controller's VNC bridge) wakes it: the VM is restored and the desktop answers.
    const { body: tok } = await api<{ token: string }>('POST', `/v1/vms/${b}/viewer`);
    const { ws, reader } = mustOpen(await openVnc(live.c.url, b, tok.token));
    try {
      assert.equal((await reader.read(12, 120_000)).toString('latin1'), 'RFB 003.008\n');
    } finally {
      ws.close();
    }
    assert.equal((await api<{ state: string; hibernated: boolean }>('GET', `/v1/vms/${b}`)).body.hibernated, false);
    // Then Return (computer use) runs the line typed before the hibernation.
    const key = await api<unknown>('POST', `/v1/vms/${b}/computer`, { action: 'key', text: 'Return' });
    assert.equal(key.status, 200, JSON.stringify(key.body));
    let typed = '';
    for (let i = 0; i < 20 && !typed; i++) {
      typed = await sh(b, 'cat /tmp/typed-marker 2>/dev/null || true');
      if (!typed) await new Promise((r) => setTimeout(r, 500));
    }
    assert.equal(typed, `${mark}-typed`, 'the line typed before hibernation ran after it');
    assert.equal(await sh(b, 'cat /tmp/ram-marker'), `${mark}-ram`, 'tmpfs kept');
    assert.equal(await sh(b, 'cat /mnt/data/hello'), mark, 'the volume is still mounted after the restore');
  });

  test('online growth, a copy, detach and removal', async () => {
    const grown = await api<Vol>('POST', '/v1/volumes/data/resize', { sizeMiB: 128 });
    assert.equal(grown.status, 200, JSON.stringify(grown.body));
    const kib = Number(await sh(b, "df -k /mnt/data | awk 'NR==2 {print $2}'"));
    assert.ok(kib > 100 * 1024, `the guest's filesystem grew online (${kib} KiB)`);
    assert.equal((await api('POST', '/v1/volumes/data/resize', { sizeMiB: 64 })).status, 400, 'volumes do not shrink');
    const copy = await api<Vol>('POST', '/v1/volumes/data/snapshot', { name: 'data-copy' });
    assert.equal(copy.status, 201, JSON.stringify(copy.body));
    assert.equal(copy.body.sizeMiB, 128);
    assert.equal((await api<{ error: { code: string } }>('DELETE', '/v1/volumes/data')).status, 409, 'an attached volume is not removed');
    assert.equal((await api('DELETE', `/v1/vms/${b}/volumes/data`)).status, 204);
    assert.equal(await sh(b, 'grep -c " /mnt/data " /proc/mounts || true'), '0', 'unmounted in the guest');
    assert.equal((await api('DELETE', '/v1/volumes/data')).status, 204);
    assert.equal((await api('DELETE', '/v1/volumes/data-copy')).status, 204);
    assert.ok(!existsSync(join(live.stateDir, 'volumes', `${copy.body.id}.ext4`)), 'the file is removed with the volume');
  });
});
