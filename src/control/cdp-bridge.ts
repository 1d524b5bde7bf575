// `GET /v1/vms/:id/cdp` upgraded to a WebSocket and spliced, byte for byte, to the guest Chromium's browser target
// through the agent's TCP forward. Everything is checked before anything is dialled: the bearer or a CDP token of
// this VM, the browser's Origin, a ready browser-profile VM (CDP_UNAVAILABLE for a desktop one). Then Chromium's
// browser path is read from its /json/version, the client's upgrade is replayed to Chromium (its Host, no Origin)
// and Chromium's own 101 answer goes back to the client: no WebSocket framing is redone here.
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { AgentPort } from '../agent/port.js';
import { originAllowed, refuse } from '../desktop/bridge.js';
import { scopeError, tokenError, verifyViewerToken } from '../desktop/token.js';
import { claimUpgrades } from '../util/upgrades.js';
import { HangarError, toHangarError } from '../errors.js';
import { browserPath, cdpGetJson, CDP_WS_PATH, checkCdpVm, dialCdp, upgradeRequest, type CdpVm } from './cdp.js';

export interface CdpBridgeDeps {
  lookup(vmId: string): (CdpVm & { viewerNonce: Buffer }) | null;
  secret: Buffer;
  /** Checks an API key presented as a bearer for this VM (scope, tenant) and answers the VM's canonical id, or throws. */
  authorizeBearer: (header: string, vmId: string) => string;
  agents: AgentPort | null;
  /** Browser origins allowed to open CDP (the controller's public origins); no Origin (not a browser) is fine. */
  origins?(): ReadonlySet<string>;
  log?: { info(o: object, m: string): void; warn(o: object, m: string): void };
}

export interface CdpBridge {
  sessions(): number;
  close(): void;
}

export function parseCdpRequest(url: string | undefined): { vmId: string; token: string | undefined } | null {
  if (!url) return null;
  const q = url.indexOf('?');
  const m = CDP_WS_PATH.exec(q < 0 ? url : url.slice(0, q));
  if (!m) return null;
  let vmId: string;
  try { vmId = decodeURIComponent(m[1]!); } catch { return null; }
  const tokens = new URLSearchParams(q < 0 ? '' : url.slice(q + 1)).getAll('token');
  return { vmId, token: tokens.length > 1 ? '!' : tokens[0] };
}

/** The checks of a CDP upgrade, in order; throws the refusal. Nothing is dialled by it. */
export function admitCdp(req: Pick<IncomingMessage, 'headers'>, vmId: string, token: string | undefined, deps: CdpBridgeDeps): void {
  if (req.headers.origin !== undefined && !originAllowed(req.headers.origin, deps.origins?.() ?? new Set())) {
    throw new HangarError('VIEWER_ORIGIN_REFUSED', 'a page from another origin may not open CDP', { vmId, origin: req.headers.origin });
  }
  if (req.headers.authorization !== undefined) vmId = deps.authorizeBearer(req.headers.authorization, vmId);
  const vm = deps.lookup(vmId);
  if (req.headers.authorization === undefined) {
    if (token === undefined) throw new HangarError('UNAUTHORIZED', 'a bearer token or a CDP token (?token=) is required');
    const check = verifyViewerToken(deps.secret, vmId, vm?.viewerNonce ?? null, token, Date.now());
    if (!check.ok) throw tokenError(check.reason);
    if (check.scope !== 'cdp') throw scopeError(check.scope, 'CDP');
  }
  checkCdpVm(vmId, vm);
}

export function attachCdpBridge(server: Server, deps: CdpBridgeDeps): CdpBridge {
  const open = new Set<Duplex>();
  const accept = async (req: IncomingMessage, socket: Duplex, head: Buffer, vmId: string, token: string | undefined): Promise<void> => {
    if (req.method !== 'GET' || req.headers.upgrade?.toLowerCase() !== 'websocket') throw new HangarError('INVALID_ARGUMENT', 'only WebSocket upgrades are served here');
    const key = req.headers['sec-websocket-key'];
    if (typeof key !== 'string') throw new HangarError('INVALID_ARGUMENT', 'Sec-WebSocket-Key is missing');
    admitCdp(req, vmId, token, deps);
    const path = browserPath(await cdpGetJson(await dialCdp(deps.agents, vmId), '/json/version'));
    const up = await dialCdp(deps.agents, vmId);
    if (socket.destroyed) { up.destroy(); return; }
    const protocol = typeof req.headers['sec-websocket-protocol'] === 'string' ? req.headers['sec-websocket-protocol'].split(',')[0]!.trim() : undefined;
    up.write(upgradeRequest(path, key, protocol));
    if (head.length) up.write(head);
    open.add(socket);
    const end = (): void => { open.delete(socket); socket.destroy(); up.destroy(); };
    up.on('error', end); socket.on('error', end);
    up.on('close', end); socket.on('close', end);
    socket.pipe(up);
    up.pipe(socket);
    deps.log?.info({ vmId }, 'CDP client connected');
  };
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const t = parseCdpRequest(req.url);
    if (!t) {
      if (claim.refusesUnclaimed(req.url)) refuse(socket, new HangarError('NOT_FOUND', 'no WebSocket route here'));
      return;
    }
    socket.on('error', () => undefined);
    accept(req, socket, head, t.vmId, t.token).catch((e: unknown) => {
      const err = toHangarError(e);
      deps.log?.info({ vmId: t.vmId, code: err.code }, 'CDP client refused');
      refuse(socket, err);
    });
  };
  const claim = claimUpgrades(server, (url) => parseCdpRequest(url) !== null);
  server.on('upgrade', onUpgrade);
  return {
    sessions: () => open.size,
    close: () => { server.off('upgrade', onUpgrade); claim.release(); for (const s of open) s.destroy(); },
  };
}
