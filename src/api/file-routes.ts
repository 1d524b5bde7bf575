// Files in a VM, through its guest agent (src/agent/port.ts). Bytes are streamed both ways and never held whole:
//   GET  /v1/vms/:id/files?path=[&offset=&length=]   the file's bytes (Content-Length from the guest's stat)
//   PUT  /v1/vms/:id/files?path=[&mode=]             the request body (Content-Type: application/octet-stream, any
//                                                    size: this route alone has no body limit) replaces the file
//                                                    atomically; → {path, size}
//   GET  /v1/vms/:id/files/stat?path=  /files/list?path=
//   POST /v1/vms/:id/files/{mkdir,rm,mv,chmod,chown}  JSON bodies
//   GET  /v1/vms/:id/files/watch?path=               Server-Sent Events `change` {type, path} until the client leaves
//   POST /v1/vms/:id/files/copy {toVm, from, to?}    guest → guest in one call (the credential hand-off): the bytes
//                                                    flow from one agent to the other through the controller, with
//                                                    flow control, never buffered whole
// Modes are octal strings ("0644") or integers.
import type { FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';
import { Type, type Static } from 'typebox';
import type { AgentPort } from '../agent/port.js';
import { HangarError } from '../errors.js';
import { agentFor, guestPath } from './agent-common.js';
import { clientGone } from './exec-routes.js';
import type { ApiContext, ApiRoute } from './routes.js';
import { errorSchema, idParams, ID_MAX_LENGTH, type IdParams } from './schemas.js';
import { DEFAULT_STREAM_LIMITS, openStream, StreamGate, streamKey } from './streams.js';

const octal = Type.String({ pattern: '^0?[0-7]{3,4}$', description: 'octal mode, e.g. 0644' });
const modeValue = Type.Union([octal, Type.Integer({ minimum: 0, maximum: 0o7777 })], { description: 'mode: octal string ("0644") or integer' });
const uid = Type.Integer({ minimum: 0, maximum: 4_294_967_294 });

/** Octal text or an integer → the mode number. */
export const parseMode = (m: string | number): number => (typeof m === 'number' ? m : parseInt(m, 8));

const pathQuery = Type.Object({ path: guestPath('the guest path') }, { additionalProperties: false });
const readQuery = Type.Object({
  path: guestPath('the guest file'),
  offset: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'first byte' })),
  length: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'at most this many bytes' })),
}, { additionalProperties: false });
const writeQuery = Type.Object({ path: guestPath('the guest file (replaced atomically)'), mode: Type.Optional(octal) }, { additionalProperties: false });
const listQuery = Type.Object({ path: guestPath('the guest directory'), depth: Type.Optional(Type.Integer({ minimum: 1, maximum: 8 })) }, { additionalProperties: false });
const watchQuery = Type.Object({ path: guestPath('the guest directory'), recursive: Type.Optional(Type.Boolean()) }, { additionalProperties: false });

const mkdirBody = Type.Object({ path: guestPath('directory to create'), parents: Type.Optional(Type.Boolean()), mode: Type.Optional(modeValue) }, { additionalProperties: false });
const rmBody = Type.Object({ path: guestPath('path to remove'), recursive: Type.Optional(Type.Boolean()) }, { additionalProperties: false });
const mvBody = Type.Object({ from: guestPath('source'), to: guestPath('destination') }, { additionalProperties: false });
const chmodBody = Type.Object({ path: guestPath('path'), mode: modeValue }, { additionalProperties: false });
const chownBody = Type.Object({ path: guestPath('path'), uid, gid: uid }, { additionalProperties: false });
const copyBody = Type.Object({
  toVm: Type.String({ minLength: 1, maxLength: ID_MAX_LENGTH, description: 'the VM receiving the file (id or name)' }),
  from: guestPath('the file in this VM'),
  to: Type.Optional(guestPath('where it goes in toVm (default: the same path)')),
  mode: Type.Optional(modeValue),
}, { additionalProperties: false });

