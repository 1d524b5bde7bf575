// The browser terminal: a short-lived terminal token (POST /v1/vms/:id/terminal), the page (GET /terminal/:id, xterm.js
// served from node_modules), and the admission of its PTY WebSocket (src/api/agent-ws.ts serves the socket itself).
// Terminal tokens are viewer tokens of another purpose (src/desktop/token.ts): signed over the same per-VM nonce, so
// a revoke (POST /v1/vms/:id/viewer/revoke) ends them too, but under their own label, so a viewer token never opens
// a terminal and a terminal token never opens a desktop. The socket's Origin and Host are checked as the viewer's.
import type { IncomingMessage } from 'node:http';
import type { FastifyRequest } from 'fastify';
import { Type, type Static } from 'typebox';
import { HangarError } from '../errors.js';
import type { ApiContext, ApiRoute } from '../api/routes.js';
import { errorSchema, idParams, type IdParams } from '../api/schemas.js';
import { originAllowed } from './bridge.js';
import { checkDeps, hostAllowed, hostRefused, publicOrigins, type DesktopDeps } from './deps.js';
import { escapeHtml, PAGE_HEADERS, renderErrorPage } from './page.js';
import { HANGAR_PREFIX, XTERM_PREFIX } from './static.js';
import { signViewerToken, tokenError, verifyViewerToken, type TokenCheck } from './token.js';

export const TERMINAL_PAGE = '/terminal/:id';
export const terminalUrl = (vmId: string, token: string): string => `/terminal/${encodeURIComponent(vmId)}?token=${token}`;

/** xterm's DOM renderer writes its theme into a <style> element: inline styles are allowed here, scripts are not. */
export const TERMINAL_CSP = [
  "default-src 'self'", "style-src 'self' 'unsafe-inline'", "img-src 'self' data:", "object-src 'none'", "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
].join('; ');

const tokenQuery = Type.Object({ token: Type.Optional(Type.String({ maxLength: 1024, description: 'terminal token from POST /v1/vms/:id/terminal' })) }, { additionalProperties: false });
const ttlBody = (maxS: number) => Type.Union([Type.Object({ ttlSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: maxS })) }, { additionalProperties: false }), Type.Null()]);

export function renderTerminalPage(vmId: string): string {
  const id = escapeHtml(vmId);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Hangar terminal — ${id}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${XTERM_PREFIX}xterm.css">
<link rel="stylesheet" href="${HANGAR_PREFIX}terminal.css">
<script type="module" src="${HANGAR_PREFIX}terminal.js"></script>
</head>
<body data-vm="${id}">
<header id="bar"><span id="vm">${id}</span> <span id="status" data-state="connecting" role="status" aria-live="polite">connecting</span> <span id="message"></span></header>
<main id="term"></main>
</body>
</html>
`;
}

/** Verifies a terminal token for a VM id (by id only, as viewer tokens). */
function verify(desk: DesktopDeps, vmId: string, token: string | undefined): TokenCheck {
  const vm = desk.lookup(vmId);
  return verifyViewerToken(desk.secret, vmId, vm?.viewerNonce ?? null, token, Date.now(), 'terminal');
}

/** Admission of a terminal page's WebSocket: Origin, Host, then the token. Throws the refusal. */
export function terminalAdmission(desk: DesktopDeps): (req: IncomingMessage, vmId: string, token: string | undefined) => void {
  return (req, vmId, token) => {
    const pub = publicOrigins(desk);
    if (!originAllowed(req.headers.origin, pub.origins)) {
      throw new HangarError('VIEWER_ORIGIN_REFUSED', 'a page from another origin may not open this terminal (allow its origin in viewerOrigins)', { vmId, origin: req.headers.origin });
    }
    if (!hostAllowed(req.headers.host, pub)) throw hostRefused(req.headers.host, vmId);
    const ok = verify(desk, vmId, token);
    if (!ok.ok) throw tokenError(ok.reason);
  };
}

export function terminalRoutes(ctx: ApiContext, desk: DesktopDeps): ApiRoute[] {
  const limits = checkDeps(desk);
  return [
    {
      method: 'POST', url: '/v1/vms/:id/terminal', summary: 'A short-lived terminal token and the URL of the browser terminal (a PTY shell in the VM)', auth: 'bearer', scope: 'write',
      schema: {
        params: idParams, body: ttlBody(Math.floor(limits.maxTokenTtlMs / 1000)),
        response: { 200: { type: 'object', required: ['token', 'url', 'expiresAt'], properties: { token: { type: 'string' }, url: { type: 'string' }, expiresAt: { type: 'string', format: 'date-time' } } }, '4xx': errorSchema, '5xx': errorSchema },
      },
      handler: (req) => {
        const vm = ctx.vms.get((req as FastifyRequest<{ Params: IdParams }>).params.id);
        const ttlS = (req.body as { ttlSeconds?: number } | null | undefined)?.ttlSeconds;
        const expiresAt = Date.now() + (ttlS === undefined ? limits.tokenTtlMs : ttlS * 1000);
        const nonce = desk.lookup(vm.id)?.viewerNonce;
        if (!nonce) throw new HangarError('VM_NOT_FOUND', `no VM ${vm.id}`, { id: vm.id });
        const token = signViewerToken(desk.secret, vm.id, nonce, expiresAt, undefined, 'control', 'terminal');
        return { token, url: terminalUrl(vm.id, token), expiresAt: new Date(expiresAt).toISOString() };
      },
    },
    {
      method: 'GET', url: TERMINAL_PAGE, summary: 'The browser terminal for the VM (xterm.js, served here)', auth: 'viewer-token', produces: 'text/html',
      schema: { params: idParams, querystring: tokenQuery },
      handler: (req, reply) => {
        const r = req as FastifyRequest<{ Params: IdParams; Querystring: Static<typeof tokenQuery> }>;
        reply.headers({ ...PAGE_HEADERS, 'content-security-policy': TERMINAL_CSP });
        if (!hostAllowed(r.headers.host, publicOrigins(desk))) {
          ctx.metrics.errors.inc({ code: 'VIEWER_ORIGIN_REFUSED' });
          return reply.code(403).send(renderErrorPage('Terminal not served here', hostRefused(r.headers.host, r.params.id).message));
        }
        const ok = verify(desk, r.params.id, r.query.token);
        if (!ok.ok) {
          ctx.metrics.errors.inc({ code: 'VIEWER_TOKEN_INVALID' });
          return reply.code(401).send(renderErrorPage(ok.reason === 'expired' ? 'Terminal link expired' : 'Terminal link not valid', tokenError(ok.reason).message));
        }
        return reply.code(200).send(renderTerminalPage(r.params.id));
      },
    },
    {
      method: 'GET', url: '/v1/vms/:id/terminal/ws', summary: 'WebSocket of the terminal page: a PTY login shell (?token= a terminal token, ?cols=&rows=); messages as /exec/ws',
      auth: 'viewer-token', websocket: true,
      schema: { params: idParams, querystring: Type.Object({ token: Type.Optional(Type.String({ maxLength: 1024 })), cols: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })), rows: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })) }, { additionalProperties: false }) },
      handler: () => { throw new HangarError('NOT_FOUND', 'a WebSocket: served on upgrade'); },
    },
  ];
}
