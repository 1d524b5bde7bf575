// `npm run bench -- control [--json]`: computer-use screenshots through Hangar's own RFB client (the framebuffer it
// keeps current, encoded on request) against the in-guest way peers use — `scrot` run inside the guest, then the
// file downloaded (here through the guest agent: exec + file read, src/agent) — side by side in one run on the same
// screen; and the round trip of an input action, direct and over the HTTP API on loopback.
//
// Where: a real browser-profile VM under QEMU (TCG here) in namespaces the bench makes and removes (root; the image
// ships scrot, src/image/plan.ts). Without root or a browser image it falls back to a host desktop (Xvfb + x11vnc on
// loopback, scrot on the same display, the file read back): then the peer column is a lower bound of the peer's cost.
// Goals: screenshots ≥ 5× faster than scrot + download; an action round trip under 20 ms.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { Agents } from '../src/agent/agents.js';
import type { AgentSession } from '../src/agent/port.js';
import { table } from '../src/cli/command.js';
import { parseAction } from '../src/control/actions.js';
import { ComputerService } from '../src/control/computer.js';
import { controlRoutes } from '../src/control/routes.js';
import { newViewerSecret } from '../src/desktop/token.js';
import { VNC_PORT } from '../src/guest-protocol.js';
import { which } from '../src/util/exec.js';
import { normalizeCreate } from '../src/vm/input.js';
import { QemuDriver } from '../src/vmm/qemu/driver.js';
import { auth, createApiHarness } from '../test/support/api.js';
import { createTestController, imageSkipReason, type TestController } from '../test/support/controller.js';
import { startDesktop } from '../test/support/rfb.js';
import type { BenchFigures, BenchOptions } from './index.js';
import { percentile, round } from './_stats.js';

export const summary = "computer use: screenshots through Hangar's RFB client vs in-guest scrot + download, action round trip";

const SHOTS = Number(process.env.HANGAR_BENCH_SHOTS ?? 60);
const PEER_SHOTS = Number(process.env.HANGAR_BENCH_PEER_SHOTS ?? 20);
const ACTIONS = 200;

async function timed(n: number, fn: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn();
    out.push(performance.now() - t);
  }
  return out;
}

async function drain(r: Readable): Promise<number> {
  let n = 0;
  for await (const c of r) n += (c as Buffer).length;
  return n;
}

/** The peer in the guest: scrot writes a PNG on the guest's display, then the file is downloaded over the agent. */
async function guestScrot(s: AgentSession): Promise<number> {
  const h = await s.exec({ argv: ['scrot', '--overwrite', '/tmp/bench-shot.png'], env: { DISPLAY: ':0' } });
  const [, err, exit] = await Promise.all([drain(h.stdout), drain(h.stderr), h.exit]);
  if (exit.code !== 0) throw new Error(`scrot in the guest exited ${String(exit.code)} (${err} bytes on stderr)`);
  const { stream } = await s.readFile('/tmp/bench-shot.png');
  return drain(stream);
}

/** The peer on the host: scrot on the same display, the file read back. */
function hostScrot(display: number, file: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const p = spawn('scrot', ['--overwrite', file], { env: { ...process.env, DISPLAY: `:${display}` }, stdio: 'ignore' });
    p.once('exit', (c) => (c === 0 ? resolve(readFileSync(file).length) : reject(new Error(`scrot exited ${c}`))));
    p.once('error', reject);
  });
}

interface Setup {
  where: string;
  svc: ComputerService;
  vmId: string;
  /** One peer screenshot (bytes of the PNG), or null when the peer cannot run here. */
  peer: (() => Promise<number>) | null;
  peerNote: string;
  close(): Promise<void>;
}

