// The programmatic-control routes: POST /v1/vms/:id/computer (the computer-use actions) and the CDP discovery
// documents. Credentials: the API bearer, or a viewer token of the VM in ?token= (a view-only one may look —
// screenshot, cursor, size, clipboard — but not send input; a CDP token opens CDP only). Every refusal comes before
// anything reaches the VM: nothing is dialled for a refused request.
import type { FastifyRequest } from 'fastify';
import { Type, type Static } from 'typebox';
import { bearer, tokenMatches } from '../api/auth.js';
import type { ApiContext, ApiRoute } from '../api/routes.js';
import { errorSchema, idParams, type IdParams } from '../api/schemas.js';
import { scopeError, tokenError, verifyViewerToken, type TokenScope } from '../desktop/token.js';
import { HangarError } from '../errors.js';
import { ACTIONS, isInput, parseAction } from './actions.js';
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
export function authorise(req: { headers: { authorization?: string | undefined }; params: { id: string }; query: { token?: string | undefined } }, apiToken: string, deps: Pick<ControlDeps, 'lookup' | 'secret'>): 'api' | TokenScope {
  if (tokenMatches(bearer(req.headers.authorization), apiToken)) return 'api';
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

export function controlRoutes(ctx: ApiContext, deps: ControlDeps): ApiRoute[] {
  return [
    {
      method: 'POST', url: '/v1/vms/:id/computer', auth: 'viewer-token',
      summary: "A computer-use action on the VM desktop (Anthropic's computer-use tool vocabulary; bearer, or ?token= — view-only tokens may not send input)",
      schema: { params: idParams, querystring: tokenQuery, body: computerBody, response: { 200: computerResponse, '4xx': errorSchema, '5xx': errorSchema } },
      handler: async (req) => {
        const r = req as Req;
        const who = authorise(r, ctx.token, deps);
        const action = parseAction(r.body);
        if (who === 'cdp') throw scopeError(who, 'desktop actions');
        if (who === 'view' && isInput(action)) throw scopeError(who, `input (${action.action})`);
        const { id } = usableVm(ctx, deps, r.params.id, who !== 'api');
        return deps.computer.run(id, action);
      },
    },
  ];
}
