// What a create request becomes before anything exists: the new record, how it takes its addresses, and where its
// first boot starts from — for a VM booted from an image and for a clone of a golden snapshot. Everything that
// can be refused is refused here (unknown image, unusable VMM, options a snapshot fixes), before any record,
// address or directory exists.
import { join } from 'node:path';
import { HangarError } from '../errors.js';
import type { NewVm, VmRecord } from '../domain/vm.js';
import { GUEST_INIT_PATH } from '../guest-protocol.js';
import type { ImageInfo } from '../image/store.js';
import { buildBootArgs } from '../kernel/bootargs.js';
import type { StoredSnapshot } from '../snapshot/store.js';
import { SNAPSHOT_DISK } from '../snapshot/manifest.js';
import type { NetPlanner } from '../store/store.js';
import type { VmmDriver } from '../vmm/driver.js';
import { vmmEntry } from '../vmm/registry.js';
import type { MachineSpec, VmmKind } from '../vmm/types.js';
import type { BootFrom } from './boot.js';
import type { CreateVmRequest } from './input.js';
import { vmmNic, type VmNetwork } from './network.js';
import { normalisePolicy, type NetworkPolicy } from '../net/egress/policy.js';

export interface CreatePlan {
  vm: NewVm;
  plan: NetPlanner;
  driver: VmmDriver;
  /** The first boot, once the record (with its network) exists. */
  boot(vm: VmRecord): { spec: MachineSpec; from: BootFrom };
  /** For the log. */
  what: Record<string, unknown>;
}

export interface CreateContext {
  id: string;
  runDir: string;
  now: number;
  network: VmNetwork;
  /** The driver of a kind (VMM_NOT_AVAILABLE when none is configured). */
  driver(kind: VmmKind): VmmDriver;
  /** Refuses a driver whose probe says it cannot run on this host (VMM_NOT_AVAILABLE). */
  usable(driver: VmmDriver): Promise<void>;
  /** The tenant the VM belongs to (default: the default tenant). */
  tenant?: string;
}

const MiB = 1024 * 1024;
/** The disk a VM takes, in MiB, from its source's size in bytes (null: unknown): what the disk quota counts. */
const diskMiB = (bytes: number | undefined): number | null => (typeof bytes === 'number' && bytes > 0 ? Math.ceil(bytes / MiB) : null);
const owner = (c: CreateContext): { tenantId?: string } => (c.tenant ? { tenantId: c.tenant } : {});

function expiry(req: CreateVmRequest, now: number): string | null {
  return req.ttlSeconds ? new Date(now + req.ttlSeconds * 1000).toISOString() : null;
}

/** The policy a request asks for over the config's default (null: the default itself). Throws on bad entries. Pure. */
function policyOf(req: CreateVmRequest, network: VmNetwork): NetworkPolicy | null {
  return req.network ? normalisePolicy(req.network, network.config.egress.default) : null;
}

/** The machine of a VM booted from an image, with its network. Pure. */
export function coldMachineSpec(vm: VmRecord, image: Pick<ImageInfo, 'kernelPath'>, network: VmNetwork): MachineSpec {
  const net = vm.net!;
  const bootArgs = buildBootArgs({
    vmm: vmmEntry(vm.vmm).lintTarget,
    init: GUEST_INIT_PATH,
    net: { guest: net.bootIp.address, gateway: net.bootIp.gateway, netmask: net.bootIp.netmask, hostname: vm.name },
  });
  const nic = vmmNic(network.config, net);
  return {
    id: vm.id, kernelPath: image.kernelPath, rootfsPath: join(vm.runDir, 'rootfs.ext4'), bootArgs, vcpus: vm.vcpus, memMiB: vm.memMiB,
    net: nic.nic, consoleLogPath: join(vm.runDir, 'console.log'), runDir: vm.runDir, ...(nic.netns ? { netns: nic.netns } : {}),
    // The VM's own limits were given at create and live on in its recorded spec.
    ...(vm.spec?.resources ? { resources: vm.spec.resources } : {}),
  };
}

function withResources(spec: MachineSpec, req: CreateVmRequest): MachineSpec {
  return req.resources ? { ...spec, resources: req.resources } : spec;
}

