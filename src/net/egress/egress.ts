// A VM's egress behind one port: its nft rules (one nft -i session per namespace), its policy in netd (DNS and the
// proxy relay) and its bandwidth limit (tc), applied together on attach, replaced together on a policy change,
// removed together on detach. The controller makes one (`createEgress`) after the host network exists.
import type { Undo } from '../../util/steps.js';
import type { NetConfig } from '../config.js';
import { vmSideOf } from '../clone.js';
import { startNetd, type Netd, type NetdStats } from '../netd/client.js';
import { applyVmRules, bridgeForwardingKeys, egressEnv, enableBridgeForwarding, readCounters, removeVmRules } from './nft.js';
import { deniedCounter, groupSet, TABLE, type VmRulesInput } from './plan.js';
import { run } from '../../util/exec.js';
import { allowNames, type NetworkPolicy } from './policy.js';
import { NftSession } from './session.js';
import { applyLimits, type LimitTarget } from './limits.js';

export interface VmEgressTarget {
  ip: string;
  /** For the source check: a TAP's MAC (null: a clone's veth, checked by interface only). */
  mac: string | null;
  /** Where to shape its traffic: the TAP (or a clone's VM-side veth) in the VM namespace. */
  ifname: string;
  index: number;
}

export interface EgressCounters {
  perVm: Map<string, { bytesOut: number; bytesIn: number; denied: number }>;
  deniedUnknown: number;
  deniedInbound: number;
  deniedInput: number;
}

export interface EgressEvidence {
  uplink: { name: string | null; exists: boolean; up: boolean; defaultRoute: boolean };
  /** Where the VM side does not forward IPv4 (sysctl keys at 0): guests' packets go nowhere. Absent: not read. */
  notForwarding?: string[];
  nat: boolean;
  netd: { resolvers: string[]; upstreamFailures: number; forwarded: number } | null;
  refusedNames: { name: string; reason: string; at: string }[];
  deniedPackets: number;
  proxyFailure: { at: string; proxy: string; error: string } | null;
}

/** A VM's way out as the doctor's egress judge sees it (src/doctor/egress.ts). */
export type VmEgressFacts = EgressEvidence & { vm: { id: string; ip: string; policy: NetworkPolicy } };

export interface Egress {
  attach(vm: VmEgressTarget, policy: NetworkPolicy): Promise<Undo>;
  /** Replaces a running VM's policy (one nft transaction, then netd, then tc); within ~10-20 ms. */
  change(vm: VmEgressTarget, from: NetworkPolicy, to: NetworkPolicy): Promise<void>;
  /** Removes whatever is left of a VM's rules, DNS policy and shaping (idempotent; its attach undo was lost). */
  forget(vm: VmEgressTarget, group: string | null): Promise<void>;
  counters(): Promise<EgressCounters>;
  netdStats(): Promise<NetdStats | null>;
  /** What the doctor's egress judge needs to know about one VM's way out (src/doctor/egress.ts). */
  evidence(ip: string): Promise<EgressEvidence>;
  close(): Promise<void>;
}

/** Must the addresses earlier DNS answers opened be dropped? Only when the new policy allows fewer names. Pure. */
export function mustFlushDns(from: NetworkPolicy, to: NetworkPolicy): boolean {
  if (to.egress.mode !== 'allowlist') return true;
  if (from.egress.mode !== 'allowlist') return true;
  const now = new Set(allowNames(to.egress));
  return allowNames(from.egress).some((n) => !now.has(n)) || to.egress.deny.some((d) => !from.egress.deny.includes(d));
}

