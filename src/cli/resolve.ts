// What a user types to name a VM or a snapshot, resolved in one place, client-side: list, then exact id >
// exact name > unique id prefix (with or without the 'vm-'/'snap-' part). An ambiguous prefix is
// INVALID_ARGUMENT listing the candidates; no match is VM_NOT_FOUND / SNAPSHOT_NOT_FOUND (both exit 2).
import { HangarError } from '../errors.js';
import type { SnapshotView } from '../snapshot/manifest.js';
import type { ApiClient } from './client.js';
import type { ArgDef } from './command.js';
import type { VmInfo } from './vm-view.js';

export const VM_ARG: ArgDef = { name: 'ID', description: 'the VM: its id, a unique prefix of its id, or its name' };
export const SNAPSHOT_ARG: ArgDef = { name: 'ID', description: 'the snapshot: its id or a unique prefix of it' };

interface Named {
  id: string;
  name?: string;
}

const KINDS = {
  vm: { what: 'VM', notFound: 'VM_NOT_FOUND', list: 'hangar vm ls' },
  snapshot: { what: 'snapshot', notFound: 'SNAPSHOT_NOT_FOUND', list: 'hangar snapshot ls' },
} as const;

/** Picks the one item `ref` names. Pure. */
export function pickRef<T extends Named>(ref: string, items: readonly T[], kind: keyof typeof KINDS): T {
  const k = KINDS[kind];
  const exact = items.find((i) => i.id === ref) ?? items.find((i) => i.name !== undefined && i.name === ref);
  if (exact) return exact;
  const short = (id: string): string => id.slice(id.indexOf('-') + 1);
  const matches = ref === '' ? [] : items.filter((i) => i.id.startsWith(ref) || short(i.id).startsWith(ref));
  if (matches.length === 1) return matches[0]!;
  if (matches.length > 1) {
    const shown = matches.slice(0, 10).map((i) => (i.name && i.name !== i.id ? `${i.id} (${i.name})` : i.id));
    throw new HangarError('INVALID_ARGUMENT', `'${ref}' matches ${matches.length} ${k.what}s: ${shown.join(', ')}${matches.length > 10 ? ', …' : ''}; give more of the id`, {
      field: 'id', ref, candidates: matches.map((i) => i.id),
    });
  }
  throw new HangarError(k.notFound, `no ${k.what} '${ref}': no id, name or id prefix matches ('${k.list}' lists them)`, { id: ref });
}

export async function resolveVm(api: ApiClient, ref: string): Promise<VmInfo> {
  const { vms } = await api.request<{ vms: VmInfo[] }>('GET', '/v1/vms');
  return pickRef(ref, vms, 'vm');
}

export async function resolveSnapshot(api: ApiClient, ref: string): Promise<SnapshotView> {
  const { snapshots } = await api.request<{ snapshots: SnapshotView[] }>('GET', '/v1/snapshots');
  return pickRef(ref, snapshots, 'snapshot');
}
