// /openapi.json is generated from the route table and its schemas, so the document cannot drift from what the
// server validates.
import type { ApiRoute } from './routes.js';

type Schema = Record<string, unknown>;

/** Converts Fastify's ':id' path syntax to OpenAPI's '{id}'. */
export const openApiPath = (url: string): string => url.replace(/:([A-Za-z_]\w*)/g, '{$1}');

function parameters(route: ApiRoute): Schema[] {
  const out: Schema[] = [];
  for (const [where, schema] of [['path', route.schema.params], ['query', route.schema.querystring]] as const) {
    const s = schema as { properties?: Record<string, Schema>; required?: string[] } | undefined;
    for (const [name, prop] of Object.entries(s?.properties ?? {})) {
      out.push({ name, in: where, required: where === 'path' || (s?.required ?? []).includes(name), schema: prop });
    }
  }
  return out;
}

function responses(route: ApiRoute): Schema {
  const out: Schema = {};
  for (const [status, schema] of Object.entries(route.schema.response ?? {})) {
    const code = status.replace('xx', 'XX');
    out[code] = (schema as { type?: string }).type === 'null'
      ? { description: 'No content' }
      : { description: code.startsWith('2') ? 'Success' : 'Error', content: { 'application/json': { schema } } };
  }
  if (route.websocket) out['101'] = { description: 'Switching protocols (WebSocket)' };
  if (!Object.keys(out).some((k) => k.startsWith('2') || k === '101')) {
    out['200'] = { description: 'Success', content: { [route.produces ?? 'application/json']: { schema: { type: 'string' } } } };
  }
  if (route.auth === 'bearer' && !out['401']) out['401'] = { description: 'Missing or invalid bearer token' };
  return out;
}

export function buildOpenApi(routes: readonly ApiRoute[]): Schema {
  const paths: Record<string, Record<string, Schema>> = {};
  const all: Pick<ApiRoute, 'method' | 'url' | 'summary' | 'auth' | 'schema' | 'produces' | 'websocket' | 'rawBody'>[] = [
    ...routes,
    { method: 'GET', url: '/openapi.json', summary: 'This document', auth: 'bearer', schema: {} },
  ];
  for (const r of all) {
    const p = (paths[openApiPath(r.url)] ??= {});
    const op: Schema = {
      summary: r.summary,
      operationId: `${r.method.toLowerCase()}${openApiPath(r.url).replace(/[^A-Za-z0-9]+(.)?/g, (_, c: string | undefined) => (c ? c.toUpperCase() : ''))}`,
      responses: responses(r as ApiRoute),
    };
    const params = parameters(r as ApiRoute);
    if (params.length) op.parameters = params;
    if (r.schema.body) op.requestBody = { required: false, content: { 'application/json': { schema: r.schema.body } } };
    if (r.rawBody) op.requestBody = { required: true, content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } };
    op.security = r.auth === 'bearer' ? [{ bearer: [] }] : [];
    p[r.method.toLowerCase()] = op;
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Hangar controller API', version: '1' },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    paths,
  };
}
