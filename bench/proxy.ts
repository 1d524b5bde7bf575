// `npm run bench -- proxy`: Hangar's VNC bridge against websockify, side by side, on loopback, against the same TCP
// backend. Throughput both ways with framebuffer-update-sized chunks (64 KiB and 1 MiB writes), and the latency
// added to small input-event-sized messages (round trip through the proxy minus round trip straight to the
// backend). Each proxy runs in its own process (websockify is Python; the bridge runs in a child Node process with
// the production attachVncBridge, token check included); the backend and the client share this process. A third,
// reference contestant is a plain Node TCP pipe (no WebSocket, no checks): what Node itself costs per byte here.
// Targets: never slower than websockify (throughput ≥ 1.0× in both directions, both chunk sizes), p99 added latency
// < 1 ms.
// HANGAR_BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=DIR" profiles the bridge process; HANGAR_BENCH_VM_READ_BYTES sets
// the bridge's read size from the backend (0: Node's default), to compare.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:http';
import net from 'node:net';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { table } from '../src/cli/command.js';
import { attachVncBridge } from '../src/desktop/bridge.js';
import { createDialer } from '../src/net/dial.js';
import { newViewerSecret, signViewerToken } from '../src/desktop/token.js';
import { HangarMetrics } from '../src/metrics.js';
import { killGroup, which } from '../src/util/exec.js';
import type { BenchFigures, BenchOptions } from './index.js';
import { median } from './_stats.js';

export const summary = 'VNC bridge vs websockify: throughput both ways and added latency on loopback';

const MiB = 1024 * 1024;
const TOTAL = 256 * MiB; // per throughput run
const RUNS = 5; // median of (the machine is noisy: ±25% between single runs)
const PINGS = 1000; // per round
const WARMUP = 100;
const EVENT = Buffer.from([5, 0, 1, 0, 2, 0]); // a PointerEvent-sized message
const OP_TIMEOUT_MS = 60_000;
/** The bridge is never slower than websockify: the lowest hangar/websockify throughput ratio must be at least this. */
const MIN_RATIO = 1.0;

// ---- RFB framing of the bench's client bytes. The bridge parses what a viewer sends (rfb-filter.ts: it drops input
// from viewers not in control and closes on bytes it cannot follow), so every client starts as an RFB client does
// (ProtocolVersion 3.8, security type None, ClientInit) and sends only RFB client messages: the mode header and the
// to-VM bulk travel as ClientCutText, the latency probe is a PointerEvent. Every contestant gets the same bytes.
const RFB_HELLO = Buffer.concat([Buffer.from('RFB 003.008\n'), Buffer.from([1, 1])]);
const MODE_BYTES = 13;
/** ClientCutText header for `n` bytes of text. */
function cutTextHeader(n: number): Buffer {
  const h = Buffer.alloc(8);
  h[0] = 6;
  h.writeUInt32BE(n, 4);
  return h;
}
/** The hello and the mode header (padded to MODE_BYTES) in one ClientCutText: what a connection sends first. */
function modeMessage(mode: Buffer): Buffer {
  const m = Buffer.alloc(MODE_BYTES);
  mode.copy(m);
  return Buffer.concat([RFB_HELLO, cutTextHeader(MODE_BYTES), m]);
}
const HEAD_BYTES = RFB_HELLO.length + 8 + MODE_BYTES;
/** A `chunk`-byte ClientCutText message (the to-VM bulk). */
function bulkMessage(chunk: number): Buffer {
  const b = Buffer.alloc(chunk, 0xa5);
  cutTextHeader(chunk - 8).copy(b);
  return b;
}

// ---- the backend: one TCP server; after the RFB hello, the mode header's first byte picks the mode.
//   'S' u32 chunk u64 total → sends `total` bytes in `chunk`-sized writes
//   'R' u64 total           → reads `total` bytes, then answers 'K'
//   'E'                     → echoes
function startBackend(): Promise<net.Server & { sockets: Set<net.Socket> }> {
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.setNoDelay(true);
    s.on('error', () => undefined);
    let head = Buffer.alloc(0);
    const onHead = (d: Buffer): void => {
      head = Buffer.concat([head, d]);
      if (head.length < HEAD_BYTES) return;
      s.off('data', onHead);
      const m = head.subarray(HEAD_BYTES - MODE_BYTES);
      const mode = String.fromCharCode(m[0]!);
      const rest = head.subarray(HEAD_BYTES);
      if (mode === 'S') sendMode(s, m.readUInt32BE(1), Number(m.readBigUInt64BE(5)));
      else if (mode === 'R') sinkMode(s, Number(m.readBigUInt64BE(1)), rest.length);
      else { s.pipe(s); if (rest.length) s.write(rest); }
    };
    s.on('data', onHead);
  });
  srv.listen(0, '127.0.0.1');
  return once(srv, 'listening').then(() => Object.assign(srv, { sockets }));
}

