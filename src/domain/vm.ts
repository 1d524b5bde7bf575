// What a VM is, as every layer sees it: the record the store keeps (typed columns, no Record<string, unknown>),
// its network, its saved state while hibernated. Types only, plus tiny pure helpers; store and vm import it.
import { HangarError } from '../errors.js';
import type { CloneNetPlan } from '../net/clone.js';
import type { NetworkPolicy } from '../net/egress/policy.js';
import type { VmNetPlan } from '../net/plan.js';
import type { FileInfo } from '../util/files.js';
import type { MachineSpec, ProcessExit, VmmKind } from '../vmm/types.js';
import type { VmState } from './states.js';

/** A VM's network record: the pool plan, plus the clone's own network when it was cloned from a snapshot. */
export type VmNet = VmNetPlan & { clone?: CloneNetPlan };

/** What `hibernation` holds on a hibernated VM's record. */
export interface Hibernation {
  dir: string;
  files: Record<string, FileInfo>;
  vmmVersion: string;
  diskPathInVmm?: string;
  guestAgent?: boolean;
  at: string;
  saveMs: number;
}

export interface LastError {
  code: string;
  message: string;
  details?: unknown;
}

export interface VmRecord {
  id: string;
  name: string;
  state: VmState;
  imageId: string;
  profile: string;
  vmm: VmmKind;
  vcpus: number;
  memMiB: number;
  ttlS: number | null;
  createdAt: string;
  updatedAt: string;
  expiresAt: string | null;
  pid: number | null;
  runDir: string;
  /** The machine the VMM was last started with (null until the first boot). */
  spec: MachineSpec | null;
  net: VmNet | null;
  bootMs: number | null;
  lastError: LastError | null;
  exit: ProcessExit | null;
  /** The golden snapshot this VM was cloned from (null: booted from its image). */
  snapshotId: string | null;
  /** Set while the VM is hibernated (state 'stopped'): where its saved state is and when it was taken. */
  hibernation: Hibernation | null;
  /** The tenant that owns the VM (the store always sets it; absent only in records built by hand: the default tenant). */
  tenantId?: string;
  /** The VM's disk as created, MiB (the tenant's disk quota counts it); null when unknown. */
  diskMiB?: number | null;
  /** Its network policy (egress, group, limits); null: the configuration's default. */
  netPolicy?: NetworkPolicy | null;
}

export type NewVm = Omit<VmRecord, 'createdAt' | 'updatedAt' | 'pid' | 'bootMs' | 'lastError' | 'exit' | 'snapshotId' | 'hibernation' | 'spec' | 'net' | 'netPolicy'>
  & { snapshotId?: string | null; spec?: MachineSpec | null; net?: VmNet | null; netPolicy?: NetworkPolicy | null };
export type VmPatch = Partial<Pick<VmRecord, 'pid' | 'spec' | 'net' | 'bootMs' | 'lastError' | 'exit' | 'expiresAt' | 'hibernation' | 'netPolicy'>>;

/**
 * Bytes of a VM's viewer nonce. The store keeps one per VM (column viewer_nonce, set at create, rotated on revoke,
 * deleted with the row) and viewer tokens are signed over it; it is not part of VmRecord, so it never leaves the
 * controller in an API answer.
 */
export const VIEWER_NONCE_BYTES = 16;

/** The VMM's spec of a VM that has booted at least once; VM_INVALID_STATE for one that never did. */
export function specOf(vm: VmRecord): MachineSpec {
  if (!vm.spec) throw new HangarError('VM_INVALID_STATE', `VM ${vm.id} has never been started: it has no machine spec yet`, { id: vm.id, state: vm.state });
  return vm.spec;
}
