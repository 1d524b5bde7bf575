// The thin executor of the walls and the door: applies src/net/egress/plan.ts scripts with `nft -f -` in the VM
// namespace, turns on bridge port isolation, and the sysctls that make isolated ports reach each other only
// through the gateway (proxy_arp_pvlan, no redirects), where nft decides. Every change returns its undo.
import { HangarError, toHangarError } from '../../errors.js';
import { run } from '../../util/exec.js';
import type { Undo } from '../../util/steps.js';
import type { NetConfig } from '../config.js';
import { DEFAULT_CLONE_LINK_CIDR, vmSideOf } from '../clone.js';
import { baseScript, PROXY_MARK, PROXY_TABLE, removeTableScript, TABLE, vmRemoveScript, vmScript, type EgressEnv, type VmRulesInput } from './plan.js';

/** Applies one script as one transaction (a one-shot `nft -f`, or a line on an NftSession). */
export type NftApply = (script: string) => Promise<void>;

/** Runs one nft script (one transaction) in a namespace. */
export async function nft(ns: string | undefined, script: string): Promise<void> {
  if (!script.trim()) return;
  const r = await run('nft', ['-f', '-'], { netns: ns, input: script, allowFailure: true, timeoutMs: 15_000 });
  if (r.code !== 0) {
    throw new HangarError('NET_SETUP_FAILED', `nft refused the ruleset: ${r.stderr.trim().split('\n').slice(0, 6).join(' | ')}`, { netns: ns ?? null, stderr: r.stderr.slice(0, 4000) });
  }
}

/** The planner's view of a network configuration. Pure. */
export function egressEnv(cfg: NetConfig, cloneLinkCidr = DEFAULT_CLONE_LINK_CIDR): EgressEnv {
  return {
    bridge: cfg.bridge,
    tapPrefix: cfg.tapPrefix,
    cidr: cfg.cidr,
    hostLink: cfg.hostLink ? { nsIfname: cfg.hostLink.nsIfname, cidr: cfg.hostLink.cidr } : null,
    extraBlocked: [cloneLinkCidr],
    uplink: cfg.egress.uplink,
    proxyPort: cfg.egress.proxyPort,
    gateway: cfg.gateway,
    cloneLinkCidr,
    hostNamespace: cfg.mode === 'bridge',
  };
}

async function sysctl(ns: string | undefined, key: string, value: string): Promise<void> {
  await run('sysctl', ['-q', '-w', `${key}=${value}`], { netns: ns, timeoutMs: 15_000 });
}

/**
 * The base table, the routing of proxied connections to the local relay and the sysctls. Idempotent (an existing
 * table is brought up to date, VM chains kept); the undo removes the table and the proxy routing.
 */
