// A VM's network policy: its egress (none | internet | allowlist, with allow and deny entries and an optional
// upstream proxy), its group (VMs of one group may reach each other) and its limits. Validated and normalised once
// here (the API and the config use `normalisePolicy`); the nft planner and the DNS daemon take the result and
// decide from it with the pure matchers below (`nameVerdict`).
import { HangarError } from '../../errors.js';
import { parseCidr, parseIpv4 } from '../ipv4.js';

export const EGRESS_MODES = ['none', 'internet', 'allowlist'] as const;
export type EgressMode = (typeof EGRESS_MODES)[number];

/** As a request or the config gives it. */
export interface EgressInput {
  mode?: EgressMode;
  allow?: string[];
  deny?: string[];
  /** "http://user:pass@host:port" or "socks5://user:pass@host:port": the guest's TCP leaves through it. */
  proxy?: string | null;
}

export interface NetworkPolicyInput {
  egress?: EgressInput;
  /** VMs with the same group may reach each other (any port); null: none. */
  group?: string | null;
  limits?: { bandwidthMbit?: number | null; connections?: number | null };
}

export interface ProxySpec {
  kind: 'http' | 'socks5';
  host: string;
  port: number;
  user: string | null;
  pass: string | null;
}

/** One entry of allow/deny, classified. */
export type PolicyEntry = { kind: 'cidr'; cidr: string } | { kind: 'name'; name: string } | { kind: 'suffix'; suffix: string };

export interface EgressPolicy {
  mode: EgressMode;
  allow: string[];
  deny: string[];
  /** The proxy URL as given (it holds credentials: never shown in full, see `redactPolicy`). */
  proxy: string | null;
}

export interface NetworkPolicy {
  egress: EgressPolicy;
  group: string | null;
  limits: { bandwidthMbit: number | null; connections: number | null };
}

export const DEFAULT_POLICY: NetworkPolicy = {
  egress: { mode: 'none', allow: [], deny: [], proxy: null },
  group: null,
  limits: { bandwidthMbit: null, connections: null },
};

const NAME_RE = /^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$/;
const GROUP_RE = /^[a-z0-9][a-z0-9_-]{0,31}$/;
export const MAX_ENTRIES = 256;

function bad(message: string, field: string, extra: Record<string, unknown> = {}): HangarError {
  return new HangarError('INVALID_ARGUMENT', message, { field, ...extra });
}

/** Classifies one allow/deny entry: an IPv4 address or CIDR, a host name, or "*.domain". Throws on anything else. */
export function classifyEntry(text: string, field: string): PolicyEntry {
  if (typeof text !== 'string' || text.length === 0) throw bad(`${field} entries must be non-empty strings`, field);
  const t = text.trim().toLowerCase();
  if (/^[\d.]+(\/\d+)?$/.test(t)) {
    const c = parseCidr(t.includes('/') ? t : `${t}/32`);
    if (typeof c === 'string') throw bad(`${field}: ${c}`, field, { entry: text });
    return { kind: 'cidr', cidr: c.cidr };
  }
  if (t.startsWith('*.')) {
    const suffix = t.slice(2).replace(/\.$/, '');
    if (!NAME_RE.test(suffix)) throw bad(`${field}: ${JSON.stringify(text)} is not "*.domain"`, field, { entry: text });
    return { kind: 'suffix', suffix };
  }
  if (!NAME_RE.test(t)) throw bad(`${field}: ${JSON.stringify(text)} is not an IPv4 CIDR, a host name or "*.domain"`, field, { entry: text });
  return { kind: 'name', name: t.replace(/\.$/, '') };
}

/** Parses and checks a proxy URL. */
export function parseProxy(url: string, field = 'egress.proxy'): ProxySpec {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw bad(`${field} is not a URL (expected http://user:pass@host:port or socks5://…)`, field);
  }
  const kind = u.protocol === 'http:' ? 'http' : u.protocol === 'socks5:' ? 'socks5' : null;
  if (!kind) throw bad(`${field} must be an http:// or socks5:// URL (got ${u.protocol})`, field);
  if (!u.hostname || !u.port) throw bad(`${field} must name a host and a port`, field);
  if (u.pathname !== '' && u.pathname !== '/' || u.search || u.hash) throw bad(`${field} must have no path, query or fragment`, field);
  return {
    kind, host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port),
    user: u.username ? decodeURIComponent(u.username) : null, pass: u.password ? decodeURIComponent(u.password) : null,
  };
}

