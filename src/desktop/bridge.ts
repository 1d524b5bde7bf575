// The VNC bridge: `GET /v1/vms/:id/vnc` upgraded to a WebSocket on the raw Node server and spliced to the VM's RFB
// server. Every check (handshake, origin, token, VM state, viewer limit, reaching the VM) happens before the upgrade
// completes, and a refusal is a plain HTTP answer with the API's JSON error body. No byte reaches a VM for a refused
// viewer: the VM is dialled only after all checks passed.
//
// Data path: one WebSocket binary message per read from the VM (up to limits.vmReadBufferBytes; ws writes header +
// chunk with writev, no copy; the reads of one event-loop turn leave in one writev: the viewer's socket is corked from
// the turn's first read until setImmediate), one TCP write per message towards the VM. Flow control both ways: the VM socket
// pauses while the viewer's socket holds more than highWaterBytes, and the viewer's socket pauses while the VM
// socket's write buffer is full. No compression (RFB encodings are already compact, and deflate costs latency).
//
// Input: the viewer's stream is parsed (rfb-filter.ts) and its input messages (pointer, keys, cut text…) are dropped
// unless the viewer's token is a control one and the viewer is in control (control.ts: one viewer at a time, with a
// handoff). A view-only viewer's input never reaches the VM. Recording: the VM → viewer stream of a session can be
// recorded with timestamps (deps.record), for replay in the viewer page.
import type { IncomingMessage, Server } from 'node:http';
import { STATUS_CODES } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import { claimUpgrades } from '../util/upgrades.js';
import { HangarError, toHangarError } from '../errors.js';
import { httpError, redactUrl } from '../api/server.js';
import { waitAtMost, withTimeout } from '../util/timeout.js';
import { checkDeps, hostAllowed, hostRefused, publicOrigins, registryFor, type DesktopDeps, type DesktopLimits } from './deps.js';
import { controlFor } from './control.js';
import { ClientStreamFilter } from './rfb-filter.js';
import { scopeError, tokenError, verifyViewerToken, type TokenScope } from './token.js';

/** WebSocket close codes the bridge uses (the viewer page explains them). */
export const CLOSE = {
  /** The VM's RFB server closed the connection. */
  VM_CLOSED: 1000,
  /** The controller is shutting down. */
  SHUTDOWN: 1001,
  /** A text message: RFB is binary. */
  BINARY_ONLY: 1003,
  /** The connection to the VM failed. */
  VM_ERROR: 1011,
  /** No byte in either direction for limits.idleMs. */
  IDLE: 4000,
  /** The VM stopped, paused or went away (disconnect() by the VM manager). */
  VM_GONE: 4001,
  /** The viewer sent RFB the bridge cannot follow (it parses the viewer's messages to drop input). */
  PROTOCOL: 4002,
} as const;