export async function setupWalls(cfg: NetConfig, env: EgressEnv = egressEnv(cfg)): Promise<Undo> {
  const ns = vmSideOf(cfg);
  try {
    // Isolated ports reach each other only via the gateway's layer 3 (answered ARP, no redirects), where nft decides.
    await sysctl(ns, `net.ipv4.conf.${cfg.bridge}.proxy_arp_pvlan`, '1');
    await sysctl(ns, `net.ipv4.conf.${cfg.bridge}.send_redirects`, '0');
    await sysctl(ns, 'net.ipv4.conf.all.send_redirects', '0');
    // With br_netfilter, bridged frames meet the IP hooks at the bridge layer, and TPROXY's socket is lost on the
    // way up (proxied connections then get a RST). Hangar filters at layer 3 on the bridge device: off, in this
    // namespace only (absent without br_netfilter).
    for (const k of ['iptables', 'ip6tables', 'arptables']) {
      await run('sysctl', ['-q', '-w', `net.bridge.bridge-nf-call-${k}=0`], { netns: ns, allowFailure: true, timeoutMs: 15_000 });
    }
    await nft(ns, baseScript(env));
    if (env.proxyPort !== null) {
      const rule = ['rule', 'add', 'fwmark', String(PROXY_MARK), 'lookup', String(PROXY_TABLE)];
      const rules = await run('ip', ['-n', ns ?? '', 'rule', 'show'].filter(Boolean), { timeoutMs: 15_000 });
      if (!rules.stdout.includes(`lookup ${PROXY_TABLE}`)) await run('ip', ns ? ['-n', ns, ...rule] : rule, { timeoutMs: 15_000 });
      const route = ['route', 'replace', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', String(PROXY_TABLE)];
      await run('ip', ns ? ['-n', ns, ...route] : route, { timeoutMs: 15_000 });
    }
  } catch (e) {
    const h = toHangarError(e, 'NET_SETUP_FAILED');
    throw h.code === 'MISSING_HOST_TOOLS' ? h : new HangarError('NET_SETUP_FAILED', `the VM firewall could not be set up: ${h.message}`, { ...h.details });
  }
  return async () => {
    await nft(ns, removeTableScript());
    const del = ['rule', 'del', 'fwmark', String(PROXY_MARK), 'lookup', String(PROXY_TABLE)];
    await run('ip', ns ? ['-n', ns, ...del] : del, { allowFailure: true, timeoutMs: 15_000 });
  };
}

/**
 * Bridge mode: the IPv4 forwarding the guests' egress needs in the host's namespace, per interface (Linux checks
 * the INPUT device's `conf.<if>.forwarding`): on the bridge (guests' packets out) and the uplink (their replies in),
 * not the host-wide switch, so the host does not start routing between its other interfaces. Pure: the sysctl keys
 * (slash form, so an interface name with dots such as a VLAN's stays one component).
 */
export function bridgeForwardingKeys(cfg: Pick<NetConfig, 'bridge' | 'egress'>): string[] {
  return [cfg.bridge, ...(cfg.egress.uplink ? [cfg.egress.uplink] : [])].map((i) => `net/ipv4/conf/${i}/forwarding`);
}

/** Turns forwarding on where bridge mode needs it (above); an uplink that does not exist yet is left to the doctor. */
export async function enableBridgeForwarding(cfg: NetConfig): Promise<void> {
  if (cfg.mode !== 'bridge') return;
  const [bridge, ...uplink] = bridgeForwardingKeys(cfg);
  await run('sysctl', ['-q', '-w', `${bridge!}=1`], { netns: vmSideOf(cfg), timeoutMs: 15_000 });
  for (const k of uplink) await run('sysctl', ['-q', '-w', `${k}=1`], { netns: vmSideOf(cfg), allowFailure: true, timeoutMs: 15_000 });
}

/** Bridge port isolation: an isolated port's frames reach only non-isolated ports (the bridge itself). */
export async function isolatePort(ns: string | undefined, ifname: string): Promise<void> {
  const args = ['link', 'set', 'dev', ifname, 'isolated', 'on'];
  await run('bridge', ns ? ['-n', ns, ...args] : args, { timeoutMs: 15_000 });
}

/** Creates or replaces a VM's rules (one transaction). The undo removes them. */
export async function applyVmRules(cfg: NetConfig, v: VmRulesInput, apply?: NftApply, env: EgressEnv = egressEnv(cfg)): Promise<Undo> {
  const ns = vmSideOf(cfg);
  const exec = apply ?? ((s: string) => nft(ns, s));
  await exec(vmScript(env, v));
  return () => exec(vmRemoveScript(v.ip, v.policy.group, v.port?.kind === 'tap' ? v.port.ifname : undefined));
}

export async function removeVmRules(cfg: NetConfig, ip: string, group: string | null, tap?: string, apply?: NftApply): Promise<void> {
  await (apply ?? ((s: string) => nft(vmSideOf(cfg), s)))(vmRemoveScript(ip, group, tap));
}

/** Named counters of the table, by name (packets, bytes): denials, per-VM bytes; `bridge`: spoofed frames per TAP. */
export async function readCounters(cfg: NetConfig, family: 'inet' | 'bridge' = 'inet'): Promise<Map<string, { packets: number; bytes: number }>> {
  const r = await run('nft', ['-j', 'list', 'counters', 'table', family, TABLE], { netns: vmSideOf(cfg), allowFailure: true, timeoutMs: 15_000 });
  const out = new Map<string, { packets: number; bytes: number }>();
  if (r.code !== 0) return out;
  const doc = JSON.parse(r.stdout) as { nftables: { counter?: { name: string; packets: number; bytes: number } }[] };
  for (const o of doc.nftables) if (o.counter) out.set(o.counter.name, { packets: o.counter.packets, bytes: o.counter.bytes });
  return out;
}
