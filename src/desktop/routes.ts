// The desktop routes: viewer tokens and their revocation, the viewer page, its status poll, the static client files, and (for the
// OpenAPI document only) the WebSocket bridge, which attachVncBridge serves on the raw server.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type, type Static } from 'typebox';
import { HangarError } from '../errors.js';
import type { ApiContext, ApiRoute } from '../api/routes.js';
import { errorSchema, idParams, type IdParams } from '../api/schemas.js';
import { VNC_ROUTE } from './bridge.js';
import { checkDeps, hostAllowed, hostRefused, publicOrigins, registryFor, type DesktopDeps } from './deps.js';
import { PAGE_HEADERS, renderErrorPage, renderViewerPage } from './page.js';
import { STATIC_PREFIX, loadStaticTable } from './static.js';
import { signViewerToken, tokenError, verifyViewerToken, type TokenCheck } from './token.js';
import { controlRoutes } from './control-routes.js';

const tokenQuery = Type.Object({
  token: Type.Optional(Type.String({ maxLength: 1024, description: 'viewer token from POST /v1/vms/:id/viewer' })),
}, { additionalProperties: false });

type IdReq = FastifyRequest<{ Params: IdParams; Querystring: Static<typeof tokenQuery> }>;

/** POST /v1/vms/:id/viewer: optional; the token lifetime may not exceed the desktop's maxTokenTtlMs. */
const viewerBody = (maxTtlS: number, defaultTtlS: number) => Type.Union([
  Type.Object({
    ttlSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: maxTtlS, description: `token lifetime (default ${defaultTtlS})` })),
    viewOnly: Type.Optional(Type.Boolean({ description: "a view-only token: the viewer watches, its input never reaches the VM" })),
  }, { additionalProperties: false }),
  Type.Null(),
]);
type ViewerBody = Static<ReturnType<typeof viewerBody>>;

const viewerResponse = {
  type: 'object',
  required: ['token', 'url', 'expiresAt'],
  properties: {
    token: { type: 'string' },
    url: { type: 'string', description: 'the viewer page, relative to the controller' },
    expiresAt: { type: 'string', format: 'date-time' },
  },
} as const;

const revokeResponse = {
  type: 'object',
  required: ['id', 'revoked'],
  properties: {
    id: { type: 'string', description: 'the VM whose viewer tokens are no longer valid' },
    revoked: { type: 'boolean' },
  },
} as const;

const statusResponse = {
  type: 'object',
  required: ['id', 'state', 'viewers', 'maxViewers', 'tokenExpiresAt'],
  properties: {
    id: { type: 'string' },
    state: { type: 'string' },
    viewers: { type: 'integer' },
    maxViewers: { type: 'integer' },
    tokenExpiresAt: { type: 'string', format: 'date-time' },
  },
} as const;

/** The viewer page for a VM with its token (what POST /v1/vms/:id/viewer answers as `url`). */
export const viewUrl = (vmId: string, token: string): string => `/view/${encodeURIComponent(vmId)}?token=${token}`;

