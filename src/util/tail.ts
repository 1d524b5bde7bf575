// The last lines of a file without reading all of it (console logs grow without bound).
import { open } from 'node:fs/promises';

export async function tailFile(path: string, lines: number, maxBytes = 1024 * 1024): Promise<string> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch {
    return '';
  }
  try {
    const { size } = await fh.stat();
    const len = Math.min(size, maxBytes);
    const buf = Buffer.alloc(len);
    await fh.read(buf, 0, len, size - len);
    const text = buf.toString('utf8');
    const all = text.split('\n');
    if (all.at(-1) === '') all.pop(); // the file's final newline is added back below
    return all.slice(-lines).join('\n') + (text.endsWith('\n') ? '\n' : '');
  } finally {
    await fh.close();
  }
}
