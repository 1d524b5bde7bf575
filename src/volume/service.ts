// Volumes: named ext4 disks in the state dir that outlive VMs. This is the executor of plan.ts over narrow ports
// (the store, a host command runner, a VM's QMP monitor, the guest agents), so tests drive it with fakes.
// Attaching to a RUNNING VM never reboots it: the volume is swapped into one of its slots through QMP and mounted
// by the agent. `attach(vm, {name, path})` is the call a pool's claim uses (see README "Volumes").
import { randomBytes } from 'node:crypto';
import { mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { AgentPort } from '../agent/port.js';
import type { VmRecord } from '../domain/vm.js';
import { HangarError, isHangarError } from '../errors.js';
import type { AttachmentRecord, VolumeRecord, VolumeStore } from '../store/volumes.js';
import { quotaError, type Quotas } from '../tenancy/keys.js';
import type { MachineSpec } from '../vmm/types.js';
import { VOLUME_SLOTS, validGuestPath, validSize, validVolumeName, type VolumeMount } from './input.js';
import {
  MiB, guestArgv, planCopy, planCreate, planGrow, planSlotResize, planSwapIn, planSwapOut, slotNode, type GuestAction, type HostStep, type QmpStep,
} from './plan.js';

export type Monitor = (command: string, args?: Record<string, unknown>) => Promise<unknown>;

export interface VolumeDeps {
  volumes: Pick<VolumeStore, 'insert' | 'get' | 'mustGet' | 'list' | 'totalMiB' | 'setSize' | 'remove' | 'attachmentsOf' | 'attachmentsOfVm' | 'attach' | 'detach'>;
  /** The VM (by id or name), or null. */
  vm(idOrName: string): VmRecord | null;
  /** Records the VM's spec (its volume slots, for a restore of a hibernated VM). */
  setSpec(id: string, spec: MachineSpec): void;
  /** The running VM's QMP monitor, or null (not running, or not QEMU). */
  monitor(id: string): Monitor | null;
  agents: Pick<AgentPort, 'session'>;
  /** The tenant's quotas and the disk its VMs use (MiB); volumes count against its disk quota. */
  quotas(tenant: string): { quotas: Quotas | null; vmDiskMiB: number };
  /** Where volume files live (`${stateDir}/volumes`). */
  dir: string;
  /** Runs a host command (argv, never a shell). */
  run(step: HostStep): Promise<void>;
  /** Lets the VMM (an unprivileged user) open the file. */
  handOver?(file: string): Promise<void>;
  log?(msg: string, data?: Record<string, unknown>): void;
  /** Activity on the VM (an attach is an API action on it). */
  touch?(vmId: string): void;
}

export interface VolumeView {
  id: string;
  name: string;
  tenant: string;
  sizeMiB: number;
  /** Bytes the sparse file really takes on the host. */
  usedBytes: number | null;
  source: string | null;
  createdAt: string;
  updatedAt: string;
  attachments: { vm: string; path: string; readOnly: boolean; slot: number }[];
}

const newId = (): string => `vol-${randomBytes(4).toString('hex')}`;
const nodeName = (slot: number): string => `vol${slot}-${randomBytes(3).toString('hex')}`;

interface NamedNode { 'node-name'?: string; image?: { filename?: string } }

export class VolumeService {
  constructor(private readonly d: VolumeDeps) {}

  private file(id: string): string {
    return join(this.d.dir, `${id}.ext4`);
  }

  private checkQuota(tenant: string, addMiB: number): void {
    const { quotas, vmDiskMiB } = this.d.quotas(tenant);
    const max = quotas?.diskMiB ?? null;
    const used = vmDiskMiB + this.d.volumes.totalMiB(tenant);
    if (max !== null && used + addMiB > max) throw quotaError(tenant, { limit: 'diskMiB', used, max, adding: addMiB });
  }

  async view(v: VolumeRecord): Promise<VolumeView> {
    const st = await stat(v.file).catch(() => null);
    return {
      id: v.id, name: v.name, tenant: v.tenant, sizeMiB: v.sizeMiB, usedBytes: st ? st.blocks * 512 : null, source: v.source, createdAt: v.createdAt, updatedAt: v.updatedAt,
      attachments: this.d.volumes.attachmentsOf(v.id).map((a) => ({ vm: a.vmId, path: a.path, readOnly: a.readOnly, slot: a.slot })),
    };
  }

  list(tenant?: string): VolumeRecord[] {
    return this.d.volumes.list(tenant);
  }

  get(tenant: string | undefined, ref: string): VolumeRecord {
    return this.d.volumes.mustGet(tenant, ref);
  }

  /** A new empty volume. Everything is checked before the file exists; a failure after removes it. */
  async create(tenant: string, body: { name: unknown; sizeMiB: unknown }): Promise<VolumeRecord> {
    const name = validVolumeName(body.name);
    const sizeMiB = validSize(body.sizeMiB);
    return this.make(tenant, name, sizeMiB, null, (file) => planCreate(file, name, sizeMiB));
  }

  /** A copy of a volume under a new name (a reflink where the filesystem has them). */
  async snapshot(tenant: string, ref: string, body: { name: unknown }): Promise<VolumeRecord> {
    const name = validVolumeName(body.name);
    const src = this.d.volumes.mustGet(tenant, ref);
    // A writer's dirty pages first: the copy is what a crash at this moment would leave (ext4's journal replays it).
    const writer = this.d.volumes.attachmentsOf(src.id).find((a) => !a.readOnly);
    if (writer) await this.guestRun(writer.vmId, ['sync'], 30_000).catch(() => undefined);
    return this.make(tenant, name, src.sizeMiB, src.id, (file) => planCopy(src.file, file));
  }

  private async make(tenant: string, name: string, sizeMiB: number, source: string | null, plan: (file: string) => HostStep[]): Promise<VolumeRecord> {
    if (this.d.volumes.get(tenant, name)?.name === name) throw new HangarError('VOLUME_EXISTS', `a volume named ${name} exists`, { name });
    this.checkQuota(tenant, sizeMiB);
    const id = newId();
    const file = this.file(id);
    await mkdir(this.d.dir, { recursive: true, mode: 0o700 });
    try {
      for (const s of plan(file)) await this.d.run(s);
      const v = this.d.volumes.insert({ id, tenant, name, sizeMiB, file, source });
      this.d.log?.('volume created', { id, name, sizeMiB, ...(source ? { source } : {}) });
      return v;
    } catch (e) {
      await rm(file, { force: true });
      throw e;
    }
  }

  async remove(tenant: string | undefined, ref: string): Promise<void> {
    const v = this.d.volumes.mustGet(tenant, ref);
    this.d.volumes.remove(v.id); // VOLUME_IN_USE while attached
    await rm(v.file, { force: true });
    this.d.log?.('volume removed', { id: v.id, name: v.name });
  }

  /**
   * Grows a volume (shrinking is refused). Unattached, or attached to a stopped VM: offline on the host. Attached to
   * a ready VM: online (the file grows, the slot tells the guest, resize2fs runs on the mounted disk).
   */
  async resize(tenant: string | undefined, ref: string, sizeMiBIn: unknown): Promise<VolumeRecord> {
    const sizeMiB = validSize(sizeMiBIn);
    const v = this.d.volumes.mustGet(tenant, ref);
    if (sizeMiB < v.sizeMiB) throw new HangarError('INVALID_ARGUMENT', `volume ${v.name} is ${v.sizeMiB} MiB: volumes only grow`, { field: 'sizeMiB', reason: 'range', min: v.sizeMiB, got: sizeMiB });
    if (sizeMiB === v.sizeMiB) return v;
    this.checkQuota(v.tenant, sizeMiB - v.sizeMiB);
    const at = this.d.volumes.attachmentsOf(v.id);
    const live = at.map((a) => ({ a, vm: this.d.vm(a.vmId) })).filter((x) => x.vm && !(x.vm.state === 'stopped' && !x.vm.hibernation));
    const busy = live.find((x) => x.vm!.state !== 'ready' || !this.d.monitor(x.a.vmId));
    if (busy) throw new HangarError('VOLUME_IN_USE', `volume ${v.name} is attached to VM ${busy.a.vmId}, which is ${busy.vm!.hibernation ? 'hibernated' : busy.vm!.state}: resize it when the VM is ready or stopped`, { id: v.id, vm: busy.a.vmId });
    for (const s of planGrow(v.file, sizeMiB, live.length > 0)) await this.d.run(s);
    for (const { a } of live) {
      await this.qmp(a.vmId, planSlotResize(a.slot, sizeMiB * MiB));
      if (!a.readOnly) await this.guest(a, 'grow');
    }
    this.d.volumes.setSize(v.id, sizeMiB);
    return this.d.volumes.mustGet(v.tenant, v.id);
  }

  // ---------------------------------------------------------------- VMs

  /** Checks a create's `volumes` (they exist in the tenant; one VM at a time) before the VM exists. Pure of side effects. */
  precheck(tenant: string, mounts: readonly VolumeMount[]): void {
    for (const m of mounts) {
      const v = this.d.volumes.mustGet(tenant, m.name);
      const holder = this.d.volumes.attachmentsOf(v.id)[0];
      if (holder) throw new HangarError('VOLUME_IN_USE', `volume ${v.name} is attached to ${holder.vmId}: one VM at a time`, { id: v.id, vm: holder.vmId, readOnly: holder.readOnly });
    }
  }

  /** Records a new VM's volumes (create's `volumes`); they are swapped in and mounted when it is ready (ensure). */
  reserve(vmId: string, tenant: string, mounts: readonly VolumeMount[]): AttachmentRecord[] {
    return mounts.map((m) => this.d.volumes.attach({ volumeId: this.d.volumes.mustGet(tenant, m.name).id, vmId, path: validGuestPath(m.path), readOnly: m.readOnly === true }, VOLUME_SLOTS));
  }

  /**
   * Attaches a volume to a RUNNING VM without a reboot: records it (one VM at a time: VOLUME_IN_USE), swaps it into a free
   * slot through QMP, mounts it at `path` through the agent. Any failure undoes all of it. `tenant` undefined: any.
   */
  async attach(vmRef: string, mount: VolumeMount, tenant?: string): Promise<AttachmentRecord> {
    const vm = this.mustVm(vmRef, tenant);
    const path = validGuestPath(mount.path);
    const v = this.d.volumes.mustGet(tenant ?? vm.tenantId ?? 'default', mount.name);
    if (vm.state !== 'ready' || !this.d.monitor(vm.id)) {
      throw new HangarError('VM_INVALID_STATE', `VM ${vm.id} is ${vm.hibernation ? 'hibernated' : vm.state}: a volume is attached to a ready QEMU VM`, { id: vm.id, state: vm.state });
    }
    this.d.touch?.(vm.id);
    const a = this.d.volumes.attach({ volumeId: v.id, vmId: vm.id, path, readOnly: mount.readOnly === true }, VOLUME_SLOTS);
    try {
      await this.plug(vm.id, a, v);
      await this.guest(a, 'mount');
    } catch (e) {
      await this.unplug(vm.id, a).catch(() => undefined);
      this.d.volumes.detach(v.id, vm.id);
      throw isHangarError(e) && e.code !== 'QMP_ERROR' ? e : new HangarError('VOLUME_ATTACH_FAILED', `volume ${v.name} could not be attached to ${vm.id}: ${(e as Error).message}`, { id: v.id, vm: vm.id }, { cause: e });
    }
    this.d.log?.('volume attached', { id: v.id, vm: vm.id, path, slot: a.slot });
    return a;
  }

  /** Unmounts and swaps the slot back to empty; the volume is free for another writer. */
  async detach(vmRef: string, volumeRef: string, tenant?: string): Promise<void> {
    const vm = this.mustVm(vmRef, tenant);
    const v = this.d.volumes.mustGet(tenant ?? vm.tenantId ?? 'default', volumeRef);
    const a = this.d.volumes.attachmentsOfVm(vm.id).find((x) => x.volumeId === v.id);
    if (!a) throw new HangarError('VOLUME_NOT_FOUND', `volume ${v.name} is not attached to ${vm.id}`, { id: v.id, vm: vm.id });
    if (this.d.monitor(vm.id)) {
      if (vm.state !== 'ready') throw new HangarError('VM_INVALID_STATE', `VM ${vm.id} is ${vm.state}: detach when it is ready or stopped`, { id: vm.id, state: vm.state });
      await this.guest(a, 'umount');
      await this.unplug(vm.id, a);
    } else if (vm.hibernation) {
      throw new HangarError('VM_INVALID_STATE', `VM ${vm.id} is hibernated with the volume mounted: resume it first`, { id: vm.id, state: vm.state });
    }
    this.setSlot(vm.id, a.slot, null);
    this.d.volumes.detach(v.id, vm.id);
    this.d.log?.('volume detached', { id: v.id, vm: vm.id });
  }

  /**
   * Makes a ready VM's recorded volumes present and mounted (idempotent): after its first boot, a restart, a
   * restore. The controller calls it on every `ready`.
   */
  async ensure(vmId: string): Promise<void> {
    for (const a of this.d.volumes.attachmentsOfVm(vmId)) {
      const v = this.d.volumes.list().find((x) => x.id === a.volumeId);
      if (!v) continue;
      await this.plug(vmId, a, v);
      await this.guest(a, 'mount');
    }
  }

  /**
   * Before a ready VM is destroyed: unmounts its volumes in the guest (best effort, bounded), so what the guest
   * holds in memory reaches them (Chromium, stopped gracefully, writes its cookies). Never fails the destroy.
   */
  async release(vmRef: string): Promise<void> {
    const vm = this.d.vm(vmRef);
    if (!vm || vm.state !== 'ready' || vm.hibernation) return;
    for (const a of this.d.volumes.attachmentsOfVm(vm.id)) {
      await this.guestRun(vm.id, guestArgv(a.slot, a.path, a.readOnly, 'release'), 60_000, 5_000)
        .catch((e: unknown) => this.d.log?.('volume not released before destroy', { id: a.volumeId, vm: vm.id, err: (e as Error).message }));
    }
  }

  private mustVm(ref: string, tenant?: string): VmRecord {
    const vm = this.d.vm(ref);
    if (!vm || (tenant !== undefined && (vm.tenantId ?? 'default') !== tenant)) throw new HangarError('VM_NOT_FOUND', `no VM ${ref}`, { id: ref });
    return vm;
  }

  /** The slot's current file node and the file it holds (QMP query-named-block-nodes). */
  private async slotState(vmId: string, slot: number): Promise<{ node: string; file: string | null }> {
    const nodes = (await this.monitorOf(vmId)('query-named-block-nodes', { flat: true })) as NamedNode[];
    const prefix = `${slotNode(slot)}-`;
    const own = nodes.find((n) => n['node-name']?.startsWith(prefix));
    if (!own?.['node-name']) throw new HangarError('VOLUME_SLOTS_FULL', `VM ${vmId} has no volume slot ${slot} (started before volumes existed?)`, { vm: vmId, slot });
    const filename = own.image?.filename ?? '';
    return { node: own['node-name'], file: filename.startsWith('/') ? filename : null };
  }

  private async plug(vmId: string, a: AttachmentRecord, v: VolumeRecord): Promise<void> {
    const cur = await this.slotState(vmId, a.slot);
    if (cur.file !== v.file) {
      await this.d.handOver?.(v.file);
      await this.qmp(vmId, planSwapIn(a.slot, v.file, v.sizeMiB * MiB, nodeName(a.slot), cur.node));
    }
    this.setSlot(vmId, a.slot, { file: v.file, readOnly: a.readOnly });
  }

  private async unplug(vmId: string, a: AttachmentRecord): Promise<void> {
    const cur = await this.slotState(vmId, a.slot);
    if (cur.file !== null) await this.qmp(vmId, planSwapOut(a.slot, nodeName(a.slot), cur.node));
    this.setSlot(vmId, a.slot, null);
  }

  /** The VM's recorded spec with `slot` backed by `value`: a restore reopens what the guest has mounted. */
  private setSlot(vmId: string, slot: number, value: { file: string; readOnly: boolean } | null): void {
    const vm = this.d.vm(vmId);
    if (!vm?.spec) return;
    const volumes = [...(vm.spec.volumes ?? [])];
    while (volumes.length < VOLUME_SLOTS) volumes.push(null);
    volumes[slot] = value;
    this.d.setSpec(vmId, { ...vm.spec, volumes });
  }

  private monitorOf(vmId: string): Monitor {
    const m = this.d.monitor(vmId);
    if (!m) throw new HangarError('VOLUME_SLOTS_FULL', `VM ${vmId} has no volume slots (not running, or not a QEMU VM)`, { vm: vmId });
    return m;
  }

  private async qmp(vmId: string, steps: QmpStep[]): Promise<void> {
    const m = this.monitorOf(vmId);
    for (const s of steps) await m(s.execute, s.arguments);
  }

  private async guest(a: AttachmentRecord, action: GuestAction): Promise<string> {
    // A mount or umount may restart the guest's Chromium and wait for it (GUEST_SCRIPT): up to ~50 s under TCG.
    return this.guestRun(a.vmId, guestArgv(a.slot, a.path, a.readOnly, action), 120_000);
  }

  /** Runs argv as root in the guest; its stdout, or VOLUME_ATTACH_FAILED with its stderr. */
  private async guestRun(vmId: string, argv: string[], timeoutMs: number, sessionTimeoutMs = 30_000): Promise<string> {
    const s = await this.d.agents.session(vmId, { timeoutMs: sessionTimeoutMs });
    const h = await s.exec({ argv, user: 'root', timeoutMs });
    const [out, err, exit] = await Promise.all([collect(h.stdout), collect(h.stderr), h.exit]);
    if (exit.code !== 0) throw new HangarError('VOLUME_ATTACH_FAILED', `in VM ${vmId}: ${argv[0] === '/bin/sh' ? argv.at(-1) : argv[0]} failed: ${err.trim() || `exit ${String(exit.code ?? exit.signal)}`}`, { vm: vmId, exit, stderr: err.slice(-2000) });
    return out.trim();
  }
}

async function collect(s: NodeJS.ReadableStream): Promise<string> {
  let out = '';
  for await (const c of s) out += typeof c === 'string' ? c : (c as Buffer).toString('utf8');
  return out;
}
