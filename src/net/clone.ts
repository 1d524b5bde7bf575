// Network identity for clones of one snapshot (the model of Firecracker's docs/snapshotting/network-for-clones.md).
//
// Every clone wakes up believing it is the VM that was snapshotted: same guest address G, same MAC, same TAP name T,
// same gateway. So each clone gets a namespace of its own that recreates that world, and the host reaches each
// clone at a unique address A taken from the VM pool:
//
//   host side ──(cidr route, unchanged)──▶ VM side ──(A/32 via veth)──▶ clone namespace ──(TAP T)──▶ guest G
//
//   clone namespace: TAP T holding the gateway address (and the gateway MAC the guest has cached), a veth to the VM
//   side with a /30 of its own from a link-local pool, a default route back through it, forwarding on, and two
//   address rewrites that exist in this namespace only: DNAT A→G for what arrives from the VM side, SNAT G→A for
//   what the guest sends out. Nothing is translated towards the outside world; the root namespace is not touched.
//   VM side (Hangar's VM namespace in netns mode, the host side in bridge mode): the veth end, named like a TAP
//   allocation, and a /32 route to A through it. In netns mode the host already routes the whole pool to the VM
//   namespace, so A needs nothing on the host side at all.
//
// Pure planner first, thin executor after (iproute2 and iptables through run(), argument arrays only).
import { HangarError, toHangarError } from '../errors.js';
import { run } from '../util/exec.js';
import { runSteps, type Step, type Undo } from '../util/steps.js';
import { isIfname, tapOwnerArgs, validNetnsName, type NetConfig } from './config.js';
import { cidrsOverlap, formatIpv4, parseCidr, parseIpv4, type Ipv4Cidr } from './ipv4.js';
import type { NetAllocation } from './plan.js';

/** Link-local like the host link, and far from it: one /30 per clone index. */
export const DEFAULT_CLONE_LINK_CIDR = '169.254.128.0/17';
/** The veth end inside a clone namespace (each namespace has its own, so one name serves all). */
export const CLONE_IFNAME = 'hgclone0';
const CLONE_SUFFIX = '-c';

/** What the snapshotted guest believes about its network; baked into the snapshot's manifest. */
export interface GuestNetIdentity {
  ip: string;
  mac: string;
  /** The TAP name the VMM reopens (QEMU: its -netdev ifname; Firecracker: host_dev_name in the snapshot). */
  tap: string;
  gateway: string;
  netmask: string;
  prefix: number;
  /** The gateway's MAC as the guest has it cached (the bridge's at snapshot time), or null when unknown. */
  gatewayMac: string | null;
}

export interface CloneNetPlan {
  /** The clone's own namespace. */
  netns: string;
  /** Where the VM-side veth end and the /32 route live (undefined: the namespace Hangar runs in). */
  vmSideNetns?: string;
  /** VM-side veth end: the clone's TAP allocation name, so pool accounting and detachVm treat it like a TAP. */
  hostIfname: string;
  cloneIfname: string;
  link: { cidr: string; prefix: number; hostAddress: string; cloneAddress: string };
  /** The unique address the host reaches this clone at (the clone's pool address). */
  address: string;
  guest: GuestNetIdentity;
  /** The VMM user the clone's TAP is handed to (NetConfig.tapOwner). */
  tapOwner?: { uid: number; gid: number };
}

function bad(message: string, details: Record<string, unknown> = {}): HangarError {
  return new HangarError('NET_INVALID_CONFIG', message, details);
}

/** Where the bridge and TAPs live: the VM namespace (netns mode) or the host side (bridge mode). */
export function vmSideOf(cfg: NetConfig): string | undefined {
  return cfg.mode === 'netns' ? cfg.netns : cfg.hostNetns;
}

/** Clone namespaces are named after the VM side so each Hangar (and each test network) has its own set. */
export function cloneNetnsPrefix(cfg: NetConfig): string {
  return `${vmSideOf(cfg) ?? 'hangar'}${CLONE_SUFFIX}`;
}