function sendMode(s: net.Socket, chunk: number, total: number): void {
  const buf = Buffer.alloc(chunk, 0x5a);
  let sent = 0;
  const pump = (): void => {
    while (sent < total) {
      const n = Math.min(chunk, total - sent);
      sent += n;
      if (!s.write(n === chunk ? buf : buf.subarray(0, n))) { s.once('drain', pump); return; }
    }
  };
  pump();
}

function sinkMode(s: net.Socket, total: number, already: number): void {
  let got = already;
  const check = (): void => { if (got >= total) { s.off('data', onData); s.write('K'); } };
  const onData = (d: Buffer): void => { got += d.length; check(); };
  s.on('data', onData);
  check();
}

// ---- proxies
/** Where a contestant is reached: a WebSocket URL (framed) or a TCP port (raw bytes, the backend's protocol). */
type Target = { ws: string } | { tcp: number };

interface Proxy {
  name: string;
  target: Target;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const srv = net.createServer().listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address() as net.AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

// Children still running when this process ends for any reason (an exception, Ctrl-C, a closed stdout) are
// killed on the way out; websockify also exits by itself after a minute without connections.
const live = new Set<ChildProcess>();
const killLive = (): void => { for (const c of live) killGroup(c.pid, 'SIGKILL'); };
const onSignal = (): void => { killLive(); process.exit(130); };

function track(c: ChildProcess): ChildProcess {
  if (live.size === 0) {
    process.once('exit', killLive);
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  }
  live.add(c);
  c.once('exit', () => {
    live.delete(c);
    if (live.size === 0) {
      process.off('exit', killLive);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  });
  return c;
}

async function stopChild(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = once(c, 'exit');
  killGroup(c.pid, 'SIGTERM');
  const t = setTimeout(() => killGroup(c.pid, 'SIGKILL'), 3000);
  await exited;
  clearTimeout(t);
}

async function waitTcp(port: number, child: ChildProcess, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${child.spawnfile} exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** This file run as a child process in `mode`; resolves with the words of its READY line. */
async function startChild(mode: '--bridge-child' | '--pipe-child', backendPort: number): Promise<{ child: ChildProcess; words: string[] }> {
  const nodeArgs = (process.env.HANGAR_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = track(spawn(process.execPath, [...nodeArgs, fileURLToPath(import.meta.url), mode, String(backendPort)], { stdio: ['pipe', 'pipe', 'inherit'], detached: true }));
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`the ${mode} process did not start`)), 15_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) { clearTimeout(t); resolve(out.slice(0, nl)); }
    });
    child.once('exit', (c) => { clearTimeout(t); reject(new Error(`the ${mode} process exited (${c})`)); });
  });
  return { child, words: line.split(' ') };
}

async function startHangar(backendPort: number): Promise<Proxy> {
  const { child, words: [, port, token] } = await startChild('--bridge-child', backendPort);
  return { name: 'hangar', target: { ws: `ws://127.0.0.1:${port}/v1/vms/bench/vnc?token=${token}` }, stop: () => stopChild(child) };
}

async function startPipe(backendPort: number): Promise<Proxy> {
  const { child, words: [, port] } = await startChild('--pipe-child', backendPort);
  return { name: 'node-tcp-pipe', target: { tcp: Number(port) }, stop: () => stopChild(child) };
}

async function startWebsockify(backendPort: number): Promise<Proxy> {
  const port = await freePort();
  const child = track(spawn('websockify', ['--idle-timeout=60', `127.0.0.1:${port}`, `127.0.0.1:${backendPort}`], { stdio: ['ignore', 'ignore', 'ignore'], detached: true }));
  try {
    await waitTcp(port, child);
  } catch (e) {
    await stopChild(child);
    throw e;
  }
  return { name: 'websockify', target: { ws: `ws://127.0.0.1:${port}/` }, stop: () => stopChild(child) };
}

