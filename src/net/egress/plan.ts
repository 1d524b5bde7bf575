// The nftables ruleset Hangar owns in the VM namespace (table `inet hangar`), as `nft -f` scripts. Pure: facts in,
// script text out; src/net/egress/nft.ts applies them. Every script is one nft transaction, so a VM's rules are
// replaced atomically, and every script is idempotent (`add` of what exists is a no-op, `flush` then re-add).
//
//   forward: per-VM byte counters (maps keyed by the VM's address), established/related, the host link may open
//            connections to VMs, every packet from a VM jumps to its chain (`from_vm` map), anything else from a
//            VM interface (an address no VM holds: spoofed or stale) and anything else opening a connection into a
//            VM is dropped.
//   vm_<a.b.c.d>: connection limit; with an upstream proxy, everything but group peers (all egress leaves through the
//            proxy, below); the VM's deny CIDRs, its allow CIDRs, its group's peers, the always-blocked
//            ranges (private, link-local, multicast, the VM subnet, the host link), then its mode: internet accepts,
//            allowlist accepts only addresses its DNS answers put in its `dns_` set, none drops. Denials counted.
//   input:   from VM interfaces only DNS (udp/tcp 53), proxied (marked) TCP and replies; from the uplink only replies
//            (netns mode: Hangar's own namespace); bridge mode (the host's namespace): netd's ports on the gateway only
//            from VM interfaces, the host's own services left alone.
//   natpre (nat, bridge mode): a clone's DNS, sent to its link's VM-side address, goes to the gateway (netd).
//   prerouting (mangle): a VM with an upstream proxy has its allowed TCP redirected (TPROXY) to the relay.
//   postrouting (nat): masquerade of the VM subnet out of the uplink.
import { parseCidr, parseIpv4 } from '../ipv4.js';
import { cidrsOf, type NetworkPolicy } from './policy.js';

export const TABLE = 'hangar';
/** The fwmark of proxied connections (and the routing table that delivers them locally). */
export const PROXY_MARK = 0x4847;
export const PROXY_TABLE = 4847;

/** Ranges no guest reaches unless an allow CIDR names them (RFC 6890 special purpose, less the documentation nets). */
export const ALWAYS_BLOCKED = [
  '0.0.0.0/8', '10.0.0.0/8', '100.64.0.0/10', '127.0.0.0/8', '169.254.0.0/16', '172.16.0.0/12', '192.0.0.0/24',
  '192.168.0.0/16', '198.18.0.0/15', '224.0.0.0/4', '240.0.0.0/4',
];

/** What the base ruleset needs to know about the namespace. */
export interface EgressEnv {
  /** The bridge the TAPs are on. */
  bridge: string;
  /** Clone veth ends (and TAPs seen at layer 3) are named like this prefix + an index. */
  tapPrefix: string;
  cidr: string;
  /** The host link's end in this namespace and its subnet (netns mode), from which the host reaches VMs. */
  hostLink: { nsIfname: string; cidr: string } | null;
  /** Other subnets guests must never reach (the clone link pool, ...). */
  extraBlocked: string[];
  /** The interface out of which guests' traffic is masqueraded; null: no NAT, no internet. */
  uplink: string | null;
  /** The transparent relay's port (proxied TCP is delivered there), or null when there is no relay. */
  proxyPort: number | null;
  /** The bridge's address: the guests' gateway, where netd answers DNS. */
  gateway?: string;
  /** The clone link pool: a clone's namespace sends its guest's DNS to its link's VM-side address (clone.ts). */
  cloneLinkCidr?: string | null;
  /**
   * True in bridge mode: the VM side is the host's own namespace. Then Hangar leaves the uplink's input (the host's
   * own services) alone, netd listens on the gateway address only, and the gateway's DNS and relay answer VM
   * interfaces only.
   */
  hostNamespace?: boolean;
}

/** One VM's rules. */
export interface VmRulesInput {
  ip: string;
  /**
   * Where the VM's packets come from (anti-spoofing): a TAP on the bridge (its frames must carry its MAC and its
   * address), or a clone's VM-side veth (its packets must arrive there). Without it, no source check.
   */
  port?: { kind: 'tap'; ifname: string; mac: string } | { kind: 'veth'; ifname: string };
  policy: NetworkPolicy;
  /** Flush the addresses earlier DNS answers opened (the allowlist lost names); the DNS daemon re-adds the rest. */
  flushDns: boolean;
}

