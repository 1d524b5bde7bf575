// The E2B compatibility layer, as the composition root mounts it: the REST routes (a route module, in the route
// table and /openapi.json), envd under /e2b/sandbox, X-API-KEY as the bearer for /e2b/, the timeout loop, the
// sandbox fields forgotten when their VM goes away, and @e2b/desktop's stream hosts (src/e2b/stream.ts). With
// E2B_API_URL=http://HOST:PORT/e2b, E2B_SANDBOX_URL=http://HOST:PORT/e2b/sandbox and E2B_API_KEY=<a Hangar API
// key>, the e2b SDKs drive Hangar.
import type { FastifyInstance } from 'fastify';
import { HangarError } from '../errors.js';
import type { ApiContext, ApiRouteModule, EventPort } from '../api/routes.js';
import type { VmLimits } from '../vm/input.js';
import type { VmService } from '../vm/service.js';
import { attachE2bAuth } from './auth.js';
import type { DesktopPort } from './desktop.js';
import type { E2bPersistence } from './persist.js';
import { registerEnvd } from './envd.js';
import { sandboxState } from './model.js';
import { e2bRestRoutes, type E2bRestDeps } from './rest.js';
import { E2bState, startTimeoutLoop } from './state.js';
import { attachStreamHosts, StreamKeys, streamRoutes } from './stream.js';

export { E2bState } from './state.js';
export { E2bRows } from './persist.js';

export interface E2bOptions {
  limits: VmLimits;
  readyTimeoutMs?: number;
  claim?: E2bRestDeps['claim'];
  log?: (msg: string, data: Record<string, unknown>) => void;
  /** Computer use: @e2b/desktop's xdotool/scrot/xrandr commands are answered through it. */
  desktop?: DesktopPort;
  /** Where the sandboxes' fields are kept across restarts (the controller's database); absent: memory only. */
  persist?: E2bPersistence;
  /** The controller's public origin (e.g. http://127.0.0.1:8080): where a stream URL's viewer redirect goes. */
  publicOrigin?: () => string | undefined;
}

export interface E2b {
  state: E2bState;
  routes: ApiRouteModule;
  /** Mounts envd and the header mapping on the built server, starts the timeout loop; the undo. */
  attach(app: FastifyInstance, ctx: ApiContext): Promise<() => void>;
}

export function createE2b(o: E2bOptions): E2b {
  const state = new E2bState(o.persist);
  const keys = new StreamKeys();
  let app: FastifyInstance | undefined; // set by attach: the stream route mints viewers through the server's own route
  return {
    state,
    routes: (ctx) => [
      ...e2bRestRoutes(ctx, { state, limits: o.limits, ...(o.readyTimeoutMs ? { readyTimeoutMs: o.readyTimeoutMs } : {}), ...(o.claim ? { claim: o.claim } : {}) }),
      ...streamRoutes({
        keys,
        viewerUrl: (id, viewOnly) => {
          if (!app) throw new HangarError('VM_NOT_FOUND', `no viewer for ${id} yet`, { id });
          return viewerUrl(app, ctx.token, o.publicOrigin?.(), id, viewOnly);
        },
      }),
    ],
    attach: async (server, ctx) => {
      app = server;
      const desktop = o.desktop ? { run: o.desktop.run.bind(o.desktop), streamKey: (id: string, k: string) => keys.set(id, k) } : undefined;
      await registerEnvd(server, { state, vms: ctx.vms, agents: () => ctx.agents, log: server.log, ...(desktop ? { desktop } : {}) });
      const detachStream = attachStreamHosts(server.server, (id) => state.get(id) !== undefined);
      const detachAuth = attachE2bAuth(server.server);
      const off = forgetGone(ctx.events, state, keys);
      const loop = startTimeoutLoop(timeoutDeps(ctx.vms, state, o.log));
      return () => { loop.stop(); off(); detachAuth(); detachStream(); };
    },
  };
}

function forgetGone(events: EventPort, state: E2bState, keys: StreamKeys): () => void {
  return events.onEvent((e) => { if (e.vmId && e.type === 'vm.destroyed') { state.forget(e.vmId); keys.forget(e.vmId); } });
}

/** A fresh viewer page for the VM, through the controller's own viewer route (its TTL, nonce and scopes). */
async function viewerUrl(server: FastifyInstance, token: string, origin: string | undefined, vmId: string, viewOnly: boolean): Promise<string> {
  const r = await server.inject({ method: 'POST', url: `/v1/vms/${encodeURIComponent(vmId)}/viewer`, headers: { authorization: `Bearer ${token}` }, payload: { viewOnly } });
  const body = r.json<{ url?: string; error?: { message?: string } }>();
  if (r.statusCode !== 200 || !body.url) throw new HangarError('VM_NOT_FOUND', body.error?.message ?? `no viewer for ${vmId}`, { id: vmId });
  return origin ? new URL(body.url, origin).toString() : body.url;
}

function timeoutDeps(vms: VmService, state: E2bState, log?: E2bOptions['log']): Parameters<typeof startTimeoutLoop>[0] {
  return {
    state,
    paused: (id) => {
      try { return sandboxState(vms.get(id)) === 'paused'; } catch { state.forget(id); return true; }
    },
    kill: (id) => vms.destroy(id),
    pause: async (id) => { await vms.hibernate(id); },
    ...(log ? { log } : {}),
  };
}
