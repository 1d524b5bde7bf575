// The doctor's thin probes: each runs one read-only command (or reads one file) in the right namespace and returns
// what it saw as plain data, plus what it ran. No judging here (judges.ts), and nothing here changes the host.
import { constants } from 'node:fs';
import { open, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { readBanner, type Dialer } from '../net/dial.js';
import { describe, run, which, type RunResult } from '../util/exec.js';
import { probeAccelFacts, PVM_MODULE, DEV_KVM, qemuKvmCheck, type AccelFacts, type KvmCheck } from '../vmm/accel.js';
import { QEMU_BINARY } from '../vmm/qemu/driver.js';
import { isVmmProcess } from '../vmm/registry.js';

/** A probe's answer: what ran (argv or file, as people read it) and the data, or why there is none. */
export interface Probed<T> {
  ran: string[];
  value: T | null;
  error?: string;
}

const TIMEOUT_MS = 5000;

/** Runs a read-only command; a failure to run becomes `error`, a non-zero exit is the caller's to judge. */
async function exec(cmd: string, args: string[], netns?: string, input?: string): Promise<{ ran: string; r: RunResult | null; error?: string }> {
  const argv = netns ? ['ip', 'netns', 'exec', netns, cmd, ...args] : [cmd, ...args];
  try {
    const r = await run(cmd, args, { netns, allowFailure: true, timeoutMs: TIMEOUT_MS, ...(input !== undefined ? { input } : {}) });
    return { ran: describe(argv), r };
  } catch (e) {
    return { ran: describe(argv), r: null, error: (e as Error).message };
  }
}

function failure(r: RunResult | null, error?: string): string {
  if (!r) return error ?? 'did not run';
  return r.stderr.trim().split('\n').slice(-2).join(' ') || `exit ${r.code}`;
}

// ---- iproute2

export interface LinkFact {
  ifname: string;
  flags: string[];
  operstate?: string;
  master?: string;
  kind?: string;
  address?: string;
  /** IPv4 addresses as CIDR strings. */
  addrs: string[];
  /** Bridge-level br_netfilter switch (ip -d: linkinfo.info_data.nf_call_iptables), bridges only. */
  nfCallIptables?: boolean;
}

interface IpAddrJson {
  ifname: string;
  flags?: string[];
  operstate?: string;
  master?: string;
  address?: string;
  linkinfo?: { info_kind?: string; info_data?: { nf_call_iptables?: number } };
  addr_info?: { family: string; local: string; prefixlen: number }[];
}

/** `ip -d -j addr show` → links with their IPv4 addresses. Pure. */
export function parseIpAddr(json: string): LinkFact[] {
  const list = JSON.parse(json.trim() || '[]') as IpAddrJson[];
  return list.map((l) => ({
    ifname: l.ifname,
    flags: l.flags ?? [],
    ...(l.operstate ? { operstate: l.operstate } : {}),
    ...(l.master ? { master: l.master } : {}),
    ...(l.linkinfo?.info_kind ? { kind: l.linkinfo.info_kind } : {}),
    ...(l.address ? { address: l.address } : {}),
    addrs: (l.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`),
    ...(l.linkinfo?.info_data?.nf_call_iptables !== undefined ? { nfCallIptables: l.linkinfo.info_data.nf_call_iptables === 1 } : {}),
  }));
}

const ipArgs = (ns: string | undefined, args: string[]): string[] => (ns ? ['-n', ns, ...args] : args);

async function ipJson<T>(ns: string | undefined, args: string[], parse: (s: string) => T): Promise<Probed<T>> {
  const { ran, r, error } = await exec('ip', ipArgs(ns, args));
  if (!r || r.code !== 0) return { ran: [ran], value: null, error: failure(r, error) };
  try {
    return { ran: [ran], value: parse(r.stdout) };
  } catch (e) {
    return { ran: [ran], value: null, error: `unparsable output: ${(e as Error).message}` };
  }
}

export const probeLinks = (ns: string | undefined): Promise<Probed<LinkFact[]>> => ipJson(ns, ['-d', '-j', 'addr', 'show'], parseIpAddr);

export interface RouteFact {
  dst: string;
  gateway?: string;
  dev?: string;
}

export const probeRoutes = (ns: string | undefined): Promise<Probed<RouteFact[]>> =>
  ipJson(ns, ['-j', 'route', 'show'], (s) => JSON.parse(s.trim() || '[]') as RouteFact[]);

/** `ip route get ADDR`: the interface the kernel would use (reverse-path checks). */
export const probeRouteGet = (ns: string | undefined, addr: string): Promise<Probed<RouteFact | null>> =>
  ipJson(ns, ['-j', 'route', 'get', addr], (s) => (JSON.parse(s.trim() || '[]') as RouteFact[])[0] ?? null);

export interface NeighFact {
  dst: string;
  dev?: string;
  lladdr?: string;
  state: string[];
}

export const probeNeigh = (ns: string | undefined, dev: string): Promise<Probed<NeighFact[]>> =>
  ipJson(ns, ['-j', 'neigh', 'show', 'dev', dev], (s) => (JSON.parse(s.trim() || '[]') as NeighFact[]).map((n) => ({ ...n, dev: n.dev ?? dev, state: n.state ?? [] })));

export interface FdbFact {
  mac: string;
  ifname: string;
  master?: string;
  state: string;
  flags: string[];
}

/** Learned and static entries of the bridge's forwarding database (which port each MAC was seen on). */
export async function probeFdb(ns: string | undefined, bridge: string): Promise<Probed<FdbFact[]>> {
  const args = [...(ns ? ['-n', ns] : []), '-j', 'fdb', 'show', 'br', bridge];
  const { ran, r, error } = await exec('bridge', args);
  if (!r || r.code !== 0) return { ran: [ran], value: null, error: failure(r, error) };
  const list = JSON.parse(r.stdout.trim() || '[]') as (Partial<FdbFact> & { mac: string; ifname: string })[];
  return { ran: [ran], value: list.map((e) => ({ mac: e.mac.toLowerCase(), ifname: e.ifname, ...(e.master ? { master: e.master } : {}), state: e.state ?? '', flags: e.flags ?? [] })) };
}

export const probeNetns = async (): Promise<Probed<string[]>> =>
  ipJson(undefined, ['-j', 'netns', 'list'], (s) => (JSON.parse(s.trim() || '[]') as { name: string }[]).map((n) => n.name));

// ---- sysctl, netfilter

/** `sysctl KEY…` inside a namespace: "key = value" per known key (unknown keys are simply absent). */
export async function probeSysctl(ns: string | undefined, keys: string[]): Promise<Probed<Record<string, string>>> {
  const { ran, r, error } = await exec('sysctl', keys, ns);
  if (!r) return { ran: [ran], value: null, error: failure(r, error) };
  const out: Record<string, string> = {};
  for (const line of r.stdout.split('\n')) {
    const m = /^(\S+)\s*=\s*(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!;
  }
  // sysctl exits non-zero for one unknown key but prints the others; nothing printed means it could not run there.
  if (!Object.keys(out).length && r.code !== 0) return { ran: [ran], value: null, error: failure(r, error) };
  return { ran: [ran], value: out };
}

export interface IptablesFacts {
  /** Policy of the chain (ACCEPT, DROP), null when the table is not there. */
  policy: string | null;
  /** -A rules as printed by iptables -S. */
  rules: string[];
}

/** `iptables -S FORWARD`: the filter table's FORWARD chain in that namespace (iptables is per namespace). */
export async function probeForwardChain(ns: string | undefined): Promise<Probed<IptablesFacts>> {
  const { ran, r, error } = await exec('iptables', ['-S', 'FORWARD'], ns);
  if (!r || r.code !== 0) return { ran: [ran], value: null, error: failure(r, error) };
  return { ran: [ran], value: parseIptablesChain(r.stdout, 'FORWARD') };
}

/** Pure: `iptables -S CHAIN` output. */
export function parseIptablesChain(text: string, chain: string): IptablesFacts {
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
  const pol = lines.find((l) => l.startsWith(`-P ${chain} `));
  return { policy: pol ? pol.split(/\s+/)[2] ?? null : null, rules: lines.filter((l) => l.startsWith(`-A ${chain} `)) };
}

// ---- active probes

export type PingOutcome = 'reply' | 'no-reply' | 'unreachable' | 'error';

export interface PingFacts {
  outcome: PingOutcome;
  /** The line that says what happened (reply, statistics, or the error). */
  detail: string;
}

/** Pure: reads ping's exit code and output. */
export function parsePing(code: number | null, stdout: string, stderr: string): PingFacts {
  const lines = `${stdout}\n${stderr}`.split('\n').map((l) => l.trim()).filter(Boolean);
  const reply = lines.find((l) => /bytes from .*icmp_seq/.test(l));
  const unreach = lines.find((l) => /Unreachable|unreachable|No route|Network is unreachable/.test(l));
  const stats = lines.find((l) => /packets transmitted/.test(l));
  if (code === 0 && reply) return { outcome: 'reply', detail: reply };
  if (unreach) return { outcome: 'unreachable', detail: unreach };
  if (code === 1) return { outcome: 'no-reply', detail: stats ?? 'no reply' };
  return { outcome: 'error', detail: lines.at(-1) ?? `exit ${code}` };
}

/** One ICMP echo with a 1 s deadline, from inside NS (undefined: where Hangar runs). */
export async function probePing(ns: string | undefined, ip: string): Promise<Probed<PingFacts>> {
  const { ran, r, error } = await exec('ping', ['-n', '-c', '1', '-W', '1', ip], ns);
  if (!r) return { ran: [ran], value: null, error: failure(r, error) };
  return { ran: [ran], value: parsePing(r.code, r.stdout, r.stderr) };
}

export type TcpOutcome = 'banner' | 'refused' | 'timeout' | 'unreachable' | 'closed' | 'error';

export interface TcpFacts {
  outcome: TcpOutcome;
  /** The first bytes the server sent (RFB banner), when it answered. */
  banner?: string;
  detail: string;
}

/** Pure: what a dial error means (the direct and relay dialers word them differently). */
export function classifyDialError(message: string): TcpOutcome {
  if (/ECONNREFUSED/.test(message)) return 'refused';
  if (/EHOSTUNREACH|ENETUNREACH|No route/i.test(message)) return 'unreachable';
  if (/did not answer within|no connection within|ETIMEDOUT|timed? ?out/i.test(message)) return 'timeout';
  if (/closed without a banner|sent nothing/.test(message)) return 'closed';
  return 'error';
}

/** Connects to the VM's port through the manager's dialer (the same path the desktop proxy uses) and reads the banner. */
export async function probeTcp(dialer: Dialer, ip: string, port: number, timeoutMs = 2000): Promise<Probed<TcpFacts>> {
  const ran = [`connect ${ip}:${port} from the host side (${dialer.via} dialer), read the banner`];
  try {
    const banner = await readBanner(dialer, ip, port, timeoutMs);
    return { ran, value: { outcome: 'banner', banner, detail: `answered ${JSON.stringify(banner.trim().slice(0, 16))}` } };
  } catch (e) {
    const msg = (e as Error).message;
    return { ran, value: { outcome: classifyDialError(msg), detail: msg } };
  }
}

// ---- host files

export interface TunFacts {
  exists: boolean;
  charDevice: boolean;
  openable: boolean;
  error?: string;
}

export async function probeTun(path = '/dev/net/tun'): Promise<Probed<TunFacts>> {
  const ran = [`stat ${path}`, `open ${path} read-write`];
  const st = await stat(path).catch(() => null);
  if (!st) return { ran, value: { exists: false, charDevice: false, openable: false } };
  try {
    const fh = await open(path, constants.O_RDWR);
    await fh.close();
    return { ran, value: { exists: true, charDevice: st.isCharacterDevice(), openable: true } };
  } catch (e) {
    return { ran, value: { exists: true, charDevice: st.isCharacterDevice(), openable: false, error: (e as NodeJS.ErrnoException).code ?? (e as Error).message } };
  }
}

/** The same facts the QEMU driver decides from, including whether KVM really works where the device opens. */
export async function probeAccel(): Promise<Probed<AccelFacts>> {
  const kvmCheck = async (): Promise<KvmCheck> => {
    const bin = await which(QEMU_BINARY);
    return bin ? qemuKvmCheck(bin) : { works: null, detail: `${QEMU_BINARY} is not on PATH` };
  };
  return { ran: [`open ${DEV_KVM} read-write`, `stat ${PVM_MODULE}`, 'read HANGAR_ACCEL', `${QEMU_BINARY} -accel kvm (where ${DEV_KVM} opens)`], value: await probeAccelFacts({ kvmCheck }) };
}

/** /sys/module/br_netfilter (a module) or /proc/sys/net/bridge in NS (built in or loaded): bridged IPv4 can reach iptables. */
export async function probeBrNetfilter(sysctl: Record<string, string> | null): Promise<Probed<{ module: boolean; active: boolean }>> {
  const module = await stat('/sys/module/br_netfilter').then(() => true, () => false);
  return { ran: ['stat /sys/module/br_netfilter'], value: { module, active: module || sysctl?.['net.bridge.bridge-nf-call-iptables'] !== undefined } };
}

export interface ProcFacts {
  pid: number;
  argv: string[];
}

/** Processes whose argv[0] is a registered VMM's (src/vmm/registry.ts: qemu-system-*, firecracker, jailer). */
export async function probeVmmProcesses(): Promise<Probed<ProcFacts[]>> {
  const out: ProcFacts[] = [];
  for (const d of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(d)) continue;
    const raw = await readFile(join('/proc', d, 'cmdline')).catch(() => null);
    if (!raw || raw.length === 0) continue;
    const argv = raw.toString('utf8').split('\0');
    if (argv.at(-1) === '') argv.pop();
    if (isVmmProcess(argv[0] ?? '')) out.push({ pid: Number(d), argv });
  }
  return { ran: ['read /proc/*/cmdline (VMM processes)'], value: out };
}

export async function probeDir(path: string): Promise<Probed<string[]>> {
  try {
    return { ran: [`list ${path}`], value: await readdir(path) };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? { ran: [`list ${path}`], value: [] } : { ran: [`list ${path}`], value: null, error: code ?? (e as Error).message };
  }
}

// ---- disk images (read-only, never mounted)

export interface FsckFacts {
  code: number | null;
  summary: string;
  output: string;
}

/** `e2fsck -fn`: a full check that opens the image read-only and answers no to every fix. */
export async function probeFsck(path: string): Promise<Probed<FsckFacts>> {
  const { ran, r, error } = await exec('e2fsck', ['-fn', path]);
  if (!r) return { ran: [ran], value: null, error: failure(r, error) };
  const lines = `${r.stdout}\n${r.stderr}`.split('\n').map((l) => l.trim()).filter(Boolean);
  const summary = lines.find((l) => /\d+\/\d+ files/.test(l)) ?? lines.at(-1) ?? '';
  return { ran: [ran], value: { code: r.code, summary, output: lines.slice(-20).join('\n') } };
}

export interface DebugfsFacts {
  /** Command → its stdout block. */
  out: Map<string, string>;
  /** stderr lines (debugfs names the path in each error). */
  errors: string[];
}

/**
 * Runs several debugfs requests in one read-only open (-c: catastrophic mode, no bitmaps; commands on stdin).
 * Each command's output is the stdout between its echoed "debugfs: CMD" line and the next.
 */
export async function probeDebugfs(path: string, commands: string[]): Promise<Probed<DebugfsFacts>> {
  const { ran: argv, r, error } = await exec('debugfs', ['-c', '-f', '-', path], undefined, commands.join('\n') + '\n');
  const ran = [`${argv} with requests: ${commands.join('; ')}`];
  if (!r) return { ran, value: null, error: failure(r, error) };
  return { ran, value: parseDebugfs(r.stdout, r.stderr) };
}

/** Pure: splits debugfs -f output at its echoed command lines. */
export function parseDebugfs(stdout: string, stderr: string): DebugfsFacts {
  const out = new Map<string, string>();
  let cur: string | null = null;
  let buf: string[] = [];
  const flush = (): void => { if (cur !== null) out.set(cur, buf.join('\n')); };
  for (const line of stdout.split('\n')) {
    const m = /^debugfs: (.*)$/.exec(line);
    if (m) { flush(); cur = m[1]!.trim(); buf = []; } else if (cur !== null) buf.push(line);
  }
  flush();
  return { out, errors: stderr.split('\n').map((l) => l.trim()).filter((l) => l && !/^debugfs \d/.test(l)) };
}

// ---- files

export async function probeFile(path: string, maxBytes = 64 * 1024 * 1024): Promise<Probed<string>> {
  try {
    const st = await stat(path);
    if (st.size > maxBytes) {
      // Console logs of a reboot loop grow: the tail is what describes the last boot.
      const fh = await open(path, 'r');
      try {
        const buf = Buffer.alloc(maxBytes);
        await fh.read(buf, 0, maxBytes, st.size - maxBytes);
        return { ran: [`read ${path} (last ${maxBytes} bytes)`], value: buf.toString('utf8') };
      } finally {
        await fh.close();
      }
    }
    return { ran: [`read ${path}`], value: await readFile(path, 'utf8') };
  } catch (e) {
    return { ran: [`read ${path}`], value: null, error: (e as NodeJS.ErrnoException).code ?? (e as Error).message };
  }
}

export interface FileFact {
  /** Size in bytes; absent when the file is not there (missing) or could not be examined (error). */
  size?: number;
  missing?: boolean;
  error?: string;
}

/** stat of each path (files a VM needs: kernel, disk, saved state), never read. */
export async function probeFiles(paths: readonly string[]): Promise<Probed<Map<string, FileFact>>> {
  const out = new Map<string, FileFact>();
  await Promise.all([...new Set(paths)].map(async (p) => {
    try {
      out.set(p, { size: (await stat(p)).size });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      out.set(p, code === 'ENOENT' || code === 'ENOTDIR' ? { missing: true } : { error: code ?? (e as Error).message });
    }
  }));
  return { ran: paths.length ? [`stat ${[...new Set(paths)].join(' ')}`] : [], value: out };
}
