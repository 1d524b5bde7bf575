// The transparent relay for VMs with an upstream proxy (`egress.proxy`). nft TPROXY delivers a proxied VM's TCP
// to this listener without rewriting it, so each accepted socket's local address IS the destination the guest
// asked for (Node cannot read SO_ORIGINAL_DST, and a DNAT would lose it for IP literals and for every name not
// resolved through us; SNI/Host sniffing works only for TLS and HTTP). The listening socket needs IP_TRANSPARENT,
// which Node cannot set: a tiny perl helper (perl-base, always on Debian) creates it and hands its fd over
// (`netdCommand`). The relay then opens the same destination through the VM's upstream proxy (HTTP CONNECT or
// SOCKS5, with the proxy's credentials, which never enter the guest) and splices the two.
import { connect, createServer, type Server, type Socket } from 'node:net';
import { SocksClient } from 'socks';
import { parseProxy, type ProxySpec } from '../egress/policy.js';

export interface RelayStats {
  connections: number;
  active: number;
  failures: number;
  /** The last refusal or failure of an upstream proxy, per VM. */
  lastFailure: Record<string, { at: string; proxy: string; error: string }>;
}

export interface RelayOptions {
  /** The VM's proxy by its address (null: not proxied; the connection is closed). */
  proxyFor(vmIp: string): string | null;
  log?: (line: Record<string, unknown>) => void;
  connectTimeoutMs?: number;
}

/** Opens host:port through an HTTP proxy with CONNECT; resolves with the tunnel once the proxy says 200. */
export function httpConnect(p: ProxySpec, host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: p.host, port: p.port });
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`proxy ${p.host}:${p.port} did not answer within ${timeoutMs} ms`)); }, timeoutMs);
    let head = Buffer.alloc(0);
    s.once('connect', () => {
      const auth = p.user !== null ? `Proxy-Authorization: Basic ${Buffer.from(`${p.user}:${p.pass ?? ''}`).toString('base64')}\r\n` : '';
      s.write(`CONNECT ${host}:${port} HTTP/1.1\r\nHost: ${host}:${port}\r\n${auth}\r\n`);
    });
    const onData = (d: Buffer): void => {
      head = Buffer.concat([head, d]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) { if (head.length > 16_384) { s.destroy(); reject(new Error('proxy sent an oversized answer')); } return; }
      clearTimeout(timer);
      s.off('data', onData);
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(head.subarray(0, end).toString('latin1'));
      if (!status || status[1] !== '200') {
        s.destroy();
        reject(new Error(`proxy refused CONNECT ${host}:${port}: ${head.subarray(0, Math.min(end, 200)).toString('latin1').split('\r\n')[0]}`));
        return;
      }
      const rest = head.subarray(end + 4);
      if (rest.length) s.unshift(rest);
      resolve(s);
    };
    s.on('data', onData);
    s.once('error', (e) => { clearTimeout(timer); reject(new Error(`proxy ${p.host}:${p.port}: ${e.message}`)); });
  });
}

export async function socksConnect(p: ProxySpec, host: string, port: number, timeoutMs: number): Promise<Socket> {
  const { socket } = await SocksClient.createConnection({
    proxy: { host: p.host, port: p.port, type: 5, ...(p.user !== null ? { userId: p.user, password: p.pass ?? '' } : {}) },
    command: 'connect', destination: { host, port }, timeout: timeoutMs,
  });
  return socket;
}

export class TransparentRelay {
  readonly stats: RelayStats = { connections: 0, active: 0, failures: 0, lastFailure: {} };
  private server: Server | null = null;

  constructor(private readonly o: RelayOptions) {}

  /** Listens on an inherited (IP_TRANSPARENT) socket. */
  async listenFd(fd: number): Promise<void> {
    this.server = createServer({ pauseOnConnect: true }, (c) => { void this.serve(c); });
    await new Promise<void>((resolve, reject) => { this.server!.once('error', reject); this.server!.listen({ fd }, () => resolve()); });
  }

  close(): void { this.server?.close(); }

  private async serve(c: Socket): Promise<void> {
    const vm = (c.remoteAddress ?? '').replace(/^::ffff:/, '');
    const host = (c.localAddress ?? '').replace(/^::ffff:/, '');
    const port = c.localPort ?? 0;
    c.on('error', () => undefined);
    const url = this.o.proxyFor(vm);
    if (!url) { c.destroy(); return; }
    const p = parseProxy(url);
    this.stats.connections++;
    let up: Socket;
    try {
      const t = this.o.connectTimeoutMs ?? 10_000;
      up = p.kind === 'http' ? await httpConnect(p, host, port, t) : await socksConnect(p, host, port, t);
    } catch (e) {
      this.stats.failures++;
      const error = (e as Error).message;
      this.stats.lastFailure[vm] = { at: new Date().toISOString(), proxy: `${p.kind}://${p.host}:${p.port}`, error };
      this.o.log?.({ event: 'proxy.failed', vm, destination: `${host}:${port}`, proxy: `${p.kind}://${p.host}:${p.port}`, error });
      c.resetAndDestroy();
      return;
    }
    this.stats.active++;
    up.setNoDelay(true);
    c.setNoDelay(true);
    up.on('error', () => c.destroy());
    c.on('close', () => up.destroy());
    up.on('close', () => { c.destroy(); });
    c.once('close', () => { this.stats.active--; });
    c.pipe(up);
    up.pipe(c);
    c.resume();
  }
}

/**
 * The argv that starts the daemon inside `netns` with the relay's IP_TRANSPARENT listening socket as fd 3 (perl
 * creates it, keeps it open across exec with $^F, and execs node). Pure.
 */
export function netdCommand(netns: string | undefined, node: string, script: string, configJson: string, relayPort: number, relayHost = '0.0.0.0'): string[] {
  if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(relayHost)) throw new Error(`not an IPv4 address: ${relayHost}`);
  const perl = [
    'use Socket;',
    '$^F = 10;',
    'socket(my $s, PF_INET, SOCK_STREAM, 0) or die "socket: $!";',
    'setsockopt($s, SOL_SOCKET, SO_REUSEADDR, 1) or die "reuseaddr: $!";',
    'setsockopt($s, 0, 19, 1) or die "IP_TRANSPARENT: $!";',
    `bind($s, pack_sockaddr_in(${relayPort}, inet_aton("${relayHost}"))) or die "bind: $!";`,
    'listen($s, 1024) or die "listen: $!";',
    'exec { $ARGV[0] } @ARGV, fileno($s) or die "exec: $!";',
  ].join(' ');
  const argv = ['perl', '-e', perl, node, script, configJson];
  return netns ? ['ip', 'netns', 'exec', netns, ...argv] : argv;
}
