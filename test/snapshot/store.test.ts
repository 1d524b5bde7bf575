// Snapshots on disk: staged then published whole, read back only when the files match the manifest, listed newest
// first (broken ones skipped), removed by id; ids are validated before any path is built from them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isHangarError } from '../../src/errors.js';
import { hashFile } from '../../src/util/files.js';
import { isSnapshotManifest, SNAPSHOT_DISK, SNAPSHOT_SCHEMA, toSnapshotView, validSnapshotId, type SnapshotManifest } from '../../src/snapshot/manifest.js';
import { normalizeSnapshotRequest } from '../../src/snapshot/service.js';
import { SnapshotStore } from '../../src/snapshot/store.js';

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
