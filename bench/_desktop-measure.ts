// What bench/desktop and bench/h264 share: the scenes (a scrolling xterm, a window that moves itself), the CPU of
// this process's descendants by kind, the key-to-pixel loop on a noVNC page (focus the terminal, calibrate the
// cursor cell, then keys 'x' and BackSpace alternating, each timed to the first animation frame whose cell differs),
// frame counting in a region, the controller with one desktop VM and its agent, Hangar's viewer page, and the
// two halves of a bench that runs in a test network's host namespace (root).
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { loadControllerConfig } from '../src/api/config.js';
import { startController, type Controller } from '../src/api/controller.js';
import type { NetConfig } from '../src/net/config.js';
import { normalizeCreate } from '../src/vm/input.js';
import { createTestNetwork } from '../test/support/net.js';
import type { BenchFigures } from './index.js';
import { percentile, round } from './_stats.js';

export interface Box { x: number; y: number; w: number; h: number }
export type Animation = 'scroll' | 'move';
export type Say = (msg: string) => void;

/** The scrolling xterm: its geometry and the canvas region (framebuffer pixels) counted for frames. */
export const SCROLLER = { geometry: '80x20+660+420', region: { x: 670, y: 440, w: 460, h: 250 } };
/** A small xterm that moves itself across the lower right of the screen, and the region counted for it. */
export const MOVER = {
  geometry: '40x8+600+420',
  loop: 'i=0; while :; do printf "\\033[3;%d;%dt" $((500 + (i % 60) * 8)) $((380 + (i % 20) * 6)); i=$((i + 1)); sleep 0.03; done',
  region: { x: 480, y: 360, w: 800, h: 440 },
};
/** A word for sh -c: single-quoted. */
export const shq = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const TICK_MS = 1000 / 100; // /proc/*/stat times are in USER_HZ (100) ticks

// ---------------------------------------------------------------- CPU of processes (this process's descendants)

function procTable(): Map<number, { ppid: number; comm: string; ticks: number }> {
  const out = new Map<number, { ppid: number; comm: string; ticks: number }>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = readFileSync(`/proc/${d}/stat`, 'utf8');
      const close = s.lastIndexOf(')');
      const comm = s.slice(s.indexOf('(') + 1, close);
      const f = s.slice(close + 2).split(' ');
      out.set(Number(d), { ppid: Number(f[1]), comm, ticks: Number(f[11]) + Number(f[12]) });
    } catch { /* gone */ }
  }
  return out;
}

/** CPU ms so far of this process's descendants, by kind: the first pattern matching a process's comm. */
export function descendantsCpu<K extends string>(kinds: Record<K, RegExp>): Record<K, number> {
  const t = procTable();
  const mine = new Set<number>([process.pid]);
  for (let grew = true; grew;) {
    grew = false;
    for (const [pid, p] of t) if (!mine.has(pid) && mine.has(p.ppid)) { mine.add(pid); grew = true; }
  }
  const entries = Object.entries(kinds) as [K, RegExp][];
  const sum = Object.fromEntries(entries.map(([k]) => [k, 0])) as Record<K, number>;
  for (const pid of mine) {
    const p = t.get(pid);
    if (!p || pid === process.pid) continue;
    const kind = entries.find(([, re]) => re.test(p.comm))?.[0];
    if (kind) sum[kind] += p.ticks * TICK_MS;
  }
  return sum;
}

/** This process's own CPU ms so far. */
export const selfCpu = (): number => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };

// ---------------------------------------------------------------- on a noVNC page (bench/_desktop-page.ts's probe)

