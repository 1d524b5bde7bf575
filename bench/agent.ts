// `npm run bench -- agent`: hangar-agent against qemu-guest-agent in the same guest, one run, over the same kind of
// channel (a virtio-serial port each: org.hangar.guest and org.qemu.guest_agent.0 on one device): exec round trip of
// `true` (p50, p99), stream throughput (stdout of head -c N /dev/zero), file upload and download MB/s. qemu-guest-agent
// is driven as its users do: guest-exec + guest-exec-status polling (no sleep between polls: its best case),
// guest-file-open/write/read/close with base64 chunks. Real QEMU under TCG in namespaces the bench makes and removes
// (root). The peer's column is empty when the image has no qemu-ga (images built before src/image/plan.ts added it).
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Agents } from '../src/agent/agents.js';
import type { AgentSession } from '../src/agent/port.js';
import { table } from '../src/cli/command.js';
import { run as runCmd } from '../src/util/exec.js';
import { normalizeCreate } from '../src/vm/input.js';
import { QemuDriver } from '../src/vmm/qemu/driver.js';
import { makeAgentImage, type AgentImage } from '../test/support/agent-image.js';
import { createTestController, imageSkipReason, type TestController } from '../test/support/controller.js';
import type { BenchFigures, BenchOptions } from './index.js';
import { percentile, round } from './_stats.js';

export const summary = 'Guest agents: exec round trip (p50/p99), stream and file MB/s, hangar-agent vs qemu-guest-agent in one guest';

const RTT_RUNS = Number(process.env.HANGAR_BENCH_RUNS ?? 50);
const FILE_MIB = Number(process.env.HANGAR_BENCH_FILE_MIB ?? 64);
const STREAM_MIB = Number(process.env.HANGAR_BENCH_STREAM_MIB ?? 64);
const CHUNK = 1024 * 1024;
const QGA_MAX_OUTPUT_MIB = 16;

const mbps = (bytes: number, ms: number): number => round(bytes / 1e6 / (ms / 1000), 1);

async function drain(r: Readable, text = false): Promise<number> {
  let n = 0;
  let t = '';
  for await (const c of r) { n += (c as Buffer).length; if (text) t += (c as Buffer).toString(); }
  return text ? Number(t) : n;
}

/** p50 of N timings of `f` (ms). */
async function p50(n: number, f: () => Promise<unknown>): Promise<number> {
  const t: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await f();
    t.push(performance.now() - t0);
  }
  return round(percentile(t, 50), 2);
}

/**
 * Where an exec's time goes, measured in the guest: the channel's own round trip (PING), and what starting and
 * reaping `/bin/true` costs the guest with no agent involved (a shell loop timed by the guest's clock). Both agents
 * pay the spawn; neither can go below it.
 */
async function floors(s: AgentSession): Promise<Record<string, number>> {
  const ping = await p50(RTT_RUNS, () => s.ping());
  const h = await s.exec({ user: 'root', cmd: 'a=$(date +%s%N); i=0; while [ $i -lt 50 ]; do /bin/true; i=$((i+1)); done; b=$(date +%s%N); echo $(( (b-a)/50000 ))' });
  const [out] = await Promise.all([drain(h.stdout, true), drain(h.stderr), h.exit]);
  return { hangar_ping_p50_ms: ping, guest_spawn_true_us: Number(String(out).trim()) };
}

async function hangarSide(s: AgentSession): Promise<Record<string, number>> {
  const rtt: number[] = [];
  for (let i = 0; i < RTT_RUNS; i++) {
    const t0 = performance.now();
    const h = await s.exec({ argv: ['true'] });
    await Promise.all([drain(h.stdout), drain(h.stderr), h.exit]);
    rtt.push(performance.now() - t0);
  }
  let t0 = performance.now();
  const h = await s.exec({ argv: ['head', '-c', String(STREAM_MIB * CHUNK), '/dev/zero'] });
  const [streamed] = await Promise.all([drain(h.stdout), drain(h.stderr), h.exit]);
  const streamMs = performance.now() - t0;
  const block = Buffer.alloc(CHUNK, 0x5a);
  let n = 0;
  t0 = performance.now();
  await s.writeFile('/tmp/bench-hangar.bin', new Readable({ read() { this.push(n++ < FILE_MIB ? block : null); } }));
  const upMs = performance.now() - t0;
  t0 = performance.now();
  const { stream } = await s.readFile('/tmp/bench-hangar.bin');
  const down = await drain(stream);
  const downMs = performance.now() - t0;
  await s.rm('/tmp/bench-hangar.bin');
  return {
    rtt_p50_ms: round(percentile(rtt, 50), 2), rtt_p99_ms: round(percentile(rtt, 99), 2),
    stream_mbps: mbps(streamed, streamMs), upload_mbps: mbps(FILE_MIB * CHUNK, upMs), download_mbps: mbps(down, downMs),
  };
}

