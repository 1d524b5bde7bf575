// What the controller's front ends (API, CLI in-process, reapers) need from the VM layer.
import type { LifecycleAction } from '../domain/states.js';
import type { VmRecord } from '../domain/vm.js';
import type { ImageInfo } from '../image/store.js';
import type { CreateVmRequest } from './input.js';

export type { LifecycleAction } from '../domain/states.js';

/** Where images resolve (by id, id prefix or profile). */
export interface ImageSource {
  resolve(ref: string): Promise<ImageInfo>;
  list(): Promise<ImageInfo[]>;
}

export interface HostInfo {
  accel: { accel: string; reason: string };
  drivers: { kind: string; available: boolean; version?: string; reason: string }[];
  network: { mode: string; netns: string | null; cidr: string; gateway: string; hostNetns: string | null };
  pool: { size: number; used: number; free: number };
  vms: Record<string, number>;
}

export interface ImageSummary {
  id: string;
  profile: string;
  kernelVersion: string | null;
  createdAt: string;
  sizes: Record<string, number>;
}

/** Who a new VM belongs to (its tenant's quotas are checked in the inserting transaction); default: the default tenant. */
export interface VmOwner {
  tenant: string;
}

export interface VmService {
  /** Validates and allocates synchronously (errors here leave nothing behind); boots in the background. */
  create(req: CreateVmRequest, owner?: VmOwner): Promise<{ vm: VmRecord; ready: Promise<VmRecord> }>;
  list(): VmRecord[];
  get(idOrName: string): VmRecord;
  action(idOrName: string, action: LifecycleAction): Promise<VmRecord>;
  /** action() with the boot it started (start, resume of a hibernated VM), for callers that wait until ready. */
  act(idOrName: string, action: LifecycleAction): Promise<{ vm: VmRecord; ready: Promise<VmRecord> }>;
  hibernate(idOrName: string): Promise<VmRecord>;
  destroy(idOrName: string): Promise<void>;
  consolePath(idOrName: string): string;
  host(): Promise<HostInfo>;
  images(): Promise<ImageSummary[]>;
}
