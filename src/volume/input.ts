// Volume input: the schemas of the volume routes and of create's `volumes`, and the checks every entry point uses
// (names, sizes, guest mount paths). Pure: a refused request touches nothing, so no file is ever left behind.
import { Type, type Static } from 'typebox';
import { HangarError } from '../errors.js';
import { NAME_MAX_LENGTH, NAME_PATTERN, REF_MAX_LENGTH, REF_PATTERN, invalidArgument, validName } from '../util/validate.js';

/** Volume slots of a QEMU VM: placeholder drives present from its boot (src/vmm/qemu/argv.ts). */
export const VOLUME_SLOTS = 2;

/** Sizes a volume may have, in MiB (ext4 wants a few MiB for its journal). */
export const VOLUME_SIZE = { min: 16, max: 1024 * 1024 } as const;

/** A guest mount point: absolute, plain characters, no '.'/'..' segments, not a system directory. */
export const GUEST_PATH_PATTERN = '^(/[A-Za-z0-9._@+-]+)+$';
const GUEST_PATH_RE = new RegExp(GUEST_PATH_PATTERN);
const GUEST_PATH_MAX = 255;
/** Mounting over these would break the guest (its own root, kernel filesystems, the agent's runtime). */
const RESERVED = ['/bin', '/boot', '/dev', '/etc', '/lib', '/lib64', '/proc', '/run', '/sbin', '/sys', '/usr', '/var'];

const nameField = Type.String({ minLength: 1, maxLength: NAME_MAX_LENGTH, pattern: NAME_PATTERN, description: 'unique within the tenant' });
const refField = Type.String({ minLength: 1, maxLength: REF_MAX_LENGTH, pattern: REF_PATTERN, description: 'a volume id or name' });
const sizeField = Type.Integer({ minimum: VOLUME_SIZE.min, maximum: VOLUME_SIZE.max, description: 'size limit in MiB (the file is sparse: only what is written takes disk)' });
const pathField = Type.String({ minLength: 2, maxLength: GUEST_PATH_MAX, pattern: GUEST_PATH_PATTERN, description: 'mount point in the guest (made if missing)' });

export const createVolumeSchema = Type.Object({ name: nameField, sizeMiB: sizeField }, { additionalProperties: false });
export const resizeVolumeSchema = Type.Object({ sizeMiB: sizeField }, { additionalProperties: false });
export const snapshotVolumeSchema = Type.Object({ name: nameField }, { additionalProperties: false });
/** One volume in a VM: create's `volumes` entries and the attach body. */
export const volumeMountSchema = Type.Object({
  name: refField,
  path: pathField,
  readOnly: Type.Optional(Type.Boolean({ description: 'mounted read-only in the guest (the volume is still in this one VM only)' })),
}, { additionalProperties: false });
export const volumeMountsSchema = Type.Array(volumeMountSchema, { maxItems: VOLUME_SLOTS, description: `volumes mounted in the guest (at most ${VOLUME_SLOTS}; QEMU only)` });

export type CreateVolumeBody = Static<typeof createVolumeSchema>;
export type VolumeMount = Static<typeof volumeMountSchema>;

/** A guest mount point, checked (the schema's pattern, plus the reserved directories). */
export function validGuestPath(value: unknown, field = 'path'): string {
  if (typeof value !== 'string' || value.length > GUEST_PATH_MAX || !GUEST_PATH_RE.test(value) || value.split('/').some((s) => s === '.' || s === '..')) {
    throw invalidArgument({ field, reason: 'format', pattern: GUEST_PATH_PATTERN, got: value }, 'must be an absolute guest path of plain segments (no "." or "..", no trailing "/")');
  }
  const reserved = RESERVED.find((r) => value === r || value.startsWith(`${r}/`));
  if (reserved) throw invalidArgument({ field, reason: 'format', got: value }, `cannot mount a volume over ${reserved}: it belongs to the guest system`);
  return value;
}

export function validSize(value: unknown, field = 'sizeMiB'): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < VOLUME_SIZE.min || value > VOLUME_SIZE.max) {
    throw invalidArgument({ field, reason: 'range', min: VOLUME_SIZE.min, max: VOLUME_SIZE.max, got: value }, `must be an integer from ${VOLUME_SIZE.min} to ${VOLUME_SIZE.max} (MiB)`);
  }
  return value;
}

/** A new volume's name: a name, and not shaped like a volume id (ids and names share one lookup). */
export function validVolumeName(value: unknown, field = 'name'): string {
  const n = validName(value, field);
  if (/^vol-[0-9a-f]{8}$/.test(n)) throw invalidArgument({ field, reason: 'format', got: n }, 'must not look like a volume id (vol- and 8 hex digits)');
  return n;
}

/** Create's `volumes`: each checked, no volume twice, no mount point twice, at most VOLUME_SLOTS. */
export function validMounts(value: readonly VolumeMount[] | undefined): VolumeMount[] {
  const list = value ?? [];
  if (list.length > VOLUME_SLOTS) throw invalidArgument({ field: 'volumes', reason: 'range', max: VOLUME_SLOTS, got: list.length }, `at most ${VOLUME_SLOTS} volumes per VM`);
  const out = list.map((m, i) => ({ name: validName(m.name, `volumes[${i}].name`, REF_MAX_LENGTH), path: validGuestPath(m.path, `volumes[${i}].path`), readOnly: m.readOnly === true }));
  for (const [k, what] of [['name', 'volume'], ['path', 'mount point']] as const) {
    const seen = new Set<string>();
    for (const m of out) {
      if (seen.has(m[k])) throw new HangarError('INVALID_ARGUMENT', `the ${what} ${m[k]} is given twice`, { field: 'volumes', reason: 'duplicate', got: m[k] });
      seen.add(m[k]);
    }
  }
  return out;
}