export const VNC_ROUTE = '/v1/vms/:id/vnc';
const VNC_PATH = /^\/v1\/vms\/([^/?#]+)\/vnc$/;
export const VIEWER_ID = /^[A-Za-z0-9_-]{1,64}$/;
const SEND = { binary: true, compress: false, fin: true } as const;
const TO_VM = { direction: 'to_vm' };
const TO_VIEWER = { direction: 'to_viewer' };

export interface SessionInfo {
  vmId: string;
  /** The viewer's id (?viewer=, chosen by the page; else one the bridge made up). */
  viewer: string;
  scope: TokenScope;
  /** Input messages dropped (view-only, or not in control). */
  inputDropped: number;
  openedAt: number;
  bytesToVm: number;
  bytesToViewer: number;
  /** Reading from the VM is paused because the viewer is slow. */
  vmPaused: boolean;
  /** Reading from the viewer is paused because the VM is slow. */
  viewerPaused: boolean;
  /** Bytes queued towards the viewer. */
  bufferedToViewer: number;
  /** Bytes queued towards the VM. */
  bufferedToVm: number;
}

export interface VncBridge {
  /** Live viewers of a VM. */
  viewers(vmId: string): number;
  sessions(): SessionInfo[];
  /** Closes every viewer of a VM (close code 4001), e.g. when it stops or pauses. Returns how many. */
  disconnect(vmId: string, reason?: string): number;
  /**
   * As disconnect, and resolves once the VM's desktop server has closed each connection too (at most timeoutMs):
   * before the VM's state is saved, so a restored guest holds no connection to a viewer that is gone.
   */
  quiesce(vmId: string, reason: string, timeoutMs?: number): Promise<number>;
  /** Stops accepting upgrades and closes every session (1001). Call before closing the HTTP server. */
  close(): Promise<void>;
}

interface Session {
  info(): SessionInfo;
  close(code: number, reason: string): void;
  /** Closes the viewer and ends the VM side: resolves when the VM has closed its end (or after ms). */
  endVm(reason: string, ms: number): Promise<void>;
  done: Promise<void>;
  terminate(): void;
}

/** The VM id and token of an upgrade request for the bridge, or null when the path is not the bridge's. */
export function parseVncRequest(url: string | undefined): { vmId: string; token: string | undefined; viewer: string | undefined } | null {
  if (!url) return null;
  const q = url.indexOf('?');
  const m = VNC_PATH.exec(q < 0 ? url : url.slice(0, q));
  if (!m) return null;
  let vmId: string;
  try {
    vmId = decodeURIComponent(m[1]!);
  } catch {
    return null;
  }
  const params = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
  const tokens = params.getAll('token');
  const viewers = params.getAll('viewer');
  // Two tokens is ambiguous: treat it as a malformed one. A viewer id: 1-64 of [A-Za-z0-9_-], else '!' (refused).
  const viewer = viewers.length === 0 ? undefined : viewers.length === 1 && VIEWER_ID.test(viewers[0]!) ? viewers[0] : '!';
  return { vmId, token: tokens.length > 1 ? '!' : tokens[0], viewer };
}

/** noVNC asks for 'binary'; accept it when offered, otherwise speak binary without a subprotocol. */
function pickProtocol(offered: Set<string>): string | false {
  return offered.has('binary') ? 'binary' : false;
}

/** Answers a not-yet-upgraded request with the API's JSON error and drops the connection. */
export function refuse(socket: Duplex, err: unknown): number {
  const { status, body } = httpError(err);
  if (socket.destroyed) return status;
  const json = JSON.stringify(body);
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Cache-Control: no-store\r\nContent-Length: ${Buffer.byteLength(json)}\r\n\r\n${json}`,
  );
  return status;
}

function handshakeProblem(req: IncomingMessage): string | null {
  if (req.method !== 'GET') return 'the WebSocket handshake must be a GET';
  if (req.headers.upgrade?.toLowerCase() !== 'websocket') return 'only WebSocket upgrades are served here';
  if (!req.headers['sec-websocket-key']) return 'Sec-WebSocket-Key is missing';
  return null;
}

/**
 * Whether a handshake's Origin may open the bridge. Browsers always send Origin on a WebSocket handshake and a page
 * cannot forge it, so this stops another site's page from driving a desktop with a token it got hold of (cross-site
 * WebSocket hijacking). Allowed: the public origins only — the controller's own listen origins (the viewer page it
 * serves) and the configured ones. Not the request's own Host: under DNS rebinding Origin and Host both carry the
 * attacker's name. No Origin at all is not a browser (CLI, SDK, bench): the token guards it. The opaque origin
 * "null" (sandboxed frames, file: pages) is refused.
 */
export function originAllowed(origin: string | undefined, allowed: ReadonlySet<string>): boolean {
  if (origin === undefined) return true;
  let u: URL;
  try {
    u = new URL(origin);
  } catch {
    return false;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return false;
  return allowed.has(u.origin);
}

async function dialWithTimeout(deps: DesktopDeps, vmId: string, ms: number, readBufferBytes: number): Promise<Duplex> {
  const dialing = Promise.resolve().then(() => deps.dial(vmId, { readBufferBytes }));
  try {
    return await withTimeout(() => dialing, ms, () => new HangarError('VM_UNREACHABLE', `the VM desktop did not answer within ${ms} ms`, { vmId }));
  } catch (e) {
    dialing.then((s) => s.destroy(), () => undefined); // a late connection is not leaked
    if (e instanceof HangarError) throw e;
    throw new HangarError('VM_UNREACHABLE', 'the VM desktop does not answer', { vmId, cause: (e as NodeJS.ErrnoException).code ?? String(e) }, { cause: e });
  }
}

/** Splices one upgraded viewer to one VM connection. */
interface Viewer {
  id: string;
  scope: TokenScope;
  /** Whether this viewer's input may reach the VM now. */
  allowInput(): boolean;
}

function splice(ws: WebSocket, raw: Duplex, tcp: Duplex, vmId: string, viewer: Viewer, limits: DesktopLimits, deps: DesktopDeps, onEnd: () => void): Session {
  const counter = deps.metrics.proxyBytes;
  // Bytes are added to the counter in batches (each flush, at most a second apart, and at the end), not per chunk.
  let countedToVm = 0;
  let countedToViewer = 0;
  const flush = (): void => {
    if (toVm > countedToVm) { counter.inc(TO_VM, toVm - countedToVm); countedToVm = toVm; }
    if (toViewer > countedToViewer) { counter.inc(TO_VIEWER, toViewer - countedToViewer); countedToViewer = toViewer; }
  };
  const openedAt = Date.now();
  let last = openedAt;
  let touched = 0;
  let toVm = 0;
  let toViewer = 0;
  let vmPaused = false;
  let viewerPaused = false;
  let ended = false;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => { resolveDone = r; });
  const filter = new ClientStreamFilter(viewer.allowInput);
  const recorder = deps.record?.(vmId, viewer.id) ?? null;

  // No Nagle on either side: a key event or a small update must not wait for the previous segment's ACK.
  for (const s of [tcp, raw]) if ('setNoDelay' in s && typeof s.setNoDelay === 'function') (s as { setNoDelay(v: boolean): void }).setNoDelay(true);

  const closeViewer = (code: number, reason: string): void => {
    if (ws.readyState === WebSocket.OPEN) ws.close(code, reason);
    if (!vmPaused) { vmPaused = true; tcp.pause(); } // nothing more to forward
  };

  // VM → viewer. Reads that come in one turn of the event loop are written with one writev (corked until then).
  let corked = false;
  const uncork = (): void => { corked = false; raw.uncork(); };
  tcp.on('data', (chunk: Buffer) => {
    if (ws.readyState !== WebSocket.OPEN) return;
    last = Date.now();
    toViewer += chunk.length;
    recorder?.write(chunk);
    if (!corked) { corked = true; raw.cork(); setImmediate(uncork); }
    ws.send(chunk, SEND);
    if (!vmPaused && ws.bufferedAmount > limits.highWaterBytes && raw.writableNeedDrain) {
      vmPaused = true;
      tcp.pause();
    }
  });
  // The viewer's socket drained: everything queued has reached the kernel.
  raw.on('drain', () => {
    if (vmPaused && ws.readyState === WebSocket.OPEN) {
      vmPaused = false;
      tcp.resume();
    }
  });

  // viewer → VM
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (!isBinary) { closeViewer(CLOSE.BINARY_ONLY, 'RFB is binary: text messages are not accepted'); return; }
    if (!tcp.writable) return;
    const verdict = filter.push(data);
    if (!verdict.ok) { closeViewer(CLOSE.PROTOCOL, verdict.reason); return; }
    if (verdict.out.length === 0) return;
    last = Date.now();
    if (deps.touch && last - touched >= 1000) { touched = last; deps.touch(vmId); }
    toVm += verdict.out.length;
    const ok = tcp.write(verdict.out);
    // Not write()'s verdict alone: that turns false past 16 KiB and would stop the viewer socket after every
    // framebuffer-sized message. Past highWaterBytes, and only once 'drain' is due (so it will come).
    if (!ok && !viewerPaused && tcp.writableLength > limits.highWaterBytes) {
      viewerPaused = true;
      ws.pause();
    }
  });
  tcp.on('drain', () => {
    if (viewerPaused) {
      viewerPaused = false;
      ws.resume();
    }
  });

  // Close, both ways.
  tcp.on('end', () => closeViewer(CLOSE.VM_CLOSED, 'the VM closed the desktop connection'));
  tcp.on('error', (e: NodeJS.ErrnoException) => {
    deps.log?.warn({ vmId, err: e.code ?? e.message }, 'VM desktop connection failed');
    closeViewer(CLOSE.VM_ERROR, 'the connection to the VM failed');
  });
  tcp.on('close', () => closeViewer(CLOSE.VM_CLOSED, 'the VM closed the desktop connection'));
  ws.on('error', (e) => {
    deps.log?.warn({ vmId, err: e.message }, 'viewer connection failed');
    tcp.destroy();
  });
  ws.on('close', (code) => {
    if (ended) return;
    ended = true;
    clearTimeout(idleTimer);
    clearInterval(flusher);
    flush();
    tcp.end(); // lets keystrokes already queued reach the VM
    recorder?.end();
    setTimeout(() => tcp.destroy(), 2_000).unref();
    onEnd();
    deps.log?.info({ vmId, code, bytesToVm: toVm, bytesToViewer: toViewer, ms: Date.now() - openedAt }, 'viewer disconnected');
    resolveDone();
  });

  const checkIdle = (): void => {
    const quiet = Date.now() - last;
    if (quiet >= limits.idleMs) closeViewer(CLOSE.IDLE, 'idle timeout');
    else idleTimer = setTimeout(checkIdle, limits.idleMs - quiet).unref();
  };
  let idleTimer = setTimeout(checkIdle, limits.idleMs).unref();
  const flusher = setInterval(flush, 1000).unref();

  return {
    info: () => ({
      vmId, viewer: viewer.id, scope: viewer.scope, inputDropped: filter.dropped, openedAt, bytesToVm: toVm, bytesToViewer: toViewer, vmPaused, viewerPaused,
      bufferedToViewer: ws.bufferedAmount, bufferedToVm: tcp.writableLength,
    }),
    close: closeViewer,
    endVm: (reason, ms) => new Promise<void>((res) => {
      if (tcp.destroyed) { res(); return; }
      const t = setTimeout(() => { tcp.destroy(); res(); }, ms);
      tcp.once('close', () => { clearTimeout(t); res(); });
      closeViewer(CLOSE.VM_GONE, reason);
      tcp.resume(); // read on to the server's FIN (what arrives now goes nowhere: the viewer is closing)
      tcp.end();
    }),
    done,
    terminate: () => { ws.terminate(); tcp.destroy(); },
  };
}

/**
 * Handles WebSocket upgrades for `GET /v1/vms/:id/vnc?token=…` on `server` (Fastify's `app.server`). Other upgrade
 * paths are left to other listeners, or answered 404 when there are none.
 */
export function attachVncBridge(server: Server, deps: DesktopDeps): VncBridge {
  const limits = checkDeps(deps);
  const registry = registryFor(deps);
  const control = controlFor(deps);
  const sessions = new Map<Session, string>();
  const wss = new WebSocketServer({
    noServer: true, perMessageDeflate: false, clientTracking: false, maxPayload: limits.maxMessageBytes, handleProtocols: pickProtocol,
  });
  let closing = false;

  const count = (status: number, code?: string): void => {
    deps.metrics.requests.inc({ route: VNC_ROUTE, status: `${String(status)[0]}xx` });
    if (code) deps.metrics.errors.inc({ code });
  };
  const refuseAndCount = (socket: Duplex, e: unknown, vmId?: string): void => {
    const err = toHangarError(e);
    const status = refuse(socket, err);
    count(status, err.code);
    deps.log?.info({ vmId, code: err.code, ...(err.code === 'VIEWER_TOKEN_INVALID' ? { reason: err.details.reason } : {}),
      ...(err.code === 'VIEWER_ORIGIN_REFUSED' ? { origin: err.details.origin, host: err.details.host } : {}) }, 'viewer refused');
  };

  const accept = async (req: IncomingMessage, socket: Duplex, head: Buffer, vmId: string, token: string | undefined, viewerParam: string | undefined): Promise<void> => {
    const problem = handshakeProblem(req);
    if (problem) throw new HangarError('INVALID_ARGUMENT', problem);
    const pub = publicOrigins(deps);
    if (!originAllowed(req.headers.origin, pub.origins)) {
      throw new HangarError('VIEWER_ORIGIN_REFUSED', 'a page from another origin may not open this desktop (allow its origin in viewerOrigins)', { vmId, origin: req.headers.origin });
    }
    if (!hostAllowed(req.headers.host, pub)) throw hostRefused(req.headers.host, vmId);
    // By id only; a VM that is gone (or was never) has no nonce, so any token for it is 'invalid'.
    const vm = deps.lookup(vmId);
    const check = verifyViewerToken(deps.secret, vmId, vm?.viewerNonce ?? null, token, Date.now());
    if (!check.ok) throw tokenError(check.reason);
    if (check.scope === 'cdp') throw scopeError(check.scope, 'the desktop');
    if (viewerParam === '!') throw new HangarError('INVALID_ARGUMENT', 'viewer must be one id of 1-64 letters, digits, _ or -', { field: 'viewer' });
    const viewerId = viewerParam ?? `v-${randomBytes(8).toString('hex')}`;
    if (control.has(vmId, viewerId)) throw new HangarError('CONFLICT', `viewer ${viewerId} is already connected`, { vmId, viewer: viewerId });
    if (!vm) throw new HangarError('VM_NOT_FOUND', `no VM ${vmId}`, { id: vmId });
    if (vm.state !== 'ready') throw new HangarError('VM_INVALID_STATE', `VM ${vmId} is ${vm.state}: its desktop can be viewed when it is ready`, { id: vmId, state: vm.state });
    const slot = registry.reserve(vmId, limits.viewersPerVm, vm.tenant);
    // Held from before the dial (which may restore a hibernated VM) until the viewer leaves.
    const unhold = deps.hold?.(vmId);
    const release = (): void => { slot(); unhold?.(); };
    let tcp: Duplex;
    try {
      tcp = await dialWithTimeout(deps, vmId, limits.dialTimeoutMs, limits.vmReadBufferBytes);
    } catch (e) {
      release();
      throw e;
    }
    tcp.on('error', () => undefined); // reported by the session once spliced; before that the socket is dropped
    if (socket.destroyed || closing) { // the viewer left while we were dialling
      release();
      tcp.destroy();
      return;
    }
    let upgraded = false;
    socket.once('close', () => { if (!upgraded) { release(); tcp.destroy(); } });
    wss.handleUpgrade(req, socket, head, (ws) => {
      upgraded = true;
      count(101);
      const scope = check.scope;
      const leave = control.join(vmId, viewerId, scope);
      const viewer: Viewer = { id: viewerId, scope, allowInput: () => scope === 'control' && control.inControl(vmId, viewerId) };
      const s = splice(ws, socket, tcp, vmId, viewer, limits, deps, () => { leave(); release(); sessions.delete(s); });
      sessions.set(s, vmId);
      deps.log?.info({ vmId, remote: req.socket.remoteAddress, viewers: registry.count(vmId), protocol: ws.protocol || null }, 'viewer connected');
    });
  };

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const target = parseVncRequest(req.url);
    if (!target) {
      if (claim.refusesUnclaimed(req.url)) refuseAndCount(socket, new HangarError('NOT_FOUND', `no WebSocket route ${redactUrl(req.url ?? '')}`));
      return;
    }
    socket.on('error', () => undefined); // a viewer vanishing mid-handshake is not a controller error
    if (closing) { refuseAndCount(socket, new HangarError('CANCELLED', 'the controller is shutting down'), target.vmId); return; }
    accept(req, socket, head, target.vmId, target.token, target.viewer).catch((e: unknown) => refuseAndCount(socket, e, target.vmId));
  };
  const claim = claimUpgrades(server, (url) => parseVncRequest(url) !== null);
  server.on('upgrade', onUpgrade);
  const disconnect = (vmId: string, reason: string): number => {
    let n = 0;
    for (const [s, id] of sessions) if (id === vmId) { s.close(CLOSE.VM_GONE, reason); n++; }
    return n;
  };
  // A revoke (POST /v1/vms/:id/viewer/revoke) also closes the viewers already connected with an old token.
  const offRevoke = registry.onRevoke((vmId) => { disconnect(vmId, 'viewer access revoked'); });

  return {
    viewers: (vmId) => registry.count(vmId),
    sessions: () => [...sessions.keys()].map((s) => s.info()),
    disconnect: (vmId, reason = 'the VM is no longer running') => disconnect(vmId, reason),
    quiesce: async (vmId, reason, timeoutMs = 1500) => {
      const mine = [...sessions].filter(([, id]) => id === vmId).map(([s]) => s);
      await Promise.all(mine.map((s) => s.endVm(reason, timeoutMs)));
      return mine.length;
    },
    close: async () => {
      closing = true;
      offRevoke();
      server.off('upgrade', onUpgrade);
      claim.release();
      const all = [...sessions.keys()];
      for (const s of all) s.close(CLOSE.SHUTDOWN, 'the controller is shutting down');
      await waitAtMost(Promise.all(all.map((s) => s.done)), 2_000, null);
      for (const s of sessions.keys()) s.terminate();
      wss.close();
    },
  };
}
