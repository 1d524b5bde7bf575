// Viewer tokens: short-lived, signed, bound to one VM. Pure functions (the clock and the nonces are inputs).
//
// Layout (57 bytes → exactly 76 base64url characters, so no padding bits can be flipped unnoticed):
//   [version/scope 1][expiry ms, uint64 BE 8][nonce 16][HMAC-SHA256 32]
// The first byte says the token's scope (2: a viewer in control — the original format, so existing tokens keep
// working; 3: view-only; 4: CDP only); it is under the MAC, so a view-only token cannot be turned into another.
// The MAC covers a domain label, the VM id, the VM's viewer nonce and the first 25 bytes. Neither the VM id nor
// the VM's nonce is inside the token: a token presented for another VM, for a VM whose nonce was rotated (revoke)
// or for a VM that no longer exists (its nonce died with its row) fails the MAC, indistinguishable from a
// tampered one (all are 'invalid'). A new VM reusing the id or name of a destroyed one has a new nonce.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { VIEWER_NONCE_BYTES } from '../domain/vm.js';
import { HangarError } from '../errors.js';

/** What a token lets its holder do. */
export type TokenScope = 'control' | 'view' | 'cdp';
const SCOPE_BYTE: Readonly<Record<TokenScope, number>> = { control: 2, view: 3, cdp: 4 };
const BYTE_SCOPE: ReadonlyMap<number, TokenScope> = new Map(Object.entries(SCOPE_BYTE).map(([k, v]) => [v, k as TokenScope]));
const HEAD = 1 + 8 + 16;
const MAC_LEN = 32;
const TOKEN_BYTES = HEAD + MAC_LEN;
const TOKEN_RE = /^[A-Za-z0-9_-]{76}$/;
/**
 * What a token opens. Each purpose signs under its own domain label, so a viewer token never opens a terminal and a
 * terminal token never opens a desktop (either is 'invalid' for the other). The scope byte refines a viewer token.
 */
export type TokenPurpose = 'viewer' | 'terminal';
const LABELS: Record<TokenPurpose, Buffer> = {
  viewer: Buffer.from('hangar-viewer-token\0', 'utf8'),
  terminal: Buffer.from('hangar-terminal-token\0', 'utf8'),
};
/** Secrets shorter than this are refused: the MAC is only as strong as its key. */
export const MIN_SECRET_BYTES = 32;

export type TokenFailure = 'missing' | 'malformed' | 'invalid' | 'expired';
export type TokenCheck = { ok: true; expiresAt: number; scope: TokenScope } | { ok: false; reason: TokenFailure };

/** A fresh random secret for signing viewer tokens (tokens do not survive a controller restart with a new one). */
export function newViewerSecret(): Buffer {
  return randomBytes(MIN_SECRET_BYTES);
}

export function assertSecret(secret: Buffer): void {
  if (!Buffer.isBuffer(secret) || secret.length < MIN_SECRET_BYTES) {
    throw new HangarError('INVALID_ARGUMENT', `the viewer token secret must be at least ${MIN_SECRET_BYTES} bytes`);
  }
}

/** Bytes of a VM's viewer nonce (kept with the VM in the store; rotated to revoke every token for it). */
const VM_NONCE_BYTES = VIEWER_NONCE_BYTES;

function mac(secret: Buffer, vmId: string, vmNonce: Buffer, head: Buffer, purpose: TokenPurpose): Buffer {
  return createHmac('sha256', secret).update(LABELS[purpose]).update(vmId, 'utf8').update('\0').update(vmNonce).update(head).digest();
}

function assertVmNonce(vmNonce: Buffer): void {
  if (!Buffer.isBuffer(vmNonce) || vmNonce.length !== VM_NONCE_BYTES) throw new HangarError('INVALID_ARGUMENT', `the VM's viewer nonce must be ${VM_NONCE_BYTES} bytes`);
}

/** Signs a token for `vmId` (for `purpose`, default the viewer; whose viewer nonce is `vmNonce`) valid until `expiresAt` (ms since the epoch). */
export function signViewerToken(secret: Buffer, vmId: string, vmNonce: Buffer, expiresAt: number, nonce: Buffer = randomBytes(16), scope: TokenScope = 'control', purpose: TokenPurpose = 'viewer'): string {
  assertSecret(secret);
  assertVmNonce(vmNonce);
  if (!Number.isSafeInteger(expiresAt) || expiresAt <= 0) throw new HangarError('INVALID_ARGUMENT', 'token expiry must be a positive integer (ms)');
  if (nonce.length !== 16) throw new HangarError('INVALID_ARGUMENT', 'token nonce must be 16 bytes');
  const head = Buffer.alloc(HEAD);
  head.writeUInt8(SCOPE_BYTE[scope], 0);
  head.writeBigUInt64BE(BigInt(expiresAt), 1);
  nonce.copy(head, 9);
  return Buffer.concat([head, mac(secret, vmId, vmNonce, head, purpose)]).toString('base64url');
}

/**
 * Checks a presented token for `vmId` at time `now`, against the VM's current viewer nonce (null: there is no
 * such VM, and a well-formed token is 'invalid'). The MAC is compared in constant time and checked before the
 * expiry, so 'expired' is only ever said about a token this controller really issued for this VM as it is now.
 */
export function verifyViewerToken(secret: Buffer, vmId: string, vmNonce: Buffer | null, token: string | undefined | null, now: number, purpose: TokenPurpose = 'viewer'): TokenCheck {
  if (token === undefined || token === null || token === '') return { ok: false, reason: 'missing' };
  if (!TOKEN_RE.test(token)) return { ok: false, reason: 'malformed' };
  const raw = Buffer.from(token, 'base64url');
  const scope = BYTE_SCOPE.get(raw[0]!);
  if (raw.length !== TOKEN_BYTES || !scope) return { ok: false, reason: 'malformed' };
  const head = raw.subarray(0, HEAD);
  if (vmNonce === null || vmNonce.length !== VM_NONCE_BYTES) return { ok: false, reason: 'invalid' };
  if (!timingSafeEqual(mac(secret, vmId, vmNonce, head, purpose), raw.subarray(HEAD))) return { ok: false, reason: 'invalid' };
  const expiresAt = Number(head.readBigUInt64BE(1));
  if (now >= expiresAt) return { ok: false, reason: 'expired' };
  return { ok: true, expiresAt, scope };
}

const MESSAGES: Record<TokenFailure, string> = {
  missing: 'a viewer token is required (?token=…); ask the API for one: POST /v1/vms/:id/viewer',
  malformed: 'the viewer token is malformed',
  invalid: 'the viewer token is not valid for this VM (or was revoked, or the VM is gone)',
  expired: 'the viewer token has expired; ask for a new one',
};

/** The error a refused token becomes (never carries the token itself). */
export function tokenError(reason: TokenFailure): HangarError {
  return new HangarError('VIEWER_TOKEN_INVALID', MESSAGES[reason], { reason });
}

/** TOKEN_SCOPE: a valid token presented for something its scope does not allow (input from a view-only one…). */
export function scopeError(scope: TokenScope, wanted: string): HangarError {
  return new HangarError('TOKEN_SCOPE', `this ${scope === 'view' ? 'view-only' : scope} token does not allow ${wanted}`, { scope, wanted });
}
