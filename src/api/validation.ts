// How requests meet their schemas. JSON bodies are validated as sent: no type coercion ("1e3" is not a number,
// 123 is not a string, ["a"] is not "a"). Query strings and path parameters are text on the wire, so before
// validation each value whose schema says integer, number or boolean is converted when it is exactly one
// ("42", "true") and left as text otherwise, for the schema to refuse. Fastify's and the router's own errors
// become HangarErrors with stable codes here.
import type { FastifyRequest } from 'fastify';
import { HangarError, isHangarError } from '../errors.js';
import { schemaError, requestPart, type SchemaErrorLike } from '../util/schema-error.js';
import { invalidArgument } from '../util/validate.js';
import { ID_MAX_LENGTH } from './schemas.js';

/** Options for Fastify's Ajv: strict types, unknown fields refused (not removed), the first error, with its value. */
export const AJV_OPTIONS = { coerceTypes: false, removeAdditional: false, allErrors: false, verbose: true } as const;

type Convert = (v: string) => unknown;

const INTEGER_RE = /^-?\d{1,16}$/;
const NUMBER_RE = /^-?(?:\d{1,16}(?:\.\d{1,16})?|\.\d{1,16})(?:[eE][+-]?\d{1,3})?$/;

const converters: Record<string, Convert> = {
  integer: (v) => (INTEGER_RE.test(v) ? Number(v) : v),
  number: (v) => (NUMBER_RE.test(v) ? Number(v) : v),
  boolean: (v) => (v === 'true' ? true : v === 'false' ? false : v),
};

/** Per property of an object schema, how its text is converted (only non-string scalars need it). */
function convertersFor(schema: unknown): Map<string, Convert> | null {
  const props = (schema as { properties?: Record<string, { type?: unknown }> } | undefined)?.properties ?? {};
  const out = new Map<string, Convert>();
  for (const [name, p] of Object.entries(props)) {
    const c = typeof p.type === 'string' ? converters[p.type] : undefined;
    if (c) out.set(name, c);
  }
  return out.size ? out : null;
}

function convert(value: unknown, conv: Map<string, Convert>): unknown {
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const [k, v] of Object.entries(value)) {
    const c = conv.get(k);
    out[k] = c && typeof v === 'string' ? c(v) : v; // a repeated key stays a list: the schema refuses it
  }
  return out;
}

/** A preValidation hook converting query and params text for `schema`, or undefined when nothing needs it. */
export function wireConverter(schema: { querystring?: unknown; params?: unknown }): ((req: FastifyRequest) => Promise<void>) | undefined {
  const q = convertersFor(schema.querystring);
  const p = convertersFor(schema.params);
  if (!q && !p) return undefined;
  return async (req) => {
    if (q) req.query = convert(req.query, q);
    if (p) req.params = convert(req.params, p);
  };
}

/** Fastify's and the router's errors that have a meaning for clients, as HangarErrors; null for anything else. */
export function frameworkError(e: unknown): HangarError | null {
  const fe = e as { code?: string; statusCode?: number; message?: string; validation?: SchemaErrorLike[]; validationContext?: string } | null;
  if (!fe || typeof fe !== 'object' || isHangarError(e)) return null;
  if (Array.isArray(fe.validation)) return schemaError(fe.validation, requestPart(fe.validationContext));
  const message = String(fe.message ?? '');
  switch (fe.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new HangarError('PAYLOAD_TOO_LARGE', message, { in: 'body' });
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return invalidArgument({ field: '', in: 'body', reason: 'format', expected: 'json' }, 'is not valid JSON');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return invalidArgument({ field: '', in: 'body', reason: 'format', expected: 'json' }, 'is empty but its content-type is application/json');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return invalidArgument({ field: '', in: 'body', reason: 'format', expected: 'application/json' }, `must be application/json (${message})`);
    case 'FST_ERR_BAD_URL':
      return new HangarError('BAD_URL', 'the request path is not valid URL encoding', { field: '', in: 'params', reason: 'format' });
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new HangarError('PARAM_TOO_LONG', `a path parameter is longer than ${ID_MAX_LENGTH} characters (no id or name is)`, {
        field: '', in: 'params', reason: 'range', expected: 'string', min: 1, max: ID_MAX_LENGTH,
      });
    default:
      // Other client errors Fastify detects (a bad Content-Length, a poisoned JSON key…): bad input all the same.
      if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) return new HangarError('INVALID_ARGUMENT', message);
      return null;
  }
}
