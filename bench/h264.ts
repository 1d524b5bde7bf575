// `npm run bench -- h264`: H.264 over WebSocket (#18 point 4) against tuned VNC, side by side in one run on one VM
// of the desktop image, in real Chromium. VNC: Hangar's stack as shipped (the image's x11vnc, the controller's
// bridge, its viewer page). H.264: the host-side transcoder (src/desktop/h264) connected to the same x11vnc, ffmpeg
// encoding every update, noVNC (the same bundled one) decoding encoding 50 with WebCodecs, on a page and WebSocket
// this bench serves. Measured per side, as bench/desktop does (its measure loop is copied here, not imported:
// importing bench/desktop.ts would start its own child): key-to-pixel p50/p99 (a key dispatched on noVNC's canvas →
// the first animation frame whose cursor cell differs), frames/s, kbit/s and kbit per frame while an xterm scrolls
// and while a window moves, host CPU (controller or transcoder + ffmpeg, and Chromium). Root: the bench makes a test
// network (namespaces it removes) and runs its half in the fake host's namespace. Skips without ffmpeg.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { loadControllerConfig } from '../src/api/config.js';
import { startController, type Controller } from '../src/api/controller.js';
import { table } from '../src/cli/command.js';
import { encoderSkipReason } from '../src/desktop/h264/encoder.js';
import { startH264PageServer, type H264PageServer } from '../src/desktop/h264/page-server.js';
import { VNC_PORT } from '../src/guest-protocol.js';
import type { NetConfig } from '../src/net/config.js';
import { normalizeCreate } from '../src/vm/input.js';
import { imageSkipReason } from '../test/support/controller.js';
import { createTestNetwork } from '../test/support/net.js';
import { launchBrowser, skipUnlessChromium, type Browser } from '../test/support/viewer.js';
import type { BenchFigures, BenchOptions } from './index.js';
import { percentile, round } from './_stats.js';
import { PAGE_PROBE } from './_desktop-page.js';

export const summary = 'H.264 over WebSocket (host transcoder + WebCodecs) vs tuned VNC: key-to-pixel, fps, kbps, CPU';

const KEYS = Number(process.env.HANGAR_BENCH_KEYS ?? 60);
const ANIMATE_MS = Number(process.env.HANGAR_BENCH_ANIMATE_MS ?? 10_000);
const CRF = Number(process.env.HANGAR_BENCH_H264_CRF ?? 26);
// The same scenes as bench/desktop (copied).
const SCROLLER = { geometry: '80x20+660+420', region: { x: 670, y: 440, w: 460, h: 250 } };
const MOVER = {
  geometry: '40x8+600+420',
  loop: 'i=0; while :; do printf "\\033[3;%d;%dt" $((500 + (i % 60) * 8)) $((380 + (i % 20) * 6)); i=$((i + 1)); sleep 0.03; done',
  region: { x: 480, y: 360, w: 800, h: 440 },
};
const shq = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
const TICK_MS = 1000 / 100;

let quiet = false;
const say = (msg: string): void => { if (!quiet) process.stderr.write(`h264: ${msg}\n`); };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Box { x: number; y: number; w: number; h: number }
type Side = Record<string, number>;
type Animation = 'scroll' | 'move';

// ---------------------------------------------------------------- CPU (this process's descendants), as bench/desktop

function procTicks(): Map<number, { ppid: number; comm: string; ticks: number }> {
  const out = new Map<number, { ppid: number; comm: string; ticks: number }>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = readFileSync(`/proc/${d}/stat`, 'utf8');
      const close = s.lastIndexOf(')');
      const f = s.slice(close + 2).split(' ');
      out.set(Number(d), { ppid: Number(f[1]), comm: s.slice(s.indexOf('(') + 1, close), ticks: Number(f[11]) + Number(f[12]) });
    } catch { /* gone */ }
  }
  return out;
}

