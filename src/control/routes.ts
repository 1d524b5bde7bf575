// The programmatic-control routes: POST /v1/vms/:id/computer (the computer-use actions) and the CDP discovery
// documents. Credentials: the API bearer, or a viewer token of the VM in ?token= (a view-only one may look —
// screenshot, cursor, size, clipboard — but not send input; a CDP token opens CDP only). Every refusal comes before
// anything reaches the VM: nothing is dialled for a refused request.
import type { FastifyRequest } from 'fastify';
import { Type, type Static } from 'typebox';
import { authorizeBearerForVm } from '../api/tenancy.js';
import type { ApiContext, ApiRoute } from '../api/routes.js';
import { errorSchema, idParams, type IdParams } from '../api/schemas.js';
import { scopeError, signViewerToken, tokenError, verifyViewerToken, type TokenScope } from '../desktop/token.js';
import { HangarError } from '../errors.js';
import type { AgentPort } from '../agent/port.js';
import type { RouteScope } from '../tenancy/keys.js';
import { ACTIONS, isInput, parseAction } from './actions.js';
import { cdpGetJson, cdpWsUrl, checkCdpVm, dialCdp, rewriteVersion } from './cdp.js';
import type { ComputerService } from './computer.js';

/** What the control routes need of a VM, by id only (tokens name the canonical id). */
export interface ControlVm {
  state: string;
  profile: string;
  viewerNonce: Buffer;
}

export interface ControlDeps {
  lookup(vmId: string): ControlVm | null;
  secret: Buffer;
  computer: ComputerService;
  /** The guest agents (CDP goes through their TCP forward); null: no CDP. */
  agents: AgentPort | null;
  /** Lifetime of CDP tokens (default 5 minutes). */
  cdpTokenTtlMs?: number;
}

const tokenQuery = Type.Object({
  token: Type.Optional(Type.String({ maxLength: 1024, description: 'a viewer token of this VM (instead of the bearer)' })),
}, { additionalProperties: false });
type Req = FastifyRequest<{ Params: IdParams; Querystring: Static<typeof tokenQuery> }>;

const coordinate = { type: 'array', items: { type: 'integer', minimum: 0, maximum: 65535 }, minItems: 2, maxItems: 2 } as const;
/** The body: Anthropic's computer-use tool input as is, plus Hangar's screenshot options (checked by parseAction). */
export const computerBody = {
  type: 'object',
  required: ['action'],
  additionalProperties: false,
  properties: {
    action: { type: 'string', enum: [...ACTIONS] },
    coordinate,
    start_coordinate: coordinate,
    text: { type: 'string', maxLength: 40_000, description: 'type: the text; key/hold_key: xdotool key names (ctrl+l Return); clicks and scroll: modifiers held' },
    duration: { type: 'number', minimum: 0, maximum: 100, description: 'wait and hold_key, in seconds' },
    scroll_direction: { type: 'string', enum: ['up', 'down', 'left', 'right'] },
    scroll_amount: { type: 'integer', minimum: 0, maximum: 100 },
    repeat: { type: 'integer', minimum: 1, maximum: 100, description: 'key: how many times' },
    region: {
      description: 'screenshot/zoom: [x1, y1, x2, y2] or {x, y, width, height}',
      anyOf: [
        { type: 'array', items: { type: 'integer', minimum: 0 }, minItems: 4, maxItems: 4 },
        { type: 'object', additionalProperties: false, required: ['x', 'y', 'width', 'height'], properties: { x: { type: 'integer', minimum: 0 }, y: { type: 'integer', minimum: 0 }, width: { type: 'integer', minimum: 1 }, height: { type: 'integer', minimum: 1 } } },
      ],
    },
    format: { type: 'string', enum: ['png', 'jpeg'] },
    quality: { type: 'integer', minimum: 1, maximum: 100 },
    scale: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
  },
} as const;

const computerResponse = {
  type: 'object',
  required: ['action'],
  additionalProperties: true,
  properties: {
    action: { type: 'string' },
    done: { type: 'boolean' },
    x: { type: 'integer' }, y: { type: 'integer' }, width: { type: 'integer' }, height: { type: 'integer' },
    text: { type: ['string', 'null'] },
    image: { type: 'object', properties: { type: { type: 'string' }, media_type: { type: 'string' }, data: { type: 'string', description: 'base64' } } },
  },
} as const;

/**
 * Who is asking: 'api' for the bearer, else the scope of a valid viewer token for this VM (by id). Refusals:
 * UNAUTHORIZED with neither, VIEWER_TOKEN_INVALID for a bad token.
 */
export function authorise(req: { headers: { authorization?: string | undefined }; params: { id: string }; query: { token?: string | undefined } }, ctx: Pick<ApiContext, 'token' | 'tenancy'>, deps: Pick<ControlDeps, 'lookup' | 'secret'>, need: RouteScope = 'write'): 'api' | TokenScope {
  // A bearer is an API key: its scope and tenant decide (another tenant's VM is not found); the path then names the canonical id.
  if (req.headers.authorization !== undefined) {
    req.params.id = authorizeBearerForVm(ctx, req.headers.authorization, req.params.id, need).vmId;
    return 'api';
  }
  if (req.query.token === undefined) throw new HangarError('UNAUTHORIZED', 'a bearer token or a viewer token (?token=) is required');
  const vm = deps.lookup(req.params.id);
  const check = verifyViewerToken(deps.secret, req.params.id, vm?.viewerNonce ?? null, req.query.token, Date.now());
  if (!check.ok) throw tokenError(check.reason);
  return check.scope;
}

