// Create-VM input, normalised once at the edge (API and CLI share it). Pure: no side effects, so a bad request
// can never leave anything half-created.
import { HangarError } from '../errors.js';
import { PROFILES, type Profile } from '../image/plan.js';
import { VMM_KINDS, type VmmKind } from '../vmm/types.js';
import { oneOf, validInt, validName } from '../util/validate.js';


export interface CreateVmInput {
  image?: string;
  profile?: Profile;
  vcpus?: number;
  memMiB?: number;
  name?: string;
  ttlSeconds?: number;
  vmm?: VmmKind;
  fromSnapshot?: string;
}

export interface VmLimits {
  maxVcpus: number;
  minMemMiB: number;
  maxMemMiB: number;
  maxTtlSeconds: number;
}

export const DEFAULT_LIMITS: VmLimits = { maxVcpus: 8, minMemMiB: 128, maxMemMiB: 16384, maxTtlSeconds: 7 * 24 * 3600 };

export interface CreateVmRequest {
  image: string;
  profile: Profile;
  vcpus: number;
  memMiB: number;
  name: string | null;
  ttlSeconds: number | null;
  vmm: VmmKind | null;
  fromSnapshot: string | null;
  /** Which options the request gave (the rest are defaults): a clone refuses given ones its snapshot fixes. */
  given: { vcpus: boolean; memMiB: boolean; profile: boolean };
}

const IMAGE_REF = /^[a-z0-9][a-z0-9._-]{0,127}$/;

export function normalizeCreate(input: CreateVmInput, limits: VmLimits = DEFAULT_LIMITS): CreateVmRequest {
  const profile = input.profile === undefined ? 'desktop' : oneOf(input.profile, 'profile', PROFILES);
  const image = input.image ?? profile;
  if (typeof image !== 'string' || !IMAGE_REF.test(image)) {
    throw new HangarError('INVALID_ARGUMENT', `image must be an image id, id prefix or profile name (got ${JSON.stringify(image)})`, { field: 'image' });
  }
  const fromSnapshot = input.fromSnapshot === undefined ? null : input.fromSnapshot;
  if (fromSnapshot !== null && (typeof fromSnapshot !== 'string' || !IMAGE_REF.test(fromSnapshot))) {
    throw new HangarError('INVALID_ARGUMENT', 'fromSnapshot must be a snapshot id', { field: 'fromSnapshot' });
  }
  return {
    image,
    profile,
    vcpus: input.vcpus === undefined ? 1 : validInt(input.vcpus, 'vcpus', 1, limits.maxVcpus),
    memMiB: input.memMiB === undefined ? (profile === 'browser' ? 1024 : 512) : validInt(input.memMiB, 'memMiB', limits.minMemMiB, limits.maxMemMiB),
    name: input.name === undefined ? null : validName(input.name, 'name'),
    ttlSeconds: input.ttlSeconds === undefined ? null : validInt(input.ttlSeconds, 'ttlSeconds', 60, limits.maxTtlSeconds),
    vmm: input.vmm === undefined ? null : oneOf(input.vmm, 'vmm', VMM_KINDS),
    fromSnapshot,
    given: { vcpus: input.vcpus !== undefined, memMiB: input.memMiB !== undefined, profile: input.profile !== undefined },
  };
}
