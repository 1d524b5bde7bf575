// `npm run bench -- control [--json]`: computer-use screenshots through Hangar's own RFB client (the framebuffer it
// keeps current, encoded on request) against the in-guest way peers use (`scrot` writes a PNG, then the file is
// read back), side by side in one run on the same screen; and the round trip of an input action.
//
// The screen is a 1280x800 Xvfb with an xterm, served by x11vnc on loopback (the guest's desktop stack, on the host):
// the peer runs `scrot` against that same display and reads the file here. In a guest under TCG scrot itself is
// several times slower and the file still has to cross the agent, so the peer column is a lower bound of the peer's
// cost. Goals: screenshots ≥ 5× faster than scrot + download; an action round trip under 20 ms.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { table } from '../src/cli/command.js';
import { parseAction } from '../src/control/actions.js';
import { ComputerService } from '../src/control/computer.js';
import { which } from '../src/util/exec.js';
import { controlRoutes } from '../src/control/routes.js';
import { newViewerSecret } from '../src/desktop/token.js';
import { auth, createApiHarness } from '../test/support/api.js';
import { startDesktop } from '../test/support/rfb.js';
import type { BenchFigures, BenchOptions } from './index.js';
import { percentile, round } from './_stats.js';

export const summary = "computer use: screenshots through Hangar's RFB client vs scrot + file read, action round trip";

const SHOTS = 60;
const ACTIONS = 200;

function runScrot(display: number, file: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn('scrot', ['--overwrite', file], { env: { ...process.env, DISPLAY: `:${display}` }, stdio: 'ignore' });
    p.once('exit', (c) => (c === 0 ? resolve() : reject(new Error(`scrot exited ${c}`))));
    p.once('error', reject);
  });
}

async function timed(n: number, fn: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn();
    out.push(performance.now() - t);
  }
  return out;
}

export async function run(opts: BenchOptions): Promise<BenchFigures> {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-bench-control-'));
  const desk = await startDesktop({ width: 1280, height: 800, typedFile: join(dir, 'typed.txt') });
  const svc = new ComputerService({
    dial: () => new Promise((res, rej) => { const s = net.connect(desk.port, '127.0.0.1', () => res(s)); s.once('error', rej); }),
  });
  try {
    const act = (b: object): ReturnType<ComputerService['run']> => svc.run('vm-bench', parseAction(b));
    await act({ action: 'screen_size' }); // connect and receive the first full screen
    await new Promise((r) => setTimeout(r, 1000));
    const png = await timed(SHOTS, () => act({ action: 'screenshot' }));
    const jpeg = await timed(SHOTS, () => act({ action: 'screenshot', format: 'jpeg' }));
    let move = 0;
    const actions = await timed(ACTIONS, () => act({ action: 'mouse_move', coordinate: [100 + (move++ % 500), 300] }));
    const keys = await timed(ACTIONS / 4, () => act({ action: 'key', text: 'shift' }));
    // The same action through the HTTP API on loopback (request → action written to the VM → 200).
    const h = await createApiHarness({ extraRoutes: (c) => controlRoutes(c, { lookup: (id) => ({ state: 'ready', profile: 'desktop', viewerNonce: h.store.viewerNonce(id)! }), secret: newViewerSecret(), computer: svc, agents: null }) });
    h.insertVm('vm-bench', 'ready');
    await h.app.listen({ host: '127.0.0.1', port: 0 });
    const url = `http://127.0.0.1:${(h.app.server.address() as net.AddressInfo).port}/v1/vms/vm-bench/computer`;
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
    const scrot = await which('scrot');
    if (scrot) {
      const file = join(dir, 'shot.png');
      peer = await timed(SHOTS / 3, async () => { await runScrot(desk.display, file); readFileSync(file); });
    }
    const f = (s: number[], p: number): number | null => (s.length ? round(percentile(s, p), 2) : null);
    const figures: BenchFigures = {
      screenshot_png_p50_ms: f(png, 50), screenshot_png_p99_ms: f(png, 99),
      screenshot_jpeg_p50_ms: f(jpeg, 50), screenshot_jpeg_p99_ms: f(jpeg, 99),
      peer_scrot_read_p50_ms: f(peer, 50), peer_scrot_read_p99_ms: f(peer, 99),
      speedup_png_vs_peer_p50: peer.length ? round(percentile(peer, 50) / percentile(png, 50), 1) : null,
      action_mouse_move_p50_ms: f(actions, 50), action_mouse_move_p99_ms: f(actions, 99),
      action_key_p50_ms: f(keys, 50),
      action_http_p50_ms: f(http, 50), action_http_p99_ms: f(http, 99),
      screenshot_http_png_p50_ms: f(httpShot, 50), screenshot_http_png_p99_ms: f(httpShot, 99),
      screen: '1280x800', peer_note: scrot ? 'scrot on the same display (host), file read back; in a guest add TCG and the agent download' : 'scrot not installed: peer pending',
    };
    if (!opts.json) {
      process.stdout.write(table(['what', 'p50 ms', 'p99 ms'], [
        ['Hangar screenshot (PNG)', String(figures.screenshot_png_p50_ms), String(figures.screenshot_png_p99_ms)],
        ['Hangar screenshot (JPEG)', String(figures.screenshot_jpeg_p50_ms), String(figures.screenshot_jpeg_p99_ms)],
        ['peer: scrot + file read', String(figures.peer_scrot_read_p50_ms), String(figures.peer_scrot_read_p99_ms)],
        ['action round trip (mouse_move)', String(figures.action_mouse_move_p50_ms), String(figures.action_mouse_move_p99_ms)],
        ['action round trip (key)', String(figures.action_key_p50_ms), ''],
        ['action over HTTP (mouse_move)', String(figures.action_http_p50_ms), String(figures.action_http_p99_ms)],
        ['screenshot over HTTP (PNG, base64 JSON)', String(figures.screenshot_http_png_p50_ms), String(figures.screenshot_http_png_p99_ms)],
      ]));
      process.stdout.write(`PNG screenshots ${String(figures.speedup_png_vs_peer_p50)}× faster than the peer (goal ≥ 5×); ${String(figures.peer_note)}\n`);
    }
    return figures;
  } finally {
    svc.close();
    await desk.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
