// The API's schemas, written once with TypeBox: the same objects validate requests (Fastify/Ajv, no type coercion
// of JSON bodies), give handlers their static types (Static<>), serialise responses and generate /openapi.json.
// The create-VM body is built from the configured limits (src/vm/input.ts), so the document shows what is enforced.
import { Type, type Static } from 'typebox';
import { REF_MAX_LENGTH, REF_PATTERN } from '../util/validate.js';
import { refString } from '../vm/input.js';

export { createVmSchema, type CreateVmInput } from '../vm/input.js';

/** Longest id or name in a path; the router's maxParamLength is the same, so a longer one is refused as 414. */
export const ID_MAX_LENGTH = REF_MAX_LENGTH;

export const errorSchema = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: {
        code: { type: 'string', description: 'a stable code from src/errors.ts' },
        message: { type: 'string' },
        details: {
          type: 'object', additionalProperties: true,
          description: 'validation errors (INVALID_ARGUMENT, UNKNOWN_FIELD): field (the property, "" for the whole part), in (body|query|params), '
            + 'reason (type|range|enum|format|required|unknown), and as the rule has them expected, min, max, allowed, pattern, got (cut to 64 characters)',
        },
      },
    },
  },
} as const;

export const vmSchema = {
  type: 'object',
  required: ['id', 'name', 'state', 'image', 'profile', 'vmm', 'vcpus', 'memMiB', 'createdAt', 'updatedAt'],
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    state: { type: 'string', enum: ['creating', 'booting', 'ready', 'failed', 'paused', 'stopping', 'stopped', 'destroyed'] },
    image: { type: 'string' },
    profile: { type: 'string' },
    vmm: { type: 'string' },
    vcpus: { type: 'integer' },
    memMiB: { type: 'integer' },
    ttlSeconds: { type: ['integer', 'null'] },
    expiresAt: { type: ['string', 'null'] },
    createdAt: { type: 'string' },
    updatedAt: { type: 'string' },
    pid: { type: ['integer', 'null'] },
    bootMs: { type: ['integer', 'null'] },
    network: {
      type: ['object', 'null'],
      properties: { ip: { type: 'string' }, mac: { type: 'string' }, tap: { type: 'string' }, gateway: { type: 'string' } },
    },
    lastError: {
      type: ['object', 'null'],
      properties: { code: { type: 'string' }, message: { type: 'string' }, details: { type: 'object', additionalProperties: true } },
    },
    /** The cgroup limits of its VMM (src/vmm/cgroup/): cores, MiB (guest memory + the VMM's own), pids, io. */
    limits: {
      type: ['object', 'null'],
      properties: {
        cgroupVersion: { type: 'integer' }, cgroup: { type: 'string' }, cpuCores: { type: 'number' }, memMiB: { type: 'integer' },
        swapMiB: { type: 'integer' }, pids: { type: 'integer' }, io: { type: ['object', 'null'], additionalProperties: true },
      },
    },
    tenant: { type: 'string', description: 'the tenant that owns the VM' },
    /** A hibernated VM is 'stopped' with its memory on disk; start/resume restores it. */
    hibernated: { type: 'boolean' },
    /** Set for a clone: its snapshot, its own namespace, and the address the guest has inside it. */
    clone: {
      type: ['object', 'null'],
      properties: { snapshot: { type: 'string' }, netns: { type: 'string' }, guestIp: { type: 'string' } },
    },
  },
} as const;

/** POST /v1/snapshots: exactly one of vm (a ready VM) or image (boot one for the snapshot). */
export const snapshotBody = Type.Object({
  vm: Type.Optional(refString('a ready VM (id or name): its state now, and it runs on')),
  image: Type.Optional(refString('an image (id, prefix or profile): a VM is booted from it for the snapshot and destroyed')),
}, { additionalProperties: false, oneOf: [{ required: ['vm'] }, { required: ['image'] }] });
export type SnapshotBody = Static<typeof snapshotBody>;

const fileSizes = { type: 'object', additionalProperties: { type: 'integer' } } as const;

export const snapshotSchema = {
  type: 'object',
  required: ['id', 'createdAt', 'image', 'vmm'],
  properties: {
    id: { type: 'string' },
    createdAt: { type: 'string' },
    source: { type: 'object', properties: { kind: { type: 'string', enum: ['vm', 'image'] }, vmId: { type: 'string' }, vmName: { type: 'string' } } },
    image: { type: 'string' },
    profile: { type: 'string' },
    vmm: { type: 'string' },
    vmmVersion: { type: 'string' },
    vcpus: { type: 'integer' },
    memMiB: { type: 'integer' },
    guest: { type: 'object', properties: { ip: { type: 'string' }, mac: { type: 'string' } } },
    sizes: fileSizes,
    totalBytes: { type: 'integer' },
  },
} as const;

/** `:id` in a path: a VM or snapshot id or name. */
export const idParams = Type.Object({
  id: Type.String({ minLength: 1, maxLength: ID_MAX_LENGTH, description: 'id or name' }),
}, { additionalProperties: false });
export type IdParams = Static<typeof idParams>;

export const waitQuery = Type.Object({
  wait: Type.Optional(Type.Boolean({ description: 'answer once the VM is ready (201) instead of at once (202)' })),
  timeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 600_000, description: 'with wait: give up after this long (default 300000)' })),
}, { additionalProperties: false });
export type WaitQuery = Static<typeof waitQuery>;

export const consoleQuery = Type.Object({
  lines: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000, description: 'how many lines of the tail (default 200)' })),
  follow: Type.Optional(Type.Boolean({ description: 'keep streaming what the console writes' })),
}, { additionalProperties: false });
export type ConsoleQuery = Static<typeof consoleQuery>;

export const eventsQuery = Type.Object({
  since: Type.Optional(Type.String({ pattern: '^([0-9]{1,15}|now)$', description: 'replay events after this sequence number (0: every event kept); without it, or now: live only' })),
  vm: Type.Optional(Type.String({ minLength: 1, maxLength: ID_MAX_LENGTH, pattern: REF_PATTERN, description: 'only this VM\'s events (its id)' })),
}, { additionalProperties: false });
export type EventsQuery = Static<typeof eventsQuery>;

export const imageSchema = {
  type: 'object',
  required: ['id', 'profile', 'createdAt'],
  properties: {
    id: { type: 'string' },
    profile: { type: 'string' },
    kernelVersion: { type: ['string', 'null'] },
    createdAt: { type: 'string' },
    sizes: { type: 'object', additionalProperties: { type: 'integer' } },
  },
} as const;

export const hostSchema = {
  type: 'object',
  properties: {
    accel: { type: 'object', properties: { accel: { type: 'string' }, reason: { type: 'string' } } },
    drivers: {
      type: 'array',
      items: { type: 'object', properties: { kind: { type: 'string' }, available: { type: 'boolean' }, version: { type: 'string' }, reason: { type: 'string' } } },
    },
    network: {
      type: 'object',
      properties: { mode: { type: 'string' }, netns: { type: ['string', 'null'] }, cidr: { type: 'string' }, gateway: { type: 'string' }, hostNetns: { type: ['string', 'null'] } },
    },
    pool: { type: 'object', properties: { size: { type: 'integer' }, used: { type: 'integer' }, free: { type: 'integer' } } },
    vms: { type: 'object', additionalProperties: { type: 'integer' } },
  },
} as const;
