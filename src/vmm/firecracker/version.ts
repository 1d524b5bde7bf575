// Which Firecracker API a request targets. Hangar is verified against three published definitions; any other
// release is mapped to the newest verified definition not newer than it, so a field is only sent to a version
// whose definition we have checked it against (a field new in, say, 1.12 waits until 1.13.1 here).
import { HangarError } from '../../errors.js';

export const VERIFIED_API_VERSIONS = ['1.9.1', '1.13.1', '1.16.1'] as const;
export type ApiVersion = (typeof VERIFIED_API_VERSIONS)[number];

/** The first verified definition that has each optional request field Hangar can send. */
export const FIELD_SINCE = {
  'snapshot-load.track_dirty_pages': '1.13.1',
  'snapshot-load.network_overrides': '1.13.1',
  'snapshot-load.clock_realtime': '1.16.1',
  'snapshot-load.vsock_override': '1.16.1',
  'network-interface.mtu': '1.16.1',
} as const satisfies Record<string, ApiVersion>;
export type VersionedField = keyof typeof FIELD_SINCE;

export type Semver = readonly [number, number, number];

/** Accepts '1.9.1', 'v1.9.1', 'Firecracker v1.9.1' and '1.9.1-dev'; null when there is no x.y.z. */
export function parseVersion(text: string): Semver | null {
  const m = /(\d+)\.(\d+)\.(\d+)/.exec(text);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : null;
}

export function compareVersions(a: Semver, b: Semver): number {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

/** The verified definition a Firecracker release speaks; throws VMM_NOT_AVAILABLE below the oldest one. */
export function apiVersionFor(version: string): ApiVersion {
  const v = parseVersion(version);
  if (!v) throw new HangarError('VMM_NOT_AVAILABLE', `cannot read a Firecracker version from ${JSON.stringify(version)}`, { version });
  let chosen: ApiVersion | null = null;
  for (const candidate of VERIFIED_API_VERSIONS) {
    if (compareVersions(parseVersion(candidate)!, v) <= 0) chosen = candidate;
  }
  if (!chosen) {
    throw new HangarError('VMM_NOT_AVAILABLE', `Firecracker ${version} is older than ${VERIFIED_API_VERSIONS[0]}, the oldest API Hangar is verified against`, {
      version, verified: VERIFIED_API_VERSIONS,
    });
  }
  return chosen;
}

export function hasField(api: ApiVersion, field: VersionedField): boolean {
  return compareVersions(parseVersion(api)!, parseVersion(FIELD_SINCE[field])!) >= 0;
}

/** Throws INVALID_ARGUMENT when the target API has no such field (before anything is sent). */
export function requireField(api: ApiVersion, field: VersionedField): void {
  if (!hasField(api, field)) {
    throw new HangarError('INVALID_ARGUMENT', `${field} needs Firecracker ${FIELD_SINCE[field]} or newer (target API is ${api})`, {
      field, since: FIELD_SINCE[field], api,
    });
  }
}
