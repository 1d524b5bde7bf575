// The guests' DNS at the gateway, under each VM's policy. A query is decided by its source address (the VM's,
// or a clone's pool address after its namespace's rewrite): refused names get REFUSED and a counted, logged denial;
// allowed ones are forwarded to the upstream resolvers, and before the answer goes out, its A records are added to
// the VM's nft set (`dns_<ip>`) for their TTL, so an allowlisted name opens exactly the addresses it resolved to.
// `dnsDecision` is the pure part; `PolicyDns` the server (UDP and TCP on port 53).
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import dnsPacket from 'dns-packet';
import { dnsAddScript } from '../egress/plan.js';
import { nameVerdict, type EgressPolicy } from '../egress/policy.js';

export type DnsDecision = { action: 'forward'; record: boolean } | { action: 'refuse'; reason: string };

/** What to do with one question from one VM. Pure. `record`: the answer's addresses must go into the VM's set. */
export function dnsDecision(policy: EgressPolicy | undefined, qname: string | undefined): DnsDecision {
  if (!policy) return { action: 'refuse', reason: 'unknown-source' };
  if (!qname) return { action: 'refuse', reason: 'malformed' };
  const v = nameVerdict(policy, qname);
  if (!v.allowed) return { action: 'refuse', reason: v.reason };
  return { action: 'forward', record: policy.mode === 'allowlist' };
}

export interface Denial { at: string; vm: string; name: string; reason: string }

export interface DnsStats {
  queries: number;
  refused: number;
  forwarded: number;
  upstreamFailures: number;
  perVm: Record<string, { queries: number; refused: number }>;
  recentDenials: Denial[];
}

export interface PolicyDnsOptions {
  resolvers: string[];
  /** Applies an nft script (the daemon's NftSession). */
  apply: (script: string) => Promise<void>;
  log?: (line: Record<string, unknown>) => void;
  upstreamTimeoutMs?: number;
}

const MAX_DENIALS = 200;

/** A-record addresses and TTLs in an answer. */
export function answerAddresses(p: dnsPacket.Packet): { ip: string; ttlS: number }[] {
  return (p.answers ?? []).flatMap((a) => (a.type === 'A' && typeof a.data === 'string' ? [{ ip: a.data, ttlS: a.ttl ?? 60 }] : []));
}

export class PolicyDns {
  private readonly policies = new Map<string, EgressPolicy>();
  private udp: UdpSocket | null = null;
  private tcp: Server | null = null;
  readonly stats: DnsStats = { queries: 0, refused: 0, forwarded: 0, upstreamFailures: 0, perVm: {}, recentDenials: [] };

  constructor(private readonly o: PolicyDnsOptions) {}

  setPolicy(ip: string, p: EgressPolicy): void { this.policies.set(ip, p); }
  forget(ip: string): void { this.policies.delete(ip); }

  async listen(host = '0.0.0.0', port = 53): Promise<void> {
    this.udp = createSocket('udp4');
    this.udp.on('message', (msg, rinfo) => {
      void this.handle(msg, rinfo.address).then((out) => { if (out) this.udp?.send(out, rinfo.port, rinfo.address); });
    });
    await new Promise<void>((resolve, reject) => { this.udp!.once('error', reject); this.udp!.bind(port, host, () => resolve()); });
    this.tcp = createServer((s) => this.serveTcp(s));
    await new Promise<void>((resolve, reject) => { this.tcp!.once('error', reject); this.tcp!.listen(port, host, () => resolve()); });
  }

  close(): void { this.udp?.close(); this.tcp?.close(); }

  private serveTcp(s: Socket): void {
    let buf = Buffer.alloc(0);
    s.setTimeout(10_000, () => s.destroy());
    s.on('error', () => undefined);
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        void this.handle(msg, (s.remoteAddress ?? '').replace(/^::ffff:/, '')).then((out) => {
          if (!out || s.destroyed) return;
          const len = Buffer.alloc(2);
          len.writeUInt16BE(out.length);
          s.write(Buffer.concat([len, out]));
        });
      }
    });
  }

  private refuse(q: dnsPacket.Packet, vm: string, name: string, reason: string): Buffer {
    this.stats.refused++;
    const per = (this.stats.perVm[vm] ??= { queries: 0, refused: 0 });
    per.refused++;
    const d: Denial = { at: new Date().toISOString(), vm, name, reason };
    this.stats.recentDenials.push(d);
    if (this.stats.recentDenials.length > MAX_DENIALS) this.stats.recentDenials.shift();
    this.o.log?.({ event: 'dns.refused', ...d });
    // RCODE 5 (REFUSED) in the low bits of the flags.
    return dnsPacket.encode({ id: q.id, type: 'response', flags: dnsPacket.RECURSION_AVAILABLE | (q.flags ?? 0) & dnsPacket.RECURSION_DESIRED | 5, questions: q.questions ?? [] });
  }

  /** One query in, the answer out (null: drop it). */
  async handle(msg: Buffer, src: string): Promise<Buffer | null> {
    let q: dnsPacket.Packet;
    try { q = dnsPacket.decode(msg); } catch { return null; }
    if (q.type !== 'query') return null;
    this.stats.queries++;
    const per = (this.stats.perVm[src] ??= { queries: 0, refused: 0 });
    per.queries++;
    const name = q.questions?.[0]?.name;
    const d = dnsDecision(this.policies.get(src), q.questions?.length === 1 ? name : undefined);
    if (d.action === 'refuse') return this.refuse(q, src, name ?? '', d.reason);
    const answer = await this.forward(msg);
    if (!answer) {
      this.stats.upstreamFailures++;
      return dnsPacket.encode({ id: q.id, type: 'response', flags: dnsPacket.RECURSION_AVAILABLE | 2, questions: q.questions ?? [] }); // SERVFAIL
    }
    this.stats.forwarded++;
    if (d.record) {
      let parsed: dnsPacket.Packet | null = null;
      try { parsed = dnsPacket.decode(answer); } catch { parsed = null; }
      const addrs = parsed ? answerAddresses(parsed) : [];
      // The addresses are open before the guest learns them: no race between the answer and the first SYN.
      if (addrs.length) {
        try {
          await this.o.apply(dnsAddScript(src, addrs));
        } catch (e) {
          this.o.log?.({ event: 'dns.record_failed', vm: src, name, error: (e as Error).message });
          return dnsPacket.encode({ id: q.id, type: 'response', flags: dnsPacket.RECURSION_AVAILABLE | 2, questions: q.questions ?? [] });
        }
      }
    }
    return answer;
  }

  /** Asks the resolvers in turn over UDP; null when none answers. */
  private async forward(msg: Buffer): Promise<Buffer | null> {
    for (const r of this.o.resolvers) {
      const got = await new Promise<Buffer | null>((resolve) => {
        const s = createSocket('udp4');
        const timer = setTimeout(() => { s.close(); resolve(null); }, this.o.upstreamTimeoutMs ?? 2000);
        s.on('message', (m) => { clearTimeout(timer); s.close(); resolve(m); });
        s.on('error', () => { clearTimeout(timer); s.close(); resolve(null); });
        s.send(msg, 53, r);
      });
      if (got) return got;
    }
    return null;
  }
}