export function cloneNetnsName(cfg: NetConfig, index: number): string {
  return validNetnsName(`${cloneNetnsPrefix(cfg)}${index}`, 'clone netns');
}

/** The /30 of clone `index` in the link pool. Pure. */
export function cloneLink(linkCidr: string, index: number): CloneNetPlan['link'] {
  const c = parseCidr(linkCidr);
  if (typeof c === 'string') throw bad(`clone link pool: ${c}`, { field: 'cloneLinkCidr' });
  if (c.prefix > 30) throw bad(`clone link pool ${linkCidr} must be /30 or larger`, { field: 'cloneLinkCidr' });
  const slots = 2 ** (30 - c.prefix);
  if (!Number.isInteger(index) || index < 0 || index >= slots) {
    throw new HangarError('NET_POOL_EXHAUSTED', `clone index ${index} has no /30 in the link pool ${linkCidr} (${slots} slots)`, { index, slots });
  }
  const base = c.network + index * 4;
  return { cidr: `${formatIpv4(base)}/30`, prefix: 30, hostAddress: formatIpv4(base + 1), cloneAddress: formatIpv4(base + 2) };
}

function checkGuest(g: GuestNetIdentity): GuestNetIdentity {
  for (const k of ['ip', 'gateway', 'netmask'] as const) {
    if (parseIpv4(g[k]) === null) throw bad(`guest ${k} is not an IPv4 address: ${JSON.stringify(g[k])}`, { field: `guest.${k}` });
  }
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(g.mac)) throw bad(`guest MAC is malformed: ${JSON.stringify(g.mac)}`, { field: 'guest.mac' });
  if (g.gatewayMac !== null && !/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(g.gatewayMac)) throw bad(`gateway MAC is malformed: ${JSON.stringify(g.gatewayMac)}`, { field: 'guest.gatewayMac' });
  if (!isIfname(g.tap)) throw bad(`guest TAP name is not an interface name: ${JSON.stringify(g.tap)}`, { field: 'guest.tap' });
  if (!Number.isInteger(g.prefix) || g.prefix < 8 || g.prefix > 30) throw bad(`guest prefix must be /8 to /30 (got ${g.prefix})`, { field: 'guest.prefix' });
  return g;
}

/**
 * The network of one clone: its namespace, veth pair and /30, its host-visible address (its pool allocation) and
 * the guest identity it must recreate. Pure; validates everything the executor will use.
 */
export function planCloneNetwork(cfg: NetConfig, alloc: Pick<NetAllocation, 'index' | 'ip' | 'tap'>, guest: GuestNetIdentity, linkCidr = DEFAULT_CLONE_LINK_CIDR): CloneNetPlan {
  checkGuest(guest);
  const lc = parseCidr(linkCidr);
  if (typeof lc === 'string') throw bad(`clone link pool: ${lc}`, { field: 'cloneLinkCidr' });
  const pool = parseCidr(cfg.cidr) as Ipv4Cidr;
  if (cidrsOverlap(lc, pool)) throw bad(`clone link pool ${linkCidr} overlaps the VM subnet ${cfg.cidr}`, { field: 'cloneLinkCidr' });
  if (cfg.hostLink && cidrsOverlap(lc, parseCidr(cfg.hostLink.cidr) as Ipv4Cidr)) throw bad(`clone link pool ${linkCidr} overlaps the host link ${cfg.hostLink.cidr}`, { field: 'cloneLinkCidr' });
  const guestNet = parseCidr(`${formatIpv4((parseIpv4(guest.ip)! & (0xffffffff << (32 - guest.prefix))) >>> 0)}/${guest.prefix}`) as Ipv4Cidr;
  if (cidrsOverlap(lc, guestNet)) throw bad(`clone link pool ${linkCidr} overlaps the guest's subnet ${guestNet.cidr}`, { field: 'cloneLinkCidr' });
  if (!isIfname(alloc.tap)) throw bad(`allocation name ${JSON.stringify(alloc.tap)} is not an interface name`, { field: 'tap' });
  if (parseIpv4(alloc.ip) === null) throw bad(`clone address is not IPv4: ${JSON.stringify(alloc.ip)}`, { field: 'ip' });
  const plan: CloneNetPlan = {
    netns: cloneNetnsName(cfg, alloc.index),
    hostIfname: alloc.tap,
    cloneIfname: CLONE_IFNAME,
    link: cloneLink(linkCidr, alloc.index),
    address: alloc.ip,
    guest: { ...guest, mac: guest.mac.toLowerCase(), gatewayMac: guest.gatewayMac?.toLowerCase() ?? null },
  };
  const side = vmSideOf(cfg);
  if (side !== undefined) plan.vmSideNetns = side;
  if (cfg.tapOwner) plan.tapOwner = cfg.tapOwner;
  return plan;
}

