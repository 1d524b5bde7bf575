// Pure builders for the requests Hangar sends, one per resource. Each validates its input before anything is sent
// (Firecracker's own limits where the definition states them) and shapes the body for the target API version.
import { HangarError } from '../../errors.js';
import { absPath, invalidArgument, validInt, validInterfaceName, validMac } from '../../util/validate.js';
import { MAX_BOOT_ARGS_LENGTH } from '../../kernel/bootargs.js';
import type { FirecrackerAction } from './actions.js';
import type { LogLevel, NetworkOverride, SnapshotLoadParams, SnapshotType } from './api-types.js';
import { LOG_LEVELS, SNAPSHOT_TYPES } from './api-types.js';
import { hasField, requireField } from './version.js';
import type { ApiVersion } from './version.js';

/** Paths go to another process (maybe in a jail): absolute, no control characters, normalised (shared rule). */
export { absPath };

export const ROOT_DRIVE_ID = 'rootfs';
export const NET_IFACE_ID = 'eth0';
/** machine-config.vcpu_count range in the definition. */
export const MAX_VCPUS = 32;
/** What machine-config accepts (the controller's configured limits must stay inside these). */
export const FIRECRACKER_LIMITS = { vcpus: { min: 1, max: MAX_VCPUS }, memMiB: { min: 1, max: 1024 * 1024 } } as const;

const ID_RE = /^[A-Za-z0-9_]{1,64}$/;

function invalid(field: string, message: string): HangarError {
  return invalidArgument({ field, reason: 'format' }, message);
}

export function deviceId(value: unknown, field: string): string {
  if (typeof value !== 'string' || !ID_RE.test(value)) throw invalid(field, `must match ${ID_RE} (got ${JSON.stringify(value)})`);
  return value;
}

/** The host TAP (shared rule: src/util/validate.ts). */
export const tapName = (value: unknown, field = 'net.tap'): string => validInterfaceName(value, field);

/** A unicast guest MAC, lower-cased (shared rule: src/util/validate.ts). */
export const guestMac = (value: unknown, field = 'net.mac'): string => validMac(value, field);

export function loggerRequest(logPath: string, level: LogLevel = 'Info'): FirecrackerAction {
  if (!(LOG_LEVELS as readonly string[]).includes(level)) throw invalid('logger.level', `must be one of ${LOG_LEVELS.join(', ')}`);
  return { kind: 'put-logger', body: { log_path: absPath(logPath, 'logger.log_path'), level, show_level: true, show_log_origin: false } };
}

export interface MachineInput {
  vcpus: number;
  memMiB: number;
  smt?: boolean;
  trackDirtyPages?: boolean;
  hugePages2M?: boolean;
}

export function machineConfigRequest(m: MachineInput): FirecrackerAction {
  const vcpus = validInt(m.vcpus, 'vcpus', FIRECRACKER_LIMITS.vcpus.min, FIRECRACKER_LIMITS.vcpus.max);
  if (m.smt && vcpus !== 1 && vcpus % 2 !== 0) throw invalid('vcpus', `must be 1 or even when SMT is on (got ${vcpus})`);
  const mem = validInt(m.memMiB, 'memMiB', FIRECRACKER_LIMITS.memMiB.min, FIRECRACKER_LIMITS.memMiB.max);
  if (m.hugePages2M && mem % 2 !== 0) throw invalid('memMiB', `must be a multiple of 2 with 2M huge pages (got ${mem})`);
  return {
    kind: 'put-machine-config',
    body: {
      vcpu_count: vcpus,
      mem_size_mib: mem,
      smt: m.smt ?? false,
      track_dirty_pages: m.trackDirtyPages ?? false,
      ...(m.hugePages2M ? { huge_pages: '2M' as const } : {}),
    },
  };
}

export function bootSourceRequest(kernelPath: string, bootArgs: string): FirecrackerAction {
  if (typeof bootArgs !== 'string' || /[\0\n\r]/.test(bootArgs)) {
    throw new HangarError('BOOT_ARGS_INVALID', 'boot arguments must be one line without NUL', { field: 'bootArgs' });
  }
  // Firecracker appends a virtio_mmio.device= entry per device to the same 2048-byte command line.
  const bytes = Buffer.byteLength(bootArgs);
  if (bytes > MAX_BOOT_ARGS_LENGTH) {
    throw new HangarError('BOOT_ARGS_INVALID', `boot arguments are ${bytes} bytes; at most ${MAX_BOOT_ARGS_LENGTH} leaves room for the device entries Firecracker appends`, {
      field: 'bootArgs', bytes,
    });
  }
  return { kind: 'put-boot-source', body: { kernel_image_path: absPath(kernelPath, 'kernelPath'), boot_args: bootArgs } };
}

export function rootDriveRequest(rootfsPath: string, opts: { readOnly?: boolean } = {}): FirecrackerAction {
  return {
    kind: 'put-drive',
    body: { drive_id: ROOT_DRIVE_ID, path_on_host: absPath(rootfsPath, 'rootfsPath'), is_root_device: true, is_read_only: opts.readOnly ?? false },
  };
}

export function networkInterfaceRequest(net: { tap: string; mac: string }, api: ApiVersion, opts: { ifaceId?: string; mtu?: number } = {}): FirecrackerAction {
  const body = {
    iface_id: deviceId(opts.ifaceId ?? NET_IFACE_ID, 'ifaceId'),
    host_dev_name: tapName(net.tap),
    guest_mac: guestMac(net.mac),
  };
  if (opts.mtu === undefined) return { kind: 'put-network-interface', body };
  requireField(api, 'network-interface.mtu');
  return { kind: 'put-network-interface', body: { ...body, mtu: validInt(opts.mtu, 'mtu', 68, 65535) } };
}

