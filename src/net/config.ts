// Hangar's host network configuration, normalised and validated once. Everything downstream (planner, executor)
// takes a NetConfig and never re-checks it.
import { HangarError } from '../errors.js';
import { DEFAULT_POLICY, normalisePolicy, type NetworkPolicy, type NetworkPolicyInput } from './egress/policy.js';
import { cidrContains, cidrsOverlap, formatIpv4, parseCidr, parseIpv4, type Ipv4Cidr } from './ipv4.js';

export type NetMode = 'bridge' | 'netns';

export interface NetConfigInput {
  /** 'bridge': bridge and TAPs in the host namespace (real hosts). 'netns': all VM networking in a namespace Hangar owns. */
  mode: NetMode;
  /** The VM namespace (netns mode only). */
  netns?: string;
  bridge: string;
  /** The VM subnet, e.g. "10.77.0.0/24". */
  cidr: string;
  /** The bridge address and the guests' gateway; default: the first host address. */
  gateway?: string;
  /** Addresses in the subnet never handed to a VM. */
  reserved?: string[];
  /** netns mode: the veth link that lets the host reach the VM subnet through the namespace. */
  hostLink?: { cidr?: string; hostIfname?: string; nsIfname?: string };
  /** NAT to the outside world: not implemented, must stay off. */
  nat?: boolean;
  /** Where "the host" side lives; undefined = the real root namespace. Tests always set it. */
  hostNetns?: string;
  /** TAP names are this prefix + a per-VM index; at most 8 characters so the index has room. */
  tapPrefix?: string;
  /** Guests' way out (src/net/egress/): the uplink, the resolvers the gateway's DNS forwards to, the default policy. */
  egress?: EgressConfigInput;
}

export interface EgressConfigInput {
  /** An interface where the bridge lives (the VM namespace in netns mode) that leads out; null: no internet. */
  uplink?: string | null;
  /** Upstream DNS resolvers (IPv4); default: the nameservers of /etc/resolv.conf. */
  resolvers?: string[];
  /** The policy of a VM whose create request names none. */
  default?: NetworkPolicyInput;
  /** The transparent relay's port in the VM namespace (proxied TCP is delivered there). */
  proxyPort?: number;
}

export interface EgressConfig {
  uplink: string | null;
  resolvers: string[];
  default: NetworkPolicy;
  proxyPort: number;
}

export const DEFAULT_PROXY_PORT = 15001;

export interface HostLink {
  cidr: string;
  prefix: number;
  hostIfname: string;
  nsIfname: string;
  hostAddress: string;
  nsAddress: string;
}

export interface NetConfig {
  mode: NetMode;
  netns?: string;
  bridge: string;
  cidr: string;
  network: string;
  prefix: number;
  netmask: string;
  broadcast: string;
  gateway: string;
  reserved: string[];
  hostLink?: HostLink;
  nat: false;
  hostNetns?: string;
  tapPrefix: string;
  egress: EgressConfig;
  /** Who may open the VMs' TAPs: the unprivileged user VMMs run as (set by the controller, not the config file). */
  tapOwner?: { uid: number; gid: number };
}

/** `ip tuntap add` arguments that hand a TAP to its VMM's user (a process without CAP_NET_ADMIN may then attach). */
export function tapOwnerArgs(owner: { uid: number; gid: number } | undefined): string[] {
  return owner ? ['user', String(owner.uid), 'group', String(owner.gid)] : [];
}

export const DEFAULT_TAP_PREFIX = 'hgtap';
/** Link-local, so it cannot clash with a routed network on the host. */
export const DEFAULT_HOST_LINK_CIDR = '169.254.77.0/30';
export const DEFAULT_HOST_IFNAME = 'hgveth-h';
export const DEFAULT_NS_IFNAME = 'hgveth-n';

const IFNAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;
const NETNS_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const TAP_PREFIX_RE = /^[a-z][a-z0-9-]{0,7}$/;

function bad(message: string, field: string): HangarError {
  return new HangarError('NET_INVALID_CONFIG', message, { field });
}

/** A Linux interface name: at most 15 characters (IFNAMSIZ - 1), no '/', ':', ',' or spaces. */
export function isIfname(value: unknown): value is string {
  return typeof value === 'string' && IFNAME_RE.test(value);
}

export function validIfname(value: unknown, field: string): string {
  if (!isIfname(value)) {
    throw bad(`${field} must be an interface name matching ${IFNAME_RE} (at most 15 characters; got ${JSON.stringify(value)})`, field);
  }
  return value;
}

export function validNetnsName(value: unknown, field: string): string {
  if (typeof value !== 'string' || !NETNS_RE.test(value)) {
    throw bad(`${field} must be a namespace name matching ${NETNS_RE} (got ${JSON.stringify(value)})`, field);
  }
  return value;
}

function cidrOf(value: unknown, field: string): Ipv4Cidr {
  if (typeof value !== 'string') throw bad(`${field} must be an IPv4 CIDR string`, field);
  const c = parseCidr(value);
  if (typeof c === 'string') throw bad(`${field}: ${c}`, field);
  return c;
}

