import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isHangarError } from '../../src/errors.js';
import { newViewerSecret, signViewerToken, tokenError, verifyViewerToken } from '../../src/desktop/token.js';

const secret = newViewerSecret();
const now = 1_700_000_000_000;
const nonceA = Buffer.alloc(16, 0xa1);

test('a token verifies for its VM until it expires, then says expired', () => {
  const token = signViewerToken(secret, 'vm-a', nonceA, now + 300_000);
  assert.match(token, /^[A-Za-z0-9_-]{76}$/);
  assert.deepEqual(verifyViewerToken(secret, 'vm-a', nonceA, token, now), { ok: true, expiresAt: now + 300_000, scope: 'control' });
  assert.deepEqual(verifyViewerToken(secret, 'vm-a', nonceA, token, now + 299_999), { ok: true, expiresAt: now + 300_000, scope: 'control' });
  assert.deepEqual(verifyViewerToken(secret, 'vm-a', nonceA, token, now + 300_000), { ok: false, reason: 'expired' });
});

test('a token for VM A never opens VM B, nor under another secret', () => {
  const token = signViewerToken(secret, 'vm-a', nonceA, now + 300_000);
  assert.deepEqual(verifyViewerToken(secret, 'vm-b', nonceA, token, now), { ok: false, reason: 'invalid' });
  assert.deepEqual(verifyViewerToken(secret, 'vm-a\0', nonceA, token, now), { ok: false, reason: 'invalid' });
  assert.deepEqual(verifyViewerToken(newViewerSecret(), 'vm-a', nonceA, token, now), { ok: false, reason: 'invalid' });
});

test('every single-character change is refused (no slack bits in the encoding)', () => {
  const token = signViewerToken(secret, 'vm-a', nonceA, now + 300_000);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  for (let i = 0; i < token.length; i++) {
    const c = alphabet[(alphabet.indexOf(token[i]!) + 1) % 64]!;
    const t = token.slice(0, i) + c + token.slice(i + 1);
    const r = verifyViewerToken(secret, 'vm-a', nonceA, t, now);
    assert.equal(r.ok, false, `position ${i}`);
  }
  // Extending the expiry without the key is a forgery like any other.
  const raw = Buffer.from(token, 'base64url');
  raw.writeBigUInt64BE(BigInt(now + 10 * 365 * 86_400_000), 1);
  assert.deepEqual(verifyViewerToken(secret, 'vm-a', nonceA, raw.toString('base64url'), now), { ok: false, reason: 'invalid' });
});

test('missing and malformed tokens are told apart from forged ones, without throwing', () => {
  assert.deepEqual(verifyViewerToken(secret, 'vm-a', nonceA, undefined, now), { ok: false, reason: 'missing' });
  assert.deepEqual(verifyViewerToken(secret, 'vm-a', nonceA, '', now), { ok: false, reason: 'missing' });
  for (const bad of ['x', 'a'.repeat(75), 'a'.repeat(77), `${'a'.repeat(75)}=`, `${'a'.repeat(75)}.`, 'A'.repeat(76)]) {
    assert.deepEqual(verifyViewerToken(secret, 'vm-a', nonceA, bad, now), { ok: false, reason: 'malformed' }, bad);
  }
});

test('two tokens for the same VM and expiry differ (nonce), and both verify', () => {
  const a = signViewerToken(secret, 'vm-a', nonceA, now + 1000);
  const b = signViewerToken(secret, 'vm-a', nonceA, now + 1000);
  assert.notEqual(a, b);
  assert.equal(verifyViewerToken(secret, 'vm-a', nonceA, a, now).ok, true);
  assert.equal(verifyViewerToken(secret, 'vm-a', nonceA, b, now).ok, true);
});

test('short secrets are refused; refusals carry the reason, never the token', () => {
  assert.throws(() => signViewerToken(Buffer.alloc(16), 'vm-a', nonceA, now), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT'));
  const e = tokenError('expired');
  assert.equal(e.code, 'VIEWER_TOKEN_INVALID');
  assert.deepEqual(e.details, { reason: 'expired' });
});

test('a token is bound to the VM\'s viewer nonce: a rotated nonce or a VM that is gone refuses it as invalid', () => {
  const token = signViewerToken(secret, 'vm-a', nonceA, now + 300_000);
  assert.equal(verifyViewerToken(secret, 'vm-a', nonceA, token, now).ok, true);
  // Revoke (rotation) and a new VM under the same id both bring a new nonce.
  assert.deepEqual(verifyViewerToken(secret, 'vm-a', Buffer.alloc(16, 0xa2), token, now), { ok: false, reason: 'invalid' });
  // No VM: no nonce; still 'invalid' (not 'expired', and format checks first).
  assert.deepEqual(verifyViewerToken(secret, 'vm-a', null, token, now), { ok: false, reason: 'invalid' });
  assert.deepEqual(verifyViewerToken(secret, 'vm-a', null, token, now + 400_000), { ok: false, reason: 'invalid' });
  assert.deepEqual(verifyViewerToken(secret, 'vm-a', null, 'x', now), { ok: false, reason: 'malformed' });
  assert.throws(() => signViewerToken(secret, 'vm-a', Buffer.alloc(8), now + 1), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT'));
});

test('scopes: view-only and CDP tokens say so, and a scope cannot be changed (the byte is under the MAC)', () => {
  const view = signViewerToken(secret, 'vm-a', nonceA, now + 1000, undefined, 'view');
  const cdp = signViewerToken(secret, 'vm-a', nonceA, now + 1000, undefined, 'cdp');
  assert.deepEqual(verifyViewerToken(secret, 'vm-a', nonceA, view, now), { ok: true, expiresAt: now + 1000, scope: 'view' });
  assert.deepEqual(verifyViewerToken(secret, 'vm-a', nonceA, cdp, now), { ok: true, expiresAt: now + 1000, scope: 'cdp' });
  const raw = Buffer.from(view, 'base64url');
  raw[0] = 2; // claim "control"
  assert.deepEqual(verifyViewerToken(secret, 'vm-a', nonceA, raw.toString('base64url'), now), { ok: false, reason: 'invalid' });
  raw[0] = 9; // no such scope
  assert.deepEqual(verifyViewerToken(secret, 'vm-a', nonceA, raw.toString('base64url'), now), { ok: false, reason: 'malformed' });
});