/** The child process side: the production bridge on a bare HTTP server, one VM 'bench' whose desktop is the backend. */
async function bridgeChild(backendPort: number): Promise<void> {
  const secret = newViewerSecret();
  const vmNonce = randomBytes(16);
  const dialer = createDialer({});
  const readBytes = process.env.HANGAR_BENCH_VM_READ_BYTES === undefined ? undefined : Number(process.env.HANGAR_BENCH_VM_READ_BYTES);
  const server = createServer((_req, res) => { res.writeHead(404).end(); });
  attachVncBridge(server, {
    lookup: (id) => (id === 'bench' ? { state: 'ready', viewerNonce: vmNonce } : null),
    rotateNonce: () => false,
    // The controller's own dialer (a direct connection, as on a dedicated host), with the read size the bridge asks
    // (HANGAR_BENCH_VM_READ_BYTES overrides it; 0: Node's default 64 KiB reads).
    dial: (_id, o) => dialer.connect('127.0.0.1', backendPort, readBytes === undefined ? o ?? {} : readBytes > 0 ? { readBufferBytes: readBytes } : {}),
    metrics: new HangarMetrics(),
    secret,
    limits: { viewersPerVm: 64 },
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const token = signViewerToken(secret, 'bench', vmNonce, Date.now() + 3_600_000);
  ready(`${(server.address() as net.AddressInfo).port} ${token}`);
}

/** The reference child: a plain TCP pipe to the backend, flow-controlled like any Node stream pipe. */
async function pipeChild(backendPort: number): Promise<void> {
  const server = net.createServer((c) => {
    const t = net.connect(backendPort, '127.0.0.1');
    c.setNoDelay(true);
    t.setNoDelay(true);
    c.pipe(t).pipe(c);
    c.on('error', () => t.destroy());
    t.on('error', () => c.destroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  ready(String((server.address() as net.AddressInfo).port));
}

function ready(words: string): void {
  process.stdout.write(`READY ${words}\n`);
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0)); // the bench process went away
  process.on('SIGTERM', () => process.exit(0)); // a normal exit (lets --cpu-prof write its profile)
}

// ---- a lean WebSocket client: raw TCP read in 1 MiB pieces into one buffer per connection (net's onread: far fewer
// system calls than Node's default 64 KiB, nothing allocated per read), one handshake, frames parsed by header only
// (payload never copied), and outgoing frames masked once up front and written again and again. It costs next to
// nothing, so the proxy is what the numbers measure (a ws client masking in JavaScript would be the bottleneck for
// both proxies). Every contestant, and the no-proxy run, is read by this same client.
const CLIENT_READ_BYTES = 1024 * 1024;

/** A TCP connection whose reads go to `sink.fn` (a view of the connection's read buffer, valid during the call). */
async function rawConnect(port: number, host: string, sink: { fn: (d: Buffer) => void }): Promise<net.Socket> {
  const s = net.connect({
    port, host,
    onread: { buffer: Buffer.allocUnsafe(CLIENT_READ_BYTES), callback: (n: number, buf: Uint8Array) => { sink.fn(Buffer.from(buf.buffer, buf.byteOffset, n)); return true; } },
  });
  await once(s, 'connect');
  s.setNoDelay(true);
  return s;
}
const MASK = Buffer.from([0x37, 0xfa, 0x21, 0x3d]);

/** One masked binary frame carrying `payload`. */
function frame(payload: Buffer): Buffer {
  const n = payload.length;
  const len = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const f = Buffer.alloc(len + 4 + n);
  f[0] = 0x82; // FIN + binary
  if (n < 126) f[1] = 0x80 | n;
  else if (n < 65536) { f[1] = 0x80 | 126; f.writeUInt16BE(n, 2); }
  else { f[1] = 0x80 | 127; f.writeBigUInt64BE(BigInt(n), 2); }
  MASK.copy(f, len);
  for (let i = 0; i < n; i++) f[len + 4 + i] = payload[i]! ^ MASK[i & 3]!;
  return f;
}

interface Conn {
  s: net.Socket;
  /** Calls `cb(payloadBytes)` for payload as it arrives (frame headers stripped, payload not copied). */
  onPayload(cb: (n: number) => void): void;
}

async function connectWs(url: string): Promise<Conn> {
  const u = new URL(url);
  const sink = { fn: (_d: Buffer): void => undefined };
  const s = await rawConnect(Number(u.port), u.hostname, sink);
  s.write(`GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${Buffer.from('hangar-bench-key').toString('base64')}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: binary\r\n\r\n`);
  let head: Buffer = Buffer.alloc(0);
  // Bytes after the handshake, until the caller attaches its payload counter (copied: the read buffer is reused).
  const early: Buffer[] = [];
  await withTimeout(new Promise<void>((resolve, reject) => {
    sink.fn = (d: Buffer): void => {
      head = Buffer.concat([head, d]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      const status = head.subarray(0, head.indexOf('\r\n')).toString();
      if (!/^HTTP\/1\.1 101 /.test(status)) { reject(new Error(`upgrade refused: ${status}`)); return; }
      early.push(head.subarray(end + 4));
      sink.fn = (more: Buffer): void => { early.push(Buffer.from(more)); };
      resolve();
    };
    s.once('error', reject);
  }), 'handshake');
  let cb: (n: number) => void = () => undefined;
  // Frame parser: header bytes gathered one by one (2–10 per frame), payload only counted.
  const hbuf = Buffer.alloc(10);
  let hn = 0;
  let remaining = 0;
  let counted = true;
  const feed = (d: Buffer): void => {
    let i = 0;
    while (i < d.length) {
      if (remaining > 0) {
        const take = Math.min(remaining, d.length - i);
        remaining -= take;
        i += take;
        if (counted) cb(take);
        continue;
      }
      hbuf[hn++] = d[i++]!;
      if (hn < 2) continue;
      const l7 = hbuf[1]! & 0x7f;
      if (hn < (l7 < 126 ? 2 : l7 === 126 ? 4 : 10)) continue; // server frames carry no mask
      remaining = l7 < 126 ? l7 : l7 === 126 ? hbuf.readUInt16BE(2) : Number(hbuf.readBigUInt64BE(2));
      counted = (hbuf[0]! & 0x0f) !== 0x8; // a close frame's payload is not data
      hn = 0;
    }
  };
  return {
    s,
    onPayload: (f) => {
      cb = f;
      for (const d of early.splice(0)) feed(d);
      sink.fn = feed;
    },
  };
}

function withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, rej) => { t = setTimeout(() => rej(new Error(`${what}: no result within ${OP_TIMEOUT_MS} ms`)), OP_TIMEOUT_MS); })])
    .finally(() => clearTimeout(t));
}