function hostAddressIn(c: Ipv4Cidr, value: unknown, field: string): number {
  const ip = typeof value === 'string' ? parseIpv4(value) : null;
  if (ip === null) throw bad(`${field} must be an IPv4 address (got ${JSON.stringify(value)})`, field);
  if (!cidrContains(c, ip)) throw bad(`${field} ${value} is outside ${c.cidr}`, field);
  if (ip === c.network || ip === c.broadcast) throw bad(`${field} ${value} is the network or broadcast address of ${c.cidr}`, field);
  return ip;
}

export function normaliseNetConfig(input: NetConfigInput): NetConfig {
  if (input === null || typeof input !== 'object') throw bad('network configuration must be an object', 'net');
  const mode = input.mode;
  if (mode !== 'bridge' && mode !== 'netns') throw bad(`mode must be 'bridge' or 'netns' (got ${JSON.stringify(mode)})`, 'mode');
  if (input.nat) {
    throw bad('NAT is not implemented: Hangar never changes the host firewall; set nat: false and route to the VM subnet instead', 'nat');
  }
  const bridge = validIfname(input.bridge, 'bridge');
  const c = cidrOf(input.cidr, 'cidr');
  // A gateway plus at least one guest needs two host addresses; /31 and /32 have no broadcast semantics to skip.
  if (c.prefix < 8 || c.prefix > 30) throw bad(`cidr prefix must be /8 to /30 (got /${c.prefix})`, 'cidr');
  const gateway = input.gateway === undefined ? c.network + 1 : hostAddressIn(c, input.gateway, 'gateway');
  const reserved = [...new Set((input.reserved ?? []).map((r, i) => hostAddressIn(c, r, `reserved[${i}]`)))].sort((a, b) => a - b);
  const tapPrefix = input.tapPrefix ?? DEFAULT_TAP_PREFIX;
  if (typeof tapPrefix !== 'string' || !TAP_PREFIX_RE.test(tapPrefix)) {
    throw bad(`tapPrefix must match ${TAP_PREFIX_RE} (got ${JSON.stringify(tapPrefix)})`, 'tapPrefix');
  }
  const hostNetns = input.hostNetns === undefined ? undefined : validNetnsName(input.hostNetns, 'hostNetns');

  const cfg: NetConfig = {
    mode,
    bridge,
    cidr: c.cidr,
    network: formatIpv4(c.network),
    prefix: c.prefix,
    netmask: formatIpv4(c.mask),
    broadcast: formatIpv4(c.broadcast),
    gateway: formatIpv4(gateway),
    reserved: reserved.map(formatIpv4),
    nat: false,
    tapPrefix,
    egress: normaliseEgress(input.egress),
  };
  if (hostNetns !== undefined) cfg.hostNetns = hostNetns;

  if (mode === 'bridge') {
    if (input.netns !== undefined) throw bad("netns is only used in mode 'netns'", 'netns');
    if (input.hostLink !== undefined) throw bad("hostLink is only used in mode 'netns'", 'hostLink');
    return cfg;
  }

  cfg.netns = validNetnsName(input.netns, 'netns');
  if (cfg.netns === hostNetns) throw bad('netns and hostNetns must differ', 'netns');
  const hl = input.hostLink ?? {};
  const lc = cidrOf(hl.cidr ?? DEFAULT_HOST_LINK_CIDR, 'hostLink.cidr');
  if (lc.prefix > 30) throw bad(`hostLink.cidr needs two host addresses (/30 or larger; got /${lc.prefix})`, 'hostLink.cidr');
  if (cidrsOverlap(lc, c)) throw bad(`hostLink.cidr ${lc.cidr} overlaps the VM subnet ${c.cidr}`, 'hostLink.cidr');
  const hostIfname = validIfname(hl.hostIfname ?? DEFAULT_HOST_IFNAME, 'hostLink.hostIfname');
  const nsIfname = validIfname(hl.nsIfname ?? DEFAULT_NS_IFNAME, 'hostLink.nsIfname');
  if (hostIfname === nsIfname) throw bad('hostLink.hostIfname and hostLink.nsIfname must differ', 'hostLink');
  if (nsIfname === bridge) throw bad('hostLink.nsIfname must differ from the bridge name', 'hostLink.nsIfname');
  cfg.hostLink = {
    cidr: lc.cidr,
    prefix: lc.prefix,
    hostIfname,
    nsIfname,
    hostAddress: formatIpv4(lc.network + 1),
    nsAddress: formatIpv4(lc.network + 2),
  };
  return cfg;
}

function normaliseEgress(e: EgressConfigInput | undefined): EgressConfig {
  const i = e ?? {};
  const uplink = i.uplink === undefined || i.uplink === null ? null : validIfname(i.uplink, 'egress.uplink');
  const resolvers = i.resolvers ?? [];
  if (!Array.isArray(resolvers) || resolvers.some((r) => typeof r !== 'string' || parseIpv4(r) === null)) {
    throw bad('egress.resolvers must be a list of IPv4 addresses', 'egress.resolvers');
  }
  const port = i.proxyPort ?? DEFAULT_PROXY_PORT;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw bad('egress.proxyPort must be a port number', 'egress.proxyPort');
  let def: NetworkPolicy;
  try {
    def = normalisePolicy(i.default, DEFAULT_POLICY);
  } catch (err) {
    throw bad(`egress.default: ${(err as Error).message}`, 'egress.default');
  }
  return { uplink, resolvers: [...resolvers], default: def, proxyPort: port };
}
