// The HTTP server: registers the route table, authenticates, and maps every error to HTTP in one place.
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyServerOptions } from 'fastify';
import { randomUUID } from 'node:crypto';
import { ERRORS, toHangarError, type ErrorCode } from '../errors.js';
import { DEFAULT_LIMITS, type VmLimits } from '../vm/input.js';
import { buildOpenApi } from './openapi.js';
import type { ApiContext, ApiRoute } from './routes.js';
import { coreRoutes } from './core-routes.js';
import { ID_MAX_LENGTH } from './schemas.js';
import type { StreamLimits } from './streams.js';
import { installTenancy } from './tenancy.js';
import { tenancyRoutes } from '../tenancy/routes.js';
import { invalidArgument } from '../util/validate.js';
import { AJV_OPTIONS, frameworkError, wireConverter } from './validation.js';

export interface ServerOptions {
  /** Extra route modules (desktop bridge, doctor, snapshots). */
  extraRoutes?: (ctx: ApiContext) => ApiRoute[];
  /** pino logger options; false for none. */
  logger?: FastifyServerOptions['logger'];
  /** An existing pino logger (the controller's), instead of `logger` options. */
  loggerInstance?: FastifyServerOptions['loggerInstance'];
  bodyLimit?: number;
  /** Create-VM limits (the controller config's): the create schema, and so /openapi.json, is built from them. */
  limits?: VmLimits;
  /** Caps of the event and console streams (the controller config's). */
  streams?: StreamLimits;
}

/** /openapi.json, served beside the route table (its handler is the document built from it). */
const OPENAPI_ROUTE: ApiRoute = { method: 'GET', url: '/openapi.json', summary: 'This document', auth: 'bearer', scope: 'read', schema: {}, handler: () => null };

/** Strips secrets from a URL before it is logged (viewer tokens travel in the query string). */
export function redactUrl(url: string): string {
  return url.replace(/([?&](?:token|access_token)=)[^&#]*/gi, '$1[REDACTED]');
}

/** Logger options whose request serializer redacts the URL (Fastify's default one logs req.url as it came). */
function redactingLogger(l: FastifyServerOptions['logger']): FastifyServerOptions['logger'] {
  if (!l) return false;
  const o = l === true ? {} : l;
  return { ...o, serializers: { req: (req: { method: string; url: string; id?: string }) => ({ method: req.method, url: redactUrl(req.url), id: req.id }), ...o.serializers } };
}

/** Maps any thrown value to a stable code, HTTP status and body. The one place errors become HTTP. */
export function httpError(e: unknown): { status: number; body: { error: { code: ErrorCode; message: string; details: Record<string, unknown> } } } {
  const err = frameworkError(e) ?? toHangarError(e);
  return { status: ERRORS[err.code].http, body: { error: { code: err.code, message: err.message, details: { ...err.details } } } };
}

export async function buildServer(ctx: ApiContext, opts: ServerOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    ...(opts.loggerInstance ? { loggerInstance: opts.loggerInstance } : { logger: redactingLogger(opts.logger ?? false) }),
    bodyLimit: opts.bodyLimit ?? 16 * 1024,
    genReqId: (req) => (typeof req.headers['x-request-id'] === 'string' && /^[\w-]{1,64}$/.test(req.headers['x-request-id']) ? req.headers['x-request-id'] : randomUUID()),
    ajv: { customOptions: AJV_OPTIONS },
    // An id longer than any the schemas accept is refused by the router itself (414 PARAM_TOO_LONG).
    routerOptions: { maxParamLength: ID_MAX_LENGTH },
    // Router errors (bad URL encoding, an over-long parameter) in the API's envelope, with stable codes.
    frameworkErrors: (e, req, reply) => {
      const { status, body } = httpError(e);
      ctx.metrics.errors.inc({ code: body.error.code });
      req.log.info({ code: body.error.code }, body.error.message);
      // The generic reply type of this callback cannot take a status known only at run time.
      return (reply as FastifyReply).code(status).header('x-request-id', req.id).send(body);
    },
  });

  const routes = [...coreRoutes(ctx, opts.limits ?? DEFAULT_LIMITS, opts.streams), ...tenancyRoutes(ctx), ...(opts.extraRoutes?.(ctx) ?? [])];
  const doc = buildOpenApi(routes);
  // What the router really serves, for the test that /openapi.json misses nothing.
  const served: { method: string; url: string }[] = [];
  app.addHook('onRoute', (r) => {
    for (const m of [r.method].flat()) if (m !== 'HEAD') served.push({ method: m, url: r.url });
  });
  app.decorate('servedRoutes', served);
  // The route table as declared (auth, scope): what the tenancy matrix test enumerates.
  app.decorate('apiRoutes', [...routes, OPENAPI_ROUTE]);

  // Authentication, scopes, tenant ownership of path resources, the audit log.
  installTenancy(app, ctx);
  app.addHook('onSend', async (req, reply, payload) => {
    reply.header('x-request-id', req.id);
    return payload;
  });
  app.addHook('onResponse', async (req, reply) => {
    ctx.metrics.requests.inc({ route: req.routeOptions.url ?? 'unmatched', status: `${String(reply.statusCode)[0]}xx` });
  });

  app.setErrorHandler((e, req, reply) => {
    const { status, body } = httpError(e);
    ctx.metrics.errors.inc({ code: body.error.code });
    // Unexpected failures get the stack; known conditions (an exhausted pool, a VM that is gone) one line.
    if (body.error.code === 'INTERNAL') req.log.error({ err: e, code: body.error.code }, body.error.message);
    else req.log[status >= 500 ? 'warn' : 'info']({ code: body.error.code }, body.error.message);
    return reply.code(status).send(body);
  });
  app.setNotFoundHandler((req, reply) => {
    ctx.metrics.errors.inc({ code: 'NOT_FOUND' });
    return reply.code(404).send({ error: { code: 'NOT_FOUND', message: `no route ${req.method} ${redactUrl(req.url)}`, details: {} } });
  });

  // Raw bodies (file uploads) reach their handler as the request stream itself: never buffered, no size limit.
  app.addContentTypeParser('application/octet-stream', (req, payload, done) => {
    if ((req.routeOptions.config as { rawBody?: boolean } | undefined)?.rawBody) done(null, payload);
    else done(invalidArgument({ field: '', in: 'body', reason: 'format', expected: 'application/json' }, 'must be application/json'), undefined);
  });
  for (const r of routes) {
    if (r.websocket) continue; // upgraded on the raw server (the desktop bridge, the agent WebSockets)
    const preValidation = wireConverter(r.schema);
    app.route({ method: r.method, url: r.url, schema: r.schema, config: { auth: r.auth, scope: r.scope, ...(r.rawBody ? { rawBody: true } : {}) }, ...(preValidation ? { preValidation } : {}), handler: r.handler });
  }
  app.route({ method: 'GET', url: '/openapi.json', config: { auth: 'bearer', scope: OPENAPI_ROUTE.scope }, handler: () => doc });
  return app;
}

export { buildOpenApi };