function descendantsCpu(): Record<'chromium' | 'ffmpeg' | 'qemu', number> {
  const t = procTicks();
  const mine = new Set<number>([process.pid]);
  for (let grew = true; grew;) {
    grew = false;
    for (const [pid, p] of t) if (!mine.has(pid) && mine.has(p.ppid)) { mine.add(pid); grew = true; }
  }
  const sum = { chromium: 0, ffmpeg: 0, qemu: 0 };
  for (const pid of mine) {
    const p = t.get(pid);
    if (!p || pid === process.pid) continue;
    const kind = /chrom/i.test(p.comm) ? 'chromium' : /ffmpeg/i.test(p.comm) ? 'ffmpeg' : /qemu/i.test(p.comm) ? 'qemu' : null;
    if (kind) sum[kind] += p.ticks * TICK_MS;
  }
  return sum;
}

const selfCpu = (): number => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };

// ---------------------------------------------------------------- one side, one page (bench/desktop's method)

async function measure(name: string, page: Page, animate: (kind: Animation) => Promise<() => Promise<void>>): Promise<Side> {
  await page.waitForFunction('window.__bench && window.__bench.ready()', undefined, { timeout: 60_000 });
  await sleep(1500);
  const box = await page.locator('#screen canvas').boundingBox();
  if (!box) throw new Error(`${name}: no canvas`);
  const size = await page.evaluate('({ w: document.querySelector("#screen canvas").width, h: document.querySelector("#screen canvas").height })') as { w: number; h: number };
  await page.mouse.move(box.x + (300 / size.w) * box.width, box.y + (200 / size.h) * box.height);
  await page.mouse.click(box.x + (300 / size.w) * box.width, box.y + (200 / size.h) * box.height);
  await sleep(800);
  let cell: Box | null = null;
  for (let i = 0; i < 5 && !cell; i++) {
    cell = await page.evaluate('window.__bench.bbox("x", 1500)') as Box | null;
    if (cell) await page.evaluate('window.__bench.bbox("BackSpace", 1500)');
  }
  if (!cell) throw new Error(`${name}: typing into the terminal changes nothing on the canvas`);
  const r: Box = { x: Math.max(0, cell.x - 8), y: Math.max(0, cell.y - 4), w: cell.w + 16, h: cell.h + 8 };
  say(`${name}: cursor cell ${JSON.stringify(cell)}; ${KEYS} keys`);
  const samples: number[] = [];
  let missed = 0;
  for (let i = 0; i < KEYS; i++) {
    const ms = await page.evaluate(`window.__bench.key(${JSON.stringify(i % 2 === 0 ? 'x' : 'BackSpace')}, ${JSON.stringify(r)}, 3000)`) as number;
    if (ms < 0) missed++; else samples.push(ms);
    await sleep(250);
  }
  const side: Side = { key_to_pixel_p50_ms: round(percentile(samples, 50), 1), key_to_pixel_p99_ms: round(percentile(samples, 99), 1), keys_missed: missed };
  say(`${name}: key-to-pixel p50 ${side.key_to_pixel_p50_ms} ms, p99 ${side.key_to_pixel_p99_ms} ms (${missed} missed)`);
  for (const kind of ['scroll', 'move'] as const) {
    const stop = await animate(kind);
    try {
      await sleep(2000);
      const c0 = descendantsCpu();
      const s0 = selfCpu();
      const f = await page.evaluate(`window.__bench.frames(${JSON.stringify(kind === 'scroll' ? SCROLLER.region : MOVER.region)}, ${ANIMATE_MS})`) as { changed: number; ms: number; bytes: number };
      const c1 = descendantsCpu();
      const s1 = selfCpu();
      const pct = (ms: number): number => round((100 * ms) / f.ms, 1);
      const p = kind === 'scroll' ? '' : 'move_';
      side[`${p}fps`] = round((1000 * f.changed) / f.ms, 1);
      side[`${p}kbps`] = round((f.bytes * 8) / f.ms, 1);
      side[`${p}kbit_per_frame`] = f.changed ? round((f.bytes * 8) / 1000 / f.changed, 2) : 0;
      side[`${p}host_cpu_pct`] = pct(s1 - s0 + c1.ffmpeg - c0.ffmpeg);
      side[`${p}chromium_cpu_pct`] = pct(c1.chromium - c0.chromium);
      say(`${name} ${kind}: ${side[`${p}fps`]} fps, ${side[`${p}kbps`]} kbit/s, host ${side[`${p}host_cpu_pct`]}%, chromium ${side[`${p}chromium_cpu_pct`]}%`);
    } finally {
      await stop();
    }
  }
  return side;
}

