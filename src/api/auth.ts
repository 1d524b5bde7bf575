// Bearer-token auth. The token lives in a 0600 file, created at first start and re-checked at every start (a file
// others can read is replaced: see loadOrCreateKeyFile); requests are compared in constant time (digests of equal
// length, so neither the length nor the content leaks through timing).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { loadOrCreateKeyFile } from '../util/files.js';

export function loadOrCreateToken(path: string, onReplace?: (reason: string) => void): Promise<string> {
  return loadOrCreateKeyFile(path, {
    create: () => randomBytes(32).toString('base64url'),
    valid: (t) => t.length >= 32,
    ...(onReplace ? { onReplace } : {}),
  });
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
