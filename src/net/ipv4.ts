// IPv4 arithmetic on 32-bit unsigned integers. Pure: no host access. Only what the network planner needs.

const OCTET = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/** Parses dotted-quad IPv4 ("10.0.0.1") into an unsigned 32-bit integer; null when malformed. */
export function parseIpv4(text: string): number | null {
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((p) => OCTET.test(p))) return null;
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
}

export function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** The netmask of a prefix length as an unsigned integer (prefix 0 → 0). */
export function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

export interface Ipv4Cidr {
  /** Canonical "a.b.c.d/p" with host bits zero. */
  cidr: string;
  network: number;
  prefix: number;
  mask: number;
  broadcast: number;
}

/**
 * Parses "a.b.c.d/p". Host bits must be zero: "10.0.0.1/24" is refused rather than guessed at, because it may
 * equally mean "the gateway is 10.0.0.1". Returns an explanation string on failure.
 */
export function parseCidr(text: string): Ipv4Cidr | string {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(text.trim());
  if (!m) return `not an IPv4 CIDR (expected a.b.c.d/prefix): ${JSON.stringify(text)}`;
  const addr = parseIpv4(m[1]!);
  const prefix = Number(m[2]);
  if (addr === null) return `not an IPv4 address: ${JSON.stringify(m[1])}`;
  if (prefix > 32) return `prefix length must be 0..32 (got ${prefix})`;
  const mask = maskOf(prefix);
  const network = (addr & mask) >>> 0;
  if (network !== addr) return `host bits are set in ${text} (did you mean ${formatIpv4(network)}/${prefix}?)`;
  const broadcast = (network | (~mask >>> 0)) >>> 0;
  return { cidr: `${formatIpv4(network)}/${prefix}`, network, prefix, mask, broadcast };
}

export function cidrContains(c: Ipv4Cidr, ip: number): boolean {
  return ((ip & c.mask) >>> 0) === c.network;
}

export function cidrsOverlap(a: Ipv4Cidr, b: Ipv4Cidr): boolean {
  return cidrContains(a, b.network) || cidrContains(b, a.network);
}
