// Deleting images (src/image/prune.ts, `hangar image rm|prune`): the pure plan, who pins an image (a VM row in the
// real SQLite state database, a snapshot manifest), and the CLI end to end on a temporary images directory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { link, mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { main } from '../../src/cli/main.js';
import { isHangarError } from '../../src/errors.js';
import { cacheLayout, KERNEL_FILE, MANIFEST_FILE, MANIFEST_SCHEMA, ROOTFS_FILE } from '../../src/image/plan.js';
import { listArtifacts, planPrune, readImageUsers, removeArtifacts, removeImage } from '../../src/image/prune.js';
import { listImages, type ImageInfo } from '../../src/image/store.js';
import { resolvePaths, type HangarPaths } from '../../src/config.js';
import { SNAPSHOT_DISK, SNAPSHOT_MANIFEST, SNAPSHOT_SCHEMA } from '../../src/snapshot/manifest.js';
import { Store } from '../../src/store/store.js';

const info = (id: string, profile: 'desktop' | 'browser', created: string): ImageInfo => ({
  id, profile, created, kernelVersion: '6.1', dir: `/x/${id}`, kernelPath: '', rootfsPath: '', manifestPath: '', sizes: { vmlinux: 1, rootfs: 2 },
  manifest: {} as ImageInfo['manifest'],
});

test('planPrune: per profile the N newest stay, and every image in use; the rest go', () => {
  const images = [
    info('desktop-a', 'desktop', '2026-01-01T00:00:00Z'), info('desktop-b', 'desktop', '2026-03-01T00:00:00Z'),
    info('desktop-c', 'desktop', '2026-02-01T00:00:00Z'), info('browser-a', 'browser', '2026-01-05T00:00:00Z'),
  ];
  const users = new Map([['desktop-a', ['vm web-1 (vm-1)']]]);
  const p1 = planPrune(images, 1, users);
  assert.deepEqual(p1.remove.map((i) => i.id), ['desktop-c']);
  assert.deepEqual(p1.keep.map((k) => [k.image.id, k.reason]), [
    ['desktop-b', 'newest desktop image'], ['browser-a', 'newest browser image'], ['desktop-a', 'in use by vm web-1 (vm-1)'],
  ]);
  assert.deepEqual(planPrune(images, 0, users).remove.map((i) => i.id), ['desktop-b', 'desktop-c', 'browser-a']);
  assert.deepEqual(planPrune(images, 5, new Map()).remove, []);
  for (const bad of [-1, 1.5, Number.NaN]) assert.throws(() => planPrune(images, bad, users), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT'));
});

/** An image as the pipeline publishes it: files hard-linked from its kernel and rootfs artifacts in the cache. */
async function fakeImage(paths: HangarPaths, id: string, profile: string, created: string, keys = { kernel: 'k0', rootfs: id }): Promise<void> {
  const layout = cacheLayout(paths.cacheDir);
  const kernelKey = keys.kernel.padEnd(64, '0');
  const rootfsKey = keys.rootfs.replace(/[^0-9a-f]/g, 'f').padEnd(64, '0');
  const kdir = layout.kernelArtifact(kernelKey);
  const rdir = layout.rootfsArtifact(rootfsKey);
  await mkdir(kdir, { recursive: true });
  await mkdir(rdir, { recursive: true });
  if (!existsSync(join(kdir, KERNEL_FILE))) await writeFile(join(kdir, KERNEL_FILE), Buffer.alloc(8192, 1));
  await writeFile(join(rdir, ROOTFS_FILE), Buffer.alloc(16384, 2));
  const dir = join(paths.imagesDir, id);
  await mkdir(dir, { recursive: true });
  await link(join(kdir, KERNEL_FILE), join(dir, KERNEL_FILE));
  await link(join(rdir, ROOTFS_FILE), join(dir, ROOTFS_FILE));
  await writeFile(join(dir, MANIFEST_FILE), JSON.stringify({
    schema: MANIFEST_SCHEMA, id, profile, created, kernel: { version: '6.1.0' }, inputs: { kernelKey, rootfsKey },
    files: { [KERNEL_FILE]: { size: 8192 }, [ROOTFS_FILE]: { size: 16384 } },
  }));
}

async function withDirs(fn: (paths: HangarPaths) => Promise<void>): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'hangar-prune-'));
  const saved = { ...process.env };
  process.env.HANGAR_STATE_DIR = join(root, 'state');
  process.env.HANGAR_CACHE_DIR = join(root, 'cache');
  delete process.env.HANGAR_IMAGES_DIR;
  try {
    await fn(resolvePaths());
  } finally {
    for (const k of ['HANGAR_STATE_DIR', 'HANGAR_CACHE_DIR', 'HANGAR_IMAGES_DIR']) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
    await rm(root, { recursive: true, force: true });
  }
}