/** nft object names for a VM, from its address (stable, readable in `nft list ruleset`). */
export function vmKey(ip: string): string {
  if (parseIpv4(ip) === null) throw new Error(`not an IPv4 address: ${ip}`);
  return ip.replace(/\./g, '_');
}
export const vmChain = (ip: string): string => `vm_${vmKey(ip)}`;
export const vmProxyChain = (ip: string): string => `px_${vmKey(ip)}`;
export const dnsSet = (ip: string): string => `dns_${vmKey(ip)}`;
export const deniedCounter = (ip: string): string => `denied_${vmKey(ip)}`;
/** Frames a TAP sent with another MAC or address (bridge table `bridge hangar`): spoofing attempts, dropped. */
export const spoofedCounter = (ip: string): string => `spoofed_${vmKey(ip)}`;
export const groupSet = (g: string): string => `grp_${g.replace(/-/g, '_')}`;

const q = (s: string): string => JSON.stringify(s);
const elements = (list: readonly string[]): string => `{ ${list.join(', ')} }`;
const T = `inet ${TABLE}`;
const B = `bridge ${TABLE}`;

/** Sorts and merges nothing: nft's interval sets with auto-merge take overlapping ranges. */
function blocked(env: EgressEnv): string[] {
  return [...new Set([...ALWAYS_BLOCKED, env.cidr, ...(env.hostLink ? [env.hostLink.cidr] : []), ...env.extraBlocked])];
}

/** Interfaces on which guests' packets arrive at layer 3: the bridge, and clone veths (named like TAPs). */
function vmIfaces(env: EgressEnv): string[] {
  return [q(env.bridge), q(`${env.tapPrefix}*`)];
}

