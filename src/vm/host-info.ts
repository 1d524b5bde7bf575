// What the controller tells about its host: accelerator, drivers, network mode, pool usage, VMs by state; and the
// images it can boot. Read-only summaries for GET /v1/host and GET /v1/images.
import type { NetConfig } from '../net/config.js';
import type { StateStore } from '../store/store.js';
import type { VmmDriver } from '../vmm/driver.js';
import type { VmmKind } from '../vmm/types.js';
import type { HostInfo, ImageSource, ImageSummary } from './service.js';

export async function hostInfo(drivers: Partial<Record<VmmKind, VmmDriver>>, net: NetConfig, store: StateStore, poolSize: number): Promise<HostInfo> {
  const probes = await Promise.all(Object.values(drivers).map((d) => d!.probe()));
  const qemu = probes.find((d) => d.kind === 'qemu');
  const used = store.allocations('ip').length;
  return {
    accel: { accel: qemu?.accel ?? 'none', reason: qemu?.reason ?? 'no QEMU driver' },
    drivers: probes.map((d) => ({ kind: d.kind, available: d.available, ...(d.version ? { version: d.version } : {}), reason: d.reason })),
    network: { mode: net.mode, netns: net.netns ?? null, cidr: net.cidr, gateway: net.gateway, hostNetns: net.hostNetns ?? null },
    pool: { size: poolSize, used, free: poolSize - used },
    vms: store.countByState(),
  };
}

export async function imageSummaries(images: Pick<ImageSource, 'list'>): Promise<ImageSummary[]> {
  return (await images.list()).map((i) => ({
    id: i.id, profile: i.profile, kernelVersion: i.kernelVersion, createdAt: i.created, sizes: { ...i.sizes },
  }));
}
