// Viewer tokens: short-lived, signed, bound to one VM. Pure functions (the clock and the nonce are inputs).
//
// Layout (57 bytes → exactly 76 base64url characters, so no padding bits can be flipped unnoticed):
//   [version 1][expiry ms, uint64 BE 8][nonce 16][HMAC-SHA256 32]
// The MAC covers a domain label, the VM id and the first 25 bytes. The VM id is not inside the token: a token
// presented for another VM simply fails the MAC, indistinguishable from a tampered one (both are 'invalid').
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { HangarError } from '../errors.js';

const VERSION = 1;
const HEAD = 1 + 8 + 16;
const MAC_LEN = 32;
const TOKEN_BYTES = HEAD + MAC_LEN;
const TOKEN_RE = /^[A-Za-z0-9_-]{76}$/;
const LABEL = Buffer.from('hangar-viewer-token\0', 'utf8');
/** Secrets shorter than this are refused: the MAC is only as strong as its key. */
export const MIN_SECRET_BYTES = 32;

export type TokenFailure = 'missing' | 'malformed' | 'invalid' | 'expired';
export type TokenCheck = { ok: true; expiresAt: number } | { ok: false; reason: TokenFailure };

/** A fresh random secret for signing viewer tokens (tokens do not survive a controller restart with a new one). */
export function newViewerSecret(): Buffer {
  return randomBytes(MIN_SECRET_BYTES);
}

export function assertSecret(secret: Buffer): void {
  if (!Buffer.isBuffer(secret) || secret.length < MIN_SECRET_BYTES) {
    throw new HangarError('INVALID_ARGUMENT', `the viewer token secret must be at least ${MIN_SECRET_BYTES} bytes`);
  }
}

function mac(secret: Buffer, vmId: string, head: Buffer): Buffer {
  return createHmac('sha256', secret).update(LABEL).update(vmId, 'utf8').update('\0').update(head).digest();
}

/** Signs a token for `vmId` valid until `expiresAt` (ms since the epoch). */
export function signViewerToken(secret: Buffer, vmId: string, expiresAt: number, nonce: Buffer = randomBytes(16)): string {
  assertSecret(secret);
  if (!Number.isSafeInteger(expiresAt) || expiresAt <= 0) throw new HangarError('INVALID_ARGUMENT', 'token expiry must be a positive integer (ms)');
  if (nonce.length !== 16) throw new HangarError('INVALID_ARGUMENT', 'token nonce must be 16 bytes');
  const head = Buffer.alloc(HEAD);
  head.writeUInt8(VERSION, 0);
  head.writeBigUInt64BE(BigInt(expiresAt), 1);
  nonce.copy(head, 9);
  return Buffer.concat([head, mac(secret, vmId, head)]).toString('base64url');
}

/**
 * Checks a presented token for `vmId` at time `now`. The MAC is compared in constant time and checked before the
 * expiry, so 'expired' is only ever said about a token this controller really issued for this VM.
 */
export function verifyViewerToken(secret: Buffer, vmId: string, token: string | undefined | null, now: number): TokenCheck {
  if (token === undefined || token === null || token === '') return { ok: false, reason: 'missing' };
  if (!TOKEN_RE.test(token)) return { ok: false, reason: 'malformed' };
  const raw = Buffer.from(token, 'base64url');
  if (raw.length !== TOKEN_BYTES || raw[0] !== VERSION) return { ok: false, reason: 'malformed' };
  const head = raw.subarray(0, HEAD);
  if (!timingSafeEqual(mac(secret, vmId, head), raw.subarray(HEAD))) return { ok: false, reason: 'invalid' };
  const expiresAt = Number(head.readBigUInt64BE(1));
  if (now >= expiresAt) return { ok: false, reason: 'expired' };
  return { ok: true, expiresAt };
}

const MESSAGES: Record<TokenFailure, string> = {
  missing: 'a viewer token is required (?token=…); ask the API for one: POST /v1/vms/:id/viewer',
  malformed: 'the viewer token is malformed',
  invalid: 'the viewer token is not valid for this VM',
  expired: 'the viewer token has expired; ask for a new one',
};

/** The error a refused token becomes (never carries the token itself). */
export function tokenError(reason: TokenFailure): HangarError {
  return new HangarError('VIEWER_TOKEN_INVALID', MESSAGES[reason], { reason });
}
