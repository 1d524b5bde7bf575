// Control handoff between the viewers of one VM: GET /v1/vms/:id/control (who is in control, who waits) and
// POST /v1/vms/:id/control (request, grant, release). A viewer names itself by the id it connected with
// (?viewer= on the bridge); the page proves it is a viewer of the VM with its token. The bearer may grant to anyone.
import type { FastifyRequest } from 'fastify';
import { Type, type Static } from 'typebox';
import { bearer, tokenMatches } from '../api/auth.js';
import type { ApiContext, ApiRoute } from '../api/routes.js';
import { errorSchema, idParams, type IdParams } from '../api/schemas.js';
import { HangarError } from '../errors.js';
import { controlFor } from './control.js';
import type { DesktopDeps } from './deps.js';
import { scopeError, tokenError, verifyViewerToken } from './token.js';

const viewerId = Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$', description: 'a viewer id (?viewer= of its bridge connection)' });
const query = Type.Object({
  token: Type.Optional(Type.String({ maxLength: 1024, description: 'a viewer token of the VM (or the bearer)' })),
  viewer: Type.Optional(viewerId),
}, { additionalProperties: false });
const body = Type.Object({
  action: Type.Optional(Type.Union([Type.Literal('request'), Type.Literal('grant'), Type.Literal('release')], { description: 'default request' })),
  viewer: Type.Optional(viewerId),
  to: Type.Optional(viewerId),
}, { additionalProperties: false });
type Req = FastifyRequest<{ Params: IdParams; Querystring: Static<typeof query>; Body: Static<typeof body> }>;

const stateResponse = {
  type: 'object',
  required: ['id', 'controlled', 'pending', 'viewers'],
  properties: {
    id: { type: 'string' },
    controlled: { type: 'boolean', description: 'some viewer is in control' },
    inControl: { type: 'boolean', description: 'the viewer named by ?viewer= is in control' },
    waiting: { type: 'boolean', description: 'the viewer named by ?viewer= has asked for control' },
    pending: { type: 'integer', description: 'viewers waiting for control' },
    viewers: { type: 'integer' },
    controller: { type: ['string', 'null'], description: 'bearer only: the viewer in control' },
    queue: { type: 'array', items: { type: 'string' }, description: 'bearer only: the viewers waiting' },
  },
} as const;

export function controlRoutes(ctx: ApiContext, desk: DesktopDeps): ApiRoute[] {
  const control = controlFor(desk);
  /** 'api' for the bearer; else the VM's id after its token checked out (a CDP token is not a viewer's). */
  const who = (r: Req): 'api' | 'viewer' => {
    if (tokenMatches(bearer(r.headers.authorization), ctx.token)) return 'api';
    const vm = desk.lookup(r.params.id);
    const check = verifyViewerToken(desk.secret, r.params.id, vm?.viewerNonce ?? null, r.query.token, Date.now());
    if (!check.ok) throw tokenError(check.reason);
    if (check.scope === 'cdp') throw scopeError(check.scope, 'the desktop');
    return 'viewer';
  };
  const vmIdOf = (r: Req, w: 'api' | 'viewer'): string => (w === 'api' ? ctx.vms.get(r.params.id).id : r.params.id);
  const view = (id: string, w: 'api' | 'viewer', viewer: string | undefined): Record<string, unknown> => {
    const s = control.state(id);
    return {
      id, controlled: s.controller !== null, pending: s.pending.length, viewers: s.viewers.length,
      ...(viewer ? { inControl: s.controller === viewer, waiting: s.pending.includes(viewer) } : {}),
      ...(w === 'api' ? { controller: s.controller, queue: s.pending } : {}),
    };
  };
  return [
    {
      method: 'GET', url: '/v1/vms/:id/control', summary: 'Who is in control of the desktop among its viewers', auth: 'viewer-token',
      schema: { params: idParams, querystring: query, response: { 200: stateResponse, '4xx': errorSchema, '5xx': errorSchema } },
      handler: (req, reply) => {
        const r = req as Req;
        reply.header('cache-control', 'no-store');
        const w = who(r);
        return view(vmIdOf(r, w), w, r.query.viewer);
      },
    },
    {
      method: 'POST', url: '/v1/vms/:id/control', summary: 'Request, grant or release control of the desktop (one viewer at a time sends input)', auth: 'viewer-token',
      schema: { params: idParams, querystring: query, body, response: { 200: stateResponse, '4xx': errorSchema, '5xx': errorSchema } },
      handler: (req) => {
        const r = req as Req;
        const w = who(r);
        const id = vmIdOf(r, w);
        const b = r.body ?? {};
        const action = b.action ?? 'request';
        const self = b.viewer ?? r.query.viewer;
        if (action === 'grant') {
          if (!b.to) throw new HangarError('INVALID_ARGUMENT', 'grant needs "to": the viewer to hand control to', { field: 'to' });
          if (w !== 'api' && !self) throw new HangarError('INVALID_ARGUMENT', 'grant needs "viewer": the viewer in control', { field: 'viewer' });
          control.grant(id, w === 'api' ? 'api' : self!, b.to);
          return view(id, w, self);
        }
        if (!self) throw new HangarError('INVALID_ARGUMENT', `${action} needs "viewer": the viewer id`, { field: 'viewer' });
        if (action === 'request') control.request(id, self);
        else control.release(id, self);
        return view(id, w, self);
      },
    },
  ];
}