function io(): { out: string[]; err: string[]; io: { out: (s: string) => void; err: (s: string) => void } } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (s) => out.push(s), err: (s) => err.push(s) } };
}

test('a VM row and a snapshot pin their images: rm refuses with IMAGE_IN_USE and deletes nothing; prune skips them', async () => {
  await withDirs(async (paths) => {
    await fakeImage(paths, 'desktop-old1', 'desktop', '2026-01-01T00:00:00Z');
    await fakeImage(paths, 'desktop-old2', 'desktop', '2026-01-02T00:00:00Z');
    await fakeImage(paths, 'desktop-old3', 'desktop', '2026-01-03T00:00:00Z');
    await fakeImage(paths, 'desktop-new', 'desktop', '2026-02-01T00:00:00Z');
    const store = new Store(join(paths.stateDir, 'state.db'));
    try {
      store.insertVm({
        id: 'vm-1', name: 'web-1', state: 'stopped', imageId: 'desktop-old1', profile: 'desktop', vmm: 'qemu', vcpus: 1, memMiB: 512,
        ttlS: null, expiresAt: null, runDir: join(paths.stateDir, 'vms', 'vm-1'), spec: null, net: null,
      });
      const snapDir = join(paths.snapshotsDir, 'snap-0000abcd'); // where the controller keeps them
      await mkdir(snapDir, { recursive: true });
      await writeFile(join(snapDir, SNAPSHOT_MANIFEST), JSON.stringify({
        schema: SNAPSHOT_SCHEMA, id: 'snap-0000abcd', created: '2026-01-04T00:00:00Z', image: { id: 'desktop-old2', profile: 'desktop' },
        vmm: { kind: 'qemu' }, machine: {}, guestNet: {}, files: { [SNAPSHOT_DISK]: { size: 1 } },
      }));

      const users = await readImageUsers(paths); // while the controller's database is open: read-only, no lock taken
      assert.deepEqual(Object.fromEntries(users), { 'desktop-old1': ['vm web-1 (vm-1)'], 'desktop-old2': ['snapshot snap-0000abcd'] });

      const pinned = (await listImages(paths)).find((i) => i.id === 'desktop-old1')!;
      await assert.rejects(removeImage(pinned, users, paths), (e: unknown) => isHangarError(e, 'IMAGE_IN_USE') && /vm web-1/.test(e.message));
      const a = io();
      assert.equal(await main(['image', 'rm', 'desktop-old2', '--json'], a.io), 2, 'a conflict with the current state: exit 2');
      assert.equal(JSON.parse(a.out.join('')).error.code, 'IMAGE_IN_USE');
      assert.equal((await listImages(paths)).length, 4, 'a refused rm deletes nothing');

      const dry = io();
      assert.equal(await main(['image', 'prune', '--dry-run', '--json'], dry.io), 0);
      const planned = JSON.parse(dry.out.join('')) as { dryRun: boolean; removed: string[]; kept: { id: string; reason: string }[]; freedBytes: number };
      const blocksOf = async (f: string): Promise<number> => (await stat(join(paths.imagesDir, 'desktop-old3', f))).blocks * 512;
      assert.deepEqual([planned.dryRun, planned.removed, planned.freedBytes], [true, ['desktop-old3'], await blocksOf(MANIFEST_FILE)],
        'only its manifest: kernel and rootfs are still linked from the build cache');
      const dryAll = io();
      assert.equal(await main(['image', 'prune', '--dry-run', '--artifacts', '--json'], dryAll.io), 0);
      const all = JSON.parse(dryAll.out.join('')) as typeof planned & { artifacts: string[] };
      assert.ok((await blocksOf(ROOTFS_FILE)) > 0);
      assert.deepEqual([all.removed, all.artifacts, all.freedBytes], [['desktop-old3'], [`rootfs/${'desktop-old3'.replace(/[^0-9a-f]/g, 'f').padEnd(16, '0')}`], (await blocksOf(MANIFEST_FILE)) + (await blocksOf(ROOTFS_FILE))],
        'with --artifacts: its rootfs artifact goes too (the kernel artifact is shared with kept images), and that frees the rootfs');
      assert.equal((await listImages(paths)).length, 4, '--dry-run deletes nothing');

      const done = io();
      assert.equal(await main(['image', 'prune', '--artifacts'], done.io), 0);
      assert.match(done.out.join(''), /desktop-old3\s+desktop\s+\S+\s+deleted/);
      assert.match(done.out.join(''), /desktop-old1 .*kept: in use by vm web-1/);
      assert.deepEqual((await listImages(paths)).map((i) => i.id).sort(), ['desktop-new', 'desktop-old1', 'desktop-old2']);
      assert.deepEqual((await readdir(paths.imagesDir)).sort(), ['desktop-new', 'desktop-old1', 'desktop-old2'], 'nothing left behind');
      const layout = cacheLayout(paths.cacheDir);
      assert.equal((await readdir(dirname(layout.rootfsArtifact('x')))).length, 3, 'the rootfs artifacts of the kept images stay');
      assert.equal((await readdir(dirname(layout.kernelArtifact('x')))).length, 1, 'and their shared kernel');

      store.deleteVm('vm-1');
      const rmOk = io();
      assert.equal(await main(['image', 'rm', 'desktop-old1'], rmOk.io), 0, rmOk.err.join(''));
      assert.match(rmOk.out.join(''), /^deleted desktop-old1/);
      const gone = io();
      assert.equal(await main(['image', 'rm', 'desktop-old1', '--json'], gone.io), 2, 'a deleted image is not found: exit 2');
      assert.equal(JSON.parse(gone.out.join('')).error.code, 'IMAGE_NOT_FOUND');
      const bad = io();
      assert.equal(await main(['image', 'prune', '--keep', 'two'], bad.io), 2);
    } finally {
      store.close();
    }
  });
});