/** The base table: sets, maps, hooked chains and their rules. Leaves every VM's chain and sets alone. */
export function baseScript(env: EgressEnv): string {
  const L: string[] = [
    `add table ${T}`,
    `add set ${T} blocked { type ipv4_addr; flags interval; auto-merge; }`,
    `add map ${T} from_vm { type ipv4_addr : verdict; }`,
    `add map ${T} proxy_vm { type ipv4_addr : verdict; }`,
    `add map ${T} bytes_out { type ipv4_addr : counter; }`,
    `add map ${T} bytes_in { type ipv4_addr : counter; }`,
    `add counter ${T} ack`,
    `add counter ${T} denied_unknown`,
    `add counter ${T} denied_inbound`,
    `add counter ${T} denied_input`,
    `add chain ${T} forward { type filter hook forward priority filter; policy accept; }`,
    `add chain ${T} input { type filter hook input priority filter; policy accept; }`,
    `add chain ${T} prerouting { type filter hook prerouting priority mangle; policy accept; }`,
    `add chain ${T} postrouting { type nat hook postrouting priority srcnat; policy accept; }`,
    `flush set ${T} blocked`,
    `add element ${T} blocked ${elements(blocked(env))}`,
    ...['forward', 'input', 'prerouting', 'postrouting'].map((c) => `flush chain ${T} ${c}`),
    // Bridge mode only: the nat prerouting chain for clones' DNS (below).
    ...(env.hostNamespace ? [`add chain ${T} natpre { type nat hook prerouting priority dstnat; policy accept; }`, `flush chain ${T} natpre`] : []),
  ];
  const fwd = (r: string): number => L.push(`add rule ${T} forward ${r}`);
  const inp = (r: string): number => L.push(`add rule ${T} input ${r}`);
  for (const i of vmIfaces(env)) fwd(`iifname ${i} counter name ip saddr map @bytes_out`);
  for (const i of vmIfaces(env)) fwd(`oifname ${i} counter name ip daddr map @bytes_in`);
  fwd('ct state established,related accept');
  fwd('ct state invalid drop');
  if (env.hostLink) fwd(`iifname ${q(env.hostLink.nsIfname)} ip daddr ${env.cidr} accept`);
  for (const i of vmIfaces(env)) fwd(`iifname ${i} ip saddr vmap @from_vm`);
  for (const i of vmIfaces(env)) fwd(`iifname ${i} counter name denied_unknown drop`);
  for (const i of vmIfaces(env)) fwd(`oifname ${i} counter name denied_inbound drop`);

  for (const i of vmIfaces(env)) {
    inp(`iifname ${i} ct state established,related accept`);
    inp(`iifname ${i} meta l4proto { tcp, udp } th dport 53 accept`);
    if (env.proxyPort !== null) inp(`iifname ${i} meta mark ${PROXY_MARK} accept`);
    inp(`iifname ${i} counter name denied_input drop`);
  }
  if (env.hostNamespace && env.gateway) {
    // The host's namespace: netd's ports on the gateway are for VMs only (not the host's other interfaces).
    const ports = [53, ...(env.proxyPort !== null ? [env.proxyPort] : [])].join(', ');
    inp(`iifname != "lo" ip daddr ${env.gateway} meta l4proto { tcp, udp } th dport { ${ports} } counter name denied_input drop`);
  }
  if (env.uplink && !env.hostNamespace) {
    inp(`iifname ${q(env.uplink)} ct state established,related accept`);
    inp(`iifname ${q(env.uplink)} counter name denied_input drop`);
  }
  if (env.uplink) L.push(`add rule ${T} postrouting oifname ${q(env.uplink)} ip saddr ${env.cidr} masquerade`);
  if (env.hostNamespace && env.gateway && env.cloneLinkCidr) {
    // A clone's DNS arrives at its link's VM-side address: to the gateway, where netd listens in the host's
    // namespace (in Hangar's own VM namespace netd listens on any address, the link's included).
    for (const i of vmIfaces(env).slice(1)) L.push(`add rule ${T} natpre iifname ${i} ip daddr ${env.cloneLinkCidr} meta l4proto { tcp, udp } th dport 53 dnat ip to ${env.gateway}`);
  }
  if (env.proxyPort !== null) {
    for (const i of vmIfaces(env)) L.push(`add rule ${T} prerouting iifname ${i} meta l4proto tcp ct state new ip saddr vmap @proxy_vm`);
    // Packets of a proxied connection after the first: the socket lookup finds the relay's accepted socket.
    L.push(`add rule ${T} prerouting meta l4proto tcp socket transparent 1 meta mark set ${PROXY_MARK} accept`);
  }
  // Layer 2 (bridge family): each TAP's frames must carry its own MAC and address (IPv4 and ARP), no IPv6.
  L.push(
    `add table ${B}`,
    `add map ${B} ports { type ifname : verdict; }`,
    `add chain ${B} prerouting { type filter hook prerouting priority -200; policy accept; }`,
    `flush chain ${B} prerouting`,
    `add rule ${B} prerouting iifname vmap @ports`,
  );
  return `${L.join('\n')}\n`;
}

/** The verdict part of a VM's rules, shared by its filter chain and its proxy chain. */
function decisions(ip: string, p: NetworkPolicy, pass: string, stop: string): string[] {
  const k = vmKey(ip);
  const e = p.egress;
  const out: string[] = [];
  if (cidrsOf(e.deny).length) out.push(`ip daddr @deny_${k} ${stop}`);
  if (cidrsOf(e.allow).length && e.mode !== 'none') out.push(`ip daddr @allow_${k} ${pass}`);
  if (p.group) out.push(`ip daddr @${groupSet(p.group)} ip daddr != ${ip} ${pass}`);
  out.push(`ip daddr @blocked ${stop}`);
  if (e.mode === 'internet') return [...out, pass];
  if (e.mode === 'allowlist') out.push(`ip daddr @dns_${k} ${pass}`);
  out.push(stop);
  return out;
}

/**
 * With an upstream proxy, ALL of a VM's egress goes through it: proxied TCP never reaches the forward hook (TPROXY
 * delivers it locally), so what a proxied VM forwards is non-TCP (UDP such as QUIC, which then falls back to TCP,
 * ICMP, ...) or TCP the proxy chain refused: dropped, except to its group's peers. Its DNS goes to the gateway
 * (input hook), so it still resolves. Replies (established, related) were accepted before the VM's chain.
 */
function proxyOnly(ip: string, p: NetworkPolicy, stop: string): string[] {
  if (!p.egress.proxy) return [];
  // Without a relay (no proxy port), nothing carries its TCP: it then gets nothing at all (fails closed).
  return [...(p.group ? [`ip daddr @${groupSet(p.group)} ip daddr != ${ip} accept`] : []), stop];
}

