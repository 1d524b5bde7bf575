// The viewer-token key: created once, kept in the state directory (0600), so a link handed out stays valid across
// a controller restart for its few minutes.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { newViewerSecret } from './token.js';

export function loadOrCreateViewerSecret(path: string): Buffer {
  if (existsSync(path)) {
    const key = Buffer.from(readFileSync(path, 'utf8').trim(), 'base64');
    if (key.length >= 32) return key;
  }
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const key = newViewerSecret();
  writeFileSync(path, key.toString('base64') + '\n', { mode: 0o600 });
  chmodSync(path, 0o600);
  return key;
}
