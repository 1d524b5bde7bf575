// Per-VM network plan: TAP name, MAC and IP, chosen from the configuration and the allocations already made.
// Pure: the caller passes the current allocations (from the store) and persists the result.
import { HangarError } from '../errors.js';
import type { NetConfig } from './config.js';
import { formatIpv4, parseCidr, parseIpv4, type Ipv4Cidr } from './ipv4.js';

/** What a VM holds from the pool; the store keeps these. */
export interface NetAllocation {
  vmId: string;
  /** Per-host allocation index; the TAP name is derived from it, never from the VM's name. */
  index: number;
  tap: string;
  mac: string;
  ip: string;
}

export interface VmNetPlan extends NetAllocation {
  /** Namespace the TAP lives in (netns mode), else undefined (the host side). */
  netns?: string;
  bridge: string;
  gateway: string;
  netmask: string;
  prefix: number;
  /** The pieces of the kernel's ip= argument (src/kernel/bootargs.ts builds the string). */
  bootIp: { address: string; gateway: string; netmask: string };
}

const IFNAMSIZ_MAX = 15;

export function tapNameFor(cfg: Pick<NetConfig, 'tapPrefix'>, index: number): string {
  return `${cfg.tapPrefix}${index}`;
}

/** Highest index whose TAP name still fits in 15 characters. */
export function maxTapIndex(cfg: Pick<NetConfig, 'tapPrefix'>): number {
  return 10 ** (IFNAMSIZ_MAX - cfg.tapPrefix.length) - 1;
}

/**
 * A locally administered unicast MAC derived from the guest IP (02:48 + the four address bytes), the way
 * Firecracker's examples encode the IP in the MAC: unique whenever the IP is, and readable in a packet capture.
 */
export function macForIp(ip: string): string {
  const n = parseIpv4(ip);
  if (n === null) throw new HangarError('INVALID_ARGUMENT', `not an IPv4 address: ${JSON.stringify(ip)}`, { field: 'ip' });
  const bytes = [0x02, 0x48, n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** Addresses a VM may get, in order, given the configuration (network, broadcast, gateway and reserved skipped). */
function* candidateIps(cfg: NetConfig, pool: Ipv4Cidr): Generator<number> {
  const skip = new Set([parseIpv4(cfg.gateway)!, ...cfg.reserved.map((r) => parseIpv4(r)!)]);
  for (let ip = pool.network + 1; ip < pool.broadcast; ip++) if (!skip.has(ip)) yield ip;
}

/** Number of VM addresses the pool can hand out in total. */
export function poolCapacity(cfg: NetConfig): number {
  const pool = parseCidr(cfg.cidr) as Ipv4Cidr;
  const hosts = pool.broadcast - pool.network - 1;
  return Math.min(hosts - 1 - cfg.reserved.filter((r) => r !== cfg.gateway).length, maxTapIndex(cfg) + 1);
}

export function planVmNetwork(cfg: NetConfig, allocations: readonly NetAllocation[], vmId: string): VmNetPlan {
  if (allocations.some((a) => a.vmId === vmId)) {
    throw new HangarError('CONFLICT', `VM ${vmId} already holds a network allocation`, { vmId });
  }
  const usedIdx = new Set(allocations.map((a) => a.index));
  const usedTaps = new Set(allocations.map((a) => a.tap));
  const usedIps = new Set(allocations.map((a) => a.ip));
  const usedMacs = new Set(allocations.map((a) => a.mac.toLowerCase()));
  const exhausted = (what: string): HangarError =>
    new HangarError('NET_POOL_EXHAUSTED', `no free ${what} in the network pool ${cfg.cidr} (${allocations.length} allocated)`, {
      cidr: cfg.cidr, allocated: allocations.length, capacity: poolCapacity(cfg), what,
    });

  let index = 0;
  while (usedIdx.has(index) || usedTaps.has(tapNameFor(cfg, index))) index++;
  if (index > maxTapIndex(cfg)) throw exhausted('TAP index');

  const pool = parseCidr(cfg.cidr) as Ipv4Cidr;
  let ip: string | undefined;
  for (const n of candidateIps(cfg, pool)) {
    const s = formatIpv4(n);
    if (!usedIps.has(s) && !usedMacs.has(macForIp(s))) { ip = s; break; }
  }
  if (ip === undefined) throw exhausted('address');

  const plan: VmNetPlan = {
    vmId,
    index,
    tap: tapNameFor(cfg, index),
    mac: macForIp(ip),
    ip,
    bridge: cfg.bridge,
    gateway: cfg.gateway,
    netmask: cfg.netmask,
    prefix: cfg.prefix,
    bootIp: { address: ip, gateway: cfg.gateway, netmask: cfg.netmask },
  };
  if (cfg.mode === 'netns') plan.netns = cfg.netns!;
  return plan;
}

/** The allocation to persist for a plan. */
export function allocationOf(plan: VmNetPlan): NetAllocation {
  return { vmId: plan.vmId, index: plan.index, tap: plan.tap, mac: plan.mac, ip: plan.ip };
}
