// Create-VM input: its one schema, built from the limits (the API validates requests with it, /openapi.json shows
// it, handlers get its static type), and normalizeCreate, which checks any input against that same schema and
// fills the defaults. Pure: no side effects, so a bad request can never leave anything half-created.
import { Type, type Static } from 'typebox';
import { Compile } from 'typebox/compile';
import { PROFILES, type Profile } from '../image/plan.js';
import type { VmResources } from '../vmm/cgroup/plan.js';
import { networkPolicySchema, type NetworkPolicyBody } from '../net/egress/schema.js';
import { VMM_KINDS, type VmmKind } from '../vmm/types.js';

import { schemaError } from '../util/schema-error.js';
import { validMounts, volumeMountsSchema, type VolumeMount } from '../volume/input.js';
import { NAME_MAX_LENGTH, NAME_PATTERN, REF_MAX_LENGTH, REF_PATTERN, notIdShaped } from '../util/validate.js';

export interface Range {
  min: number;
  max: number;
}

/** What a create request may ask for; from the controller config (`limits`), checked there against the drivers. */
export interface VmLimits {
  vcpus: Range;
  memMiB: Range;
  ttlSeconds: Range;
  name: { maxLength: number };
}

export const DEFAULT_LIMITS: VmLimits = {
  vcpus: { min: 1, max: 8 },
  memMiB: { min: 128, max: 16384 },
  ttlSeconds: { min: 60, max: 7 * 24 * 3600 },
  name: { maxLength: NAME_MAX_LENGTH },
};

/** A reference to an image or a snapshot: an id, an id prefix or a profile name. */
export const refString = (description: string) => Type.String({ minLength: 1, maxLength: REF_MAX_LENGTH, pattern: REF_PATTERN, description });

/** A VM's own host limits (its VMM's cgroup); what is left out derives from vcpus and memMiB and the config. */
export const resourcesSchema = Type.Object({
  cpuCores: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1024, description: 'CPU time in cores (default: its vCPUs)' })),
  memMiB: Type.Optional(Type.Integer({ minimum: 32, maximum: 4 * 1024 * 1024, description: 'memory of the whole VMM process (default: guest memory + the configured overhead)' })),
  pids: Type.Optional(Type.Integer({ minimum: 16, maximum: 4_194_304, description: 'processes and threads of the VMM' })),
}, { additionalProperties: false });

/** A VM's own idle settings (create and PATCH /v1/vms/:id/idle); null resets a field to the config's default. */
export const IDLE_TIMEOUT_MAX_S = 30 * 24 * 3600;
export const idleFields = {
  idleTimeoutS: Type.Optional(Type.Union([Type.Integer({ minimum: 0, maximum: IDLE_TIMEOUT_MAX_S }), Type.Null()], { description: 'seconds without any access before the idle action (0: never; default: the config\'s hibernateAfterS)' })),
  idleAction: Type.Optional(Type.Union([Type.Enum(['hibernate', 'pause']), Type.Null()], { description: 'what an idle VM does: hibernate (memory to disk, VMM stops) or pause (vCPUs stop, memory stays); default: the config\'s idleAction' })),
};

/** The body of POST /v1/vms for these limits. */
export function createVmSchema(limits: VmLimits = DEFAULT_LIMITS) {
  const l = limits;
  return Type.Object({
    image: Type.Optional(refString('image id, id prefix or profile name (default: the profile\'s newest image)')),
    profile: Type.Optional(Type.Enum(PROFILES, { description: 'default desktop' })),
    vcpus: Type.Optional(Type.Integer({ minimum: l.vcpus.min, maximum: l.vcpus.max, description: 'default 1' })),
    memMiB: Type.Optional(Type.Integer({ minimum: l.memMiB.min, maximum: l.memMiB.max, description: 'default 512 (desktop) or 1024 (browser)' })),
    name: Type.Optional(Type.String({ minLength: 1, maxLength: l.name.maxLength, pattern: NAME_PATTERN, description: 'not shaped like an id (vm-/snap- and 8 hex digits)' })),
    ttlSeconds: Type.Optional(Type.Integer({ minimum: l.ttlSeconds.min, maximum: l.ttlSeconds.max, description: 'destroyed this long after creation (default: never)' })),
    vmm: Type.Optional(Type.Enum(VMM_KINDS, { description: 'default: the controller\'s defaultVmm' })),
    fromSnapshot: Type.Optional(refString('a golden snapshot id: restore a clone of it instead of booting')),
    pool: Type.Optional(Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,31}$', description: 'a warm pool: claim one of its ready VMs (with name, ttlSeconds and volumes only)' })),
    resources: Type.Optional(resourcesSchema),
    network: Type.Optional(networkPolicySchema),
    volumes: Type.Optional(volumeMountsSchema),
    ...idleFields,
  }, { additionalProperties: false });
}

