// A test "internet" and FAKE GUESTS, for the egress tests. The world is a namespace this test creates (hgt-w-*)
// joined to Hangar's VM namespace by a veth that is Hangar's uplink there (`hgup0`); it runs test/support/
// world-server.ts (HTTP, HTTPS with a test CA, DNS for *.test, an HTTP CONNECT and a SOCKS5 proxy with
// credentials). Addresses are the documentation nets (198.51.100.0/24 link, 203.0.113.0/24 services), which
// Hangar's filter does not treat as private. A fake guest is a namespace (hgt-g-*) whose veth end is attached to
// Hangar's bridge exactly as a TAP is (enslaved, port-isolated), with the guest's address and gateway.
// Nothing here touches the root namespace; everything goes with destroy().
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { isolatePort } from '../../src/net/egress/nft.js';
import { vmSideOf } from '../../src/net/clone.js';
import { run } from '../../src/util/exec.js';
import type { NetConfig } from '../../src/net/config.js';
import type { WorldServerConfig } from './world-server.js';

export const UPLINK = 'hgup0';
export const WORLD = {
  uplinkAddress: '198.51.100.1', worldLinkAddress: '198.51.100.2',
  web: '203.0.113.10', allowed: '203.0.113.11', other: '203.0.113.12', dns: '203.0.113.53',
  httpProxy: { address: '203.0.113.20', port: 3128, user: 'alice', pass: 's3cret-proxy' },
  socksProxy: { address: '203.0.113.21', port: 1080, user: 'bob', pass: 's0cks-pass' },
} as const;
export const WORLD_NAMES: Record<string, string> = { 'world.test': WORLD.web, 'allowed.test': WORLD.allowed, 'other.test': WORLD.other, 'sub.allowed.test': WORLD.allowed };

/** argv in, exit code and output out: a fake guest's namespace now, the guest agent later. */
export type Runner = (argv: string[], timeoutMs?: number) => Promise<{ code: number | null; stdout: string; stderr: string }>;

export interface World {
  netns: string;
  caCert: string;
  /** The payloads of the datagrams the world's UDP sink (web:9, web:443) received so far. */
  datagrams(): Promise<string[]>;
  destroy(): Promise<void>;
}

function sh(ns: string, args: string[]): Promise<unknown> {
  return run('ip', ['-n', ns, ...args], { timeoutMs: 10_000 });
}

