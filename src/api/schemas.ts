// JSON Schemas: the same objects validate requests (Fastify/Ajv), serialise responses, and generate /openapi.json.

export const errorSchema = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: { code: { type: 'string' }, message: { type: 'string' }, details: { type: 'object', additionalProperties: true } },
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
    /** A hibernated VM is 'stopped' with its memory on disk; start/resume restores it. */
    hibernated: { type: 'boolean' },
    /** Set for a clone: its snapshot, its own namespace, and the address the guest has inside it. */
    clone: {
      type: ['object', 'null'],
      properties: { snapshot: { type: 'string' }, netns: { type: 'string' }, guestIp: { type: 'string' } },
    },
  },
} as const;

export const snapshotBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    vm: { type: 'string', minLength: 1, maxLength: 128 },
    image: { type: 'string', minLength: 1, maxLength: 128 },
  },
} as const;

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

export const createVmBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    image: { type: 'string', minLength: 1, maxLength: 128 },
    profile: { type: 'string', enum: ['desktop', 'browser'] },
    vcpus: { type: 'integer', minimum: 1, maximum: 64 },
    memMiB: { type: 'integer', minimum: 1, maximum: 1048576 },
    name: { type: 'string', minLength: 1, maxLength: 63 },
    ttlSeconds: { type: 'integer', minimum: 1 },
    vmm: { type: 'string', enum: ['qemu', 'firecracker'] },
    fromSnapshot: { type: 'string', minLength: 1, maxLength: 128 },
  },
} as const;

export const idParams = {
  type: 'object',
  required: ['id'],
  additionalProperties: false,
  properties: { id: { type: 'string', minLength: 1, maxLength: 128 } },
} as const;

export const waitQuery = {
  type: 'object',
  additionalProperties: false,
  properties: { wait: { type: 'boolean' }, timeoutMs: { type: 'integer', minimum: 1, maximum: 600000 } },
} as const;

export const consoleQuery = {
  type: 'object',
  additionalProperties: false,
  properties: { lines: { type: 'integer', minimum: 1, maximum: 10000 }, follow: { type: 'boolean' } },
} as const;

export const eventsQuery = {
  type: 'object',
  additionalProperties: false,
  properties: { since: { type: 'string', pattern: '^([0-9]{1,15}|now)$', description: 'replay events after this sequence number (0: all kept); default and now: live only' }, vm: { type: 'string', maxLength: 128 } },
} as const;

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