export type CreateVmSchema = ReturnType<typeof createVmSchema>;
export type CreateVmInput = Static<CreateVmSchema>;

export interface CreateVmRequest {
  image: string;
  profile: Profile;
  vcpus: number;
  memMiB: number;
  name: string | null;
  ttlSeconds: number | null;
  vmm: VmmKind | null;
  fromSnapshot: string | null;
  /** The VM's own cgroup limits (absent: all derived). */
  resources?: VmResources;
  /** The network policy asked for (over the config's default), or null for the default. */
  network: NetworkPolicyBody | null;
  /** Volumes to mount in the guest (checked: names, paths, no duplicates). */
  volumes?: VolumeMount[];
  /** The VM's own idle settings (null: the config's default); absent when the request gave none. */
  idle?: { timeoutS: number | null; action: 'hibernate' | 'pause' | null };
  /** Which options the request gave (the rest are defaults): a clone refuses given ones its snapshot fixes. */
  given: { vcpus: boolean; memMiB: boolean; profile: boolean };
}

const compiled = new WeakMap<VmLimits, { schema: CreateVmSchema; validator: ReturnType<typeof Compile<CreateVmSchema>> }>();

function validatorFor(limits: VmLimits): { schema: CreateVmSchema; validator: ReturnType<typeof Compile<CreateVmSchema>> } {
  let v = compiled.get(limits);
  if (!v) {
    const schema = createVmSchema(limits);
    v = { schema, validator: Compile(schema) };
    compiled.set(limits, v);
  }
  return v;
}

const clamp = (n: number, r: Range): number => Math.min(r.max, Math.max(r.min, n));

/** Checks `input` against createVmSchema(limits) (INVALID_ARGUMENT/UNKNOWN_FIELD as the API answers) and fills defaults. */
export function normalizeCreate(input: CreateVmInput, limits: VmLimits = DEFAULT_LIMITS): CreateVmRequest {
  const { schema, validator } = validatorFor(limits);
  if (!validator.Check(input)) throw schemaError(validator.Errors(input), undefined, { schema, data: input });
  if (input.name !== undefined) notIdShaped(input.name, 'name');
  const profile = input.profile ?? 'desktop';
  return {
    image: input.image ?? profile,
    profile,
    // Defaults inside the configured range (a host may require at least 2 vCPUs or 1 GiB).
    vcpus: input.vcpus ?? clamp(1, limits.vcpus),
    memMiB: input.memMiB ?? clamp(profile === 'browser' ? 1024 : 512, limits.memMiB),
    name: input.name ?? null,
    ttlSeconds: input.ttlSeconds ?? null,
    vmm: input.vmm ?? null,
    fromSnapshot: input.fromSnapshot ?? null,
    ...(input.resources ? { resources: input.resources } : {}),
    network: input.network ?? null,
    ...(input.volumes?.length ? { volumes: validMounts(input.volumes) } : {}),
    ...(input.idleTimeoutS !== undefined || input.idleAction !== undefined ? { idle: { timeoutS: input.idleTimeoutS ?? null, action: input.idleAction ?? null } } : {}),
    given: { vcpus: input.vcpus !== undefined, memMiB: input.memMiB !== undefined, profile: input.profile !== undefined },
  };
}
