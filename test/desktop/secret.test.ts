// The viewer-token key file (src/desktop/secret.ts): 0600 whatever the umask, kept across starts, replaced when
// others could read it (links signed with the old key stop working: they last minutes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadOrCreateViewerSecret } from '../../src/desktop/secret.js';

test('viewer key: created 0600 under a 0 umask, the same key at the next start', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-secret-'));
  const old = process.umask(0);
  try {
    const path = join(dir, 'viewer.key');
    const k = await loadOrCreateViewerSecret(path);
    assert.ok(k.length >= 32);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.deepEqual(await loadOrCreateViewerSecret(path), k);
  } finally {
    process.umask(old);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('viewer key: a group-readable key file is replaced by a new key', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-secret-'));
  try {
    const path = join(dir, 'viewer.key');
    const leaked = Buffer.alloc(32, 7);
    writeFileSync(path, leaked.toString('base64') + '\n');
    chmodSync(path, 0o640);
    const why: string[] = [];
    const k = await loadOrCreateViewerSecret(path, (r) => why.push(r));
    assert.notDeepEqual(k, leaked);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.deepEqual(why, ['mode 0640 lets others read it']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