export function desktopRoutes(ctx: ApiContext, desk: DesktopDeps): ApiRoute[] {
  const limits = checkDeps(desk);
  const registry = registryFor(desk);
  const files = loadStaticTable();
  // The viewer page and its status poll name the VM by id only (the token is bound to the canonical id and to the
  // VM's current nonce), and answer only under the controller's public host names (DNS rebinding).
  const hostProblem = (req: IdReq): HangarError | null => (hostAllowed(req.headers.host, publicOrigins(desk)) ? null : hostRefused(req.headers.host, req.params.id));
  const check = (req: IdReq): TokenCheck => {
    const vm = desk.lookup(req.params.id);
    return verifyViewerToken(desk.secret, req.params.id, vm?.viewerNonce ?? null, req.query.token, Date.now());
  };

  return [
    {
      method: 'POST', url: '/v1/vms/:id/viewer', summary: 'A short-lived viewer token and page URL for the VM desktop (viewer-only keys may do this, and only this)', auth: 'bearer', scope: 'viewer',
      schema: { params: idParams, body: viewerBody(Math.floor(limits.maxTokenTtlMs / 1000), Math.round(limits.tokenTtlMs / 1000)), response: { 200: viewerResponse, '4xx': errorSchema, '5xx': errorSchema } },
      handler: (req) => {
        const vm = ctx.vms.get((req as IdReq).params.id); // ids and names; the token binds the canonical id
        const ttlS = (req.body as ViewerBody | undefined)?.ttlSeconds;
        const ttlMs = ttlS === undefined ? limits.tokenTtlMs : ttlS * 1000;
        if (ttlMs > limits.maxTokenTtlMs) {
          throw new HangarError('INVALID_ARGUMENT', `ttlSeconds may be at most ${limits.maxTokenTtlMs / 1000}`, { max: limits.maxTokenTtlMs / 1000 });
        }
        const expiresAt = Date.now() + ttlMs;
        const nonce = desk.lookup(vm.id)?.viewerNonce;
        if (!nonce) throw new HangarError('VM_NOT_FOUND', `no VM ${vm.id}`, { id: vm.id });
        const viewOnly = (req.body as ViewerBody | undefined)?.viewOnly === true;
        const token = signViewerToken(desk.secret, vm.id, nonce, expiresAt, undefined, viewOnly ? 'view' : 'control');
        return { token, url: viewUrl(vm.id, token), expiresAt: new Date(expiresAt).toISOString() };
      },
    },
    {
      method: 'POST', url: '/v1/vms/:id/viewer/revoke', summary: 'Revokes every viewer token of the VM at once and closes its viewers', auth: 'bearer', scope: 'write',
      schema: { params: idParams, response: { 200: revokeResponse, '4xx': errorSchema, '5xx': errorSchema } },
      handler: (req) => {
        const vm = ctx.vms.get((req as IdReq).params.id); // ids and names; VM_NOT_FOUND for neither
        if (!desk.rotateNonce(vm.id)) throw new HangarError('VM_NOT_FOUND', `no VM ${vm.id}`, { id: vm.id });
        registry.revoked(vm.id);
        return { id: vm.id, revoked: true };
      },
    },
    {
      method: 'GET', url: '/view/:id', summary: 'The browser viewer for the VM desktop (noVNC, served here)', auth: 'viewer-token',
      produces: 'text/html',
      schema: { params: idParams, querystring: tokenQuery },
      handler: (req, reply) => {
        const r = req as IdReq;
        reply.headers(PAGE_HEADERS);
        const refused = hostProblem(r);
        if (refused) {
          ctx.metrics.errors.inc({ code: refused.code });
          return reply.code(403).send(renderErrorPage('Viewer not served here', refused.message));
        }
        const ok = check(r);
        if (!ok.ok) {
          ctx.metrics.errors.inc({ code: 'VIEWER_TOKEN_INVALID' });
          const title = ok.reason === 'expired' ? 'Viewer link expired' : 'Viewer link not valid';
          return reply.code(401).send(renderErrorPage(title, tokenError(ok.reason).message, ok.reason === 'missing' ? { resumeVm: r.params.id } : {}));
        }
        return reply.code(200).send(renderViewerPage(r.params.id));
      },
    },
    {
      method: 'GET', url: '/v1/vms/:id/viewer-status', summary: 'Why a viewer is (dis)connected: VM state and viewer count', auth: 'viewer-token',
      schema: { params: idParams, querystring: tokenQuery, response: { 200: statusResponse, '4xx': errorSchema, '5xx': errorSchema } },
      handler: (req, reply) => {
        const r = req as IdReq;
        reply.header('cache-control', 'no-store');
        const refused = hostProblem(r);
        if (refused) throw refused;
        const vm = desk.lookup(r.params.id);
        const ok = verifyViewerToken(desk.secret, r.params.id, vm?.viewerNonce ?? null, r.query.token, Date.now());
        // A well-formed token for a VM that is gone: the page says "VM not found" (this answer opens nothing; the
        // bridge and the page itself refuse such a token as invalid).
        if (!ok.ok && !vm && ok.reason === 'invalid') throw new HangarError('VM_NOT_FOUND', `no VM ${r.params.id}`, { id: r.params.id });
        if (!ok.ok) throw tokenError(ok.reason);
        if (!vm) throw new HangarError('VM_NOT_FOUND', `no VM ${r.params.id}`, { id: r.params.id });
        return {
          id: r.params.id, state: vm.state, viewers: registry.count(r.params.id), maxViewers: limits.viewersPerVm,
          tokenExpiresAt: new Date(ok.expiresAt).toISOString(),
        };
      },
    },
    {
      method: 'GET', url: VNC_ROUTE, summary: 'WebSocket (subprotocol "binary") to the VM desktop\'s RFB server; ?token= required; browsers only from the controller\'s origin or viewerOrigins',
      auth: 'viewer-token', websocket: true,
      schema: { params: idParams, querystring: tokenQuery },
      handler: () => { throw new HangarError('INTERNAL', 'served by the WebSocket bridge'); },
    },
    {
      method: 'GET', url: `${STATIC_PREFIX}*`, summary: 'Viewer client files (noVNC and the Hangar page script)', auth: 'none',
      produces: 'text/javascript',
      schema: {},
      handler: (req, reply) => staticFile(files, (req.params as { '*': string })['*'], req.headers['if-none-match'], reply),
    },
    ...controlRoutes(ctx, desk),
  ];
}

function staticFile(files: ReturnType<typeof loadStaticTable>, rel: string, ifNoneMatch: string | undefined, reply: FastifyReply): FastifyReply {
  const f = files.get(`${STATIC_PREFIX}${rel}`);
  if (!f) throw new HangarError('NOT_FOUND', `no static file ${rel}`);
  reply.headers({ 'x-content-type-options': 'nosniff', 'cache-control': 'public, max-age=3600', etag: f.etag });
  if (ifNoneMatch === f.etag) return reply.code(304).send();
  return reply.type(f.type).send(f.body);
}