export async function createEgress(cfg: NetConfig, o: { stateDir: string; netd?: boolean; dnsPort?: number }): Promise<Egress> {
  const ns = vmSideOf(cfg);
  const session = new NftSession(ns);
  const env = egressEnv(cfg);
  // Bridge mode: the host's namespace forwards for guests on the bridge and the uplink only (netns mode: the VM
  // namespace forwards, src/net/host.ts).
  await enableBridgeForwarding(cfg);
  const netd: Netd | null = o.netd === false ? null : await startNetd({ cfg, stateDir: o.stateDir, ...(o.dnsPort ? { dnsPort: o.dnsPort } : {}) });
  const limitTarget = (vm: VmEgressTarget): LimitTarget => ({ netns: ns, ifname: vm.ifname, index: vm.index });
  const rules = (vm: VmEgressTarget, policy: NetworkPolicy, flushDns: boolean): VmRulesInput => ({
    ip: vm.ip, policy, flushDns, port: vm.mac ? { kind: 'tap', ifname: vm.ifname, mac: vm.mac } : { kind: 'veth', ifname: vm.ifname },
  });

  return {
    attach: async (vm, policy) => {
      const undoRules = await applyVmRules(cfg, rules(vm, policy, true), session.apply, env);
      await netd?.setPolicy(vm.ip, policy);
      const undoLimits = await applyLimits(limitTarget(vm), policy.limits.bandwidthMbit);
      return async () => {
        await undoLimits();
        await netd?.forget(vm.ip).catch(() => undefined);
        await undoRules();
      };
    },
    change: async (vm, from, to) => {
      // The new rules first (closing what must close), then the DNS daemon (which re-opens names still allowed as
      // guests ask again), then the shaping.
      await applyVmRules(cfg, rules(vm, to, mustFlushDns(from, to)), session.apply, env);
      if (from.group && from.group !== to.group) await removeGroupMembership(session, vm.ip, from.group);
      await netd?.setPolicy(vm.ip, to);
      if (from.limits.bandwidthMbit !== to.limits.bandwidthMbit) await applyLimits(limitTarget(vm), to.limits.bandwidthMbit);
    },
    forget: async (vm, group) => {
      await applyLimits(limitTarget(vm), null);
      await netd?.forget(vm.ip).catch(() => undefined);
      await removeVmRules(cfg, vm.ip, group, vm.mac ? vm.ifname : undefined, session.apply);
    },
    counters: async () => {
      const c = await readCounters(cfg);
      const perVm = new Map<string, { bytesOut: number; bytesIn: number; denied: number }>();
      for (const [name, v] of c) {
        const m = /^(out|in|denied)_(\d+_\d+_\d+_\d+)$/.exec(name);
        if (!m) continue;
        const ip = m[2]!.replace(/_/g, '.');
        const e = perVm.get(ip) ?? { bytesOut: 0, bytesIn: 0, denied: 0 };
        if (m[1] === 'out') e.bytesOut = v.bytes;
        else if (m[1] === 'in') e.bytesIn = v.bytes;
        else e.denied = v.packets;
        perVm.set(ip, e);
      }
      const n = (k: string): number => c.get(k)?.packets ?? 0;
      return { perVm, deniedUnknown: n('denied_unknown'), deniedInbound: n('denied_inbound'), deniedInput: n('denied_input') };
    },
    netdStats: async () => (netd ? netd.stats() : null),
    evidence: async (ip) => {
      const up = cfg.egress.uplink;
      const ipIn = (args: string[]) => run('ip', ns ? ['-n', ns, ...args] : args, { allowFailure: true, timeoutMs: 10_000 });
      const link = up ? await ipIn(['-j', 'link', 'show', 'dev', up]) : null;
      const flags = link?.code === 0 ? ((JSON.parse(link.stdout || '[]') as { flags?: string[] }[])[0]?.flags ?? []) : [];
      const route = up ? await ipIn(['-j', 'route', 'show', 'default']) : null;
      const defaultRoute = route?.code === 0 && (JSON.parse(route.stdout || '[]') as { dev?: string }[]).some((r) => r.dev === up);
      const post = await run('nft', ['list', 'chain', 'inet', TABLE, 'postrouting'], { netns: ns, allowFailure: true, timeoutMs: 10_000 });
      const st = netd ? await netd.stats().catch(() => null) : null;
      const counters = await readCounters(cfg);
      const keys = cfg.mode === 'bridge' ? bridgeForwardingKeys(cfg) : ['net/ipv4/ip_forward'];
      const notForwarding: string[] = [];
      for (const k of keys) {
        const r = await run('sysctl', ['-n', k], { netns: ns, allowFailure: true, timeoutMs: 10_000 });
        if (r.code === 0 && r.stdout.trim() === '0') notForwarding.push(k);
      }
      return {
        notForwarding,
        uplink: { name: up, exists: link?.code === 0, up: flags.includes('UP'), defaultRoute },
        nat: post.code === 0 && up !== null && post.stdout.includes(`oifname "${up}"`) && post.stdout.includes('masquerade'),
        netd: st ? { resolvers: st.resolvers, upstreamFailures: st.dns.upstreamFailures, forwarded: st.dns.forwarded } : null,
        refusedNames: st ? st.dns.recentDenials.filter((d) => d.vm === ip).map((d) => ({ name: d.name, reason: d.reason, at: d.at })) : [],
        deniedPackets: counters.get(deniedCounter(ip))?.packets ?? 0,
        proxyFailure: st?.relay.lastFailure[ip] ?? null,
      };
    },
    close: async () => {
      session.close();
      await netd?.stop();
    },
  };
}

async function removeGroupMembership(session: NftSession, ip: string, group: string): Promise<void> {
  const set = groupSet(group);
  await session.apply(`add set inet hangar ${set} { type ipv4_addr; }\nadd element inet hangar ${set} { ${ip} }\ndelete element inet hangar ${set} { ${ip} }\n`);
}