// ---------------------------------------------------------------- the half that runs in the fake host's namespace

async function child(netCfg: NetConfig, hostNetns: string): Promise<BenchFigures> {
  const stateDir = mkdtempSync(join(tmpdir(), 'hangar-bench-h264-'));
  let c: Controller | undefined;
  let browser: Browser | undefined;
  let hs: H264PageServer | undefined;
  try {
    const cfg = loadControllerConfig({
      env: { ...process.env, HANGAR_STATE_DIR: stateDir },
      overrides: {
        listen: { host: '127.0.0.1', port: 0 },
        net: { mode: netCfg.mode, bridge: netCfg.bridge, cidr: netCfg.cidr, hostNetns, ...(netCfg.netns ? { netns: netCfg.netns } : {}) },
        readyTimeoutMs: 180_000,
      },
    });
    c = await startController(cfg, { logLevel: 'warn', logStream: process.stderr });
    const ctl = c;
    say('booting a desktop VM');
    const vm = await (await ctl.manager.create(normalizeCreate({ profile: 'desktop' }))).ready;
    const ip = vm.net?.ip;
    if (!ip) throw new Error('the VM has no address');
    const agent = await ctl.agents.session(vm.id, { timeoutMs: 120_000 });
    const bg = async (cmd: string): Promise<void> => {
      const h = await agent.exec({ cmd, background: true, env: { DISPLAY: ':0' } });
      h.detach();
    };
    let seq = 0;
    const animate = async (kind: Animation): Promise<() => Promise<void>> => {
      const tag = `${kind}-${++seq}`;
      await bg(kind === 'scroll'
        ? `exec xterm -title ${tag} -geometry ${SCROLLER.geometry} -e sh -c 'while :; do seq 1 100000000; done'`
        : `exec xterm -xrm 'XTerm*allowWindowOps: true' -title ${tag} -geometry ${MOVER.geometry} -e sh -c ${shq(MOVER.loop)}`);
      let stopped = false;
      return async () => {
        if (stopped) return;
        stopped = true;
        await bg(`pkill -f -- '-title ${tag} '`);
        await sleep(1500);
      };
    };
    const res = await fetch(`${ctl.url}/v1/vms/${vm.id}/viewer`, { method: 'POST', headers: { authorization: `Bearer ${ctl.token}`, 'content-type': 'application/json' }, body: '{}' });
    const { url } = await res.json() as { url: string };
    hs = await startH264PageServer({ host: ip, port: VNC_PORT }, { encoder: { crf: CRF } });
    browser = await launchBrowser();
    await browser.context.addInitScript({ content: PAGE_PROBE });

    say('VNC: Hangar as shipped (controller bridge + viewer page)');
    const vp = await browser.context.newPage();
    vp.on('console', (m) => { if (m.type() === 'error') say(`page: ${m.text()}`); });
    await vp.goto(url.startsWith('http') ? url : `${ctl.url}${url}`, { waitUntil: 'load' });
    await vp.waitForSelector('#status[data-state="connected"]', { timeout: 60_000 });
    await vp.waitForSelector('body[data-control="yes"]', { timeout: 15_000 }).catch(async () => {
      await vp.click('#control');
      await vp.waitForSelector('body[data-control="yes"]', { timeout: 15_000 });
    });
    const vnc = await measure('vnc', vp, animate);
    await vp.close();

    say('H.264: host transcoder + noVNC/WebCodecs');
    const hp = await browser.context.newPage();
    hp.on('console', (m) => { if (m.type() === 'error') say(`page: ${m.text()}`); });
    await hp.goto(`http://127.0.0.1:${hs.port}/h264.html`, { waitUntil: 'load' });
    await hp.waitForSelector('#status[data-state="connected"]', { timeout: 60_000 });
    const webcodecs = await hp.evaluate('document.getElementById("status").dataset.webcodecs');
    if (webcodecs !== 'true') throw new Error('this Chromium does not decode H.264 with WebCodecs (noVNC would not offer encoding 50)');
    const h264 = await measure('h264', hp, animate);
    const st = hs.transcoders.at(-1)?.stats();
    await hp.close();
    if (!st || st.framesSent === 0) throw new Error('the H.264 page got no H.264 frames');

    const figures: BenchFigures = { keys: KEYS, animate_ms: ANIMATE_MS, h264_crf: CRF, h264_frames_sent: st.framesSent, h264_frames_collapsed: st.encoder?.collapsed ?? 0, h264_guest_updates: st.guestUpdates };
    for (const [k, v] of Object.entries(vnc)) figures[`vnc_${k}`] = v;
    for (const [k, v] of Object.entries(h264)) figures[`h264_${k}`] = v;
    figures.kbps_ratio = vnc.kbps ? round(h264.kbps! / vnc.kbps, 3) : 0;
    figures.kbit_per_frame_ratio = vnc.kbit_per_frame ? round(h264.kbit_per_frame! / vnc.kbit_per_frame, 3) : 0;
    figures.key_to_pixel_ratio = round(h264.key_to_pixel_p50_ms! / vnc.key_to_pixel_p50_ms!, 3);
    // "Wins": less bandwidth per second with key-to-pixel p50 within 10% of VNC's.
    figures.h264_wins = figures.kbps_ratio < 1 && figures.key_to_pixel_ratio <= 1.1;
    return figures;
  } finally {
    await browser?.close();
    await hs?.close();
    if (c) {
      await c.manager.destroyAll().catch(() => undefined);
      await c.close().catch(() => undefined);
    }
    rmSync(stateDir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- the bench

function printTable(f: BenchFigures): void {
  const keys = Object.keys(f).filter((k) => k.startsWith('vnc_')).map((k) => k.slice(4));
  process.stdout.write(table(['figure', 'vnc', 'h264', 'h264/vnc'], keys.map((k) => {
    const v = f[`vnc_${k}`] as number;
    const h = f[`h264_${k}`] as number;
    return [k, String(v), String(h), v ? String(round(h / v, 2)) : '-'];
  })));
  process.stdout.write(`\nhost: the controller process (bridge) for VNC; the transcoder (same process) + ffmpeg for H.264. crf ${f.h264_crf}; ${f.h264_frames_sent} H.264 frames sent, ${f.h264_frames_collapsed} screens collapsed into later frames.\n`);
  process.stdout.write(`H.264 wins (less kbit/s at key-to-pixel p50 ≤ 1.1× VNC): ${f.h264_wins ? 'yes' : 'no'} (kbps ratio ${f.kbps_ratio}, key-to-pixel ratio ${f.key_to_pixel_ratio})\n`);
}

export async function run({ json }: BenchOptions): Promise<BenchFigures> {
  quiet = json;
  const skip = process.getuid?.() !== 0 ? 'needs root' : skipUnlessChromium() || encoderSkipReason() || (await imageSkipReason());
  if (skip) {
    if (!json) process.stdout.write(`skipped: ${skip}\n`);
    return { skipped: skip };
  }
  const tnet = await createTestNetwork({ cidr: '10.219.0.16/29' });
  try {
    const kid = spawn('ip', ['netns', 'exec', tnet.hostNetns, process.execPath, '--enable-source-maps', fileURLToPath(import.meta.url), '--child', JSON.stringify({ net: tnet.cfg, hostNetns: tnet.hostNetns, quiet: json })], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    kid.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    const [code] = await once(kid, 'exit') as [number | null];
    const line = out.split('\n').find((l) => l.startsWith('FIGURES '));
    if (code !== 0 || !line) throw new Error(`the bench's namespace half failed (exit ${code})`);
    const figures = JSON.parse(line.slice('FIGURES '.length)) as BenchFigures;
    if (!json) printTable(figures);
    return figures;
  } finally {
    await tnet.destroy();
  }
}

if (process.argv[2] === '--child') {
  const arg = JSON.parse(process.argv[3]!) as { net: NetConfig; hostNetns: string; quiet: boolean };
  quiet = arg.quiet;
  child(arg.net, arg.hostNetns).then(
    (f) => { process.stdout.write(`FIGURES ${JSON.stringify(f)}\n`); process.exit(0); },
    (e: unknown) => { console.error(e); process.exit(1); },
  );
}