/**
 * The iptables rules of a clone namespace (nat table), as argument arrays after `iptables -w -t nat -A`. Pure.
 * The guest's DNS (to its gateway, which is local here) goes on to the VM side's end of the link, where Hangar's
 * DNS answers it under the clone's policy (its source is the clone's pool address by then).
 */
export function cloneNatRules(p: CloneNetPlan): string[][] {
  return [
    ...['udp', 'tcp'].map((proto) => ['PREROUTING', '-i', p.guest.tap, '-d', `${p.guest.gateway}/32`, '-p', proto, '--dport', '53', '-j', 'DNAT', '--to-destination', p.link.hostAddress]),
    ['PREROUTING', '-i', p.cloneIfname, '-d', `${p.address}/32`, '-j', 'DNAT', '--to-destination', p.guest.ip],
    ['POSTROUTING', '-o', p.cloneIfname, '-s', `${p.guest.ip}/32`, '-j', 'SNAT', '--to-source', p.address],
  ];
}

// ---------------------------------------------------------------- executor

async function ip(ns: string | undefined, args: string[], allowFailure = false): Promise<{ code: number | null; stdout: string }> {
  return run('ip', ns ? ['-n', ns, ...args] : args, { allowFailure, timeoutMs: 15_000 });
}

async function netnsList(): Promise<string[]> {
  const text = (await run('ip', ['-j', 'netns', 'list'], { timeoutMs: 15_000 })).stdout.trim();
  return text ? (JSON.parse(text) as { name: string }[]).map((n) => n.name) : [];
}

/** The MAC of the bridge the guests use as their gateway (recorded in a snapshot), or null if it cannot be read. */
export async function gatewayMac(cfg: NetConfig): Promise<string | null> {
  const r = await ip(vmSideOf(cfg), ['-j', 'link', 'show', 'dev', cfg.bridge], true);
  if (r.code !== 0) return null;
  const l = (JSON.parse(r.stdout.trim() || '[]') as { address?: string }[])[0];
  return l?.address && /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(l.address) ? l.address.toLowerCase() : null;
}

