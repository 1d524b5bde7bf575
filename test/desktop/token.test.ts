import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isHangarError } from '../../src/errors.js';
import { newViewerSecret, signViewerToken, tokenError, verifyViewerToken } from '../../src/desktop/token.js';

const secret = newViewerSecret();
const now = 1_700_000_000_000;

test('a token verifies for its VM until it expires, then says expired', () => {
  const token = signViewerToken(secret, 'vm-a', now + 300_000);
  assert.match(token, /^[A-Za-z0-9_-]{76}$/);
  assert.deepEqual(verifyViewerToken(secret, 'vm-a', token, now), { ok: true, expiresAt: now + 300_000 });
  assert.deepEqual(verifyViewerToken(secret, 'vm-a', token, now + 299_999), { ok: true, expiresAt: now + 300_000 });
  assert.deepEqual(verifyViewerToken(secret, 'vm-a', token, now + 300_000), { ok: false, reason: 'expired' });
});

test('a token for VM A never opens VM B, nor under another secret', () => {
  const token = signViewerToken(secret, 'vm-a', now + 300_000);
  assert.deepEqual(verifyViewerToken(secret, 'vm-b', token, now), { ok: false, reason: 'invalid' });
  assert.deepEqual(verifyViewerToken(secret, 'vm-a\0', token, now), { ok: false, reason: 'invalid' });
  assert.deepEqual(verifyViewerToken(newViewerSecret(), 'vm-a', token, now), { ok: false, reason: 'invalid' });
});

test('every single-character change is refused (no slack bits in the encoding)', () => {
  const token = signViewerToken(secret, 'vm-a', now + 300_000);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  for (let i = 0; i < token.length; i++) {
    const c = alphabet[(alphabet.indexOf(token[i]!) + 1) % 64]!;
    const t = token.slice(0, i) + c + token.slice(i + 1);
    const r = verifyViewerToken(secret, 'vm-a', t, now);
    assert.equal(r.ok, false, `position ${i}`);
  }
  // Extending the expiry without the key is a forgery like any other.
  const raw = Buffer.from(token, 'base64url');
  raw.writeBigUInt64BE(BigInt(now + 10 * 365 * 86_400_000), 1);
  assert.deepEqual(verifyViewerToken(secret, 'vm-a', raw.toString('base64url'), now), { ok: false, reason: 'invalid' });
});

test('missing and malformed tokens are told apart from forged ones, without throwing', () => {
  assert.deepEqual(verifyViewerToken(secret, 'vm-a', undefined, now), { ok: false, reason: 'missing' });
  assert.deepEqual(verifyViewerToken(secret, 'vm-a', '', now), { ok: false, reason: 'missing' });
  for (const bad of ['x', 'a'.repeat(75), 'a'.repeat(77), `${'a'.repeat(75)}=`, `${'a'.repeat(75)}.`, 'A'.repeat(76)]) {
    assert.deepEqual(verifyViewerToken(secret, 'vm-a', bad, now), { ok: false, reason: 'malformed' }, bad);
  }
});

test('two tokens for the same VM and expiry differ (nonce), and both verify', () => {
  const a = signViewerToken(secret, 'vm-a', now + 1000);
  const b = signViewerToken(secret, 'vm-a', now + 1000);
  assert.notEqual(a, b);
  assert.equal(verifyViewerToken(secret, 'vm-a', a, now).ok, true);
  assert.equal(verifyViewerToken(secret, 'vm-a', b, now).ok, true);
});

test('short secrets are refused; refusals carry the reason, never the token', () => {
  assert.throws(() => signViewerToken(Buffer.alloc(16), 'vm-a', now), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT'));
  const e = tokenError('expired');
  assert.equal(e.code, 'VIEWER_TOKEN_INVALID');
  assert.deepEqual(e.details, { reason: 'expired' });
});
