// CDP for browser-profile VMs: Chromium in the guest listens on guest loopback :9222 (hangar-init), the controller
// reaches it through the guest agent's TCP forward (AgentSession.connectTcp), and clients see Hangar's URLs only.
// This file: the pure parts (the discovery document rewritten to point back at Hangar, the upgrade request sent to
// Chromium) and the small HTTP exchange over an agent stream. cdp-bridge.ts serves the WebSocket.
import type { Duplex } from 'node:stream';
import { HangarError } from '../errors.js';
import type { AgentPort } from '../agent/port.js';

/** Chromium's remote-debugging port inside the guest (loopback only). */
export const CDP_PORT = 9222;
export const CDP_WS_PATH = /^\/v1\/vms\/([^/?#]+)\/cdp$/;

/** What CDP needs of a VM, by id. */
export interface CdpVm {
  state: string;
  profile: string;
}

/** CDP_UNAVAILABLE unless the VM is a ready browser-profile VM (checked before anything is dialled). */
export function checkCdpVm(id: string, vm: CdpVm | null): void {
  if (!vm) throw new HangarError('VM_NOT_FOUND', `no VM ${id}`, { id });
  if (vm.profile !== 'browser') throw new HangarError('CDP_UNAVAILABLE', `VM ${id} has the ${vm.profile} profile: CDP is for browser-profile VMs`, { id, profile: vm.profile });
  if (vm.state !== 'ready') throw new HangarError('VM_INVALID_STATE', `VM ${id} is ${vm.state}: CDP is available when it is ready`, { id, state: vm.state });
}

/** Hangar's CDP WebSocket URL for a VM, as clients should dial it. */
export function cdpWsUrl(origin: string, vmId: string, token: string): string {
  return `${origin.replace(/^http/, 'ws')}/v1/vms/${encodeURIComponent(vmId)}/cdp?token=${token}`;
}

/**
 * Chromium's /json/version with its own URLs replaced by Hangar's: webSocketDebuggerUrl (what Playwright's
 * connectOverCDP and Puppeteer's browserURL dial) points at Hangar's endpoint; nothing of the guest address is left.
 */
export function rewriteVersion(doc: Record<string, unknown>, wsUrl: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of ['Browser', 'Protocol-Version', 'User-Agent', 'V8-Version', 'WebKit-Version']) if (typeof doc[k] === 'string') out[k] = doc[k];
  out.webSocketDebuggerUrl = wsUrl;
  return out;
}

/** The browser target's path (/devtools/browser/<id>) from Chromium's webSocketDebuggerUrl. */
export function browserPath(doc: Record<string, unknown>): string {
  const u = doc.webSocketDebuggerUrl;
  if (typeof u !== 'string') throw new HangarError('VM_UNREACHABLE', "the guest's Chromium answered /json/version without webSocketDebuggerUrl");
  const path = new URL(u).pathname;
  if (!/^\/devtools\/browser\/[A-Za-z0-9-]+$/.test(path)) throw new HangarError('VM_UNREACHABLE', "the guest's Chromium gave an unexpected browser URL", { path });
  return path;
}

/**
 * The WebSocket upgrade sent to Chromium for a client's: Chromium's Host (it refuses other names), the client's key
 * (so Chromium's 101 answer, passed on as is, is valid for the client), and no Origin (Chromium refuses WebSocket
 * origins it was not told about; the client's origin was checked by Hangar) and no extensions.
 */
export function upgradeRequest(path: string, key: string, protocol?: string): string {
  if (!/^[A-Za-z0-9+/=]{16,64}$/.test(key)) throw new HangarError('INVALID_ARGUMENT', 'Sec-WebSocket-Key is malformed');
  return `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${CDP_PORT}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${protocol && /^[\w.-]{1,64}$/.test(protocol) ? `Sec-WebSocket-Protocol: ${protocol}\r\n` : ''}\r\n`;
}

/** A GET of `path` on the guest's Chromium over one agent stream; its JSON body (under TCG a busy Chromium takes seconds). */
export async function cdpGetJson(stream: Duplex, path: string, timeoutMs = 30_000): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const done = (e: Error | null, v?: Record<string, unknown>): void => {
      clearTimeout(timer);
      stream.destroy();
      if (e) reject(e); else resolve(v!);
    };
    const timer = setTimeout(() => done(new HangarError('VM_UNREACHABLE', `the guest's Chromium did not answer ${path} within ${timeoutMs} ms`)), timeoutMs);
    const parse = (): void => {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.subarray(0, end).toString('latin1');
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      if (!status || status[1] !== '200') { done(new HangarError('VM_UNREACHABLE', `the guest's Chromium answered ${path}: ${head.split('\r\n')[0]}`)); return; }
      const len = /\r\ncontent-length: *(\d+)/i.exec(head);
      const body = buf.subarray(end + 4);
      if (len && body.length < Number(len[1])) return;
      try { done(null, JSON.parse(body.subarray(0, len ? Number(len[1]) : body.length).toString('utf8')) as Record<string, unknown>); } catch { if (len) done(new HangarError('VM_UNREACHABLE', `the guest's Chromium sent no JSON for ${path}`)); }
    };
    stream.on('data', (d: Buffer) => { buf = Buffer.concat([buf, d]); if (buf.length > 1 << 20) done(new HangarError('VM_UNREACHABLE', 'the answer is too large')); else parse(); });
    stream.on('end', () => { parse(); done(new HangarError('VM_UNREACHABLE', `the guest's Chromium closed the connection for ${path}`)); });
    stream.on('error', (e) => done(new HangarError('VM_UNREACHABLE', `the CDP connection failed: ${e.message}`)));
    stream.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${CDP_PORT}\r\nAccept: application/json\r\nConnection: close\r\n\r\n`);
  });
}

/** A stream to the guest's Chromium through the VM's agent (the agent's own errors when it has none). */
export async function dialCdp(agents: AgentPort | null, vmId: string): Promise<Duplex> {
  if (!agents) throw new HangarError('VM_UNREACHABLE', 'this controller has no guest agent wiring: CDP goes through the agent', { vmId });
  const s = await agents.session(vmId, { timeoutMs: 15_000 });
  return s.connectTcp(CDP_PORT);
}
