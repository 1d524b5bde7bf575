// A golden snapshot on disk: one directory per snapshot holding the VMM's state files, the disk as it was at that
// instant, and manifest.json describing them. Pure: shapes, validation and the API view.
import { HangarError } from '../errors.js';
import type { GuestNetIdentity } from '../net/clone.js';
import type { FileInfo } from '../util/files.js';
import { isVmmKind, type VmmKind } from '../vmm/types.js';

export const SNAPSHOT_SCHEMA = 1;
export const SNAPSHOT_MANIFEST = 'manifest.json';
export const SNAPSHOT_DISK = 'disk.ext4';
const ID_RE = /^snap-[0-9a-f]{8}$/;

export interface SnapshotManifest {
  schema: typeof SNAPSHOT_SCHEMA;
  id: string;
  created: string;
  /** The VM the state was taken from; `image` when Hangar booted one only for this snapshot. */
  source: { kind: 'vm' | 'image'; vmId: string; vmName: string };
  image: { id: string; profile: string; rootfsSha256: string | null; kernelSha256: string | null };
  vmm: { kind: VmmKind; version: string };
  /** What a restoring VMM must be started with (the device set and memory size must match the saved state). */
  machine: { vcpus: number; memMiB: number; kernelPath: string; bootArgs: string; guestAgent?: boolean };
  /** The network identity baked into the guest: every clone recreates it in its own namespace. */
  guestNet: GuestNetIdentity;
  /** State files and the disk: name → sha256 and size. */
  files: Record<string, FileInfo>;
  /** Firecracker: the disk path its snapshot reopens. */
  diskPathInVmm?: string;
  durationsMs: { pause: number; state: number; disk: number; total: number };
}

export interface SnapshotView {
  id: string;
  createdAt: string;
  source: SnapshotManifest['source'];
  image: string;
  profile: string;
  vmm: string;
  vmmVersion: string;
  vcpus: number;
  memMiB: number;
  guest: { ip: string; mac: string };
  sizes: Record<string, number>;
  totalBytes: number;
}

export function validSnapshotId(value: unknown): string {
  if (typeof value !== 'string' || !ID_RE.test(value)) {
    throw new HangarError('SNAPSHOT_NOT_FOUND', `no snapshot ${JSON.stringify(value)} (snapshot ids look like snap-0123abcd)`, { id: value });
  }
  return value;
}

export function isSnapshotId(value: unknown): value is string {
  return typeof value === 'string' && ID_RE.test(value);
}

export function isSnapshotManifest(m: unknown): m is SnapshotManifest {
  const x = m as SnapshotManifest | null;
  return !!x && x.schema === SNAPSHOT_SCHEMA && isSnapshotId(x.id) && typeof x.created === 'string'
    && !!x.image?.id && isVmmKind(x.vmm?.kind) && !!x.machine && !!x.guestNet
    && !!x.files && !!x.files[SNAPSHOT_DISK];
}

export function toSnapshotView(m: SnapshotManifest): SnapshotView {
  const sizes = Object.fromEntries(Object.entries(m.files).map(([k, v]) => [k, v.size]));
  return {
    id: m.id, createdAt: m.created, source: m.source, image: m.image.id, profile: m.image.profile, vmm: m.vmm.kind,
    vmmVersion: m.vmm.version, vcpus: m.machine.vcpus, memMiB: m.machine.memMiB, guest: { ip: m.guestNet.ip, mac: m.guestNet.mac },
    sizes, totalBytes: Object.values(sizes).reduce((a, b) => a + b, 0),
  };
}
