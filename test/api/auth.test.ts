// The API token file (src/api/auth.ts): created 0600 whatever the umask, re-checked at every start, and replaced
// (not chmod'ed and kept) when others could read it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bearer, loadOrCreateToken, tokenMatches } from '../../src/api/auth.js';

test('token: created 0600 under a 0 umask, the same token at the next start', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-auth-'));
  const old = process.umask(0);
  try {
    const path = join(dir, 'token');
    const t = await loadOrCreateToken(path);
    assert.ok(t.length >= 32);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(await loadOrCreateToken(path), t);
  } finally {
    process.umask(old);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('token: a world-readable token file is replaced by a new token, and the controller is told why', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-auth-'));
  try {
    const path = join(dir, 'token');
    const leaked = 'L'.repeat(43);
    writeFileSync(path, leaked + '\n');
    chmodSync(path, 0o644);
    const why: string[] = [];
    const t = await loadOrCreateToken(path, (r) => why.push(r));
    assert.notEqual(t, leaked);
    assert.equal(readFileSync(path, 'utf8').trim(), t);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.deepEqual(why, ['mode 0644 lets others read it']);
    assert.ok(tokenMatches(bearer(`Bearer ${t}`), t) && !tokenMatches(leaked, t));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