/** Builds a clone's network; returns the undo of exactly what it made (the namespace takes its contents along). */
export async function setupCloneNetwork(p: CloneNetPlan): Promise<Undo> {
  const ns = p.netns;
  const side = p.vmSideNetns;
  const wrap = (s: Step<null>): Step<null> => ({
    name: s.name,
    run: async (c) => {
      try {
        return await s.run(c);
      } catch (e) {
        const h = toHangarError(e, 'NET_SETUP_FAILED');
        throw h.code === 'MISSING_HOST_TOOLS' ? h : new HangarError('NET_SETUP_FAILED', `clone network step "${s.name}" failed: ${h.message}`, { step: s.name, netns: ns, ...h.details }, { cause: e });
      }
    },
  });
  const steps: Step<null>[] = [
    {
      name: `clone namespace ${ns}`,
      run: async () => {
        if ((await netnsList()).includes(ns)) throw new HangarError('NET_SETUP_FAILED', `namespace ${ns} already exists (an orphan, or another clone)`, { netns: ns });
        await run('ip', ['netns', 'add', ns], { timeoutMs: 15_000 });
        return async () => { await run('ip', ['netns', 'del', ns], { allowFailure: true, timeoutMs: 15_000 }); };
      },
    },
    { name: `${ns}: loopback up`, run: async () => { await ip(ns, ['link', 'set', 'lo', 'up']); } },
    {
      name: `veth ${p.hostIfname} <-> ${ns}/${p.cloneIfname}`,
      run: async () => {
        await ip(side, ['link', 'add', p.hostIfname, 'type', 'veth', 'peer', 'name', p.cloneIfname, 'netns', ns]);
        return async () => { await ip(side, ['link', 'del', p.hostIfname], true); };
      },
    },
    {
      name: `link ${p.link.hostAddress} / ${p.link.cloneAddress}`,
      run: async () => {
        await ip(side, ['addr', 'add', `${p.link.hostAddress}/${p.link.prefix}`, 'dev', p.hostIfname]);
        await ip(side, ['link', 'set', p.hostIfname, 'up']);
        await ip(ns, ['addr', 'add', `${p.link.cloneAddress}/${p.link.prefix}`, 'dev', p.cloneIfname]);
        await ip(ns, ['link', 'set', p.cloneIfname, 'up']);
        await ip(ns, ['route', 'add', 'default', 'via', p.link.hostAddress, 'dev', p.cloneIfname]);
      },
    },
    {
      name: `${ns}: TAP ${p.guest.tap} as gateway ${p.guest.gateway}`,
      run: async () => {
        await ip(ns, ['tuntap', 'add', 'dev', p.guest.tap, 'mode', 'tap', ...tapOwnerArgs(p.tapOwner)]);
        // The guest's ARP cache still names the snapshot's gateway MAC; answering to it spares a stale-entry wait.
        if (p.guest.gatewayMac) await ip(ns, ['link', 'set', 'dev', p.guest.tap, 'address', p.guest.gatewayMac]);
        await ip(ns, ['addr', 'add', `${p.guest.gateway}/${p.guest.prefix}`, 'dev', p.guest.tap]);
        await ip(ns, ['link', 'set', p.guest.tap, 'up']);
      },
    },
    { name: `${ns}: forwarding`, run: async () => { await run('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1'], { netns: ns, timeoutMs: 15_000 }); } },
    {
      name: `${ns}: ${p.address} <-> ${p.guest.ip}`,
      run: async () => {
        for (const rule of cloneNatRules(p)) await run('iptables', ['-w', '5', '-t', 'nat', '-A', ...rule], { netns: ns, timeoutMs: 15_000 });
      },
    },
    {
      name: `route ${p.address} via ${p.link.cloneAddress}`,
      run: async () => {
        await ip(side, ['route', 'replace', `${p.address}/32`, 'via', p.link.cloneAddress, 'dev', p.hostIfname]);
        return async () => { await ip(side, ['route', 'del', `${p.address}/32`, 'via', p.link.cloneAddress, 'dev', p.hostIfname], true); };
      },
    },
  ];
  const { stack } = await runSteps(steps.map(wrap), null);
  return async () => {
    const errors = await stack.unwind();
    if (errors.length) {
      throw new HangarError('NET_SETUP_FAILED', `removing the clone network ${ns} failed: ${errors.map((e) => `${e.name}: ${e.error instanceof Error ? e.error.message : String(e.error)}`).join('; ')}`, { netns: ns });
    }
  };
}

/** Removes a clone's network whatever state it is in (idempotent): for a clone whose undo was lost. */
export async function removeCloneNetwork(p: Pick<CloneNetPlan, 'netns' | 'vmSideNetns' | 'hostIfname'>): Promise<void> {
  await ip(p.vmSideNetns, ['link', 'del', p.hostIfname], true); // its /32 route goes with it
  if ((await netnsList()).includes(p.netns)) await run('ip', ['netns', 'del', p.netns], { timeoutMs: 15_000 });
}

/** Clone namespaces of this configuration (for orphan reclaim). */
export async function listCloneNetns(cfg: NetConfig): Promise<string[]> {
  const prefix = cloneNetnsPrefix(cfg);
  return (await netnsList()).filter((n) => n.startsWith(prefix) && /^\d+$/.test(n.slice(prefix.length)));
}