/** A browser-profile VM with the guest agent; the computer service dials its VNC server as the controller does. */
async function guestSetup(): Promise<Setup> {
  let t: TestController | undefined;
  let agents: Agents | undefined;
  let svc: ComputerService | undefined;
  try {
    t = await createTestController({ net: { cidr: '10.224.0.0/29' }, manager: { drivers: { qemu: new QemuDriver({ guestAgent: true }) } } });
    const tc = t;
    const vm = await (await tc.manager.create(normalizeCreate({ profile: 'browser' }))).ready;
    const a = new Agents({ channel: (id) => tc.manager.guestChannel(id) });
    agents = a;
    const session = await a.session(vm.id, { timeoutMs: 120_000 });
    svc = new ComputerService({ dial: (id) => tc.manager.dialVm(id, VNC_PORT) });
    // Chromium starts after READY: let it settle (listening on its CDP port) before anything is timed.
    const deadline = Date.now() + 240_000;
    while (!(await session.info()).listening.some((l) => l.port === 9222) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 1000));
    await new Promise((r) => setTimeout(r, 5000));
    const hasScrot = (await session.stat('/usr/bin/scrot').then(() => true, () => false));
    const s = svc;
    return {
      where: `a browser-profile VM (${vm.id}) under QEMU`, svc: s, vmId: vm.id,
      peer: hasScrot ? () => guestScrot(session) : null,
      peerNote: hasScrot ? 'scrot in the guest, then the file downloaded through the guest agent' : 'the image has no scrot (built before src/image/plan.ts added it): peer pending',
      close: async () => { s.close(); a.closeAll(); await tc.destroy(); },
    };
  } catch (e) {
    svc?.close();
    agents?.closeAll();
    await t?.destroy();
    throw e;
  }
}

async function hostSetup(why: string): Promise<Setup> {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-bench-control-'));
  const desk = await startDesktop({ width: 1280, height: 800, typedFile: join(dir, 'typed.txt') });
  const svc = new ComputerService({
    dial: () => new Promise((res, rej) => { const s = net.connect(desk.port, '127.0.0.1', () => res(s)); s.once('error', rej); }),
  });
  const scrot = await which('scrot');
  return {
    where: `host Xvfb + x11vnc (${why})`, svc, vmId: 'vm-bench',
    peer: scrot ? () => hostScrot(desk.display, join(dir, 'shot.png')) : null,
    peerNote: scrot ? 'scrot on the same display (host), file read back: a lower bound (a guest adds TCG and the download)' : 'scrot not installed: peer pending',
    close: async () => { svc.close(); await desk.stop(); rmSync(dir, { recursive: true, force: true }); },
  };
}