function entries(list: unknown, field: string): string[] {
  if (list === undefined) return [];
  if (!Array.isArray(list)) throw bad(`${field} must be an array`, field);
  if (list.length > MAX_ENTRIES) throw bad(`${field} has more than ${MAX_ENTRIES} entries`, field);
  const out = list.map((e: unknown, i) => {
    const c = classifyEntry(e as string, `${field}[${i}]`);
    return c.kind === 'cidr' ? c.cidr : c.kind === 'name' ? c.name : `*.${c.suffix}`;
  });
  return [...new Set(out)];
}

function limit(v: unknown, field: string, max: number): number | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) throw bad(`${field} must be an integer 1..${max} or null`, field);
  return v;
}

/** A full policy from an input over a base (the config's default, or the VM's current policy for a PATCH). */
export function normalisePolicy(input: NetworkPolicyInput | undefined, base: NetworkPolicy = DEFAULT_POLICY): NetworkPolicy {
  const i = input ?? {};
  if (typeof i !== 'object' || i === null) throw bad('network must be an object', 'network');
  const e = i.egress ?? {};
  const mode = e.mode ?? base.egress.mode;
  if (!EGRESS_MODES.includes(mode)) throw bad(`egress.mode must be one of ${EGRESS_MODES.join(', ')}`, 'egress.mode');
  const proxy = e.proxy === undefined ? base.egress.proxy : e.proxy;
  if (proxy !== null) parseProxy(proxy);
  const group = i.group === undefined ? base.group : i.group;
  if (group !== null && (typeof group !== 'string' || !GROUP_RE.test(group))) throw bad(`group must match ${GROUP_RE} or be null`, 'group');
  const l = i.limits ?? {};
  return {
    egress: {
      mode,
      allow: e.allow === undefined ? base.egress.allow : entries(e.allow, 'egress.allow'),
      deny: e.deny === undefined ? base.egress.deny : entries(e.deny, 'egress.deny'),
      proxy,
    },
    group,
    limits: {
      bandwidthMbit: l.bandwidthMbit === undefined ? base.limits.bandwidthMbit : limit(l.bandwidthMbit, 'limits.bandwidthMbit', 100_000),
      connections: l.connections === undefined ? base.limits.connections : limit(l.connections, 'limits.connections', 1_000_000),
    },
  };
}

/** The policy as shown (vm show, the API): the proxy's password replaced. */
export function redactPolicy(p: NetworkPolicy): NetworkPolicy {
  if (!p.egress.proxy) return p;
  const u = new URL(p.egress.proxy);
  if (u.password) u.password = '***';
  return { ...p, egress: { ...p.egress, proxy: u.toString().replace(/\/$/, '') } };
}

export function classified(list: readonly string[]): PolicyEntry[] {
  return list.map((e) => classifyEntry(e, 'entry'));
}

export const cidrsOf = (list: readonly string[]): string[] =>
  classified(list).flatMap((e) => (e.kind === 'cidr' ? [e.cidr] : []));

function nameMatches(entry: PolicyEntry, name: string): boolean {
  if (entry.kind === 'name') return entry.name === name;
  if (entry.kind === 'suffix') return name.endsWith(`.${entry.suffix}`);
  return false;
}

export type NameVerdict = { allowed: true } | { allowed: false; reason: 'mode-none' | 'denied' | 'not-allowed' | 'literal' };

/**
 * May a VM with this policy resolve `qname`? Deny entries win; `none` resolves nothing; `internet` everything
 * else; `allowlist` only names its allow entries name. Pure.
 */
export function nameVerdict(p: EgressPolicy, qname: string): NameVerdict {
  const name = qname.toLowerCase().replace(/\.$/, '');
  if (p.mode === 'none') return { allowed: false, reason: 'mode-none' };
  if (classified(p.deny).some((e) => nameMatches(e, name))) return { allowed: false, reason: 'denied' };
  if (p.mode === 'internet') return { allowed: true };
  if (parseIpv4(name) !== null) return { allowed: false, reason: 'literal' };
  return classified(p.allow).some((e) => nameMatches(e, name)) ? { allowed: true } : { allowed: false, reason: 'not-allowed' };
}

/** The allow names of a policy (what DNS answers can open), for deciding whether a change must flush them. */
export function allowNames(p: EgressPolicy): string[] {
  return p.mode === 'allowlist' ? p.allow.filter((a) => classifyEntry(a, 'allow').kind !== 'cidr') : [];
}
