// A fake controller API on 127.0.0.1 for CLI tests: a handler answers each request (JSON, the API's error
// envelope, or a raw stream for SSE), every request is recorded, and `hangar` runs through main() with a captured
// io whose env points at it.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { main } from '../../src/cli/main.js';
import type { VmInfo } from '../../src/cli/vm-view.js';
import type { ErrorCode } from '../../src/errors.js';
import type { SnapshotView } from '../../src/snapshot/manifest.js';
import { ERRORS } from '../../src/errors.js';

export interface FakeRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  body: unknown;
  headers: IncomingMessage['headers'];
}

export type Answer = { status: number; body?: unknown } | ((res: ServerResponse) => void);
export type Handler = (req: FakeRequest) => Answer | Promise<Answer>;

export interface FakeApi {
  url: string;
  env: NodeJS.ProcessEnv;
  requests: FakeRequest[];
  handler: Handler;
  close(): Promise<void>;
}

export const ok = (body: unknown, status = 200): Answer => ({ status, body });
export const fail = (code: ErrorCode, message = `fake ${code}`, details: Record<string, unknown> = {}): Answer => ({ status: ERRORS[code].http, body: { error: { code, message, details } } });

export async function fakeApi(handler: Handler): Promise<FakeApi> {
  const requests: FakeRequest[] = [];
  const api: FakeApi = { url: '', env: {}, requests, handler, close: async () => undefined };
  const server = createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => { raw += c.toString(); });
    req.on('end', () => {
      const u = new URL(req.url ?? '/', 'http://x');
      const r: FakeRequest = { method: req.method ?? 'GET', path: u.pathname, query: u.searchParams, body: raw ? JSON.parse(raw) : undefined, headers: req.headers };
      requests.push(r);
      void Promise.resolve(api.handler(r)).then((a) => {
        if (typeof a === 'function') return a(res);
        res.writeHead(a.status, a.body === undefined ? {} : { 'content-type': 'application/json; charset=utf-8' });
        res.end(a.body === undefined ? undefined : JSON.stringify(a.body));
      });
    });
  });
  // A WebSocket upgrade (vm exec, vm shell) is answered like a request: a refusal with the handler's answer.
  server.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const r: FakeRequest = { method: 'GET', path: u.pathname, query: u.searchParams, body: undefined, headers: req.headers };
    requests.push(r);
    void Promise.resolve(api.handler(r)).then((a) => {
      const { status, body } = typeof a === 'function' ? { status: 500, body: undefined } : a;
      const json = body === undefined ? '' : JSON.stringify(body);
      socket.end(`HTTP/1.1 ${status} X\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(json)}\r\n\r\n${json}`);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  api.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  api.env = { HANGAR_URL: api.url, HANGAR_TOKEN: 'fake-token', PATH: process.env.PATH };
  api.close = () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); });
  return api;
}

export interface Run {
  code: number;
  out: string;
  err: string;
}

export async function hangar(argv: string[], env: NodeJS.ProcessEnv = {}, signal?: AbortSignal): Promise<Run> {
  let out = '';
  let err = '';
  const code = await main(argv, { out: (s) => { out += s; }, err: (s) => { err += s; }, env, ...(signal ? { signal } : {}) });
  return { code, out, err };
}

export function fakeVm(over: Partial<VmInfo> = {}): VmInfo {
  return {
    id: 'vm-1a2b3c4d', name: 'alice', state: 'ready', image: 'desktop-0123abcd', profile: 'desktop', vmm: 'qemu', vcpus: 1, memMiB: 512,
    ttlSeconds: null, expiresAt: null, createdAt: '2026-01-01T00:00:00.000Z', updatedAt: '2026-01-01T00:00:05.000Z', pid: 4242, bootMs: 4200,
    network: { ip: '10.242.0.2', mac: '52:54:00:00:00:02', tap: 'hgtap0', gateway: '10.242.0.1' }, lastError: null, hibernated: false, clone: null,
    ...over,
  };
}

export const fakeSnapshot = (id = 'snap-0123abcd'): SnapshotView => ({
  id, createdAt: '2026-01-01T00:00:00.000Z', source: { kind: 'vm', vmId: 'vm-1a2b3c4d', vmName: 'alice' }, image: 'desktop-0123abcd', profile: 'desktop',
  vmm: 'qemu', vmmVersion: '7.2', vcpus: 1, memMiB: 512, guest: { ip: '10.242.0.2', mac: '52:54:00:00:00:02' },
  sizes: { 'memory.bin': 94 * 2 ** 20, 'vmstate.bin': 2 ** 20, 'disk.ext4': 2048 * 2 ** 20 }, totalBytes: 0,
});