async function makeCerts(dir: string): Promise<{ ca: string; cert: string; key: string }> {
  const f = (n: string): string => join(dir, n);
  const o = (args: string[]): Promise<unknown> => run('openssl', args, { timeoutMs: 30_000 });
  await o(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=Hangar test CA', '-keyout', f('ca.key'), '-out', f('ca.pem')]);
  await o(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=world.test', '-keyout', f('srv.key'), '-out', f('srv.csr')]);
  await run('sh', ['-c', 'printf "subjectAltName=DNS:world.test,DNS:allowed.test,DNS:other.test,IP:203.0.113.10\\n" > "$1"', 'sh', f('ext')], { timeoutMs: 5000 });
  await o(['x509', '-req', '-in', f('srv.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', f('ext'), '-out', f('srv.pem')]);
  return { ca: f('ca.pem'), cert: f('srv.pem'), key: f('srv.key') };
}

/** Creates the world and joins it to `cfg`'s VM namespace as its uplink (default route out of it). */
export async function createWorld(cfg: NetConfig): Promise<World> {
  // The VM side: Hangar's VM namespace (netns mode) or the fake host's (bridge mode); always a test's own.
  const vmNs = vmSideOf(cfg);
  if (!vmNs?.startsWith('hgt-')) throw new Error('the world joins only a test VM namespace');
  const ns = `hgt-w-${randomBytes(3).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'hangar-world-'));
  let child: ChildProcess | undefined;
  const destroy = async (): Promise<void> => {
    child?.kill('SIGKILL');
    await run('ip', ['-n', vmNs, 'link', 'del', UPLINK], { allowFailure: true, timeoutMs: 10_000 });
    await run('ip', ['netns', 'del', ns], { allowFailure: true, timeoutMs: 10_000 });
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await run('ip', ['netns', 'add', ns], { timeoutMs: 10_000 });
    await sh(ns, ['link', 'set', 'lo', 'up']);
    await sh(vmNs, ['link', 'add', UPLINK, 'type', 'veth', 'peer', 'name', 'wup', 'netns', ns]);
    await sh(vmNs, ['addr', 'add', `${WORLD.uplinkAddress}/24`, 'dev', UPLINK]);
    await sh(vmNs, ['link', 'set', UPLINK, 'up']);
    await sh(vmNs, ['route', 'replace', 'default', 'via', WORLD.worldLinkAddress, 'dev', UPLINK]);
    await sh(ns, ['addr', 'add', `${WORLD.worldLinkAddress}/24`, 'dev', 'wup']);
    for (const a of [WORLD.web, WORLD.allowed, WORLD.other, WORLD.dns, WORLD.httpProxy.address, WORLD.socksProxy.address]) await sh(ns, ['addr', 'add', `${a}/32`, 'dev', 'wup']);
    await sh(ns, ['link', 'set', 'wup', 'up']);
    const certs = await makeCerts(dir);
    const conf: WorldServerConfig = {
      web: WORLD.web, names: WORLD_NAMES, dns: WORLD.dns,
      httpProxy: { ...WORLD.httpProxy }, socksProxy: { ...WORLD.socksProxy }, tls: { cert: certs.cert, key: certs.key },
    };
    const script = fileURLToPath(new URL('./world-server.js', import.meta.url));
    child = spawn('ip', ['netns', 'exec', ns, process.execPath, script, JSON.stringify(conf)], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the world server did not start')), 10_000);
      child!.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('world ready')) { clearTimeout(timer); resolve(); } });
      child!.once('exit', (c) => { clearTimeout(timer); reject(new Error(`the world server exited (${c})`)); });
    });
    const datagrams = async (): Promise<string[]> => {
      const r = await run('ip', ['netns', 'exec', ns, 'curl', '-sS', '--noproxy', '*', '-m', '3', `http://${WORLD.web}/udp`], { timeoutMs: 10_000 });
      return (JSON.parse(r.stdout) as { payload: string }[]).map((d) => d.payload);
    };
    return { netns: ns, caCert: certs.ca, datagrams, destroy };
  } catch (e) {
    await destroy();
    throw e;
  }
}

export interface FakeGuest {
  netns: string;
  ip: string;
  /** Its veth end on Hangar's bridge (where a TAP would be). */
  ifname: string;
  /** Its interface's MAC (what a TAP VM's frames carry). */
  mac: string;
  run: Runner;
  destroy(): Promise<void>;
}

let guestSeq = 0;

/**
 * A FAKE GUEST: namespace + veth whose VM-side end is enslaved to the bridge and isolated exactly like a TAP.
 * `ip` must be an address Hangar would hand out (the caller applies its rules like attach does).
 */
export async function createFakeGuest(cfg: NetConfig, ip: string): Promise<FakeGuest> {
  const vmNs = vmSideOf(cfg);
  if (!vmNs?.startsWith('hgt-')) throw new Error('a fake guest joins only a test network');
  const ns = `hgt-g-${randomBytes(3).toString('hex')}`;
  const end = `hgfg${process.pid % 1000}x${guestSeq++}`.slice(0, 15);
  const destroy = async (): Promise<void> => {
    await run('ip', ['-n', vmNs, 'link', 'del', end], { allowFailure: true, timeoutMs: 10_000 });
    await run('ip', ['netns', 'del', ns], { allowFailure: true, timeoutMs: 10_000 });
  };
  try {
    await run('ip', ['netns', 'add', ns], { timeoutMs: 10_000 });
    await sh(ns, ['link', 'set', 'lo', 'up']);
    await sh(vmNs, ['link', 'add', end, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    await sh(vmNs, ['link', 'set', end, 'master', cfg.bridge]);
    await isolatePort(vmNs, end);
    await sh(vmNs, ['link', 'set', end, 'up']);
    await sh(ns, ['addr', 'add', `${ip}/${cfg.prefix}`, 'dev', 'eth0']);
    await sh(ns, ['link', 'set', 'eth0', 'up']);
    await sh(ns, ['route', 'add', 'default', 'via', cfg.gateway]);
    await run('sh', ['-c', 'mkdir -p "/etc/netns/$1" && printf "nameserver %s\\n" "$2" > "/etc/netns/$1/resolv.conf"', 'sh', ns, cfg.gateway], { timeoutMs: 5000 });
  } catch (e) {
    await destroy();
    throw e;
  }
  const link = JSON.parse((await run('ip', ['-n', ns, '-j', 'link', 'show', 'eth0'], { timeoutMs: 10_000 })).stdout) as { address: string }[];
  const mac = link[0]!.address;
  const runner: Runner = async (argv, timeoutMs = 10_000) => {
    // A guest's environment, not the test runner's (a CI host may set http_proxy/no_proxy for itself).
    // HOME has no dotfiles: bash with a socket as stdin (Node's pipes) reads ~/.bashrc, and a host's (pyenv init…)
    // took seconds, so probes timed out.
    const env = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/nonexistent', LANG: 'C.UTF-8' };
    const r = await run('ip', ['netns', 'exec', ns, ...argv], { allowFailure: true, timeoutMs, env });
    return { code: r.code, stdout: r.stdout, stderr: r.stderr };
  };
  return {
    netns: ns, ip, ifname: end, mac, run: runner,
    destroy: async () => { await destroy(); rmSync(`/etc/netns/${ns}`, { recursive: true, force: true }); },
  };
}