/** Key-to-pixel on a connected page whose terminal is at +40+40: p50/p99 over `keys` keys, and how many missed. */
export async function keyToPixel(name: string, page: Page, keys: number, say: Say): Promise<{ p50: number; p99: number; missed: number }> {
  await page.waitForFunction('window.__bench && window.__bench.ready()', undefined, { timeout: 60_000 });
  await sleep(1500);
  // Focus the terminal (twm: focus follows the pointer): move the remote pointer into the xterm at +40+40.
  const box = await page.locator('#screen canvas').boundingBox();
  if (!box) throw new Error(`${name}: no canvas`);
  const size = await page.evaluate('({ w: document.querySelector("#screen canvas").width, h: document.querySelector("#screen canvas").height })') as { w: number; h: number };
  await page.mouse.move(box.x + (300 / size.w) * box.width, box.y + (200 / size.h) * box.height);
  await page.mouse.click(box.x + (300 / size.w) * box.width, box.y + (200 / size.h) * box.height);
  await sleep(800);
  // Calibrate: which pixels the echo of 'x' changes (the cursor cell and the next), then delete it again.
  let cell: Box | null = null;
  for (let i = 0; i < 5 && !cell; i++) {
    cell = await page.evaluate('window.__bench.bbox("x", 1500)') as Box | null;
    if (cell) await page.evaluate('window.__bench.bbox("BackSpace", 1500)');
  }
  if (!cell) throw new Error(`${name}: typing into the terminal changes nothing on the canvas`);
  const r: Box = { x: Math.max(0, cell.x - 8), y: Math.max(0, cell.y - 4), w: cell.w + 16, h: cell.h + 8 };
  say(`${name}: cursor cell ${JSON.stringify(cell)}; ${keys} keys`);
  const samples: number[] = [];
  let missed = 0;
  for (let i = 0; i < keys; i++) {
    const ms = await page.evaluate(`window.__bench.key(${JSON.stringify(i % 2 === 0 ? 'x' : 'BackSpace')}, ${JSON.stringify(r)}, 3000)`) as number;
    if (ms < 0) missed++; else samples.push(ms);
    await sleep(250); // the echo's last update (cursor) lands before the next key's snapshot
  }
  const out = { p50: round(percentile(samples, 50), 1), p99: round(percentile(samples, 99), 1), missed };
  say(`${name}: key-to-pixel p50 ${out.p50} ms, p99 ${out.p99} ms (${missed} missed)`);
  return out;
}

/** Frames (animation frames in which the region changed) and WebSocket bytes over `ms`. */
export function countFrames(page: Page, region: Box, ms: number): Promise<{ changed: number; rafs: number; ms: number; bytes: number }> {
  return page.evaluate(`window.__bench.frames(${JSON.stringify(region)}, ${ms})`) as Promise<{ changed: number; rafs: number; ms: number; bytes: number }>;
}

/** Opens Hangar's viewer page at `url` and waits until it is connected with control. */
export async function openHangarViewer(page: Page, url: string, say: Say): Promise<void> {
  page.on('console', (m) => { if (m.type() === 'error') say(`page: ${m.text()}`); });
  await page.goto(url, { waitUntil: 'load' });
  await page.waitForSelector('#status[data-state="connected"]', { timeout: 60_000 });
  await page.waitForSelector('body[data-control="yes"]', { timeout: 15_000 }).catch(async () => {
    await page.click('#control');
    await page.waitForSelector('body[data-control="yes"]', { timeout: 15_000 });
  });
}

// ---------------------------------------------------------------- a controller with one desktop VM

export interface BenchDesktop {
  c: Controller;
  vmId: string;
  ip: string;
  /** Runs cmd in the guest in the background (DISPLAY :0). */
  bg(cmd: string): Promise<void>;
  /** Runs a bash command in the guest; its exit code and stdout. */
  sh(cmd: string): Promise<{ code: number | null; out: string }>;
  /** Starts an animation in the guest; the function stops it. */
  animate(kind: Animation): Promise<() => Promise<void>>;
  /** A fresh URL of Hangar's viewer page for the VM, as `hangar vm open` gets it. */
  viewerUrl(): Promise<string>;
  close(): Promise<void>;
}