/**
 * The entropy device (virtio-rng), like the one the QEMU driver gives its guests: a guest restored from a snapshot
 * reseeds from the host instead of replaying the random state it was saved with, and early boot does not wait for
 * entropy. The image kernel has CONFIG_HW_RANDOM_VIRTIO.
 */
export function entropyRequest(): FirecrackerAction {
  return { kind: 'put-entropy', body: {} };
}

/** The guest CID of every VM (each VMM has its own vsock device; the CID only names the guest end). */
export const GUEST_CID = 3;

/** hangar-agent's channel: a vsock device whose host end is a Unix socket the VMM creates at udsPath. */
export function vsockRequest(udsPath: string): FirecrackerAction {
  return { kind: 'put-vsock', body: { guest_cid: GUEST_CID, uds_path: absPath(udsPath, 'vsockPath') } };
}

export function pauseRequest(): FirecrackerAction {
  return { kind: 'patch-vm', state: 'Paused' };
}

export function resumeRequest(): FirecrackerAction {
  return { kind: 'patch-vm', state: 'Resumed' };
}

export function snapshotCreateRequest(p: { snapshotPath: string; memFilePath: string; type?: SnapshotType }): FirecrackerAction {
  const type = p.type ?? 'Full';
  if (!(SNAPSHOT_TYPES as readonly string[]).includes(type)) throw invalid('type', `must be one of ${SNAPSHOT_TYPES.join(', ')}`);
  const snapshot_path = absPath(p.snapshotPath, 'snapshotPath');
  const mem_file_path = absPath(p.memFilePath, 'memFilePath');
  if (snapshot_path === mem_file_path) throw invalid('memFilePath', 'must differ from snapshotPath');
  return { kind: 'snapshot-create', body: { snapshot_path, mem_file_path, snapshot_type: type } };
}

export interface SnapshotLoadInput {
  snapshotPath: string;
  memFilePath: string;
  resume?: boolean;
  trackDirtyPages?: boolean;
  /** Restore onto other TAPs (since 1.13.1). iface defaults to eth0. */
  networkOverrides?: { ifaceId?: string; tap: string }[];
  /** Advance the guest clock by the time spent snapshotted (since 1.16.1, x86_64). */
  clockRealtime?: boolean;
  /** The vsock device's Unix socket path for this VMM, not the snapshot's (since 1.16.1): an unjailed clone's own. */
  vsockPath?: string;
}

export function snapshotLoadRequest(p: SnapshotLoadInput, api: ApiVersion): FirecrackerAction {
  const body: SnapshotLoadParams = {
    snapshot_path: absPath(p.snapshotPath, 'snapshotPath'),
    mem_backend: { backend_type: 'File', backend_path: absPath(p.memFilePath, 'memFilePath') },
    resume_vm: p.resume ?? false,
  };
  if (p.trackDirtyPages !== undefined) {
    // Renamed in 1.13.1; the old name stays accepted but deprecated, so send the one the target documents.
    if (hasField(api, 'snapshot-load.track_dirty_pages')) body.track_dirty_pages = p.trackDirtyPages;
    else body.enable_diff_snapshots = p.trackDirtyPages;
  }
  if (p.networkOverrides?.length) {
    requireField(api, 'snapshot-load.network_overrides');
    body.network_overrides = p.networkOverrides.map((o, i): NetworkOverride => ({
      iface_id: deviceId(o.ifaceId ?? NET_IFACE_ID, `networkOverrides[${i}].ifaceId`),
      host_dev_name: tapName(o.tap, `networkOverrides[${i}].tap`),
    }));
  }
  if (p.clockRealtime !== undefined) {
    requireField(api, 'snapshot-load.clock_realtime');
    body.clock_realtime = p.clockRealtime;
  }
  if (p.vsockPath !== undefined) {
    requireField(api, 'snapshot-load.vsock_override');
    body.vsock_override = { uds_path: absPath(p.vsockPath, 'vsockPath') };
  }
  return { kind: 'snapshot-load', body };
}

/** The paths a spec names, as the Firecracker process sees them (different inside a jailer chroot). */
export interface BootPaths {
  kernelPath: string;
  rootfsPath: string;
  logPath: string;
  /** hangar-agent's vsock Unix socket, as the VMM sees it (no vsock device without it). */
  vsockPath?: string;
}

export interface BootInput {
  vcpus: number;
  memMiB: number;
  bootArgs: string;
  net?: { tap: string; mac: string };
}

/** The whole cold-boot conversation, in Firecracker's required order, ending with InstanceStart. Pure. */
export function bootSequence(m: BootInput, paths: BootPaths, api: ApiVersion, opts: { logLevel?: LogLevel; mtu?: number; entropy?: boolean } = {}): FirecrackerAction[] {
  const actions: FirecrackerAction[] = [
    loggerRequest(paths.logPath, opts.logLevel),
    machineConfigRequest({ vcpus: m.vcpus, memMiB: m.memMiB }),
    bootSourceRequest(paths.kernelPath, m.bootArgs),
    rootDriveRequest(paths.rootfsPath),
  ];
  if (m.net) actions.push(networkInterfaceRequest(m.net, api, opts.mtu === undefined ? {} : { mtu: opts.mtu }));
  if (opts.entropy ?? true) actions.push(entropyRequest());
  if (paths.vsockPath !== undefined) actions.push(vsockRequest(paths.vsockPath));
  actions.push({ kind: 'instance-start' });
  return actions;
}
