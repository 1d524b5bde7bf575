import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isHangarError } from '../../src/errors.js';
import { MANIFEST_SCHEMA, type ImageManifest } from '../../src/image/plan.js';
import { acquireLock, cleanStaleStaging, listImages, makeStaging, publishDir, readImage, resolveImage, waitForLock, writeJsonFile } from '../../src/image/store.js';
import { fsync, type Fsync } from '../../src/util/files.js';

async function tmp(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'hangar-store-'));
}

/** A pid that is certainly dead: a child that has exited. */
function deadPid(): number {
  return spawnSync(process.execPath, ['-e', '0']).pid!;
}

/** A small fake image directory with a manifest that matches its files. */
async function fakeImage(imagesDir: string, id: string, profile: 'desktop' | 'browser', created: string): Promise<string> {
  const dir = join(imagesDir, id);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'vmlinux'), 'kernel');
  await writeFile(join(dir, 'rootfs.ext4'), 'rootfs!');
  const manifest = {
    schema: MANIFEST_SCHEMA, id, profile, created,
    kernel: { version: '6.1.192' },
    files: { vmlinux: { sha256: 'x', size: 6 }, 'rootfs.ext4': { sha256: 'y', size: 7, mtimeMs: (await stat(join(dir, 'rootfs.ext4'))).mtimeMs } },
  } as unknown as ImageManifest;
  await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest));
  return dir;
}

test('lock: a second holder gets IMAGE_BUILD_LOCKED; a dead holder is taken over; release frees it', async () => {
  const d = await tmp();
  try {
    const lock = join(d, 'locks', 'image-x.lock');
    const release = await acquireLock(lock, 'image x');
    await assert.rejects(acquireLock(lock, 'image x'), (e) => isHangarError(e, 'IMAGE_BUILD_LOCKED'));
    await release();
    await writeFile(lock, JSON.stringify({ pid: deadPid(), started: 'then' }));
    const again = await acquireLock(lock, 'image x');
    assert.equal(JSON.parse(await readFile(lock, 'utf8')).pid, process.pid);
    await again();
    await assert.rejects(stat(lock));
    // A live other process holding it (our parent is alive) also blocks.
    await writeFile(lock, JSON.stringify({ pid: process.ppid, started: 'now' }));
    await assert.rejects(acquireLock(lock, 'image x'), (e) => isHangarError(e, 'IMAGE_BUILD_LOCKED') && /pid/.test(e.message));
  } finally {
    await rm(d, { recursive: true, force: true });
  }
});

test('waitForLock: waits while another live process holds the lock, takes it once that process is gone; times out otherwise', async () => {
  const d = await tmp();
  const holder = spawn('sleep', ['30']);
  try {
    const lock = join(d, 'locks', 'debs.lock');
    await mkdir(join(d, 'locks'));
    await writeFile(lock, JSON.stringify({ pid: holder.pid, started: 'now' }));
    const heard: string[] = [];
    await assert.rejects(waitForLock(lock, 'the deb cache', { timeoutMs: 200, pollMs: 20, onWait: (m) => heard.push(m) }), (e) => isHangarError(e, 'IMAGE_BUILD_LOCKED'));
    assert.deepEqual(heard, [`waiting for the deb cache: held by pid ${holder.pid}`], 'said once who holds it');
    const t0 = Date.now();
    const waiting = waitForLock(lock, 'the deb cache', { timeoutMs: 10_000, pollMs: 20 });
    setTimeout(() => holder.kill('SIGKILL'), 300);
    const release = await waiting;
    assert.ok(Date.now() - t0 >= 250, 'it waited for the holder');
    assert.equal(JSON.parse(await readFile(lock, 'utf8')).pid, process.pid);
    // Our own lock is never waited for (that would wait forever).
    await assert.rejects(waitForLock(lock, 'the deb cache', { timeoutMs: 5_000 }), (e) => isHangarError(e, 'IMAGE_BUILD_LOCKED'));
    await release();
  } finally {
    holder.kill('SIGKILL');
    await rm(d, { recursive: true, force: true });
  }
});

test('publish is a rename of a complete staging directory; an existing target is replaced whole', async () => {
  const d = await tmp();
  try {
    const s1 = await makeStaging(d, 'img');
    await writeFile(join(s1, 'a'), '1');
    await publishDir(s1, join(d, 'final'));
    assert.equal(await readFile(join(d, 'final', 'a'), 'utf8'), '1');
    const s2 = await makeStaging(d, 'img');
    await writeFile(join(s2, 'b'), '2');
    await publishDir(s2, join(d, 'final'));
    assert.deepEqual(await readdir(join(d, 'final')), ['b']);
    assert.deepEqual((await readdir(d)).sort(), ['final'], 'no staging or aside directory left');
  } finally {
    await rm(d, { recursive: true, force: true });
  }
});

