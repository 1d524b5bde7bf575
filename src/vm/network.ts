// A VM's network behind one port. Two kinds of VM network hide behind it: a pool address with a TAP on the bridge
// (cold-booted VMs), and a clone's own namespace that recreates its snapshot's guest network behind a pool
// address (src/net/clone.ts). The plans are pure (`planPoolNet`, `planCloneNet`, `vmmNic`); the executor
// (`hostVmNetwork`) is a thin layer over src/net.
import { gatewayMac, listCloneNetns, planCloneNetwork, removeCloneNetwork, setupCloneNetwork, type GuestNetIdentity } from '../net/clone.js';
import type { NetConfig } from '../net/config.js';
import type { Egress, VmEgressTarget } from '../net/egress/egress.js';
import type { NetworkPolicy } from '../net/egress/policy.js';
import { attachVm, detachVm, listHangarTaps } from '../net/host.js';
import { planVmNetwork, poolCapacity, type NetAllocation } from '../net/plan.js';
import type { Allocation, NetPlanner } from '../store/store.js';
import type { Undo } from '../util/steps.js';
import { run } from '../util/exec.js';
import type { VmNet } from '../domain/vm.js';

/** Groups allocation rows into the planner's per-VM view; the TAP name carries the index. */
export function netAllocations(rows: readonly Allocation[]): NetAllocation[] {
  const byVm = new Map<string, Partial<NetAllocation>>();
  for (const r of rows) {
    const a = byVm.get(r.vmId) ?? { vmId: r.vmId };
    if (r.kind === 'tap') {
      a.tap = r.value;
      a.index = Number(/(\d+)$/.exec(r.value)?.[1] ?? -1);
    } else {
      a[r.kind] = r.value;
    }
    byVm.set(r.vmId, a);
  }
  return [...byVm.values()].filter((a): a is NetAllocation => !!a.tap && !!a.ip && !!a.mac);
}

/** A cold-booted VM: the next free pool address, MAC and TAP. Pure. */
export function planPoolNet(cfg: NetConfig, id: string): NetPlanner {
  return (taken) => {
    const p = planVmNetwork(cfg, netAllocations(taken), id);
    return { net: p, allocations: [{ kind: 'ip', value: p.ip }, { kind: 'mac', value: p.mac }, { kind: 'tap', value: p.tap }] };
  };
}

/**
 * A clone: a pool address (what the host reaches it at) plus its own namespace where the guest keeps the
 * snapshot's identity. The record shows what the host sees (the pool address) and what the guest has (MAC,
 * gateway); a cold boot of the clone's disk later gets the snapshot's address again, inside its namespace. Pure.
 */
export function planCloneNet(cfg: NetConfig, id: string, guest: GuestNetIdentity, linkCidr?: string): NetPlanner {
  const pool = planPoolNet(cfg, id);
  return (taken) => {
    const p = pool(taken);
    const clone = planCloneNetwork(cfg, p.net, guest, linkCidr);
    const net: VmNet = {
      ...p.net, mac: guest.mac, gateway: guest.gateway, netmask: guest.netmask, prefix: guest.prefix,
      bootIp: { address: guest.ip, gateway: guest.gateway, netmask: guest.netmask }, clone,
    };
    return { net, allocations: p.allocations };
  };
}

/** The TAP and MAC the VMM is given, and the namespace it runs in: a clone's are the snapshot's, in its own. Pure. */
export function vmmNic(cfg: NetConfig, net: VmNet): { nic: { tap: string; mac: string }; netns?: string } {
  if (net.clone) return { nic: { tap: net.clone.guest.tap, mac: net.clone.guest.mac }, netns: net.clone.netns };
  const netns = cfg.mode === 'netns' ? cfg.netns : cfg.hostNetns ?? undefined;
  return { nic: { tap: net.tap, mac: net.mac }, ...(netns ? { netns } : {}) };
}

/** What the guest network of a VM is, as a snapshot of it must recreate it. */
export function guestIdentity(net: VmNet, gwMac: string | null): GuestNetIdentity {
  return net.clone?.guest ?? { ip: net.ip, mac: net.mac, tap: net.tap, gateway: net.gateway, netmask: net.netmask, prefix: net.prefix, gatewayMac: gwMac };
}

