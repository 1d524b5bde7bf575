// `npm run bench -- h264`: H.264 over WebSocket (#18 point 4) against tuned VNC, side by side in one run on one VM
// of the desktop image, in real Chromium. VNC: Hangar's stack as shipped (the image's x11vnc, the controller's
// bridge, its viewer page). H.264: the host-side transcoder (src/desktop/h264) connected to the same x11vnc, ffmpeg
// encoding every update, noVNC (the same bundled one) decoding encoding 50 with WebCodecs, on a page and WebSocket
// this bench serves. Measured per side with bench/desktop's method (bench/_desktop-measure.ts): key-to-pixel p50/p99 (a key dispatched on noVNC's canvas →
// the first animation frame whose cursor cell differs), frames/s, kbit/s and kbit per frame while an xterm scrolls
// and while a window moves, host CPU (controller or transcoder + ffmpeg, and Chromium). Root: the bench makes a test
// network (namespaces it removes) and runs its half in the fake host's namespace. Skips without ffmpeg.
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { table } from '../src/cli/command.js';
import { encoderSkipReason } from '../src/desktop/h264/encoder.js';
import { startH264PageServer, type H264PageServer } from '../src/desktop/h264/page-server.js';
import { VNC_PORT } from '../src/guest-protocol.js';
import type { NetConfig } from '../src/net/config.js';
import { imageSkipReason } from '../test/support/controller.js';
import { launchBrowser, skipUnlessChromium, type Browser } from '../test/support/viewer.js';
import type { BenchFigures, BenchOptions } from './index.js';
import { round } from './_stats.js';
import { PAGE_PROBE } from './_desktop-page.js';
import { MOVER, SCROLLER, childMain, countFrames, descendantsCpu, keyToPixel, openHangarViewer, runInHostNetns, selfCpu, sleep, startBenchDesktop, type Animation, type BenchDesktop } from './_desktop-measure.js';

export const summary = 'H.264 over WebSocket (host transcoder + WebCodecs) vs tuned VNC: key-to-pixel, fps, kbps, CPU';

const KEYS = Number(process.env.HANGAR_BENCH_KEYS ?? 60);
const ANIMATE_MS = Number(process.env.HANGAR_BENCH_ANIMATE_MS ?? 10_000);
const CRF = Number(process.env.HANGAR_BENCH_H264_CRF ?? 26);
let quiet = false;
const say = (msg: string): void => { if (!quiet) process.stderr.write(`h264: ${msg}\n`); };

type Side = Record<string, number>;

const cpuKinds = { chromium: /chrom/i, ffmpeg: /ffmpeg/i };

// ---------------------------------------------------------------- one side, one page (bench/desktop's method)

async function measure(name: string, page: Page, animate: (kind: Animation) => Promise<() => Promise<void>>): Promise<Side> {
  const k = await keyToPixel(name, page, KEYS, say);
  const side: Side = { key_to_pixel_p50_ms: k.p50, key_to_pixel_p99_ms: k.p99, keys_missed: k.missed };
  for (const kind of ['scroll', 'move'] as const) {
    const stop = await animate(kind);
    try {
      await sleep(2000);
      const c0 = descendantsCpu(cpuKinds);
      const s0 = selfCpu();
      const f = await countFrames(page, kind === 'scroll' ? SCROLLER.region : MOVER.region, ANIMATE_MS);
      const c1 = descendantsCpu(cpuKinds);
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

async function child(netCfg: NetConfig, hostNetns: string, q: boolean): Promise<BenchFigures> {
  quiet = q;
  let d: BenchDesktop | undefined;
  let browser: Browser | undefined;
  let hs: H264PageServer | undefined;
  try {
    d = await startBenchDesktop(netCfg, hostNetns, 'h264', say);
    const { ip, animate } = d;
    const url = await d.viewerUrl();
    hs = await startH264PageServer({ host: ip, port: VNC_PORT }, { encoder: { crf: CRF } });
    browser = await launchBrowser();
    await browser.context.addInitScript({ content: PAGE_PROBE });

    say('VNC: Hangar as shipped (controller bridge + viewer page)');
    const vp = await browser.context.newPage();
    await openHangarViewer(vp, url, say);
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
    await d?.close();
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
  const figures = await runInHostNetns(fileURLToPath(import.meta.url), '10.219.0.16/29', json);
  if (!json) printTable(figures);
  return figures;
}

childMain(child);
