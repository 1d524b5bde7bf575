// Types for the part of Firecracker's REST API that Hangar speaks, written from Firecracker's published Swagger
// definitions (v1.9.1, v1.13.1, v1.16.1). Field names are the wire names. Fields that exist only in later versions
// are marked with the first verified version that has them; the request builders (requests.ts) refuse to send
// them to an older target. test/vmm/firecracker/contract.test.ts checks every request against the definitions.

/** `InstanceInfo.state` — the VMM's own view of the microVM. */
export const INSTANCE_STATES = ['Not started', 'Running', 'Paused'] as const;
export type InstanceState = (typeof INSTANCE_STATES)[number];

/** GET / answers this. */
export interface InstanceInfo {
  app_name: string;
  id: string;
  state: InstanceState;
  vmm_version: string;
}
/** Required by the definition; the parser checks exactly these. */
export const INSTANCE_INFO_REQUIRED = ['app_name', 'id', 'state', 'vmm_version'] as const;

/** Every non-2xx answer carries this body (`Error` in the definition). */
export interface ApiErrorBody {
  fault_message?: string;
}

export const LOG_LEVELS = ['Error', 'Warning', 'Info', 'Debug', 'Trace', 'Off'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** PUT /vsock: a virtio-vsock device whose host side is a Unix socket (host-initiated: `CONNECT <port>\n`). */
export interface Vsock {
  guest_cid: number;
  uds_path: string;
}

/** PUT /entropy: a virtio-rng device fed from the host (Hangar sends no rate limiter). */
export interface EntropyDevice {
  rate_limiter?: Record<string, unknown>;
}

/** PUT /logger. The file at log_path must exist: Firecracker opens it, it does not create it. */
export interface Logger {
  level?: LogLevel;
  log_path?: string;
  show_level?: boolean;
  show_log_origin?: boolean;
  module?: string;
}

export const HUGE_PAGES = ['None', '2M'] as const;
export type HugePages = (typeof HUGE_PAGES)[number];

/** PUT /machine-config. Hangar never sends the deprecated cpu_template. */
export interface MachineConfiguration {
  vcpu_count: number;
  mem_size_mib: number;
  smt?: boolean;
  track_dirty_pages?: boolean;
  huge_pages?: HugePages;
}

/** PUT /boot-source. */
export interface BootSource {
  kernel_image_path: string;
  boot_args?: string;
  initrd_path?: string;
}

export const CACHE_TYPES = ['Unsafe', 'Writeback'] as const;
export const IO_ENGINES = ['Sync', 'Async'] as const;

/** PUT /drives/{drive_id} (virtio-block form; Hangar never uses vhost-user `socket`). */
export interface Drive {
  drive_id: string;
  is_root_device: boolean;
  path_on_host: string;
  is_read_only: boolean;
  partuuid?: string;
  cache_type?: (typeof CACHE_TYPES)[number];
  io_engine?: (typeof IO_ENGINES)[number];
}

/** PUT /network-interfaces/{iface_id}. */
export interface NetworkInterface {
  iface_id: string;
  host_dev_name: string;
  guest_mac?: string;
  /** Since 1.16.1. */
  mtu?: number;
}

export const VM_STATES = ['Paused', 'Resumed'] as const;
export type VmStateChange = (typeof VM_STATES)[number];

/** PATCH /vm. */
export interface Vm {
  state: VmStateChange;
}

/** PUT /actions. Hangar sends InstanceStart and SendCtrlAltDel (x86_64 only), never FlushMetrics. */
export const ACTION_TYPES = ['InstanceStart', 'SendCtrlAltDel'] as const;
export interface InstanceActionInfo {
  action_type: (typeof ACTION_TYPES)[number];
}

export const SNAPSHOT_TYPES = ['Full', 'Diff'] as const;
export type SnapshotType = (typeof SNAPSHOT_TYPES)[number];

/** PUT /snapshot/create. Only accepted while the microVM is Paused. */
export interface SnapshotCreateParams {
  snapshot_path: string;
  mem_file_path: string;
  snapshot_type?: SnapshotType;
}

export const MEM_BACKEND_TYPES = ['File', 'Uffd'] as const;
export interface MemoryBackend {
  backend_type: (typeof MEM_BACKEND_TYPES)[number];
  backend_path: string;
}

/** Since 1.13.1: restore onto a different TAP. */
export interface NetworkOverride {
  iface_id: string;
  host_dev_name: string;
}

/**
 * PUT /snapshot/load. Only on a fresh process, before any boot-specific resource (only the logger and metrics
 * may precede it). Hangar sends `mem_backend` (all three versions), never the deprecated `mem_file_path`.
 */
export interface SnapshotLoadParams {
  snapshot_path: string;
  mem_backend: MemoryBackend;
  resume_vm?: boolean;
  /** The dirty-page flag up to 1.13.1 (deprecated from 1.13.1, still accepted). */
  enable_diff_snapshots?: boolean;
  /** Since 1.13.1 (replaces enable_diff_snapshots). */
  track_dirty_pages?: boolean;
  /** Since 1.13.1. */
  network_overrides?: NetworkOverride[];
  /** Since 1.16.1, x86_64 only. */
  clock_realtime?: boolean;
  /** Since 1.16.1: the vsock device's Unix socket at another path than the snapshot recorded. */
  vsock_override?: { uds_path: string };
}