export async function run(opts: BenchOptions): Promise<BenchFigures> {
  const skip = process.getuid?.() !== 0 ? 'not root' : await imageSkipReason('browser');
  const setup = skip ? await hostSetup(skip) : await guestSetup();
  const { svc, vmId } = setup;
  try {
    const act = (b: object): ReturnType<ComputerService['run']> => svc.run(vmId, parseAction(b));
    await act({ action: 'screen_size' }); // connect and receive the first full screen
    await new Promise((r) => setTimeout(r, 1000));
    const png = await timed(SHOTS, () => act({ action: 'screenshot' }));
    const jpeg = await timed(SHOTS, () => act({ action: 'screenshot', format: 'jpeg' }));
    let move = 0;
    const actions = await timed(ACTIONS, () => act({ action: 'mouse_move', coordinate: [100 + (move++ % 500), 300] }));
    const keys = await timed(ACTIONS / 4, () => act({ action: 'key', text: 'shift' }));
    // The same action through the HTTP API on loopback (request → action written to the VM → 200).
    const h = await createApiHarness({ extraRoutes: (c) => controlRoutes(c, { lookup: (id) => ({ state: 'ready', profile: 'desktop', viewerNonce: h.store.viewerNonce(id)! }), secret: newViewerSecret(), computer: svc, agents: null }) });
    h.insertVm(vmId, 'ready');
    await h.app.listen({ host: '127.0.0.1', port: 0 });
    const url = `http://127.0.0.1:${(h.app.server.address() as net.AddressInfo).port}/v1/vms/${vmId}/computer`;
    const post = async (body: object): Promise<void> => {
      const r = await fetch(url, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      if (!r.ok) throw new Error(`HTTP ${r.status}: ${await r.text()}`);
      await r.arrayBuffer();
    };
    await timed(20, () => post({ action: 'mouse_move', coordinate: [10, 10] }));
    const http = await timed(ACTIONS, () => post({ action: 'mouse_move', coordinate: [100 + (move++ % 500), 300] }));
    const httpShot = await timed(SHOTS / 2, () => post({ action: 'screenshot' }));
    await h.close();
    let peer: number[] = [];
    let peerBytes = 0;
    if (setup.peer) {
      const shoot = setup.peer;
      peerBytes = await shoot(); // warm: the binary and its libraries in the page cache
      peer = await timed(PEER_SHOTS, shoot);
    }
    const f = (s: number[], p: number): number | null => (s.length ? round(percentile(s, p), 2) : null);
    const figures: BenchFigures = {
      where: setup.where,
      screenshot_png_p50_ms: f(png, 50), screenshot_png_p99_ms: f(png, 99),
      screenshot_jpeg_p50_ms: f(jpeg, 50), screenshot_jpeg_p99_ms: f(jpeg, 99),
      peer_scrot_download_p50_ms: f(peer, 50), peer_scrot_download_p99_ms: f(peer, 99), peer_png_bytes: peerBytes || null,
      speedup_png_vs_peer_p50: peer.length ? round(percentile(peer, 50) / percentile(png, 50), 1) : null,
      speedup_http_png_vs_peer_p50: peer.length ? round(percentile(peer, 50) / percentile(httpShot, 50), 1) : null,
      action_mouse_move_p50_ms: f(actions, 50), action_mouse_move_p99_ms: f(actions, 99),
      action_key_p50_ms: f(keys, 50),
      action_http_p50_ms: f(http, 50), action_http_p99_ms: f(http, 99),
      screenshot_http_png_p50_ms: f(httpShot, 50), screenshot_http_png_p99_ms: f(httpShot, 99),
      screen: '1280x800', peer_note: setup.peerNote,
    };
    if (!opts.json) {
      process.stdout.write(`on: ${setup.where}\n`);
      process.stdout.write(table(['what', 'p50 ms', 'p99 ms'], [
        ['Hangar screenshot (PNG)', String(figures.screenshot_png_p50_ms), String(figures.screenshot_png_p99_ms)],
        ['Hangar screenshot (JPEG)', String(figures.screenshot_jpeg_p50_ms), String(figures.screenshot_jpeg_p99_ms)],
        ['Hangar screenshot over HTTP (PNG, base64 JSON)', String(figures.screenshot_http_png_p50_ms), String(figures.screenshot_http_png_p99_ms)],
        ['peer: scrot in the guest + download', String(figures.peer_scrot_download_p50_ms), String(figures.peer_scrot_download_p99_ms)],
        ['action round trip (mouse_move)', String(figures.action_mouse_move_p50_ms), String(figures.action_mouse_move_p99_ms)],
        ['action round trip (key)', String(figures.action_key_p50_ms), ''],
        ['action over HTTP (mouse_move)', String(figures.action_http_p50_ms), String(figures.action_http_p99_ms)],
      ]));
      const goals = (figures.speedup_png_vs_peer_p50 !== null && Number(figures.speedup_png_vs_peer_p50) >= 5 ? 'met' : 'NOT met') + ' / ' + (Number(figures.action_mouse_move_p50_ms) < 20 ? 'met' : 'NOT met');
      process.stdout.write(`PNG screenshots ${String(figures.speedup_png_vs_peer_p50)}× faster than the peer (${String(figures.speedup_http_png_vs_peer_p50)}× over HTTP; goal ≥ 5×), action p50 ${String(figures.action_mouse_move_p50_ms)} ms (goal < 20 ms): ${goals}; ${setup.peerNote}\n`);
    }
    return figures;
  } finally {
    await setup.close();
  }
}