/** A connection to a target whose payload bytes can be sent and counted, whatever the framing. */
interface Link {
  send(b: Buffer): boolean;
  /** A payload buffer for `send`, prepared once (masked WebSocket frame, or the bytes themselves). */
  prepare(payload: Buffer): Buffer;
  onPayload(cb: (n: number) => void): void;
  s: net.Socket;
}

async function link(target: Target): Promise<Link> {
  if ('ws' in target) {
    const c = await connectWs(target.ws);
    return { s: c.s, send: (b) => c.s.write(b), prepare: frame, onPayload: (cb) => c.onPayload(cb) };
  }
  const sink = { fn: (_d: Buffer): void => undefined };
  const s = await rawConnect(target.tcp, '127.0.0.1', sink);
  return { s, send: (b) => s.write(b), prepare: (b) => b, onPayload: (cb) => { sink.fn = (d) => cb(d.length); } };
}

/** MB/s (10^6 bytes) backend → viewer, the backend writing `chunk`-sized buffers. */
async function toViewer(target: Target, chunk: number): Promise<number> {
  const l = await link(target);
  try {
    const head = Buffer.alloc(13);
    head.write('S', 0);
    head.writeUInt32BE(chunk, 1);
    head.writeBigUInt64BE(BigInt(TOTAL), 5);
    const t0 = process.hrtime.bigint();
    let got = 0;
    await withTimeout(new Promise<void>((resolve) => {
      l.onPayload((n) => { got += n; if (got >= TOTAL) resolve(); });
      l.send(l.prepare(modeMessage(head)));
    }), 'to_viewer');
    return TOTAL / 1e6 / (Number(process.hrtime.bigint() - t0) / 1e9);
  } finally {
    l.s.destroy();
  }
}