test('stale staging directories (builder gone) are removed; a live builder keeps its own', async () => {
  const d = await tmp();
  try {
    const mine = await makeStaging(d, 'image-x');
    const stale = join(d, `.staging-image-y-${deadPid()}-abcdef`);
    await mkdir(join(stale, 'deep'), { recursive: true });
    await writeFile(join(stale, 'deep', 'rootfs.ext4'), 'half written');
    const removed = await cleanStaleStaging(d);
    assert.deepEqual(removed, [stale.slice(d.length + 1)]);
    await stat(mine);
    await assert.rejects(stat(stale));
  } finally {
    await rm(d, { recursive: true, force: true });
  }
});

test('listImages: newest first, skips staging and broken directories; resolveImage by id, prefix, profile', async () => {
  const d = await tmp();
  const paths = { stateDir: d, cacheDir: d, imagesDir: join(d, 'images'), snapshotsDir: join(d, 'snapshots') };
  try {
    assert.deepEqual(await listImages(paths), []);
    await fakeImage(paths.imagesDir, 'desktop-aaaaaaaaaaaa', 'desktop', '2026-01-01T00:00:00.000Z');
    await fakeImage(paths.imagesDir, 'desktop-abbbbbbbbbbb', 'desktop', '2026-01-03T00:00:00.000Z');
    await fakeImage(paths.imagesDir, 'browser-cccccccccccc', 'browser', '2026-01-02T00:00:00.000Z');
    await mkdir(join(paths.imagesDir, '.staging-image-desktop-zzz-1-abcdef'), { recursive: true });
    await mkdir(join(paths.imagesDir, 'broken'), { recursive: true });
    const list = await listImages(paths);
    assert.deepEqual(list.map((i) => i.id), ['desktop-abbbbbbbbbbb', 'browser-cccccccccccc', 'desktop-aaaaaaaaaaaa']);
    const first = list[0]!;
    assert.equal(first.kernelPath, join(paths.imagesDir, first.id, 'vmlinux'));
    assert.equal(first.rootfsPath, join(paths.imagesDir, first.id, 'rootfs.ext4'));
    assert.deepEqual(first.sizes, { vmlinux: 6, rootfs: 7 });
    assert.equal((await resolveImage('desktop', paths)).id, 'desktop-abbbbbbbbbbb', 'profile → newest of it');
    assert.equal((await resolveImage('browser-c', paths)).id, 'browser-cccccccccccc', 'unique prefix');
    assert.equal((await resolveImage('desktop-aaaaaaaaaaaa', paths)).id, 'desktop-aaaaaaaaaaaa');
    await assert.rejects(resolveImage('desktop-a', paths), (e) => isHangarError(e, 'IMAGE_NOT_FOUND') && /ambiguous/.test(e.message));
    await assert.rejects(resolveImage('nope', paths), (e) => isHangarError(e, 'IMAGE_NOT_FOUND'));
    await assert.rejects(resolveImage('', paths), (e) => isHangarError(e, 'IMAGE_NOT_FOUND'));
  } finally {
    await rm(d, { recursive: true, force: true });
  }
});

test('an image whose file changed size or mtime since publish is IMAGE_INVALID (and not listed)', async () => {
  const d = await tmp();
  try {
    const dir = await fakeImage(d, 'desktop-111111111111', 'desktop', '2026-01-01T00:00:00.000Z');
    await readImage(dir);
    await utimes(join(dir, 'rootfs.ext4'), new Date(), new Date(Date.now() + 60_000));
    await assert.rejects(readImage(dir), (e) => isHangarError(e, 'IMAGE_INVALID') && /modified/.test(e.message));
    await writeFile(join(dir, 'vmlinux'), 'longer kernel');
    await assert.rejects(readImage(dir), (e) => isHangarError(e, 'IMAGE_INVALID') && /size/.test(e.message));
    assert.deepEqual(await listImages({ stateDir: d, cacheDir: d, imagesDir: d, snapshotsDir: d }), []);
  } finally {
    await rm(d, { recursive: true, force: true });
  }
});

test('an image manifest is fsynced before publishDir renames its staging directory; the parent after', async () => {
  const d = await tmp();
  try {
    const final = join(d, 'images', 'desktop-abc');
    const staging = await makeStaging(join(d, 'images'), 'desktop-abc');
    const seen: string[] = [];
    const spy: Fsync = {
      file: async (p) => { seen.push(`file ${p === join(staging, 'manifest.json') ? 'manifest' : p} ${(await readFile(p, 'utf8')).includes('"id"') ? 'written' : 'empty'}`); await fsync.file(p); },
      dir: async (p) => {
        const published = await stat(final).then(() => true, () => false);
        seen.push(`dir ${p === staging ? 'staging' : p === join(d, 'images') ? 'parent' : p} published=${published}`);
        await fsync.dir(p);
      },
    };
    await writeJsonFile(join(staging, 'manifest.json'), { id: 'desktop-abc' }, spy);
    await publishDir(staging, final, spy);
    assert.deepEqual(seen, ['file manifest written', 'dir staging published=false', 'dir parent published=true']);
    assert.deepEqual(JSON.parse(await readFile(join(final, 'manifest.json'), 'utf8')), { id: 'desktop-abc' });
  } finally {
    await rm(d, { recursive: true, force: true });
  }
});
