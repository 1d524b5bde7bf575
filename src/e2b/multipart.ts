// A streaming multipart/form-data reader for envd's POST /files (the SDK sends each file as a part named "file"
// whose filename is its path). Parts are handed over one at a time as streams, with backpressure: the body is read
// only as fast as the part's consumer takes it, and no part is ever held whole.
import { PassThrough, type Readable } from 'node:stream';
import { HangarError } from '../errors.js';

export interface Part {
  name: string | null;
  filename: string | null;
  headers: Record<string, string>;
  body: Readable;
}

const MAX_HEADER_BYTES = 16 * 1024;

/** The boundary of a multipart/form-data Content-Type, or null. Pure. */
export function boundaryOf(contentType: string | undefined): string | null {
  if (!contentType || !/^multipart\/form-data\b/i.test(contentType)) return null;
  const m = /;\s*boundary=(?:"([^"]{1,200})"|([^\s;]{1,200}))/i.exec(contentType);
  return m ? (m[1] ?? m[2]!) : null;
}

/** A part's headers, and its form name and filename from Content-Disposition. Pure. */
export function parsePartHeaders(text: string): Pick<Part, 'name' | 'filename' | 'headers'> {
  const headers: Record<string, string> = {};
  for (const line of text.split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  const cd = headers['content-disposition'] ?? '';
  const param = (k: string): string | null => {
    const m = new RegExp(`;\\s*${k}="((?:[^"\\\\]|\\\\.)*)"`, 'i').exec(cd) ?? new RegExp(`;\\s*${k}=([^;\\s]+)`, 'i').exec(cd);
    return m ? m[1]!.replace(/\\(.)/g, '$1') : null;
  };
  return { name: param('name'), filename: param('filename'), headers };
}

const bad = (why: string): HangarError => new HangarError('INVALID_ARGUMENT', `multipart body: ${why}`, { field: '', in: 'body', reason: 'format' });

/**
 * Reads `body` and calls `onPart` for each part, in order, waiting for it to finish (the part's stream must be
 * consumed) before reading on. Resolves after the closing boundary.
 */
export async function readMultipart(body: AsyncIterable<Buffer>, boundary: string, onPart: (p: Part) => Promise<void>): Promise<number> {
  const open = Buffer.from(`--${boundary}`);
  const delim = Buffer.from(`\r\n--${boundary}`);
  let buf: Buffer = Buffer.alloc(0);
  let state: 'preamble' | 'headers' | 'body' | 'after' | 'done' = 'preamble';
  let part: PassThrough | null = null;
  let consumer: Promise<void> | null = null;
  let count = 0;
  const write = async (b: Buffer): Promise<void> => {
    if (!part || b.length === 0) return;
    const p = part;
    if (p.write(b)) return;
    await new Promise<void>((res, rej) => {
      const done = (e?: Error): void => { p.off('drain', done); p.off('close', done); if (e) rej(e); else res(); };
      p.on('drain', done);
      p.on('close', done);
      consumer!.catch(rej);
    });
  };
  for await (const chunk of body) {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    for (;;) {
      if (state === 'preamble') {
        const i = buf.indexOf(open);
        if (i < 0) { buf = buf.subarray(Math.max(0, buf.length - open.length)); break; }
        buf = buf.subarray(i + open.length);
        state = 'after';
      } else if (state === 'after') {
        if (buf.length < 2) break;
        if (buf[0] === 0x2d && buf[1] === 0x2d) { state = 'done'; break; }
        if (buf[0] !== 0x0d || buf[1] !== 0x0a) throw bad('a boundary is not followed by CRLF');
        buf = buf.subarray(2);
        state = 'headers';
      } else if (state === 'headers') {
        const i = buf.indexOf('\r\n\r\n');
        if (i < 0) { if (buf.length > MAX_HEADER_BYTES) throw bad('part headers too large'); break; }
        const h = parsePartHeaders(buf.subarray(0, i).toString('utf8'));
        buf = buf.subarray(i + 4);
        part = new PassThrough({ highWaterMark: 256 * 1024 });
        consumer = onPart({ ...h, body: part });
        consumer.catch(() => undefined);
        count++;
        state = 'body';
      } else if (state === 'body') {
        const i = buf.indexOf(delim);
        if (i < 0) {
          const keep = Math.min(buf.length, delim.length - 1);
          await write(buf.subarray(0, buf.length - keep));
          buf = buf.subarray(buf.length - keep);
          break;
        }
        await write(buf.subarray(0, i));
        part!.end();
        await consumer;
        part = null; consumer = null;
        buf = buf.subarray(i + delim.length);
        state = 'after';
      } else break;
    }
    if (state === 'done') break;
  }
  if (state !== 'done') {
    part?.destroy(bad('the body ended inside a part'));
    throw bad('the body ended before the closing boundary');
  }
  return count;
}
