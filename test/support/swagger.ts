// A small Swagger 2.0 reader and schema validator for the subset Firecracker's API definition uses: $ref, type,
// required, properties, additionalProperties, enum, minimum, maximum, items. Unknown properties are errors unless
// the schema says additionalProperties: true, because Firecracker deserialises with serde's deny_unknown_fields.
// Used by the contract tests and by the fake Firecracker.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';

export interface Schema {
  $ref?: string;
  type?: string;
  required?: string[];
  properties?: Record<string, Schema>;
  additionalProperties?: boolean | Schema;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  items?: Schema;
}

export interface Parameter {
  name: string;
  in: 'body' | 'path' | 'query';
  required?: boolean;
  type?: string;
  schema?: Schema;
}

export interface Operation {
  operationId?: string;
  parameters?: Parameter[];
  responses?: Record<string, { schema?: Schema }>;
}

export interface SwaggerDoc {
  swagger: string;
  info: { version: string };
  paths: Record<string, Record<string, Operation>>;
  definitions: Record<string, Schema>;
}

export function loadSwagger(file: string): SwaggerDoc {
  const doc = parse(readFileSync(file, 'utf8')) as SwaggerDoc;
  if (doc?.swagger !== '2.0' || !doc.paths || !doc.definitions) throw new Error(`${file} is not a Swagger 2.0 definition`);
  return doc;
}

/** The Firecracker definition for a version, from the shared fixtures directory. */
export function loadFirecrackerApi(fixturesDir: string, version: string): SwaggerDoc {
  return loadSwagger(join(fixturesDir, `api-v${version}.yaml`));
}

function templateRe(template: string): RegExp {
  const parts = template.split(/\{[^}]+\}/).map((p) => p.replace(/[.*+?^$()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${parts.join('([^/]+)')}$`);
}

/** Finds the operation for a concrete method + path; `params` are the decoded path parameters. */
export function findOperation(doc: SwaggerDoc, method: string, path: string): { template: string; op: Operation; params: Record<string, string> } | null {
  const m = method.toLowerCase();
  for (const [template, ops] of Object.entries(doc.paths)) {
    const match = templateRe(template).exec(path);
    if (!match || !ops[m]) continue;
    const names = [...template.matchAll(/\{([^}]+)\}/g)].map((x) => x[1]!);
    const params: Record<string, string> = {};
    names.forEach((n, i) => { params[n] = decodeURIComponent(match[i + 1]!); });
    return { template, op: ops[m]!, params };
  }
  return null;
}

export function bodyParameter(op: Operation): Parameter | undefined {
  return op.parameters?.find((p) => p.in === 'body');
}

function resolve(doc: SwaggerDoc, schema: Schema): Schema {
  let s = schema;
  for (let depth = 0; s.$ref; depth++) {
    if (depth > 20) throw new Error(`$ref loop at ${s.$ref}`);
    const m = /^#\/definitions\/(.+)$/.exec(s.$ref);
    const target = m ? doc.definitions[m[1]!] : undefined;
    if (!target) throw new Error(`unresolvable $ref ${s.$ref}`);
    s = target; // Swagger 2.0: siblings of $ref are ignored
  }
  return s;
}

function typeOk(type: string, v: unknown): boolean {
  switch (type) {
    case 'object': return v !== null && typeof v === 'object' && !Array.isArray(v);
    case 'array': return Array.isArray(v);
    case 'string': return typeof v === 'string';
    case 'integer': return typeof v === 'number' && Number.isInteger(v);
    case 'number': return typeof v === 'number' && Number.isFinite(v);
    case 'boolean': return typeof v === 'boolean';
    default: return true;
  }
}

/** Every violation of `schema` by `value`, as 'at: message' lines; empty when valid. */
export function validate(doc: SwaggerDoc, schema: Schema, value: unknown, at = 'body'): string[] {
  const s = resolve(doc, schema);
  const errors: string[] = [];
  if (s.type && !typeOk(s.type, value)) return [`${at}: expected ${s.type}, got ${Array.isArray(value) ? 'array' : value === null ? 'null' : typeof value}`];
  if (s.enum && !s.enum.includes(value)) errors.push(`${at}: ${JSON.stringify(value)} is not one of ${JSON.stringify(s.enum)}`);
  if (typeof value === 'number') {
    if (s.minimum !== undefined && value < s.minimum) errors.push(`${at}: ${value} is below the minimum ${s.minimum}`);
    if (s.maximum !== undefined && value > s.maximum) errors.push(`${at}: ${value} is above the maximum ${s.maximum}`);
  }
  if (Array.isArray(value) && s.items) value.forEach((item, i) => errors.push(...validate(doc, s.items!, item, `${at}[${i}]`)));
  const isObject = value !== null && typeof value === 'object' && !Array.isArray(value);
  if (isObject && (s.type === 'object' || s.properties)) {
    const obj = value as Record<string, unknown>;
    for (const r of s.required ?? []) if (!(r in obj)) errors.push(`${at}: missing required field ${r}`);
    // A schema with no declared properties is a free-form document (e.g. MMDS contents).
    const closed = s.properties !== undefined && s.additionalProperties !== true;
    for (const [k, v] of Object.entries(obj)) {
      const prop = s.properties?.[k];
      if (prop) errors.push(...validate(doc, prop, v, `${at}.${k}`));
      else if (closed) errors.push(`${at}: unknown field ${k}`);
    }
  }
  return errors;
}

/** Checks a whole request against the definition: path + method exist, path params, body schema. */
export function validateRequest(doc: SwaggerDoc, method: string, path: string, body: unknown): string[] {
  const found = findOperation(doc, method, path);
  if (!found) return [`${method} ${path}: no such operation in API ${doc.info.version}`];
  const errors: string[] = [];
  const bodyParam = bodyParameter(found.op);
  if (!bodyParam && body !== undefined) errors.push(`${method} ${found.template} takes no body`);
  if (bodyParam?.schema) {
    if (body === undefined) {
      if (bodyParam.required) errors.push(`${method} ${found.template}: body required`);
    } else errors.push(...validate(doc, bodyParam.schema, body));
  }
  for (const p of found.op.parameters ?? []) {
    if (p.in === 'path' && p.required && !found.params[p.name]) errors.push(`${method} ${found.template}: path parameter ${p.name} missing`);
  }
  return errors;
}
