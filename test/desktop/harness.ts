// A real listening controller for the desktop tests: Fastify from buildServer with a real Store on a temp file,
// the desktop routes, and the VNC bridge on the raw server. `dial` goes to a TCP port chosen by the test (an RFB
// server on the host loopback). The VmService here only reads the store: the VM manager is not part of these tests.
import { Agents } from '../../src/agent/agents.js';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable, type Duplex } from 'node:stream';
import { WebSocket } from 'ws';
import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../../src/api/routes.js';
import { buildServer } from '../../src/api/server.js';
import { attachVncBridge, type VncBridge } from '../../src/desktop/bridge.js';
import type { DesktopDeps, DesktopLimits } from '../../src/desktop/deps.js';
import { desktopRoutes } from '../../src/desktop/routes.js';
import { newViewerSecret, signViewerToken } from '../../src/desktop/token.js';
import { HangarMetrics } from '../../src/metrics.js';
import { Store, type VmRecord } from '../../src/store/store.js';
import type { VmState } from '../../src/domain/states.js';
import { offlineManager } from '../support/api.js';

export const API_TOKEN = 'test-api-token-0123456789abcdef0123456789';

export interface Harness {
  /** http://127.0.0.1:PORT */
  base: string;
  app: FastifyInstance;
  bridge: VncBridge;
  store: Store;
  metrics: HangarMetrics;
  desk: DesktopDeps;
  /** Every log line the server wrote (pino JSON), for the "token never logged" check. */
  logs: string[];
  /** How many times the bridge dialled a VM. */
  dials(): number;
  /** The options of each dial (the read size the bridge asks for). */
  dialOpts: unknown[];
  /** VM ids the bridge reported viewer input for (deps.touch). */
  touches: string[];
  /** Viewers holding each VM (deps.hold) right now. */
  holds: Map<string, number>;
  /** Inserts a VM row in `state` (default ready). */
  addVm(id: string, state?: VmState): VmRecord;
  setState(id: string, to: VmState): void;
  /** A token for `id` signed over its current viewer nonce (a zero nonce for a VM that does not exist). */
  sign(id: string, expiresAt: number): string;
  /** POST /v1/vms/:id/viewer with the API token. */
  viewer(id: string, body?: object): Promise<{ status: number; json: { token: string; url: string; expiresAt: string } & Record<string, unknown> }>;
  close(): Promise<void>;
}

export interface HarnessOptions {
  /** Where dial connects (127.0.0.1:port); or a custom dial. */
  rfbPort?: number;
  dial?: (vmId: string) => Promise<Duplex>;
  limits?: Partial<DesktopLimits>;
  allowedOrigins?: string[];
  /** The controller's own origins (default: [base], as the controller reports its listen origins). */
  ownOrigins?: (base: string) => string[];
}

export function tcpDial(port: number): () => Promise<net.Socket> {
  return () => new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.off('error', reject); resolve(s); });
    s.once('error', reject);
  });
}

