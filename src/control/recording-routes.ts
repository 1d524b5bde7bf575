// Session recordings over the API: record a VM's screen for a while through the controller's own RFB client, list,
// fetch and delete recordings, and the replay page (the viewer page's noVNC fed from a recording instead of a live
// socket, at a chosen speed). Bearer, or a viewer token of the VM for reading (the replay page uses its token).
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Duplex } from 'node:stream';
import { Type, type Static } from 'typebox';
import type { ApiContext, ApiRoute } from '../api/routes.js';
import { errorSchema, idParams } from '../api/schemas.js';
import { PAGE_HEADERS, renderErrorPage, renderReplayPage } from '../desktop/page.js';
import type { RecordingStore } from '../desktop/recordings.js';
import { scopeError, tokenError, verifyViewerToken } from '../desktop/token.js';
import { HangarError } from '../errors.js';
import { recordFor, type ApiRecording } from './recorder.js';
import { authorise, type ControlVm } from './routes.js';

export interface RecordingDeps {
  lookup(vmId: string): ControlVm | null;
  secret: Buffer;
  recordings: RecordingStore;
  dial(vmId: string): Promise<Duplex>;
}

const recParams = Type.Object({ id: idParams.properties.id, rid: Type.String({ pattern: '^rec-[0-9a-f]{12}$', description: 'a recording id' }) });
type RecParams = Static<typeof recParams>;
const tokenQuery = Type.Object({ token: Type.Optional(Type.String({ maxLength: 1024 })) }, { additionalProperties: false });
const replayQuery = Type.Object({
  token: Type.Optional(Type.String({ maxLength: 1024 })),
  speed: Type.Optional(Type.String({ pattern: '^\\d{1,2}(\\.\\d{1,3})?$', description: 'playback rate (0.1 to 64, default 1)' })),
  until: Type.Optional(Type.String({ pattern: '^\\d{1,10}$', description: 'stop at this many ms into the recording' })),
}, { additionalProperties: false });
const startBody = Type.Object({ durationS: Type.Integer({ minimum: 1, maximum: 3600, description: 'how long to record' }) }, { additionalProperties: false });
type Req = FastifyRequest<{ Params: RecParams; Querystring: Static<typeof tokenQuery>; Body: Static<typeof startBody> }>;

const meta = {
  type: 'object',
  properties: {
    id: { type: 'string' }, vmId: { type: 'string' }, source: { type: 'string' }, startedAt: { type: 'string' }, endedAt: { type: ['string', 'null'] },
    durationMs: { type: 'integer' }, bytes: { type: 'integer' }, truncated: { type: 'boolean' },
  },
} as const;

export function recordingRoutes(ctx: ApiContext, deps: RecordingDeps): ApiRoute[] {
  const running = new Map<string, ApiRecording>();
  /** The VM's canonical id after auth (bearer: by id or name; a token: its own VM's id, not view-blocked). */
  const vmFor = (r: Req): string => {
    const who = authorise(r, ctx, deps, r.method === 'GET' ? 'read' : 'write');
    if (who === 'cdp') throw scopeError(who, 'recordings');
    return who === 'api' ? ctx.vms.get(r.params.id).id : r.params.id;
  };
  const recOf = (r: Req, vmId: string): void => {
    if (deps.recordings.get(r.params.rid).vmId !== vmId) throw new HangarError('RECORDING_NOT_FOUND', `no recording ${r.params.rid} of ${vmId}`, { id: r.params.rid });
  };
  return [
    {
      method: 'POST', url: '/v1/vms/:id/recordings', auth: 'bearer', scope: 'write', summary: "Record the VM's screen for durationS seconds (a session recording, replayable in the viewer page)",
      schema: { params: idParams, body: startBody, response: { 200: { type: 'object', properties: { id: { type: 'string' }, durationS: { type: 'integer' } } }, '4xx': errorSchema, '5xx': errorSchema } },
      handler: async (req) => {
        const r = req as Req;
        const id = ctx.vms.get(r.params.id).id;
        const vm = deps.lookup(id);
        if (!vm || vm.state !== 'ready') throw new HangarError('VM_INVALID_STATE', `VM ${id} is ${vm?.state ?? 'gone'}: record it when it is ready`, { id });
        const stream = await deps.dial(id);
        const rec = recordFor(stream, deps.recordings.start(id, 'api'), r.body.durationS * 1000);
        running.set(rec.id, rec);
        void rec.done.then(() => running.delete(rec.id));
        return { id: rec.id, durationS: r.body.durationS };
      },
    },
    {
      method: 'GET', url: '/v1/vms/:id/recordings', auth: 'viewer-token', summary: "The VM's session recordings (bearer or ?token=)",
      schema: { params: idParams, querystring: tokenQuery, response: { 200: { type: 'object', properties: { recordings: { type: 'array', items: meta } } }, '4xx': errorSchema, '5xx': errorSchema } },
      handler: (req) => ({ recordings: deps.recordings.list(vmFor(req as Req)) }),
    },
    {
      method: 'GET', url: '/v1/vms/:id/recordings/:rid', auth: 'viewer-token', summary: 'A recording file (HREC1 frames: u32 ms, u32 length, the RFB bytes the VM sent)',
      produces: 'application/octet-stream',
      schema: { params: recParams, querystring: tokenQuery },
      handler: (req, reply: FastifyReply) => {
        const r = req as Req;
        const vmId = vmFor(r);
        recOf(r, vmId);
        reply.header('cache-control', 'no-store');
        return reply.type('application/octet-stream').send(deps.recordings.file(r.params.rid));
      },
    },
    {
      method: 'DELETE', url: '/v1/vms/:id/recordings/:rid', auth: 'bearer', scope: 'write', summary: 'Deletes a recording',
      schema: { params: recParams, response: { 200: { type: 'object', properties: { id: { type: 'string' }, deleted: { type: 'boolean' } } }, '4xx': errorSchema, '5xx': errorSchema } },
      handler: (req) => {
        const r = req as Req;
        recOf(r, ctx.vms.get(r.params.id).id);
        deps.recordings.remove(r.params.rid);
        return { id: r.params.rid, deleted: true };
      },
    },
    {
      method: 'GET', url: '/view/:id/replay/:rid', auth: 'viewer-token', produces: 'text/html',
      summary: 'Replays a recording in the browser viewer (?token=, &speed= playback rate, &until= stop at that many ms)',
      schema: { params: recParams, querystring: replayQuery },
      handler: (req, reply) => {
        const r = req as Req;
        reply.headers(PAGE_HEADERS);
        const vm = deps.lookup(r.params.id);
        const ok = verifyViewerToken(deps.secret, r.params.id, vm?.viewerNonce ?? null, r.query.token, Date.now());
        if (!ok.ok) return reply.code(401).send(renderErrorPage('Replay link not valid', tokenError(ok.reason).message));
        return reply.code(200).send(renderReplayPage(r.params.id, r.params.rid));
      },
    },
  ];
}