/** Creates or replaces one VM's chain, sets and map entries, in one transaction. */
export function vmScript(env: EgressEnv, v: VmRulesInput): string {
  const k = vmKey(v.ip);
  const p = v.policy;
  const chain = vmChain(v.ip);
  const L: string[] = [
    `add chain ${T} ${chain}`,
    `add set ${T} dns_${k} { type ipv4_addr; flags timeout; }`,
    `add set ${T} allow_${k} { type ipv4_addr; flags interval; auto-merge; }`,
    `add set ${T} deny_${k} { type ipv4_addr; flags interval; auto-merge; }`,
    `add counter ${T} denied_${k}`,
    `add counter ${T} out_${k}`,
    `add counter ${T} in_${k}`,
    `flush chain ${T} ${chain}`,
    `flush set ${T} allow_${k}`,
    `flush set ${T} deny_${k}`,
  ];
  if (v.flushDns) L.push(`flush set ${T} dns_${k}`);
  const allow = cidrsOf(p.egress.allow);
  const deny = cidrsOf(p.egress.deny);
  if (allow.length) L.push(`add element ${T} allow_${k} ${elements(allow)}`);
  if (deny.length) L.push(`add element ${T} deny_${k} ${elements(deny)}`);
  if (p.group) {
    L.push(`add set ${T} ${groupSet(p.group)} { type ipv4_addr; }`, `add element ${T} ${groupSet(p.group)} { ${v.ip} }`);
  }
  // Concurrent connections: a per-VM conntrack count (a dynamic set keyed by the source, as nft's docs do it).
  L.push(`add set ${T} conns_${k} { type ipv4_addr; flags dynamic; size 16; }`);
  if (v.port) {
    const l3 = v.port.kind === 'tap' ? env.bridge : v.port.ifname;
    L.push(`add rule ${T} ${chain} iifname != ${q(l3)} counter name denied_${k} drop`);
  }
  if (p.limits.connections !== null) L.push(`add rule ${T} ${chain} ct state new add @conns_${k} { ip saddr ct count over ${p.limits.connections} } counter name denied_${k} drop`);
  for (const r of proxyOnly(v.ip, p, `counter name denied_${k} drop`)) L.push(`add rule ${T} ${chain} ${r}`);
  for (const r of decisions(v.ip, p, 'accept', `counter name denied_${k} drop`)) L.push(`add rule ${T} ${chain} ${r}`);
  L.push(
    `add element ${T} bytes_out { ${v.ip} : "out_${k}" }`,
    `add element ${T} bytes_in { ${v.ip} : "in_${k}" }`,
    `add element ${T} from_vm { ${v.ip} : jump ${chain} }`,
  );
  if (v.port?.kind === 'tap') {
    const pc = `port_${k}`;
    const sc = `counter name ${spoofedCounter(v.ip)} drop`;
    L.push(
      `add chain ${B} ${pc}`, `flush chain ${B} ${pc}`, `add counter ${B} ${spoofedCounter(v.ip)}`,
      `add rule ${B} ${pc} ether saddr != ${v.port.mac} ${sc}`,
      `add rule ${B} ${pc} ether type ip ip saddr != ${v.ip} ${sc}`,
      `add rule ${B} ${pc} ether type arp arp saddr ip != ${v.ip} ${sc}`,
      `add rule ${B} ${pc} ether type ip6 drop`,
      `add element ${B} ports { ${q(v.port.ifname)} : jump ${pc} }`,
    );
  }
  // The proxy chain exists only while the VM has a proxy; its map entry goes first so the chain can be deleted.
  const px = vmProxyChain(v.ip);
  L.push(`add chain ${T} ${px}`, `add element ${T} proxy_vm { ${v.ip} : jump ${px} }`, `delete element ${T} proxy_vm { ${v.ip} }`, `delete chain ${T} ${px}`);
  if (p.egress.proxy && env.proxyPort !== null) {
    // In the host's namespace the relay listens on the gateway only (relayAddress), elsewhere on any address.
    const to = env.hostNamespace && env.gateway ? env.gateway : '';
    const tp = `meta l4proto tcp tproxy ip to ${to}:${env.proxyPort} meta mark set ${PROXY_MARK} accept`;
    L.push(`add chain ${T} ${px}`);
    // Only what the policy would let through is proxied; the rest falls through to the filter, which drops it.
    // A group's peers are reached directly (not through the proxy): returned to the filter, which accepts them.
    if (p.group) L.push(`add rule ${T} ${px} ip daddr @${groupSet(p.group)} return`);
    for (const r of decisions(v.ip, p, tp, 'return')) L.push(`add rule ${T} ${px} ${r}`);
    L.push(`add element ${T} proxy_vm { ${v.ip} : jump ${px} }`);
  }
  return `${L.join('\n')}\n`;
}