export async function startHarness(opts: HarnessOptions): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-desktop-'));
  const store = new Store(join(dir, 'state.db'));
  const metrics = new HangarMetrics();
  const logs: string[] = [];
  const stream = new Writable({ write(chunk: Buffer, _enc, cb) { logs.push(chunk.toString()); cb(); } });
  let dials = 0;
  const touches: string[] = [];
  const holds = new Map<string, number>();
  const dialOpts: unknown[] = [];
  const dial = opts.dial ?? (opts.rfbPort !== undefined ? tcpDial(opts.rfbPort) : undefined);
  if (!dial) throw new Error('startHarness needs rfbPort or dial');
  const manager = offlineManager(store, dir, metrics);
  const ctx: ApiContext = { vms: manager, snapshots: manager.snapshots, events: store, metrics, token: API_TOKEN, agents: new Agents({ channel: () => null }) };
  const logTo: { app?: FastifyInstance } = {}; // the server's own logger, once it exists
  let base = '';
  const desk: DesktopDeps = {
    // By id only, as the controller does (the store's getVm also takes names).
    lookup: (id) => {
      const vm = store.getVm(id);
      const viewerNonce = store.viewerNonce(id);
      return vm && vm.id === id && viewerNonce ? { state: vm.state, viewerNonce } : null;
    },
    rotateNonce: (id) => store.rotateViewerNonce(id) !== null,
    ownOrigins: () => (opts.ownOrigins ? opts.ownOrigins(base) : [base]),
    dial: (id, o) => { dials++; dialOpts.push(o); return dial(id); },
    metrics,
    secret: newViewerSecret(),
    limits: opts.limits ?? {},
    ...(opts.allowedOrigins ? { allowedOrigins: opts.allowedOrigins } : {}),
    touch: (id) => { touches.push(id); },
    hold: (id) => {
      holds.set(id, (holds.get(id) ?? 0) + 1);
      let done = false;
      return () => { if (!done) { done = true; holds.set(id, holds.get(id)! - 1); } };
    },
    log: { info: (o, m) => logTo.app?.log.info(o, m), warn: (o, m) => logTo.app?.log.warn(o, m) },
  };
  const app = await buildServer(ctx, { extraRoutes: (c) => desktopRoutes(c, desk), logger: { level: 'trace', stream } });
  logTo.app = app;
  const bridge = attachVncBridge(app.server, desk);
  await app.listen({ port: 0, host: '127.0.0.1' });
  base = `http://127.0.0.1:${(app.server.address() as net.AddressInfo).port}`;
  return {
    base, app, bridge, store, metrics, desk, logs,
    dials: () => dials,
    dialOpts,
    touches,
    holds,
    addVm: (id, state = 'ready') => store.insertVm({
      id, name: id, state, imageId: 'img', profile: 'desktop', vmm: 'qemu', vcpus: 1, memMiB: 512, ttlS: null,
      expiresAt: null, runDir: join(dir, id), spec: null, net: null,
    }),
    setState: (id, to) => { store.setState(id, to); },
    sign: (id, expiresAt) => signViewerToken(desk.secret, id, store.viewerNonce(id) ?? Buffer.alloc(16), expiresAt),
    viewer: async (id, body) => {
      const res = await fetch(`${base}/v1/vms/${encodeURIComponent(id)}/viewer`, {
        method: 'POST',
        headers: { authorization: `Bearer ${API_TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      return { status: res.status, json: (await res.json()) as { token: string; url: string; expiresAt: string } };
    },
    close: async () => {
      await bridge.close();
      await app.close();
      store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export type VncOpen = { ws: WebSocket; reader: WsReader } | { status: number; body: { error: { code: string; message: string; details: Record<string, unknown> } } };

/** Opens the bridge WebSocket; a refused upgrade resolves with its HTTP status and JSON body instead. */
export function openVnc(base: string, vmId: string, token: string | undefined, protocols: string[] = ['binary'], origin?: string): Promise<VncOpen> {
  const url = `${base.replace(/^http/, 'ws')}/v1/vms/${encodeURIComponent(vmId)}/vnc${token === undefined ? '' : `?token=${encodeURIComponent(token)}`}`;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { perMessageDeflate: false, ...(origin !== undefined ? { origin } : {}) });
    // Attached before 'open': the first frames can arrive in the same tick as the upgrade answer.
    const reader = new WsReader(ws);
    ws.once('open', () => resolve({ ws, reader }));
    ws.once('unexpected-response', (req, res) => {
      let text = '';
      res.on('data', (d: Buffer) => { text += d.toString(); });
      res.on('end', () => {
        req.destroy();
        try { resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }); } catch (e) { reject(e); }
      });
    });
    ws.once('error', reject);
  });
}

export function mustOpen(r: VncOpen): { ws: WebSocket; reader: WsReader } {
  if ('ws' in r) return r;
  throw new Error(`upgrade refused: ${r.status} ${JSON.stringify(r.body)}`);
}

/** Buffers a WebSocket's binary messages as one byte stream for exact reads. */
export class WsReader {
  private chunks: Buffer[] = [];
  private length = 0;
  private waiter: (() => void) | null = null;
  total = 0;
  private readonly onMessage = (d: Buffer): void => {
    this.chunks.push(d);
    this.length += d.length;
    this.total += d.length;
    this.waiter?.();
  };
  constructor(private readonly ws: WebSocket) {
    ws.on('message', this.onMessage);
  }
  /** Stops buffering; returns what was received and not read yet. */
  detach(): Buffer {
    this.ws.off('message', this.onMessage);
    return Buffer.concat(this.chunks);
  }
  async read(n: number, timeoutMs = 5000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.length < n) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} bytes (have ${this.length})`);
      await new Promise<void>((r) => { this.waiter = r; setTimeout(r, 50); });
    }
    const all = Buffer.concat(this.chunks);
    this.chunks = [all.subarray(n)];
    this.length = all.length - n;
    return all.subarray(0, n);
  }
}

/** Polls `cond` until true (or throws after timeoutMs). */
export async function until(cond: () => boolean | Promise<boolean>, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The close code and reason a WebSocket ends with. */
export function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) resolve({ code: 1006, reason: '' });
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  });
}

/**
 * A request to the harness with headers fetch may not set (Host): a WebSocket handshake when `upgrade`, a GET
 * otherwise. Resolves with the status (101 for an accepted upgrade, whose socket is then closed) and the body.
 */
export function rawRequest(base: string, path: string, headers: Record<string, string>, upgrade = false): Promise<{ status: number; body: string }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: u.hostname, port: Number(u.port), path, method: 'GET', agent: false,
      headers: upgrade ? { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': randomBytes(16).toString('base64'), ...headers } : headers,
    });
    req.once('upgrade', (res, socket) => { socket.destroy(); resolve({ status: res.statusCode ?? 0, body: '' }); });
    req.once('response', (res) => {
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.once('error', reject);
    req.end();
  });
}
