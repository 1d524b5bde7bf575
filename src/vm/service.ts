// What the controller's front ends (API, CLI in-process, reapers) need from the VM layer.
import type { VmRecord } from '../store/store.js';
import type { CreateVmRequest } from './input.js';

export type LifecycleAction = 'start' | 'stop' | 'pause' | 'resume';

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

export interface VmService {
  /** Validates and allocates synchronously (errors here leave nothing behind); boots in the background. */
  create(req: CreateVmRequest): Promise<{ vm: VmRecord; ready: Promise<VmRecord> }>;
  list(): VmRecord[];
  get(idOrName: string): VmRecord;
  action(idOrName: string, action: LifecycleAction): Promise<VmRecord>;
  destroy(idOrName: string): Promise<void>;
  consolePath(idOrName: string): string;
  host(): Promise<HostInfo>;
  images(): Promise<ImageSummary[]>;
}
