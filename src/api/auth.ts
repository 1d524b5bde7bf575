// Bearer-token auth. The token is created at first start into a 0600 file; requests are compared in constant time
// (digests of equal length, so neither the length nor the content leaks through timing).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export function loadOrCreateToken(path: string): string {
  if (existsSync(path)) {
    chmodSync(path, 0o600);
    const t = readFileSync(path, 'utf8').trim();
    if (t.length >= 32) return t;
  }
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const token = randomBytes(32).toString('base64url');
  writeFileSync(path, token + '\n', { mode: 0o600, flag: 'w' });
  chmodSync(path, 0o600);
  return token;
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

export function tokenMatches(presented: string | undefined, expected: string): boolean {
  if (presented === undefined) return false;
  return timingSafeEqual(digest(presented), digest(expected));
}

/** Extracts the token of an `Authorization: Bearer …` header. */
export function bearer(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m?.[1];
}
