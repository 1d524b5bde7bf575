// The JSON schemas of the E2B REST routes (src/e2b/rest.ts): what they validate and what /openapi.json shows. Bodies
// accept fields Hangar does not act on (mcp, iam, volumeMounts…: the SDK sends them), answers carry the fields the
// SDK reads. Names are the wire's.
import { Type } from 'typebox';
import { ID_MAX_LENGTH } from '../api/schemas.js';
import { MAX_TIMEOUT_S } from './model.js';

const metadata = Type.Record(Type.String({ maxLength: 256 }), Type.String({ maxLength: 4096 }), { description: 'key → value, as given at create' });
const cidrList = Type.Array(Type.String({ minLength: 1, maxLength: 260 }), { maxItems: 256 });

export const sandboxParams = Type.Object({
  sandboxID: Type.String({ minLength: 1, maxLength: ID_MAX_LENGTH, description: 'the sandbox id (a Hangar VM id)' }),
}, { additionalProperties: false });

export const createBody = Type.Object({
  templateID: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'a Hangar profile (desktop, browser), "base" (the default profile) or a snapshot id' })),
  timeout: Type.Optional(Type.Integer({ minimum: 1, maximum: 10 * MAX_TIMEOUT_S, description: 'seconds until the sandbox is killed (or paused with autoPause); default 300' })),
  metadata: Type.Optional(metadata),
  envVars: Type.Optional(Type.Record(Type.String({ maxLength: 256 }), Type.String({ maxLength: 65_536 }), { description: 'environment of every command' })),
  allow_internet_access: Type.Optional(Type.Boolean({ description: 'false: no egress (unless network.allowOut)' })),
  network: Type.Optional(Type.Object({
    allowOut: Type.Optional(cidrList),
    denyOut: Type.Optional(cidrList),
  }, { additionalProperties: true, description: 'allowOut/denyOut map to the VM\'s egress policy (allowlist, deny)' })),
  autoPause: Type.Optional(Type.Boolean({ description: 'on timeout: pause (hibernate) instead of kill' })),
}, { additionalProperties: true });

export const timeoutBody = Type.Object({
  timeout: Type.Integer({ minimum: 1, maximum: 10 * MAX_TIMEOUT_S, description: 'seconds from now' }),
}, { additionalProperties: true });

export const connectBody = Type.Union([Type.Object({
  timeout: Type.Optional(Type.Integer({ minimum: 1, maximum: 10 * MAX_TIMEOUT_S, description: 'seconds from now' })),
}, { additionalProperties: true }), Type.Null()]);

export const listQuery = Type.Object({
  metadata: Type.Optional(Type.String({ maxLength: 8192, description: 'k=v&k2=v2, each key and value URI-encoded' })),
  state: Type.Optional(Type.String({ maxLength: 64, description: 'running,paused' })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  nextToken: Type.Optional(Type.String({ maxLength: 256 })),
}, { additionalProperties: true });

export const sandboxSchema = {
  type: 'object', required: ['sandboxID', 'templateID', 'startedAt', 'endAt', 'state'],
  properties: {
    sandboxID: { type: 'string' }, templateID: { type: 'string' }, alias: { type: 'string' }, clientID: { type: 'string' },
    startedAt: { type: 'string' }, endAt: { type: 'string' }, state: { type: 'string', enum: ['running', 'paused'] },
    cpuCount: { type: 'integer' }, memoryMB: { type: 'integer' }, diskSizeMB: { type: 'integer' }, envdVersion: { type: 'string' },
    metadata: { type: 'object', additionalProperties: { type: 'string' } },
  },
} as const;

export const sandboxCreatedSchema = {
  type: 'object', required: ['sandboxID', 'templateID', 'envdVersion', 'envdAccessToken'],
  properties: {
    sandboxID: { type: 'string' }, templateID: { type: 'string' }, alias: { type: 'string' }, clientID: { type: 'string' },
    envdVersion: { type: 'string' }, envdAccessToken: { type: 'string' },
  },
} as const;

/** E2B's error body; `error` is Hangar's, for answers made before the route runs (authentication, validation). */
export const e2bErrorSchema = {
  type: 'object',
  properties: {
    code: { type: 'integer', description: 'the HTTP status' }, message: { type: 'string' },
    error: { type: 'object', additionalProperties: true },
  },
} as const;

export const e2bErrors = { '4xx': e2bErrorSchema, '5xx': e2bErrorSchema };
