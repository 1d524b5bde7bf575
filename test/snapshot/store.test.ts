// Snapshots on disk: staged then published whole, read back only when the files match the manifest, listed newest
// first (broken ones skipped), removed by id; ids are validated before any path is built from them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isHangarError } from '../../src/errors.js';
import { fsync, hashFile, type Fsync } from '../../src/util/files.js';
import { isSnapshotManifest, SNAPSHOT_DISK, SNAPSHOT_MANIFEST, SNAPSHOT_SCHEMA, toSnapshotView, validSnapshotId, type SnapshotManifest } from '../../src/snapshot/manifest.js';
import { normalizeSnapshotRequest } from '../../src/snapshot/service.js';
import { SNAPSHOT_DIR_MODE, SnapshotStore } from '../../src/snapshot/store.js';

function manifest(id: string, created: string, files: SnapshotManifest['files']): SnapshotManifest {
  return {
    schema: SNAPSHOT_SCHEMA, id, created, source: { kind: 'vm', vmId: 'vm-1', vmName: 'one' },
    image: { id: 'desktop-abc', profile: 'desktop', rootfsSha256: null, kernelSha256: null },
    vmm: { kind: 'qemu', version: '7.2.22' },
    machine: { vcpus: 1, memMiB: 512, kernelPath: '/k', bootArgs: 'console=ttyS0' },
    guestNet: { ip: '10.0.0.2', mac: '02:48:0a:00:00:02', tap: 'hgtap0', gateway: '10.0.0.1', netmask: '255.255.255.0', prefix: 24, gatewayMac: null },
    files, durationsMs: { pause: 1, state: 2, disk: 3, total: 6 },
  };
}

test('publish, get, list newest first, remove; a file that does not match its manifest makes the snapshot invalid', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-snapstore-'));
  try {
    const store = new SnapshotStore(join(dir, 'snapshots'));
    const made: string[] = [];
    for (const created of ['2026-01-01T00:00:00.000Z', '2026-02-01T00:00:00.000Z']) {
      const id = store.newId();
      assert.doesNotThrow(() => validSnapshotId(id));
      const staging = await store.stage(id);
      writeFileSync(join(staging, 'state.bin'), 'memory');
      writeFileSync(join(staging, SNAPSHOT_DISK), 'disk');
      const files = { 'state.bin': await hashFile(join(staging, 'state.bin')), [SNAPSHOT_DISK]: await hashFile(join(staging, SNAPSHOT_DISK)) };
      const s = await store.publish(staging, manifest(id, created, files));
      assert.ok(!existsSync(staging) && existsSync(s.dir));
      made.push(id);
    }
    assert.deepEqual((await store.list()).map((s) => s.manifest.id), [...made].reverse());
    const one = await store.get(made[0]!);
    assert.ok(isSnapshotManifest(one.manifest));
    const view = toSnapshotView(one.manifest);
    assert.deepEqual(view.sizes, { 'state.bin': 6, [SNAPSHOT_DISK]: 4 });
    assert.equal(view.totalBytes, 10);
    assert.equal(view.guest.ip, '10.0.0.2');

    writeFileSync(join(one.dir, 'state.bin'), 'truncated'); // another size
    await assert.rejects(store.get(made[0]!), (e: unknown) => isHangarError(e, 'SNAPSHOT_FAILED'));
    assert.deepEqual((await store.list()).map((s) => s.manifest.id), [made[1]], 'a broken snapshot is not listed');

    await store.remove(made[0]!);
    await assert.rejects(store.get(made[0]!), (e: unknown) => isHangarError(e, 'SNAPSHOT_NOT_FOUND'));
    await assert.rejects(store.remove(made[0]!), (e: unknown) => isHangarError(e, 'SNAPSHOT_NOT_FOUND'));
    for (const bad of ['../etc', 'snap-XYZ', 'snap-0123abcd/..', '', 'snap-0123abc']) {
      await assert.rejects(store.get(bad), (e: unknown) => isHangarError(e, 'SNAPSHOT_NOT_FOUND'), bad);
    }
    assert.deepEqual(readdirSync(store.dir).filter((n) => n.startsWith('.')), [], 'no staging left behind');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a snapshot request names exactly one source', () => {
  assert.deepEqual(normalizeSnapshotRequest({ vm: 'vm-1234abcd' }), { vm: 'vm-1234abcd' });
  assert.deepEqual(normalizeSnapshotRequest({ image: 'desktop' }), { image: 'desktop' });
  for (const body of [{}, { vm: 'a', image: 'b' }, { vm: '../x' }, { image: 'a b' }, { vm: 3 }, null]) {
    assert.throws(() => normalizeSnapshotRequest(body), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT'), JSON.stringify(body));
  }
});

test('snapshot directories are 0700 (staging, published, and the snapshots directory, also one made 0750 before)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-snapstore-'));
  const old = process.umask(0);
  try {
    mkdirSync(join(dir, 'snapshots'), { mode: 0o750 });
    chmodSync(join(dir, 'snapshots'), 0o750);
    const store = new SnapshotStore(join(dir, 'snapshots'));
    const id = store.newId();
    const staging = await store.stage(id);
    assert.equal(statSync(staging).mode & 0o777, SNAPSHOT_DIR_MODE);
    assert.equal(statSync(store.dir).mode & 0o777, 0o700);
    writeFileSync(join(staging, 'state.bin'), 'memory');
    const s = await store.publish(staging, manifest(id, '2026-01-01T00:00:00.000Z', { 'state.bin': await hashFile(join(staging, 'state.bin')) }));
    assert.equal(statSync(s.dir).mode & 0o777, 0o700);
    assert.equal(SNAPSHOT_DIR_MODE, 0o700);
  } finally {
    process.umask(old);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('publish: the manifest and the staging directory are fsynced before the rename, the snapshots directory after', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-snapstore-'));
  try {
    const seen: string[] = [];
    const snapDir = join(dir, 'snapshots');
    const at = { id: '' };
    const where = (p: string): string => (p === snapDir ? 'snapshots' : p.endsWith(SNAPSHOT_MANIFEST) ? 'manifest' : 'staging');
    const spy: Fsync = {
      file: async (p) => { seen.push(`file ${where(p)} ${(JSON.parse(readFileSync(p, 'utf8')) as { id: string }).id === at.id ? 'whole' : '?'}`); await fsync.file(p); },
      dir: async (p) => { seen.push(`dir ${where(p)} published=${existsSync(join(snapDir, at.id))}`); await fsync.dir(p); },
    };
    const store = new SnapshotStore(snapDir, spy);
    at.id = store.newId();
    const staging = await store.stage(at.id);
    writeFileSync(join(staging, 'state.bin'), 'memory');
    await store.publish(staging, manifest(at.id, '2026-01-01T00:00:00.000Z', { 'state.bin': await hashFile(join(staging, 'state.bin')) }));
    assert.deepEqual(seen, ['file manifest whole', 'dir staging published=false', 'dir snapshots published=true']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