/** The VM the request names, refused unless it can take desktop actions now (hibernated counts as ready). */
function usableVm(ctx: ApiContext, deps: ControlDeps, idOrName: string, viaToken: boolean): { id: string; vm: ControlVm } {
  // A token is bound to the canonical id: with one, the path must be that id (no name lookup).
  const id = viaToken ? idOrName : ctx.vms.get(idOrName).id;
  const vm = deps.lookup(id);
  if (!vm) throw new HangarError('VM_NOT_FOUND', `no VM ${idOrName}`, { id: idOrName });
  if (vm.state !== 'ready') throw new HangarError('VM_INVALID_STATE', `VM ${id} is ${vm.state}: its desktop takes actions when it is ready`, { id, state: vm.state });
  return { id, vm };
}

const versionResponse = {
  type: 'object',
  required: ['webSocketDebuggerUrl'],
  properties: {
    Browser: { type: 'string' }, 'Protocol-Version': { type: 'string' }, 'User-Agent': { type: 'string' }, 'V8-Version': { type: 'string' }, 'WebKit-Version': { type: 'string' },
    webSocketDebuggerUrl: { type: 'string', description: "Hangar's CDP WebSocket for this VM (with a CDP token)" },
  },
} as const;

const cdpTokenResponse = {
  type: 'object',
  required: ['token', 'expiresAt', 'url', 'wsUrl'],
  properties: {
    token: { type: 'string' },
    expiresAt: { type: 'string', format: 'date-time' },
    url: { type: 'string', description: "for Playwright's chromium.connectOverCDP(url) (discovery at url/json/version)" },
    wsUrl: { type: 'string', description: "for puppeteer.connect({ browserWSEndpoint }) and connectOverCDP alike" },
  },
} as const;

export function controlRoutes(ctx: ApiContext, deps: ControlDeps): ApiRoute[] {
  const ttl = deps.cdpTokenTtlMs ?? 5 * 60_000;
  const origin = (req: FastifyRequest): string => `${req.protocol}://${req.headers.host ?? 'localhost'}`;
  /** The VM for CDP and a CDP token to hand out: the one presented, or a new one for the bearer. */
  const cdpAccess = (r: Req): { id: string; token: string; expiresAt: number } => {
    const who = authorise(r, ctx, deps);
    if (who !== 'api' && who !== 'cdp') throw scopeError(who, 'CDP');
    const id = who === 'api' ? ctx.vms.get(r.params.id).id : r.params.id;
    const vm = deps.lookup(id);
    checkCdpVm(id, vm);
    if (who === 'cdp') {
      const c = verifyViewerToken(deps.secret, id, vm!.viewerNonce, r.query.token, Date.now());
      return { id, token: r.query.token!, expiresAt: c.ok ? c.expiresAt : 0 };
    }
    const expiresAt = Date.now() + ttl;
    return { id, token: signViewerToken(deps.secret, id, vm!.viewerNonce, expiresAt, undefined, 'cdp'), expiresAt };
  };
  const version = async (req: FastifyRequest): Promise<Record<string, unknown>> => {
    const a = cdpAccess(req as Req);
    const doc = await cdpGetJson(await dialCdp(deps.agents, a.id), '/json/version');
    return rewriteVersion(doc, cdpWsUrl(origin(req), a.id, a.token));
  };
  const versionRoute = (url: string): ApiRoute => ({
    method: 'GET', url, auth: 'viewer-token', summary: "CDP discovery (Chromium's /json/version shape) with Hangar's WebSocket URL; bearer or ?token= (a CDP token)",
    schema: { params: idParams, querystring: tokenQuery, response: { 200: versionResponse, '4xx': errorSchema, '5xx': errorSchema } },
    handler: version,
  });
  return [
    {
      method: 'POST', url: '/v1/vms/:id/cdp/token', auth: 'bearer', scope: 'write', summary: 'A short-lived CDP token and the URLs Playwright and Puppeteer connect to (browser-profile VMs)',
      schema: { params: idParams, response: { 200: cdpTokenResponse, '4xx': errorSchema, '5xx': errorSchema } },
      handler: (req) => {
        const a = cdpAccess(req as Req);
        const base = `${origin(req)}/v1/vms/${encodeURIComponent(a.id)}/cdp`;
        return { token: a.token, expiresAt: new Date(a.expiresAt).toISOString(), url: `${base}?token=${a.token}`, wsUrl: cdpWsUrl(origin(req), a.id, a.token) };
      },
    },
    versionRoute('/v1/vms/:id/cdp/json/version'),
    versionRoute('/v1/vms/:id/cdp/json/version/'),
    {
      method: 'GET', url: '/v1/vms/:id/cdp', auth: 'viewer-token', websocket: true,
      summary: "WebSocket to the guest Chromium's browser target (CDP); bearer or ?token= (a CDP token); browser-profile VMs only (CDP_UNAVAILABLE)",
      schema: { params: idParams, querystring: tokenQuery },
      handler: () => { throw new HangarError('INTERNAL', 'served by the CDP bridge'); },
    },
    {
      method: 'POST', url: '/v1/vms/:id/computer', auth: 'viewer-token',
      summary: "A computer-use action on the VM desktop (Anthropic's computer-use tool vocabulary; bearer, or ?token= — view-only tokens may not send input)",
      schema: { params: idParams, querystring: tokenQuery, body: computerBody, response: { 200: computerResponse, '4xx': errorSchema, '5xx': errorSchema } },
      handler: async (req) => {
        const r = req as Req;
        const who = authorise(r, ctx, deps);
        const action = parseAction(r.body);
        if (who === 'cdp') throw scopeError(who, 'desktop actions');
        if (who === 'view' && isInput(action)) throw scopeError(who, `input (${action.action})`);
        const { id } = usableVm(ctx, deps, r.params.id, who !== 'api');
        return deps.computer.run(id, action);
      },
    },
  ];
}