/** MB/s viewer → backend in `chunk`-sized messages. */
async function toVm(target: Target, chunk: number): Promise<number> {
  const l = await link(target);
  try {
    const head = Buffer.alloc(9);
    head.write('R', 0);
    head.writeBigUInt64BE(BigInt(TOTAL), 1);
    const msg = l.prepare(bulkMessage(chunk));
    const t0 = process.hrtime.bigint();
    await withTimeout(new Promise<void>((resolve, reject) => {
      l.onPayload(() => resolve()); // the backend's 'K'
      l.s.once('close', () => reject(new Error('closed before the backend answered')));
      l.send(l.prepare(modeMessage(head)));
      let sent = 0;
      const pump = (): void => {
        while (sent < TOTAL) {
          sent += chunk;
          if (!l.send(msg)) { l.s.once('drain', pump); return; }
        }
      };
      pump();
    }), 'to_vm');
    return TOTAL / 1e6 / (Number(process.hrtime.bigint() - t0) / 1e9);
  } finally {
    l.s.destroy();
  }
}

/** Round-trip times (ms, sorted) of EVENT-sized messages echoed by the backend. */
async function rtts(target: Target): Promise<number[]> {
  const out: number[] = [];
  const l = await link(target);
  try {
    const msg = l.prepare(EVENT);
    l.send(l.prepare(modeMessage(Buffer.from('E'))));
    await withTimeout(new Promise<void>((resolve) => {
      let got = 0;
      let i = 0;
      let t0 = 0n;
      const next = (): void => { t0 = process.hrtime.bigint(); l.send(msg); };
      l.onPayload((n) => {
        got += n;
        if (got < EVENT.length) return;
        got -= EVENT.length;
        if (i >= WARMUP) out.push(Number(process.hrtime.bigint() - t0) / 1e6);
        if (++i >= WARMUP + PINGS) resolve();
        else next();
      });
      next();
    }), 'latency');
    return out.sort((a, b) => a - b);
  } finally {
    l.s.destroy();
  }
}

const pct = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
const r1 = (n: number): number => Math.round(n * 10) / 10;
const r3 = (n: number): number => Math.round(n * 1000) / 1000;

const THROUGHPUT = ['to_viewer_64k_mbps', 'to_viewer_1m_mbps', 'to_vm_64k_mbps', 'to_vm_1m_mbps'] as const;

