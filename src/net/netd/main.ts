// The per-namespace network daemon (netd), started by the controller inside the VM namespace
// (src/net/netd/client.ts): the guests' DNS at the gateway (dns.ts), the transparent relay to upstream proxies
// (relay.ts), and one long-lived `nft -i` for the addresses DNS answers open. Controlled over a Unix socket in the
// state directory (Unix sockets cross namespaces) with JSON lines: {id, op: 'policy', ip, policy} | {id, op:
// 'forget', ip} | {id, op: 'stats'} → {id, ok, ...}. Logs JSON lines on stdout (the controller keeps them).
// argv: <config JSON> [relay fd]
import { createServer } from 'node:net';
import { readFileSync, rmSync } from 'node:fs';
import { NftSession } from '../egress/session.js';
import type { NetworkPolicy } from '../egress/policy.js';
import { PolicyDns } from './dns.js';
import { TransparentRelay } from './relay.js';

export interface NetdConfig {
  control: string;
  resolvers: string[];
  dnsPort?: number;
  /** The address DNS listens on: the gateway in the host's namespace (bridge mode), else any. */
  dnsHost?: string;
}

/** The nameservers of a resolv.conf that a namespace can reach (not loopback stubs). Pure. */
export function resolversOf(resolvConf: string): string[] {
  return resolvConf.split('\n').map((l) => /^\s*nameserver\s+(\d+\.\d+\.\d+\.\d+)\s*$/.exec(l)?.[1]).filter((a): a is string => !!a && !a.startsWith('127.'));
}

const log = (line: Record<string, unknown>): void => { process.stdout.write(`${JSON.stringify({ at: new Date().toISOString(), ...line })}\n`); };

async function main(): Promise<void> {
  const cfg = JSON.parse(process.argv[2] ?? '{}') as NetdConfig;
  const relayFd = process.argv[3] === undefined ? null : Number(process.argv[3]);
  let resolvers = cfg.resolvers;
  if (!resolvers.length) {
    try { resolvers = resolversOf(readFileSync('/etc/resolv.conf', 'utf8')); } catch { resolvers = []; }
  }
  const nft = new NftSession(undefined);
  const policies = new Map<string, NetworkPolicy>();
  const dns = new PolicyDns({ resolvers, apply: nft.apply, log });
  await dns.listen(cfg.dnsHost ?? '0.0.0.0', cfg.dnsPort ?? 53);
  const relay = new TransparentRelay({ proxyFor: (ip) => policies.get(ip)?.egress.proxy ?? null, log });
  if (relayFd !== null && Number.isInteger(relayFd)) await relay.listenFd(relayFd);

  rmSync(cfg.control, { force: true });
  const control = createServer((s) => {
    let buf = '';
    s.setEncoding('utf8');
    s.on('error', () => undefined);
    s.on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let req: { id?: number; op?: string; ip?: string; policy?: NetworkPolicy };
        try { req = JSON.parse(line) as typeof req; } catch { s.write(`${JSON.stringify({ ok: false, error: 'not JSON' })}\n`); continue; }
        const reply = (o: Record<string, unknown>): boolean => s.write(`${JSON.stringify({ id: req.id, ...o })}\n`);
        if (req.op === 'policy' && req.ip && req.policy) {
          policies.set(req.ip, req.policy);
          dns.setPolicy(req.ip, req.policy.egress);
          reply({ ok: true });
        } else if (req.op === 'forget' && req.ip) {
          policies.delete(req.ip);
          dns.forget(req.ip);
          reply({ ok: true });
        } else if (req.op === 'stats') {
          reply({ ok: true, dns: dns.stats, relay: relay.stats, resolvers, relayListening: relayFd !== null });
        } else {
          reply({ ok: false, error: `unknown request ${JSON.stringify(req.op)}` });
        }
      }
    });
  });
  await new Promise<void>((resolve, reject) => { control.once('error', reject); control.listen(cfg.control, () => resolve()); });
  log({ event: 'netd.ready', resolvers, relay: relayFd !== null });
  const stop = (): void => { dns.close(); relay.close(); control.close(); nft.close(); rmSync(cfg.control, { force: true }); process.exit(0); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\//, ''))) {
  main().catch((e: unknown) => { log({ event: 'netd.failed', error: (e as Error).message }); process.exit(1); });
}