export function describeNet(net: VmNet): string {
  return net.clone ? `clone network ${net.clone.netns}` : `tap ${net.tap}`;
}

/** The port: what the VM layer does to the host's network. */
export interface VmNetwork {
  readonly config: NetConfig;
  poolPlan(id: string): NetPlanner;
  clonePlan(id: string, guest: GuestNetIdentity): NetPlanner;
  /** Brings the VM's network up while it runs (its walls and door too, from its policy); returns the undo. */
  attach(net: VmNet): Promise<Undo>;
  /** Replaces a VM's policy on its live network (a no-op without egress). */
  setPolicy(net: VmNet, from: NetworkPolicy, to: NetworkPolicy): Promise<void>;
  /** Removes whatever is left of it (idempotent). */
  detach(net: VmNet | null): Promise<void>;
  gatewayMac(): Promise<string | null>;
  poolSize(): number;
  /** TAPs and clone namespaces on the host that none of `keep` owns (reconcile removes them). */
  orphans(keep: readonly VmNet[]): Promise<{ taps: string[]; netns: string[] }>;
  removeOrphans(o: { taps: string[]; netns: string[] }): Promise<void>;
}

/** What the egress layer needs to know of a VM's network: its address, its interface in the VM namespace. Pure. */
export function egressTarget(net: VmNet): VmEgressTarget {
  // A clone's VM-side veth carries its allocation's name (net.tap) and its pool address (net.ip).
  return { ip: net.ip, ifname: net.tap, index: net.index, mac: net.clone ? null : net.mac };
}

/** With `egress`, each VM's policy (`policyOf`, else the config's default) is applied on attach. */
export function hostVmNetwork(cfg: NetConfig, cloneLinkCidr?: string, egress?: { egress: Egress; policyOf(vmId: string): NetworkPolicy | null }): VmNetwork {
  const policy = (net: VmNet): NetworkPolicy => egress?.policyOf(net.vmId) ?? cfg.egress.default;
  return {
    config: cfg,
    poolPlan: (id) => planPoolNet(cfg, id),
    clonePlan: (id, guest) => planCloneNet(cfg, id, guest, cloneLinkCidr),
    attach: async (net) => {
      const undoNet = net.clone ? await setupCloneNetwork(net.clone) : await attachVm(cfg, net);
      if (!egress) return undoNet;
      try {
        const undoEgress = await egress.egress.attach(egressTarget(net), policy(net));
        return async () => {
          try { await undoEgress(); } catch { /* the TAP's removal below matters more */ }
          await undoNet();
        };
      } catch (e) {
        try { await undoNet(); } catch { /* report the attach failure */ }
        throw e;
      }
    },
    setPolicy: async (net, from, to) => { await egress?.egress.change(egressTarget(net), from, to); },
    detach: async (net) => {
      if (net && egress) await egress.egress.forget(egressTarget(net), policy(net).group).catch(() => undefined);
      if (net?.clone) await removeCloneNetwork(net.clone);
      else if (net?.tap) await detachVm(cfg, net.tap);
    },
    gatewayMac: () => gatewayMac(cfg),
    poolSize: () => poolCapacity(cfg),
    orphans: async (keep) => {
      const taps = new Set(keep.map((n) => n.tap));
      const netns = new Set(keep.map((n) => n.clone?.netns).filter(Boolean));
      return {
        taps: (await listHangarTaps(cfg)).map((t) => t.name).filter((t) => !taps.has(t)),
        netns: (await listCloneNetns(cfg)).filter((n) => !netns.has(n)),
      };
    },
    removeOrphans: async (o) => {
      for (const t of o.taps) await detachVm(cfg, t);
      // Deleting the namespace takes the clone's veth pair (both ends) and its /32 route with it.
      for (const ns of o.netns) await run('ip', ['netns', 'del', ns], { allowFailure: true, timeoutMs: 15_000 });
    },
  };
}
