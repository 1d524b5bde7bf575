// The controller's side of netd (src/net/netd/main.ts): starts it inside the VM namespace (with the relay's
// IP_TRANSPARENT socket, see relay.ts), supervises it (restarted with a backoff when it exits, then told every
// policy again), and talks to it over its Unix socket. Its log lines go to a file in the state directory.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HangarError } from '../../errors.js';
import type { NetConfig } from '../config.js';
import { vmSideOf } from '../clone.js';
import type { NetworkPolicy } from '../egress/policy.js';
import type { DnsStats } from './dns.js';
import type { NetdConfig } from './main.js';
import { netdCommand, type RelayStats } from './relay.js';

export interface NetdStats { dns: DnsStats; relay: RelayStats; resolvers: string[]; relayListening: boolean }

type NetdReply = { id?: number; ok?: boolean; error?: string } & Partial<NetdStats>;

export interface Netd {
  setPolicy(ip: string, policy: NetworkPolicy): Promise<void>;
  forget(ip: string): Promise<void>;
  /** null while it is not running. */
  stats(): Promise<NetdStats | null>;
  readonly running: boolean;
  stop(): Promise<void>;
}

export interface NetdOptions {
  cfg: NetConfig;
  stateDir: string;
  /** Default: the state directory's netd.log. */
  logPath?: string;
  /** Port the DNS listens on (tests may move it); default 53. */
  dnsPort?: number;
}

/**
 * Where netd's DNS and relay listen: in Hangar's own VM namespace (netns mode) on any address; in the host's
 * namespace (bridge mode) on the gateway only, beside whatever the host itself runs on port 53. Pure.
 */
export function netdListenHost(cfg: NetConfig): string {
  return cfg.mode === 'bridge' ? cfg.gateway : '0.0.0.0';
}

const SCRIPT = fileURLToPath(new URL('./main.js', import.meta.url));

export async function startNetd(o: NetdOptions): Promise<Netd> {
  const control = join(o.stateDir, `netd-${vmSideOf(o.cfg) ?? 'host'}.sock`);
  const listen = netdListenHost(o.cfg);
  const conf: NetdConfig = { control, resolvers: o.cfg.egress.resolvers, ...(o.dnsPort ? { dnsPort: o.dnsPort } : {}), ...(listen !== '0.0.0.0' ? { dnsHost: listen } : {}) };
  const policies = new Map<string, NetworkPolicy>();
  const log: WriteStream = createWriteStream(o.logPath ?? join(o.stateDir, 'netd.log'), { flags: 'a', mode: 0o600 });
  let child: ChildProcess | null = null;
  let sock: Socket | null = null;
  let stopped = false;
  let seq = 0;
  let backoff = 250;
  const pending = new Map<number, (r: NetdReply) => void>();

  const request = (req: Record<string, unknown>, timeoutMs = 2000): Promise<NetdReply> => new Promise((resolve, reject) => {
    if (!sock) { reject(new HangarError('NET_SETUP_FAILED', 'netd is not running', {})); return; }
    const id = ++seq;
    const timer = setTimeout(() => { pending.delete(id); reject(new HangarError('NET_SETUP_FAILED', `netd did not answer ${String(req.op)} within ${timeoutMs} ms`, {})); }, timeoutMs);
    pending.set(id, (r) => { clearTimeout(timer); resolve(r); });
    sock.write(`${JSON.stringify({ id, ...req })}\n`);
  });

  const connectControl = (): Promise<void> => new Promise((resolve, reject) => {
    const s = connect(control);
    let buf = '';
    s.setEncoding('utf8');
    s.once('connect', () => { sock = s; resolve(); });
    s.once('error', reject);
    s.on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const r = JSON.parse(buf.slice(0, nl)) as NetdReply;
        buf = buf.slice(nl + 1);
        const f = r.id === undefined ? undefined : pending.get(r.id);
        if (f) { pending.delete(r.id!); f(r); }
      }
    });
    s.on('close', () => { if (sock === s) sock = null; });
  });

  const launch = (): Promise<void> => new Promise((resolve, reject) => {
    const argv = netdCommand(vmSideOf(o.cfg), process.execPath, SCRIPT, JSON.stringify(conf), o.cfg.egress.proxyPort, listen);
    const c = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    child = c;
    let ready = false;
    let err = '';
    c.stdout!.on('data', (d: Buffer) => {
      log.write(d);
      if (!ready && d.toString().includes('"netd.ready"')) {
        ready = true;
        connectControl().then(async () => {
          backoff = 250;
          for (const [ip, p] of policies) await request({ op: 'policy', ip, policy: p });
          resolve();
        }, reject);
      }
    });
    c.stderr!.on('data', (d: Buffer) => { err += d.toString(); log.write(d); });
    c.once('exit', (code) => {
      if (child === c) child = null;
      sock?.destroy();
      sock = null;
      if (!ready) reject(new HangarError('NET_SETUP_FAILED', `netd exited (${code}) before it was ready: ${err.trim().slice(0, 500)}`, { code }));
      if (stopped || !ready) return;
      log.write(`${JSON.stringify({ at: new Date().toISOString(), event: 'netd.exited', code, restartInMs: backoff })}\n`);
      setTimeout(() => { if (!stopped) launch().catch(() => undefined); }, backoff);
      backoff = Math.min(backoff * 2, 5000);
    });
  });

  await launch();
  return {
    get running() { return sock !== null; },
    setPolicy: async (ip, p) => {
      policies.set(ip, p);
      const r = await request({ op: 'policy', ip, policy: p });
      if (r.ok !== true) throw new HangarError('NET_SETUP_FAILED', `netd refused the policy of ${ip}: ${String(r.error)}`, { ip });
    },
    forget: async (ip) => {
      policies.delete(ip);
      if (sock) await request({ op: 'forget', ip });
    },
    stats: async () => {
      if (!sock) return null;
      const r = await request({ op: 'stats' });
      if (r.ok !== true || !r.dns || !r.relay) return null;
      return { dns: r.dns, relay: r.relay, resolvers: r.resolvers ?? [], relayListening: r.relayListening === true };
    },
    stop: async () => {
      stopped = true;
      sock?.destroy();
      const c = child;
      if (c && c.exitCode === null) {
        await new Promise<void>((resolve) => { c.once('exit', () => resolve()); c.kill('SIGTERM'); setTimeout(() => c.kill('SIGKILL'), 2000); });
      }
      log.end();
    },
  };
}
