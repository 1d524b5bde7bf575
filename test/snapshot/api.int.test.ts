// Snapshots, clones and hibernation through the real controller (HTTP API and the CLI as a separate process), real
// QEMU boots under TCG in a test network; snapshots are written under a temporary cache directory.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolvePaths } from '../../src/config.js';
import { listCloneNetns } from '../../src/net/clone.js';
import { run } from '../../src/util/exec.js';
import { ROOT, skipUnlessRoot } from '../support/env.js';
import { imageSkipReason } from '../support/controller.js';
import { removeLeftoverClones } from './cleanup.js';
import { mustOpen, openVnc } from '../desktop/harness.js';
import { startLiveController, type LiveController } from '../support/live-controller.js';

// Images from the real cache; everything this test writes (snapshots included) in temporary directories.
process.env.HANGAR_IMAGES_DIR ??= resolvePaths().imagesDir;
const skip = skipUnlessRoot() || (await imageSkipReason()) || false;
const HANGAR = join(ROOT, 'bin', 'hangar.js');

interface View { id: string; state: string; hibernated: boolean; network: { ip: string } | null; clone: { snapshot: string; netns: string; guestIp: string } | null }

describe('snapshots through the controller', { skip, concurrency: false }, () => {
  let live: LiveController;
  let cacheDir = '';
  before(async () => {
    cacheDir = mkdtempSync(join(tmpdir(), 'hangar-snapcache-'));
    process.env.HANGAR_CACHE_DIR = cacheDir; // the controller's snapshots dir is <cache>/snapshots
    live = await startLiveController({ net: { cidr: '10.220.0.0/29' }, config: { hibernateAfterS: 3600 } });
  });
  after(async () => {
    const cfg = live?.c.manager.netConfig;
    try {
      await live?.destroy();
    } finally {
      if (cacheDir) rmSync(cacheDir, { recursive: true, force: true });
    }
    if (cfg) assert.deepEqual(await removeLeftoverClones(cfg), [], 'no clone namespace left behind');
  });

  const cli = (args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> =>
    run(process.execPath, [HANGAR, ...args], { env: live.env, allowFailure: true, timeoutMs: 300_000 });
  const api = async <T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> => {
    const r = await fetch(live.c.url + path, {
      method, headers: { authorization: `Bearer ${live.c.token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}),
    });
    return { status: r.status, body: (r.status === 204 ? null : await r.json()) as T };
  };

  test('CLI snapshot create/ls/rm; clones via POST /v1/vms; GET /v1/vms shows each at its own address; hibernate and resume by API', async () => {
    assert.ok(live.c.loops.some((l) => l.name === 'idler'), 'the idle policy runs');
    const created = await cli(['snapshot', 'create', '--image', 'desktop', '--json']);
    assert.equal(created.code, 0, created.stderr);
    const snap = JSON.parse(created.stdout) as { id: string; guest: { ip: string }; sizes: Record<string, number> };
    assert.match(snap.id, /^snap-[0-9a-f]{8}$/);
    assert.ok(snap.sizes['state.bin']! > 0 && snap.sizes['disk.ext4']! > 0);

    const clones = await Promise.all([0, 1].map((i) => api<View>('POST', '/v1/vms?wait=true', { fromSnapshot: snap.id, name: `api-clone-${i}` })));
    assert.deepEqual(clones.map((c) => c.status), [201, 201], JSON.stringify(clones.map((c) => c.body)));
    const list = (await api<{ vms: View[] }>('GET', '/v1/vms')).body.vms;
    const mine = list.filter((v) => v.clone?.snapshot === snap.id);
    assert.equal(mine.length, 2);
    assert.equal(new Set(mine.map((v) => v.network!.ip)).size, 2, 'each clone has its own address');
    assert.equal(new Set(mine.map((v) => v.clone!.netns)).size, 2, 'and its own namespace');
    assert.ok(mine.every((v) => v.clone!.guestIp === snap.guest.ip && v.state === 'ready'));
    assert.deepEqual((await listCloneNetns(live.c.manager.netConfig)).sort(), mine.map((v) => v.clone!.netns).sort());

    // Each clone through the controller's viewer bridge (token bound to that clone): its own guest's RFB banner.
    const viewerBanner = async (id: string): Promise<string> => {
      const { body } = await api<{ token: string }>('POST', `/v1/vms/${id}/viewer`);
      const { ws, reader } = mustOpen(await openVnc(live.c.url, id, body.token));
      try {
        return (await reader.read(12, 120_000)).toString('latin1');
      } finally {
        ws.close();
      }
    };
    for (const v of mine) assert.equal(await viewerBanner(v.id), 'RFB 003.008\n', `viewer bridge to clone ${v.id}`);

    const ls = await cli(['snapshot', 'ls']);
    assert.match(ls.stdout, /^ID\s+SOURCE\s+IMAGE\s+VMM/m);
    assert.ok(ls.stdout.includes(snap.id));

    // Hibernate a clone through the API and bring it back: same address, same namespace name, ready again.
    const one = mine[0]!;
    const hib = await api<View>('POST', `/v1/vms/${one.id}/hibernate`);
    assert.equal(hib.status, 200, JSON.stringify(hib.body));
    assert.deepEqual([hib.body.state, hib.body.hibernated], ['stopped', true]);
    assert.ok(!(await listCloneNetns(live.c.manager.netConfig)).includes(one.clone!.netns), 'its namespace is gone while it sleeps');
    const back = await api<View>('POST', `/v1/vms/${one.id}/resume`);
    assert.equal(back.status, 200, JSON.stringify(back.body));
    assert.deepEqual([back.body.state, back.body.hibernated, back.body.network!.ip], ['ready', false, one.network!.ip]);
    const banner = await new Promise<string>((resolve, reject) => {
      void live.c.manager.dialVm(one.id, 5900).then((s) => {
        s.on('error', () => undefined); // destroying a relayed stream reports an abort
        s.once('data', (d: Buffer) => { resolve(d.toString('latin1')); s.destroy(); });
      }, reject);
    });
    assert.match(banner, /^RFB/);

    const hibCli = await cli(['vm', 'hibernate', mine[1]!.id, '--json']);
    assert.equal(hibCli.code, 0, hibCli.stderr);
    assert.equal((JSON.parse(hibCli.stdout) as View).hibernated, true);
    // Opening the viewer restores a hibernated VM transparently.
    assert.equal(await viewerBanner(mine[1]!.id), 'RFB 003.008\n');
    const woke = (await api<View>('GET', `/v1/vms/${mine[1]!.id}`)).body;
    assert.deepEqual([woke.state, woke.hibernated], ['ready', false]);

    // The snapshot cannot be deleted from under its clones: refused, naming them, nothing deleted.
    const inUse = await cli(['snapshot', 'rm', snap.id]);
    assert.equal(inUse.code, 2, inUse.stderr);
    assert.match(inUse.stderr, /SNAPSHOT_IN_USE/);
    for (const v of mine) assert.ok(inUse.stderr.includes(v.id), `names ${v.id}`);
    assert.equal((await api<{ snapshots: unknown[] }>('GET', '/v1/snapshots')).body.snapshots.length, 1);
    // --force convert makes them independent: a clone hibernated and started again after the snapshot is gone works.
    const conv = await cli(['snapshot', 'rm', snap.id, '--force', 'convert']);
    assert.equal(conv.code, 0, conv.stderr);
    assert.equal((await api<View>('POST', `/v1/vms/${one.id}/hibernate`)).status, 200);
    const again = await api<View>('POST', `/v1/vms/${one.id}/start?wait=true`);
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(again.body.state, 'ready');
    for (const v of mine) assert.equal((await api('DELETE', `/v1/vms/${v.id}`)).status, 204);
    const rm = await cli(['snapshot', 'rm', snap.id]);
    assert.equal(rm.code, 2, 'a deleted snapshot is not found: exit 2');
    assert.deepEqual((await api<{ snapshots: unknown[] }>('GET', '/v1/snapshots')).body.snapshots, []);
    assert.deepEqual(await listCloneNetns(live.c.manager.netConfig), []);
  });
});
