// JSON Schema validation errors (Ajv's, as Fastify reports them, or TypeBox's, which have the same fields) turned
// into one HangarError with the details every validation error carries (see InvalidDetails in validate.ts): the
// property without the "body/" prefix, where it was, the rule it broke, and the limits or choices of that rule.
import type { HangarError } from '../errors.js';
import { invalidArgument, lengthRule, numberRule, type InvalidDetails, type RequestPart } from './validate.js';

export interface SchemaErrorLike {
  keyword: string;
  instancePath: string;
  params?: Record<string, unknown>;
  /** Ajv with verbose: the schema object holding the failed keyword, and the value it looked at. */
  parentSchema?: unknown;
  data?: unknown;
}

interface SchemaNode {
  type?: string | string[];
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  format?: string;
  enum?: unknown[];
  properties?: Record<string, SchemaNode>;
  items?: SchemaNode;
  anyOf?: SchemaNode[];
  oneOf?: { required?: string[] }[];
}

/** Aggregates ("no branch of anyOf matched") and TypeBox's "schema is false" say less than the error under them. */
const COMBINATORS = new Set(['anyOf', 'oneOf', 'allOf', 'not', 'if', 'then', 'else', 'boolean', 'unevaluatedProperties']);

/** `oneOf: [{ required: [a] }, { required: [b] }]`: exactly one of these properties (its names, else null). */
function exactlyOne(s: SchemaNode | undefined): string[] | null {
  const names = s?.oneOf?.map((b) => (b.required?.length === 1 ? b.required[0] : undefined));
  return names?.length && names.every((n) => n !== undefined) ? (names as string[]) : null;
}

function rank(e: SchemaErrorLike, s: SchemaNode | undefined): number {
  if (e.keyword === 'additionalProperties') return 0;
  if (e.keyword === 'oneOf' && exactlyOne(s)) return 1;
  if (e.keyword === 'required') return 2;
  return COMBINATORS.has(e.keyword) ? 4 : 3;
}

