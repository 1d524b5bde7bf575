// envd's HTTP /files endpoints over the guest agent, streamed both ways (a file is never held whole):
//   GET  /files?path=&username=   the file's bytes (Content-Length from the guest's stat)
//   POST /files?path=&username=   multipart/form-data (each "file" part: its filename is its path unless ?path=)
//                                 or application/octet-stream (optionally Content-Encoding: gzip) into ?path=;
//                                 parent directories are made; → [{name, type: "file", path}]
// Errors are JSON {code, message} with the status the SDK maps (404 → FileNotFoundError, 400, 401, 507…).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import type { Readable } from 'node:stream';
import { HangarError } from '../errors.js';
import { GUEST_USER } from '../image/plan.js';
import type { SandboxCall } from './context.js';
import { makeDirs } from './filesystem.js';
import { boundaryOf, readMultipart } from './multipart.js';

/** A JSON answer (errors, the written files). */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) { res.destroy(); return; }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

const absolute = (p: string | null, what: string): string => {
  if (!p || !p.startsWith('/') || p.includes('\0')) throw new HangarError('INVALID_ARGUMENT', `${what}: an absolute guest path is required`, { field: 'path', in: 'query', reason: 'format' });
  return posix.normalize(p);
};

/** The owner a written file gets: the call's user (root, or the desktop user). */
const ownerFor = (user: string | undefined): { uid: number; gid: number } => (user === 'root' ? { uid: 0, gid: 0 } : { uid: GUEST_USER.uid, gid: GUEST_USER.uid });

async function writeOne(call: SandboxCall, path: string, body: Readable): Promise<{ name: string; type: 'file'; path: string }> {
  const s = await call.session();
  const dir = posix.dirname(path);
  const hasDir = await s.stat(dir).then(() => true, () => false);
  if (!hasDir) await makeDirs(s, dir, call.user);
  await s.writeFile(path, body, ownerFor(call.user));
  return { name: posix.basename(path), type: 'file', path };
}

export async function serveFiles(call: SandboxCall, req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
  if (req.method === 'GET') {
    const path = absolute(query.get('path'), 'GET /files');
    const ctl = new AbortController();
    res.once('close', () => { if (!res.writableFinished) ctl.abort(); });
    const { size, stream } = await (await call.session()).readFile(path, { signal: ctl.signal });
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size, 'content-disposition': `attachment; filename="${encodeURIComponent(posix.basename(path))}"` });
    await pipeline(stream, res);
    return;
  }
  if (req.method !== 'POST') throw new HangarError('INVALID_ARGUMENT', `${req.method ?? '?'} /files: only GET and POST`, { field: 'method', in: 'path', reason: 'enum' });
  const given = query.get('path');
  const boundary = boundaryOf(req.headers['content-type']);
  if (boundary) {
    const written: { name: string; type: 'file'; path: string }[] = [];
    await readMultipart(req, boundary, async (p) => {
      if (p.name !== 'file') { p.body.resume(); await new Promise((r) => p.body.once('end', r)); return; }
      const path = absolute(given ?? p.filename, 'a multipart file part');
      written.push(await writeOne(call, path, p.body));
    });
    sendJson(res, 200, written);
    return;
  }
  const path = absolute(given, 'POST /files');
  const gz = /gzip/i.test(String(req.headers['content-encoding'] ?? ''));
  const body: Readable = gz ? req.pipe(createGunzip()) : req;
  sendJson(res, 200, [await writeOne(call, path, body)]);
}