/** A minimal qemu-guest-agent client: one JSON command per line, one answer per line. */
class Qga {
  private buf = '';
  private waiters: ((v: { return?: unknown; error?: { desc: string } }) => void)[] = [];
  /** While syncing: every answer but the sync's own is stale (or the parser's complaint about the 0xff) and dropped. */
  private syncId: number | null = null;
  private constructor(private readonly sock: Socket) {
    sock.setEncoding('latin1'); // the answers are ASCII JSON (base64 data); 0xff sentinels stay one char
    sock.on('data', (d: string) => {
      this.buf += d;
      for (let i = this.buf.indexOf('\n'); i >= 0; i = this.buf.indexOf('\n')) {
        const line = this.buf.slice(0, i).replace(/^\xff+/, '');
        this.buf = this.buf.slice(i + 1);
        if (!line.trim()) continue;
        const v = JSON.parse(line) as { return?: unknown; error?: { desc: string } };
        if (this.syncId !== null) { if (v.return !== this.syncId) continue; this.syncId = null; }
        this.waiters.shift()?.(v);
      }
    });
  }
  static async open(path: string): Promise<Qga> {
    const sock = await new Promise<Socket>((res, rej) => { const s = connect(path, () => res(s)); s.once('error', rej); });
    const q = new Qga(sock);
    // 0xff resets the agent's JSON parser (it answers a parse error), then guest-sync-delimited echoes the id
    // after a 0xff of its own: everything before that answer is dropped.
    q.syncId = 4242;
    sock.write(Buffer.from([0xff]));
    await q.call('guest-sync-delimited', { id: 4242 });
    return q;
  }
  call<T>(execute: string, args?: object): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.waiters.push((v) => (v.error ? reject(new Error(`${execute}: ${v.error.desc}`)) : resolve(v.return as T)));
      this.sock.write(JSON.stringify({ execute, ...(args ? { arguments: args } : {}) }) + '\n');
    });
  }
  async exec(path: string, args: string[]): Promise<{ out: number }> {
    const { pid } = await this.call<{ pid: number }>('guest-exec', { path, arg: args, 'capture-output': true });
    for (;;) {
      const s = await this.call<{ exited: boolean; 'out-data'?: string }>('guest-exec-status', { pid });
      if (s.exited) return { out: s['out-data'] ? Buffer.from(s['out-data'], 'base64').length : 0 };
    }
  }
  close(): void { this.sock.destroy(); }
}

async function qgaSide(q: Qga): Promise<Record<string, number>> {
  const ping = await p50(RTT_RUNS, () => q.call('guest-ping'));
  const rtt: number[] = [];
  for (let i = 0; i < RTT_RUNS; i++) {
    const t0 = performance.now();
    await q.exec('/bin/true', []);
    rtt.push(performance.now() - t0);
  }
  let t0 = performance.now();
  // qemu-ga keeps at most 16 MiB of a command's output (GUEST_EXEC_MAX_OUTPUT) and hands it over only at exit.
  const { out } = await q.exec('/usr/bin/head', ['-c', String(Math.min(STREAM_MIB, QGA_MAX_OUTPUT_MIB) * CHUNK), '/dev/zero']);
  const streamMs = performance.now() - t0;
  const b64 = Buffer.alloc(CHUNK, 0x5a).toString('base64');
  t0 = performance.now();
  const w = await q.call<number>('guest-file-open', { path: '/tmp/bench-qga.bin', mode: 'w' });
  for (let i = 0; i < FILE_MIB; i++) await q.call('guest-file-write', { handle: w, 'buf-b64': b64 });
  await q.call('guest-file-close', { handle: w });
  const upMs = performance.now() - t0;
  t0 = performance.now();
  const r = await q.call<number>('guest-file-open', { path: '/tmp/bench-qga.bin', mode: 'r' });
  let down = 0;
  for (;;) {
    const c = await q.call<{ count: number; eof: boolean }>('guest-file-read', { handle: r, count: CHUNK });
    down += c.count;
    if (c.eof || c.count === 0) break;
  }
  await q.call('guest-file-close', { handle: r });
  const downMs = performance.now() - t0;
  return {
    rtt_p50_ms: round(percentile(rtt, 50), 2), rtt_p99_ms: round(percentile(rtt, 99), 2),
    stream_mbps: mbps(out, streamMs), upload_mbps: mbps(FILE_MIB * CHUNK, upMs), download_mbps: mbps(down, downMs),
    ping_p50_ms: ping,
  };
}