/** Removes one VM's rules (idempotent: each object is added before it is deleted, in the same transaction). */
export function vmRemoveScript(ip: string, group: string | null, tap?: string): string {
  const k = vmKey(ip);
  const chain = vmChain(ip);
  const px = vmProxyChain(ip);
  const L = [
    `add chain ${T} ${chain}`, `add chain ${T} ${px}`,
    `add element ${T} from_vm { ${ip} : jump ${chain} }`, `delete element ${T} from_vm { ${ip} }`,
    `add element ${T} proxy_vm { ${ip} : jump ${px} }`, `delete element ${T} proxy_vm { ${ip} }`,
    `add counter ${T} out_${k}`, `add counter ${T} in_${k}`,
    `add element ${T} bytes_out { ${ip} : "out_${k}" }`, `delete element ${T} bytes_out { ${ip} }`,
    `add element ${T} bytes_in { ${ip} : "in_${k}" }`, `delete element ${T} bytes_in { ${ip} }`,
    `delete chain ${T} ${chain}`, `delete chain ${T} ${px}`,
  ];
  for (const s of ['dns', 'allow', 'deny']) {
    L.push(`add set ${T} ${s}_${k} { type ipv4_addr; ${s === 'dns' ? 'flags timeout;' : 'flags interval;'} }`, `delete set ${T} ${s}_${k}`);
  }
  L.push(`add set ${T} conns_${k} { type ipv4_addr; flags dynamic; size 16; }`, `delete set ${T} conns_${k}`);
  for (const c of ['denied', 'out', 'in']) L.push(`add counter ${T} ${c}_${k}`, `delete counter ${T} ${c}_${k}`);
  if (group) L.push(`add set ${T} ${groupSet(group)} { type ipv4_addr; }`, `add element ${T} ${groupSet(group)} { ${ip} }`, `delete element ${T} ${groupSet(group)} { ${ip} }`);
  if (tap) {
    const pc = `port_${k}`;
    const sc = spoofedCounter(ip);
    L.push(
      `add chain ${B} ${pc}`, `add element ${B} ports { ${q(tap)} : jump ${pc} }`, `delete element ${B} ports { ${q(tap)} }`, `delete chain ${B} ${pc}`,
      `add counter ${B} ${sc}`, `delete counter ${B} ${sc}`,
    );
  }
  return `${L.join('\n')}\n`;
}

/** Adds addresses a DNS answer gave to a VM's `dns_` set, each for `ttlS` seconds. */
export function dnsAddScript(vmIp: string, addrs: readonly { ip: string; ttlS: number }[]): string {
  const valid = addrs.filter((a) => parseIpv4(a.ip) !== null);
  if (!valid.length) return '';
  // An address already present keeps its old timeout unless it is deleted first; add+delete+add does it in one go.
  const list = valid.map((a) => `${a.ip} timeout ${Math.max(1, Math.min(86_400, Math.round(a.ttlS)))}s`);
  const bare = valid.map((a) => a.ip);
  return [
    `add element ${T} ${dnsSet(vmIp)} ${elements(bare.map((b) => `${b} timeout 1s`))}`,
    `delete element ${T} ${dnsSet(vmIp)} ${elements(bare)}`,
    `add element ${T} ${dnsSet(vmIp)} ${elements(list)}`,
  ].join('\n') + '\n';
}

/** The whole table gone (host network teardown). */
export function removeTableScript(): string {
  return `add table ${T}\ndelete table ${T}\nadd table ${B}\ndelete table ${B}\n`;
}

/** True when an address is in one of the always-blocked ranges (for doctor and the DNS daemon's logs). */
export function isAlwaysBlocked(ip: string): boolean {
  const n = parseIpv4(ip);
  if (n === null) return false;
  return ALWAYS_BLOCKED.some((c) => {
    const p = parseCidr(c);
    return typeof p !== 'string' && ((n & p.mask) >>> 0) === p.network;
  });
}