export async function run({ json }: BenchOptions): Promise<BenchFigures> {
  const backend = await startBackend();
  const backendPort = (backend.address() as net.AddressInfo).port;
  const proxies: Proxy[] = [];
  const figures: BenchFigures = { total_mib_per_run: TOTAL / MiB, runs: RUNS, pings: PINGS, loadavg_1m_start: r1(loadavg()[0]!) };
  try {
    proxies.push(await startHangar(backendPort));
    if (await which('websockify')) proxies.push(await startWebsockify(backendPort));
    else figures.websockify = 'n/a: websockify is not installed (Debian package websockify)';
    proxies.push(await startPipe(backendPort));
    const direct: Target = { tcp: backendPort };

    // Interleaved rounds (direct, hangar, websockify, direct, …) so that load from elsewhere on the machine
    // falls on every contestant alike; medians over rounds, percentiles over all pings.
    const samples: Record<string, Record<string, number[]>> = Object.fromEntries([...proxies.map((p) => p.name), 'direct'].map((n) => [n, {}]));
    const add = (who: string, what: string, v: number): void => { (samples[who]![what] ??= []).push(v); };
    const rtt: Record<string, number[]> = { direct: [] };
    for (let round = 0; round < RUNS; round++) {
      for (const chunk of [64 * 1024, MiB]) {
        const label = chunk === MiB ? '1m' : '64k';
        add('direct', `to_viewer_${label}_mbps`, await toViewer(direct, chunk));
        add('direct', `to_vm_${label}_mbps`, await toVm(direct, chunk));
        for (const p of proxies) {
          add(p.name, `to_viewer_${label}_mbps`, await toViewer(p.target, chunk));
          add(p.name, `to_vm_${label}_mbps`, await toVm(p.target, chunk));
        }
      }
      rtt.direct!.push(...(await rtts(direct)));
      for (const p of proxies) (rtt[p.name] ??= []).push(...(await rtts(p.target)));
    }
    for (const xs of Object.values(rtt)) xs.sort((a, b) => a - b);
    figures.direct_rtt_p50_ms = r3(pct(rtt.direct!, 50));
    figures.direct_rtt_p99_ms = r3(pct(rtt.direct!, 99));
    for (const m of THROUGHPUT) figures[`direct_${m}`] = r1(median(samples.direct![m]!));
    const results: Record<string, Record<string, number>> = {};
    for (const p of proxies) {
      const r: Record<string, number> = {};
      for (const m of THROUGHPUT) r[m] = r1(median(samples[p.name]![m]!));
      r.added_p50_ms = r3(pct(rtt[p.name]!, 50) - pct(rtt.direct!, 50));
      r.added_p99_ms = r3(pct(rtt[p.name]!, 99) - pct(rtt.direct!, 99));
      results[p.name] = r;
      for (const [k, v] of Object.entries(r)) figures[`${p.name}_${k}`] = v;
    }
    figures.loadavg_1m_end = r1(loadavg()[0]!);

    const h = results.hangar!;
    const w = results.websockify;
    if (w) figures.min_throughput_ratio = r3(Math.min(...THROUGHPUT.map((m) => h[m]! / w[m]!)));
    // No proxy can beat no proxy at all: the backend and the client share this process, so the direct figure is the
    // ceiling of what any contestant can show here. Where it is below websockify's, the target is out of reach for
    // every implementation on this machine, and the bench says so instead of leaving a bare MISSED.
    const unreachable = w ? THROUGHPUT.filter((m) => (figures[`direct_${m}`] as number) < w[m]!) : [];
    for (const m of w ? THROUGHPUT : []) figures[`ceiling_ratio_${m}`] = r3((figures[`direct_${m}`] as number) / w![m]!);
    const throughputOk = figures.min_throughput_ratio === undefined ? 'n/a' : (figures.min_throughput_ratio as number) >= MIN_RATIO ? 'met'
      : `MISSED${unreachable.length ? ` (out of reach here for ${unreachable.join(', ')}: even with no proxy the client gets less than websockify)` : ''}`;
    figures.target_throughput_1x = throughputOk;
    figures.target_p99_added_lt_1ms = h.added_p99_ms! < 1 ? 'met' : 'MISSED';
    if (!json) {
      const pipe = results['node-tcp-pipe']!;
      const rows: (string | number)[][] = [...THROUGHPUT, 'added_p50_ms', 'added_p99_ms'].map((m) => [
        m, h[m]!, w ? w[m]! : 'n/a', w && m.endsWith('mbps') ? `${r1(h[m]! / w[m]!)}x` : '', pipe[m]!,
        w && m.endsWith('mbps') ? `${r1((figures[`direct_${m}`] as number) / w[m]!)}x` : '',
        m.endsWith('mbps') ? (figures[`direct_${m}`] as number) : m === 'added_p50_ms' ? `rtt ${figures.direct_rtt_p50_ms}` : `rtt ${figures.direct_rtt_p99_ms}`,
      ]);
      process.stdout.write(table([`loopback, ${TOTAL / MiB} MiB x ${RUNS} rounds (MB/s: median)`, 'hangar', 'websockify', 'hangar/websockify', 'node tcp pipe', 'no proxy/websockify', 'no proxy'], rows));
      process.stdout.write(`load average ${figures.loadavg_1m_start} → ${figures.loadavg_1m_end} on ${cpus().length} CPUs\n`);
      process.stdout.write(`targets: throughput ≥ ${MIN_RATIO}x websockify both ways: ${throughputOk}; p99 added latency < 1 ms: ${figures.target_p99_added_lt_1ms}\n`);
    }
    return figures;
  } finally {
    for (const p of proxies) await p.stop();
    for (const s of backend.sockets) s.destroy();
    await new Promise((r) => backend.close(r));
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const child = process.argv[2] === '--bridge-child' ? bridgeChild : process.argv[2] === '--pipe-child' ? pipeChild : null;
  child?.(Number(process.argv[3])).catch((e: unknown) => { console.error(e); process.exit(1); });
}