const segments = (path: string): string[] => (path ? path.split('/').slice(1).map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~')) : []);
const join = (path: string, prop?: string): string => [...segments(path), ...(prop === undefined ? [] : [prop])].join('.');

function valueAt(data: unknown, path: string): unknown {
  let v = data;
  for (const s of segments(path)) v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[s] : undefined;
  return v;
}

function schemaAt(schema: SchemaNode | undefined, path: string): SchemaNode | undefined {
  let s = schema;
  for (const seg of segments(path)) {
    if (!s) return undefined;
    const branch = s.properties ? s : s.anyOf?.find((b) => b.properties?.[seg]);
    s = branch?.properties?.[seg] ?? s.items;
  }
  return s;
}

/** Fastify's names for the parts of a request, as the API reports them. */
export function requestPart(context: string | undefined): RequestPart | undefined {
  if (context === 'querystring') return 'query';
  return context === 'body' || context === 'params' || context === 'headers' ? context : undefined;
}

const article = (t: string): string => (/^[aeiou]/.test(t) ? `an ${t}` : `a ${t}`);

function typeRule(expected: string, s: SchemaNode): { rule: string; extra: Partial<InvalidDetails> } {
  if (expected === 'integer' || expected === 'number') {
    const extra: Partial<InvalidDetails> = {};
    if (s.minimum !== undefined) extra.min = s.minimum;
    if (s.maximum !== undefined) extra.max = s.maximum;
    return { rule: numberRule(expected, s.minimum, s.maximum), extra };
  }
  if (expected === 'boolean') return { rule: 'must be true or false', extra: {} };
  if (expected === 'array') return { rule: 'must be a list', extra: {} };
  return { rule: `must be ${expected.split('|').map(article).join(' or ')}`, extra: {} };
}

/**
 * The first mistake among `errors` (unknown fields first, then missing ones, then the rest in order) as a
 * HangarError. `root` (the schema and the data validated) lets errors without Ajv's verbose fields be resolved.
 */
export function schemaError(errors: readonly SchemaErrorLike[], part: RequestPart | undefined, root?: { schema: unknown; data: unknown }): HangarError {
  const schemaOf = (x: SchemaErrorLike): SchemaNode | undefined => (root ? schemaAt(root.schema as SchemaNode, x.instancePath) : undefined) ?? (x.parentSchema as SchemaNode | undefined);
  const e = [...errors].sort((a, b) => rank(a, schemaOf(a)) - rank(b, schemaOf(b)))[0] ?? { keyword: 'type', instancePath: '', params: {} };
  const p = e.params ?? {};
  const where: Pick<InvalidDetails, 'in'> = part ? { in: part } : {};
  const s = schemaOf(e) ?? {};
  const data = root ? valueAt(root.data, e.instancePath) : e.data;
  const field = join(e.instancePath);
  const scalarType = (Array.isArray(s.type) ? s.type[0] : s.type) ?? 'number';
  switch (e.keyword) {
    case 'additionalProperties': {
      const extra = String(p.additionalProperty ?? (p.additionalProperties as unknown[] | undefined)?.find((k) => !(String(k) in (s.properties ?? {}))) ?? '');
      const known = Object.keys(s.properties ?? {});
      return invalidArgument({ field: join(e.instancePath, extra), ...where, reason: 'unknown', allowed: known, got: data !== null && typeof data === 'object' ? (data as Record<string, unknown>)[extra] : undefined },
        `is not a field of the ${part === 'query' ? 'query string' : (part ?? 'request')}${known.length ? ` (known: ${known.join(', ')})` : ''}`, { quoteGot: false });
    }
    case 'required': {
      const missing = String(p.missingProperty ?? (p.requiredProperties as unknown[] | undefined)?.[0] ?? '');
      return invalidArgument({ field: join(e.instancePath, missing), ...where, reason: 'required' }, 'is required');
    }
    case 'oneOf': {
      const allowed = exactlyOne(s);
      if (allowed) return invalidArgument({ field, ...where, reason: 'required', allowed }, `must have exactly one of ${allowed.join(', ')}`);
      return invalidArgument({ field, ...where, reason: 'type', got: data }, 'does not match any allowed form');
    }
    case 'type': {
      const expected = (Array.isArray(p.type) ? p.type.join('|') : String(p.type ?? s.type ?? 'value')).replaceAll(',', '|');
      const { rule, extra } = typeRule(expected, s);
      return invalidArgument({ field, ...where, reason: 'type', expected, ...extra, got: data }, rule);
    }
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
    case 'multipleOf': {
      const { rule, extra } = typeRule(scalarType === 'integer' ? 'integer' : 'number', s);
      return invalidArgument({ field, ...where, reason: 'range', expected: scalarType, ...extra, got: data }, rule);
    }
    case 'minLength':
    case 'maxLength': {
      const extra: Partial<InvalidDetails> = {};
      if (s.minLength !== undefined) extra.min = s.minLength;
      if (s.maxLength !== undefined) extra.max = s.maxLength;
      return invalidArgument({ field, ...where, reason: 'range', expected: 'string', ...extra, got: data }, lengthRule(s.minLength, s.maxLength));
    }
    case 'pattern':
      return invalidArgument({ field, ...where, reason: 'format', pattern: String(p.pattern ?? s.pattern), got: data }, `must match ${String(p.pattern ?? s.pattern)}`);
    case 'format':
      return invalidArgument({ field, ...where, reason: 'format', expected: String(p.format ?? s.format), got: data }, `must be ${article(String(p.format ?? s.format))}`);
    case 'enum':
    case 'const': {
      const allowed = (s.enum ?? (Array.isArray(p.allowedValues) ? p.allowedValues : [p.allowedValue])).map(String);
      return invalidArgument({ field, ...where, reason: 'enum', allowed, got: data }, `must be one of ${allowed.join(', ')}`);
    }
    default:
      return invalidArgument({ field, ...where, reason: 'type', got: data }, 'is not valid here');
  }
}