/** The controller on the test network's host namespace (the caller runs there) and one booted desktop VM. */
export async function startBenchDesktop(netCfg: NetConfig, hostNetns: string, name: string, say: Say): Promise<BenchDesktop> {
  const stateDir = mkdtempSync(join(tmpdir(), `hangar-bench-${name}-`));
  let c: Controller | undefined;
  const close = async (): Promise<void> => {
    if (c) {
      await c.manager.destroyAll().catch(() => undefined);
      await c.close().catch(() => undefined);
    }
    rmSync(stateDir, { recursive: true, force: true });
  };
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
    const sh = async (cmd: string): Promise<{ code: number | null; out: string }> => {
      const h = await agent.exec({ argv: ['bash', '-c', cmd], env: { DISPLAY: ':0' } });
      const chunks: Buffer[] = [];
      h.stdout.on('data', (d: Buffer) => chunks.push(d));
      h.stderr.resume();
      const st = await h.exit;
      return { code: st.code, out: Buffer.concat(chunks).toString() };
    };
    let seq = 0;
    const animate = async (kind: Animation): Promise<() => Promise<void>> => {
      const tag = `${kind}-${++seq}`;
      await bg(kind === 'scroll'
        ? `exec xterm -title ${tag} -geometry ${SCROLLER.geometry} -e sh -c 'while :; do seq 1 100000000; done'`
        // The window moves itself (xterm's window operations: CSI 3;x;y t), as xdotool would move it.
        : `exec xterm -xrm 'XTerm*allowWindowOps: true' -title ${tag} -geometry ${MOVER.geometry} -e sh -c ${shq(MOVER.loop)}`);
      let stopped = false;
      return async () => {
        if (stopped) return;
        stopped = true;
        await bg(`pkill -f -- '-title ${tag} '`);
        await sleep(1500);
      };
    };
    const viewerUrl = async (): Promise<string> => {
      const res = await fetch(`${ctl.url}/v1/vms/${vm.id}/viewer`, { method: 'POST', headers: { authorization: `Bearer ${ctl.token}`, 'content-type': 'application/json' }, body: '{}' });
      const { url } = await res.json() as { url: string };
      return url.startsWith('http') ? url : `${ctl.url}${url}`;
    };
    return { c: ctl, vmId: vm.id, ip, bg, sh, animate, viewerUrl, close };
  } catch (e) {
    await close();
    throw e;
  }
}

// ---------------------------------------------------------------- the two halves

interface ChildArg { net: NetConfig; hostNetns: string; quiet: boolean }

/**
 * The bench's outer half: makes a test network (namespaces it removes), runs the bench file again with `--child`
 * in its host namespace, and returns the figures that half printed (one `FIGURES {json}` line).
 */
export async function runInHostNetns(benchFile: string, cidr: string, quiet: boolean): Promise<BenchFigures> {
  const tnet = await createTestNetwork({ cidr });
  try {
    const arg: ChildArg = { net: tnet.cfg, hostNetns: tnet.hostNetns, quiet };
    const kid = spawn('ip', ['netns', 'exec', tnet.hostNetns, process.execPath, '--enable-source-maps', benchFile, '--child', JSON.stringify(arg)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    kid.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    const [code] = await once(kid, 'exit') as [number | null];
    const line = out.split('\n').find((l) => l.startsWith('FIGURES '));
    if (code !== 0 || !line) throw new Error(`the bench's namespace half failed (exit ${code})`);
    return JSON.parse(line.slice('FIGURES '.length)) as BenchFigures;
  } finally {
    await tnet.destroy();
  }
}

/** The inner half, when this process was started by runInHostNetns: runs `child` and prints its figures. */
export function childMain(child: (net: NetConfig, hostNetns: string, quiet: boolean) => Promise<BenchFigures>): void {
  if (process.argv[2] !== '--child') return;
  const arg = JSON.parse(process.argv[3]!) as ChildArg;
  child(arg.net, arg.hostNetns, arg.quiet).then(
    (f) => { process.stdout.write(`FIGURES ${JSON.stringify(f)}\n`); process.exit(0); },
    (e: unknown) => { console.error(e); process.exit(1); },
  );
}
