// The viewer-token key: created once, kept in the state directory (0600, re-checked at every start: a file others
// can read is replaced, see loadOrCreateKeyFile), so a link handed out stays valid across a controller restart for
// its few minutes.
import { loadOrCreateKeyFile } from '../util/files.js';
import { newViewerSecret } from './token.js';

export async function loadOrCreateViewerSecret(path: string, onReplace?: (reason: string) => void): Promise<Buffer> {
  const text = await loadOrCreateKeyFile(path, {
    create: () => newViewerSecret().toString('base64'),
    valid: (t) => Buffer.from(t, 'base64').length >= 32,
    ...(onReplace ? { onReplace } : {}),
  });
  return Buffer.from(text, 'base64');
}