export async function planColdCreate(req: CreateVmRequest, image: ImageInfo, vmm: VmmKind, c: CreateContext): Promise<CreatePlan> {
  if (image.profile !== req.profile && req.image !== image.id && !image.id.startsWith(req.image)) {
    throw new HangarError('IMAGE_NOT_FOUND', `no ${req.profile} image matches ${req.image}`, { image: req.image });
  }
  const driver = c.driver(vmm);
  await c.usable(driver);
  return {
    vm: {
      id: c.id, name: req.name ?? c.id, state: 'creating', imageId: image.id, profile: image.profile, vmm, vcpus: req.vcpus, memMiB: req.memMiB,
      ttlS: req.ttlSeconds, expiresAt: expiry(req, c.now), runDir: c.runDir, diskMiB: diskMiB(image.sizes?.rootfs), ...owner(c), netPolicy: policyOf(req, c.network),
    },
    plan: c.network.poolPlan(c.id),
    driver,
    boot: (vm) => ({ spec: withResources(coldMachineSpec(vm, image, c.network), req), from: { kind: 'cold', imageDisk: image.rootfsPath, fresh: true } }),
    what: { image: image.id, vmm },
  };
}

/**
 * A clone of a golden snapshot: its own row, pool address (the address the host reaches it at), disk copy and
 * network namespace; the guest inside keeps the snapshot's identity. vCPUs, memory and profile are fixed by the
 * saved state: asking for others is refused, not ignored.
 */
export async function planClone(req: CreateVmRequest, snap: StoredSnapshot, c: CreateContext): Promise<CreatePlan> {
  const m = snap.manifest;
  if (req.vmm && req.vmm !== m.vmm.kind) {
    throw new HangarError('INVALID_ARGUMENT', `snapshot ${m.id} was taken on ${m.vmm.kind}; it cannot be restored on ${req.vmm}`, { field: 'vmm', reason: 'fixed', allowed: [m.vmm.kind] });
  }
  const fixed: [keyof CreateVmRequest['given'], unknown, unknown][] = [['vcpus', req.vcpus, m.machine.vcpus], ['memMiB', req.memMiB, m.machine.memMiB], ['profile', req.profile, m.image.profile]];
  for (const [field, asked, has] of fixed) {
    if (req.given[field] && asked !== has) {
      throw new HangarError('SNAPSHOT_FIXED', `snapshot ${m.id} fixes ${field} at ${String(has)}: a clone cannot have ${String(asked)} (omit it, or snapshot a VM that has it)`, {
        field, reason: 'fixed', allowed: [String(has)], got: asked, snapshot: m.id,
      });
    }
  }
  const driver = c.driver(m.vmm.kind);
  const base: MachineSpec = {
    id: c.id, kernelPath: m.machine.kernelPath, rootfsPath: join(c.runDir, 'rootfs.ext4'), bootArgs: m.machine.bootArgs,
    vcpus: m.machine.vcpus, memMiB: m.machine.memMiB, consoleLogPath: join(c.runDir, 'console.log'), runDir: c.runDir,
  };
  const restore = {
    files: Object.fromEntries(Object.entries(m.files).filter(([k]) => driver.stateFiles.includes(k))),
    ...(m.diskPathInVmm ? { diskPathInVmm: m.diskPathInVmm } : {}),
    ...(m.machine.guestAgent !== undefined ? { guestAgent: m.machine.guestAgent } : {}),
  };
  // Firecracker reopens the disk where its snapshot recorded it: refused here, before any record or network.
  const refused = await driver.restoreRefusal(base, restore);
  if (refused) throw refused;
  await c.usable(driver);
  return {
    vm: {
      id: c.id, name: req.name ?? c.id, state: 'creating', imageId: m.image.id, profile: m.image.profile, vmm: m.vmm.kind,
      vcpus: m.machine.vcpus, memMiB: m.machine.memMiB, ttlS: req.ttlSeconds, expiresAt: expiry(req, c.now), runDir: c.runDir, snapshotId: m.id,
      diskMiB: diskMiB(m.files[SNAPSHOT_DISK]?.size), ...owner(c), netPolicy: policyOf(req, c.network),
    },
    plan: c.network.clonePlan(c.id, m.guestNet),
    driver,
    boot: (vm) => {
      const nic = vmmNic(c.network.config, vm.net!);
      return {
        spec: withResources({ ...base, net: nic.nic, ...(nic.netns ? { netns: nic.netns } : {}) }, req),
        from: { kind: 'restore', stateDir: snap.dir, restore, diskFrom: join(snap.dir, SNAPSHOT_DISK), what: `snapshot ${m.id}`, hostname: vm.name },
      };
    },
    what: { snapshot: m.id, vmm: m.vmm.kind },
  };
}