test('the build cache is left alone while a build runs (a live lock holder): IMAGE_BUILD_LOCKED, nothing deleted', async () => {
  await withDirs(async (paths) => {
    await fakeImage(paths, 'desktop-a', 'desktop', '2026-01-01T00:00:00Z');
    const layout = cacheLayout(paths.cacheDir);
    await mkdir(layout.locks, { recursive: true });
    await writeFile(join(layout.locks, 'image-desktop-b.lock'), JSON.stringify({ pid: process.pid, started: new Date().toISOString() }));
    const artifacts = await listArtifacts(paths);
    assert.equal(artifacts.length, 2);
    await assert.rejects(removeArtifacts(artifacts, paths), (e: unknown) => isHangarError(e, 'IMAGE_BUILD_LOCKED'));
    assert.equal((await listArtifacts(paths)).length, 2);
    const cli = io();
    assert.equal(await main(['image', 'prune', '--keep', '0', '--artifacts', '--json'], cli.io), 2, 'a conflict with the current state: exit 2');
    assert.equal(JSON.parse(cli.out.join('')).error.code, 'IMAGE_BUILD_LOCKED');
    assert.deepEqual((await listImages(paths)).map((i) => i.id), ['desktop-a'], 'refused before any image went, not halfway');
    await writeFile(join(layout.locks, 'image-desktop-b.lock'), JSON.stringify({ pid: 2 ** 22 + 1 })); // a crashed build's lock
    await removeArtifacts(artifacts, paths);
    assert.deepEqual(await listArtifacts(paths), []);
  });
});