export async function run({ json }: BenchOptions): Promise<BenchFigures> {
  const skip = process.getuid?.() !== 0 ? 'needs root' : await imageSkipReason();
  if (skip) {
    if (!json) process.stdout.write(`skipped: ${skip}\n`);
    return { skipped: skip };
  }
  let img: AgentImage | undefined;
  let t: TestController | undefined;
  const figures: BenchFigures = { rtt_runs: RTT_RUNS, file_mib: FILE_MIB, stream_mib: STREAM_MIB };
  try {
    img = await makeAgentImage('desktop', FILE_MIB * 3);
    const image = img.image;
    const hasQga = /Type: regular/.test((await runCmd('debugfs', ['-R', 'stat /usr/sbin/qemu-ga', image.rootfsPath], { allowFailure: true, timeoutMs: 60_000 })).stdout);
    t = await createTestController({ net: { cidr: '10.233.0.0/29' }, manager: { images: { resolve: async () => image, list: async () => [image] }, drivers: { qemu: new QemuDriver({ guestAgent: true, qemuGuestAgent: true }) } } });
    const tc = t;
    const vm = await (await tc.manager.create(normalizeCreate({ profile: 'desktop' }))).ready;
    const agents = new Agents({ channel: (id) => tc.manager.guestChannel(id) });
    const session = await agents.session(vm.id, { timeoutMs: 120_000 });
    const mine: Record<string, number> = await hangarSide(session);
    const floor = await floors(session);
    mine.ping_p50_ms = floor.hangar_ping_p50_ms!;
    figures.guest_spawn_true_ms = round(floor.guest_spawn_true_us! / 1000, 2);
    let peer: Record<string, number> | null = null;
    if (hasQga) {
      // hangar-init does not start qemu-ga: start it (as root) on its port, found by name as hangar-agent finds its own.
      const start = await session.exec({ user: 'root', background: true, cmd: 'for p in /sys/class/virtio-ports/*; do [ "$(cat $p/name)" = org.qemu.guest_agent.0 ] && exec /usr/sbin/qemu-ga -m virtio-serial -p /dev/${p##*/}; done; exit 1' });
      start.detach();
      await new Promise((r) => setTimeout(r, 2000));
      if (!json) process.stdout.write(`hangar-agent: ${JSON.stringify(mine)}\n`);
      const q = await Qga.open(join(vm.runDir, 'qga.sock'));
      try { peer = await qgaSide(q); } finally { q.close(); }
    }
    agents.closeAll();
    for (const [k, v] of Object.entries(mine)) figures[`hangar_${k}`] = v;
    for (const [k, v] of Object.entries(peer ?? {})) figures[`qga_${k}`] = v;
    figures.qga_available = hasQga;
    if (peer) {
      figures.rtt_p50_ratio = round(mine.rtt_p50_ms! / peer.rtt_p50_ms!, 3);
      figures.upload_ratio = round(mine.upload_mbps! / peer.upload_mbps!, 2);
      figures.download_ratio = round(mine.download_mbps! / peer.download_mbps!, 2);
      figures.goal_met = figures.rtt_p50_ratio <= 0.5 && figures.upload_ratio >= 2 && figures.download_ratio >= 2;
    }
    if (!json) {
      const rows = Object.keys(mine).map((k) => [k, String(mine[k]), peer ? String(peer[k]) : '- (no qemu-ga in the image)', peer ? String(round(mine[k]! / peer[k]!, 2)) : '-']);
      process.stdout.write(table(['figure', 'hangar-agent', 'qemu-guest-agent', 'hangar/qga'], rows));
      process.stdout.write(`\nthe guest itself spawns and reaps /bin/true in ${figures.guest_spawn_true_ms} ms (a shell loop, no agent): the floor of both round trips\n`);
      process.stdout.write(`\ngoal: exec p50 ≤ 0.5× qga, file MB/s ≥ 2× qga: ${peer ? (figures.goal_met ? 'met' : 'NOT met') : 'not measured'}\n`);
    }
  } finally {
    await t?.destroy();
    img?.remove();
  }
  return figures;
}