const statSchema = {
  type: 'object', required: ['type', 'size', 'mode', 'uid', 'gid', 'mtimeMs'],
  properties: {
    type: { type: 'string', enum: ['file', 'dir', 'symlink', 'other'] }, size: { type: 'integer' }, mode: { type: 'integer' },
    uid: { type: 'integer' }, gid: { type: 'integer' }, mtimeMs: { type: 'number' }, target: { type: 'string' },
  },
} as const;
const entrySchema = { type: 'object', required: [...statSchema.required, 'name', 'path'], properties: { ...statSchema.properties, name: { type: 'string' }, path: { type: 'string' } } } as const;
const okSchema = { type: 'object', required: ['ok'], properties: { ok: { type: 'boolean' } } } as const;
const errors = { '4xx': errorSchema, '5xx': errorSchema };

type Q<T> = FastifyRequest<{ Params: IdParams; Querystring: T }>;
type B<T> = FastifyRequest<{ Params: IdParams; Body: T }>;

/** The request body as a stream: the octet-stream parser's (server.ts passes it through), or the raw request. */
function bodyStream(req: FastifyRequest): Readable {
  const b = req.body as unknown;
  return b && typeof (b as Readable).pipe === 'function' ? (b as Readable) : req.raw;
}

export function fileRoutes(ctx: ApiContext, agents: () => AgentPort | undefined): ApiRoute[] {
  const gate = new StreamGate(DEFAULT_STREAM_LIMITS);
  const reach = (id: string, signal?: AbortSignal) => agentFor(ctx.vms, agents(), id, signal ? { signal } : {});
  const op = <T extends object>(name: string, summary: string, body: object, fn: (s: Awaited<ReturnType<typeof reach>>['session'], b: T) => Promise<void>): ApiRoute => ({
    method: 'POST', url: `/v1/vms/:id/files/${name}`, summary, auth: 'bearer', scope: 'write',
    schema: { params: idParams, body, response: { 200: okSchema, ...errors } },
    handler: async (req) => {
      const { session } = await reach((req as FastifyRequest<{ Params: IdParams }>).params.id);
      await fn(session, req.body as T);
      return { ok: true };
    },
  });
  return [
    {
      method: 'GET', url: '/v1/vms/:id/files', summary: 'Downloads a guest file (streamed; Content-Length from its size)', auth: 'bearer', scope: 'read', produces: 'application/octet-stream',
      schema: { params: idParams, querystring: readQuery },
      handler: async (req, reply) => {
        const r = req as Q<Static<typeof readQuery>>;
        const gone = clientGone(reply);
        const { session } = await reach(r.params.id, gone);
        const { size, stream } = await session.readFile(r.query.path, { ...(r.query.offset !== undefined ? { offset: r.query.offset } : {}), ...(r.query.length !== undefined ? { length: r.query.length } : {}), signal: gone });
        return reply.headers({ 'content-type': 'application/octet-stream', 'content-length': String(size), 'cache-control': 'no-store' }).send(stream);
      },
    },
    {
      method: 'PUT', url: '/v1/vms/:id/files', summary: 'Uploads a guest file from the request body (application/octet-stream, streamed, no size limit; replaced atomically)', auth: 'bearer', scope: 'write',
      rawBody: true,
      schema: { params: idParams, querystring: writeQuery, response: { 200: { type: 'object', required: ['path', 'size'], properties: { path: { type: 'string' }, size: { type: 'integer' } } }, ...errors } },
      handler: async (req, reply) => {
        const r = req as Q<Static<typeof writeQuery>>;
        const gone = clientGone(reply);
        const source = bodyStream(req);
        const { session } = await reach(r.params.id, gone).catch((e: unknown) => { source.resume(); throw e; });
        const { size } = await session.writeFile(r.query.path, source, { ...(r.query.mode ? { mode: parseMode(r.query.mode) } : {}), signal: gone });
        return { path: r.query.path, size };
      },
    },
    {
      method: 'GET', url: '/v1/vms/:id/files/stat', summary: 'Type, size, mode, owner and mtime of a guest path', auth: 'bearer', scope: 'read',
      schema: { params: idParams, querystring: pathQuery, response: { 200: statSchema, ...errors } },
      handler: async (req) => {
        const r = req as Q<Static<typeof pathQuery>>;
        return (await reach(r.params.id)).session.stat(r.query.path);
      },
    },
    {
      method: 'GET', url: '/v1/vms/:id/files/list', summary: 'The entries of a guest directory', auth: 'bearer', scope: 'read',
      schema: { params: idParams, querystring: listQuery, response: { 200: { type: 'object', required: ['entries'], properties: { entries: { type: 'array', items: entrySchema } } }, ...errors } },
      handler: async (req) => {
        const r = req as Q<Static<typeof listQuery>>;
        const { session } = await reach(r.params.id);
        return { entries: await session.list(r.query.path, r.query.depth ? { depth: r.query.depth } : {}) };
      },
    },
    op<Static<typeof mkdirBody>>('mkdir', 'Creates a guest directory (parents: like mkdir -p)', mkdirBody, (s, b) => s.mkdir(b.path, { parents: !!b.parents, ...(b.mode !== undefined ? { mode: parseMode(b.mode) } : {}) })),
    op<Static<typeof rmBody>>('rm', 'Removes a guest path (recursive for a directory with entries)', rmBody, (s, b) => s.rm(b.path, { recursive: !!b.recursive })),
    op<Static<typeof mvBody>>('mv', 'Renames a guest path', mvBody, (s, b) => s.mv(b.from, b.to)),
    op<Static<typeof chmodBody>>('chmod', 'Sets the mode of a guest path', chmodBody, (s, b) => s.chmod(b.path, parseMode(b.mode))),
    op<Static<typeof chownBody>>('chown', 'Sets the owner of a guest path', chownBody, (s, b) => s.chown(b.path, b.uid, b.gid)),
    {
      method: 'GET', url: '/v1/vms/:id/files/watch', summary: 'Changes under a guest directory as Server-Sent Events (`change` {type, path}) until the client leaves', auth: 'bearer', scope: 'read',
      produces: 'text/event-stream',
      schema: { params: idParams, querystring: watchQuery },
      handler: async (req, reply) => {
        const r = req as Q<Static<typeof watchQuery>>;
        const { session } = await reach(r.params.id);
        const release = gate.acquire(streamKey(r.headers.authorization));
        let watcher;
        try {
          watcher = await session.watch(r.query.path, { recursive: !!r.query.recursive });
        } catch (e) {
          release();
          throw e;
        }
        reply.hijack();
        reply.raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-request-id': r.id });
        reply.raw.flushHeaders();
        const sink = openStream(reply.raw, DEFAULT_STREAM_LIMITS, release, (reason) => `: ${reason}\n\n`);
        const w = watcher;
        sink.onClose(() => w.close());
        void (async () => {
          try {
            for await (const e of w) {
              if (sink.closed) break;
              sink.write(`event: change\ndata: ${JSON.stringify(e)}\n\n`);
            }
          } catch { /* the session went: end the stream */ }
          sink.end();
        })();
        return reply;
      },
    },
    {
      method: 'POST', url: '/v1/vms/:id/files/copy', summary: 'Copies a file from this VM into another VM in one call, streamed guest to guest', auth: 'bearer', scope: 'write',
      schema: { params: idParams, body: copyBody, response: { 200: { type: 'object', required: ['fromVm', 'from', 'toVm', 'to', 'size'], properties: { fromVm: { type: 'string' }, from: { type: 'string' }, toVm: { type: 'string' }, to: { type: 'string' }, size: { type: 'integer' } } }, ...errors } },
      handler: async (req, reply) => {
        const r = req as B<Static<typeof copyBody>>;
        const gone = clientGone(reply);
        const src = await reach(r.params.id, gone);
        const dst = await reach(r.body.toVm, gone);
        const to = r.body.to ?? r.body.from;
        if (src.vm.id === dst.vm.id && to === r.body.from) throw new HangarError('INVALID_ARGUMENT', 'copying a file onto itself', { field: 'to', in: 'body', reason: 'format' });
        const mode = r.body.mode !== undefined ? parseMode(r.body.mode) : (await src.session.stat(r.body.from)).mode & 0o7777;
        const { size: expected, stream } = await src.session.readFile(r.body.from, { signal: gone });
        const { size } = await dst.session.writeFile(to, stream, { mode, signal: gone });
        if (size !== expected) throw new HangarError('GUEST_OP_FAILED', `copied ${size} of ${expected} bytes`, { expected, size });
        return { fromVm: src.vm.id, from: r.body.from, toVm: dst.vm.id, to, size };
      },
    },
  ];
}
