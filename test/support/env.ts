// Shared test conditions: every skip says why.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project root (tests run from dist/test/...). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
/** ../shared beside the project root; null when this checkout has none. */
export const SHARED = ((): string | null => {
  const p = join(ROOT, '..', 'shared');
  return existsSync(p) ? p : null;
})();

export function skipUnlessShared(): string | false {
  return SHARED ? false : '../shared is absent (checkout outside the Hangar workspace): fixture-based test skipped';
}

export function skipUnlessRoot(): string | false {
  return process.getuid?.() === 0 ? false : 'needs root (network namespaces, TAP devices)';
}

/** True while a process with this pid exists (signal 0 probes without signalling). */
export function pidAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}
