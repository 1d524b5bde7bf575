// Computer use on a real booted desktop VM (ONE VM shared by every test here; run under the integration lock):
// through the controller's own RFB client and POST /v1/vms/:id/computer. The screenshot is a PNG of the screen's
// size and not one colour; text typed into the guest's xterm runs a command whose output comes back on the serial
// console (/run/hangar-console); Unicode arrives intact; a click focuses the window under it; a drag moves a window;
// 10 s recorded, replayed in Chromium: the replayed frame at t matches the screenshot taken at t.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { PNG } from 'pngjs';
import { WebSocket } from 'ws';
import { signViewerToken } from '../../src/desktop/token.js';
import { run } from '../../src/util/exec.js';
import { waitForMarker } from '../../src/vmm/console.js';
import { ROOT, skipUnlessRoot } from '../support/env.js';
import { imageSkipReason } from '../support/controller.js';
import { startLiveController, type LiveController } from '../support/live-controller.js';
import { launchBrowser, skipUnlessChromium } from '../support/viewer.js';

const skip = skipUnlessRoot() || (await imageSkipReason()) || false;

interface Shot { width: number; height: number; image: { data: string; media_type: string } }

describe('computer use on a desktop VM', { skip, concurrency: false }, () => {
  let live: LiveController;
  let vmId = '';
  const act = async <T = Record<string, unknown>>(body: object): Promise<T> => {
    const res = await fetch(`${live.c.url}/v1/vms/${vmId}/computer`, { method: 'POST', headers: { authorization: `Bearer ${live.c.token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const json = await res.json() as T;
    assert.equal(res.status, 200, JSON.stringify(json));
    return json;
  };
  const png = async (body: object = {}): Promise<PNG> => PNG.sync.read(Buffer.from((await act<Shot>({ action: 'screenshot', ...body })).image.data, 'base64'));
  const console = (re: RegExp): ReturnType<typeof waitForMarker> => waitForMarker(live.c.manager.consolePath(vmId), re, { timeoutMs: 90_000 });
  /** Types a command into the focused terminal and presses Return. */
  const command = async (line: string): Promise<void> => {
    await act({ action: 'type', text: line });
    await act({ action: 'key', text: 'Return' });
  };

  before(async () => {
    live = await startLiveController({ net: { cidr: '10.219.0.0/29' } });
    const created = await run(process.execPath, [join(ROOT, 'bin', 'hangar.js'), 'vm', 'create', '--name', 'computer-e2e', '--json'], { env: live.env, timeoutMs: 300_000 });
    vmId = (JSON.parse(created.stdout) as { id: string }).id;
  });
  after(async () => { await live?.destroy(); });

  test('a screenshot is a valid PNG of the screen size, not one colour; the CLI saves one', async () => {
    const size = await act<{ width: number; height: number }>({ action: 'screen_size' });
    const colours = (p: PNG): number => {
      const seen = new Set<number>();
      for (let i = 0; i < p.data.length; i += 4 * 101) seen.add(p.data.readUInt32BE(i));
      return seen.size;
    };
    // READY waits until the terminal is on the screen (the guest init), so the first screenshot shows it; a later
    // one may be needed only if x11vnc's copy of the screen lags (a few polls), never for seconds.
    const t0 = Date.now();
    let img = await png();
    while (colours(img) <= 3 && Date.now() - t0 < 3000) { await new Promise((r) => setTimeout(r, 200)); img = await png(); }
    process.stdout.write(`# first screenshot with the desktop drawn after ${Date.now() - t0} ms (${colours(img)} colours sampled)\n`);
    assert.deepEqual([img.width, img.height], [size.width, size.height]);
    assert.deepEqual([size.width, size.height], [1280, 800]);
    assert.ok(colours(img) > 3, `colours: ${colours(img)}`);
    const out = join(live.stateDir, 'shot.png');
    await run(process.execPath, [join(ROOT, 'bin', 'hangar.js'), 'vm', 'screenshot', vmId, '-o', out], { env: live.env });
    assert.equal(PNG.sync.read(readFileSync(out)).width, 1280);
  });

  test('type, then key Return, into the xterm runs a command; Unicode arrives intact', async () => {
    await act({ action: 'left_click', coordinate: [300, 250] }); // inside the xterm (100x30 at +40+40)
    const word = `typed-${randomBytes(4).toString('hex')}`;
    await command(`echo ${word} > /run/hangar-console`);
    assert.equal((await console(new RegExp(`^${word}$`))).line.trim(), word);
    await command("echo 'žluťoučký 日本' > /run/hangar-console");
    assert.equal((await console(/žluťoučký/)).line.trim(), 'žluťoučký 日本');
  });

  test('a click focuses the window under it', async () => {
    await command('xterm -geometry 40x8+760+520 -title second -e sh -c \'read l; echo "second:$l" > /run/hangar-console\' &');
    // Wait until the new window is on the screen (its area changes).
    const before = await png({ region: { x: 800, y: 560, width: 100, height: 40 } });
    const deadline = Date.now() + 60_000;
    for (;;) {
      const now = await png({ region: { x: 800, y: 560, width: 100, height: 40 } });
      if (!now.data.equals(before.data)) break;
      if (Date.now() > deadline) throw new Error('the second xterm did not appear');
      await new Promise((r) => setTimeout(r, 500));
    }
    await new Promise((r) => setTimeout(r, 1000));
    await act({ action: 'left_click', coordinate: [850, 590] });
    await command('focused');
    assert.equal((await console(/^second:/)).line.trim(), 'second:focused');
  });

  test('a drag on a title bar moves the window (the screenshot changes in that region)', async () => {
    await command('xterm -geometry 30x6+100+560 -title dragme &');
    await new Promise((r) => setTimeout(r, 8000));
    const region = { x: 500, y: 560, width: 200, height: 100 };
    const before = await png({ region });
    // twm's title bar sits just above the window's top edge.
    await act({ action: 'left_click_drag', start_coordinate: [160, 550], coordinate: [560, 570] });
    await new Promise((r) => setTimeout(r, 2000));
    const after = await png({ region });
    assert.ok(!after.data.equals(before.data), 'the region where the window was dragged to changed');
  });

  test("refused with stable codes, nothing dialled: a view-only token sending input, another VM's token, CDP on a desktop VM", async () => {
    // A spy on the agent port, CDP's only way into a VM: it must not be asked for a session.
    const dials = { agent: 0 };
    const port = live.c.agents;
    const session = port.session.bind(port);
    port.session = (id, o) => { dials.agent++; return session(id, o); };
    const post = (q: string, body: object): Promise<Response> => fetch(`${live.c.url}/v1/vms/${vmId}/computer${q}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const code = async (r: Response): Promise<[number, string]> => [r.status, ((await r.json()) as { error: { code: string } }).error.code];
    try {
      const view = await (await fetch(`${live.c.url}/v1/vms/${vmId}/viewer`, { method: 'POST', headers: { authorization: `Bearer ${live.c.token}`, 'content-type': 'application/json' }, body: JSON.stringify({ viewOnly: true }) })).json() as { token: string };
      for (const body of [{ action: 'left_click', coordinate: [10, 10] }, { action: 'type', text: 'x' }, { action: 'key', text: 'Return' }, { action: 'mouse_move', coordinate: [1, 1] }]) {
        assert.deepEqual(await code(await post(`?token=${view.token}`, body)), [403, 'TOKEN_SCOPE'], JSON.stringify(body));
      }
      // A view-only token may look.
      assert.equal((await post(`?token=${view.token}`, { action: 'screen_size' })).status, 200);
      // The token the controller would issue for another VM (signed with its key, state directory's viewer.key).
      const secret = Buffer.from(readFileSync(join(live.stateDir, 'viewer.key'), 'utf8').trim(), 'base64');
      const other = signViewerToken(secret, 'vm-0therv3m', Buffer.alloc(16, 7), Date.now() + 60_000);
      assert.deepEqual(await code(await post(`?token=${other}`, { action: 'screenshot' })), [401, 'VIEWER_TOKEN_INVALID']);
      const cdp = await fetch(`${live.c.url}/v1/vms/${vmId}/cdp/json/version`, { headers: { authorization: `Bearer ${live.c.token}` } });
      assert.deepEqual(await code(cdp), [409, 'CDP_UNAVAILABLE']);
      const ws = await new Promise<number>((resolve, reject) => {
        const w = new WebSocket(`${live.c.url.replace('http', 'ws')}/v1/vms/${vmId}/cdp`, { headers: { authorization: `Bearer ${live.c.token}` } });
        w.once('open', () => { w.close(); resolve(101); });
        w.once('unexpected-response', (_q, res) => resolve(res.statusCode ?? 0));
        w.once('error', reject);
      });
      assert.equal(ws, 409);
      assert.equal(dials.agent, 0, 'CDP on a desktop VM dialled nothing');
    } finally {
      port.session = session;
    }
  });

  test('record 10 s, replay in Chromium: the frame at t is the screenshot at t', { skip: skipUnlessChromium() }, async () => {
    const bearer = { authorization: `Bearer ${live.c.token}`, 'content-type': 'application/json' };
    const started = await (await fetch(`${live.c.url}/v1/vms/${vmId}/recordings`, { method: 'POST', headers: bearer, body: JSON.stringify({ durationS: 10 }) })).json() as { id: string };
    const t0 = Date.now();
    await act({ action: 'left_click', coordinate: [300, 250] });
    await act({ action: 'type', text: 'echo recorded' });
    await new Promise((r) => setTimeout(r, 3000));
    const shotAt = Date.now() - t0;
    const shot = await png();
    await act({ action: 'type', text: ' and more after the screenshot' });
    await new Promise((r) => setTimeout(r, Math.max(0, 10_500 - (Date.now() - t0))));
    let recs: { id: string }[] = [];
    for (let i = 0; i < 50 && !recs.some((r) => r.id === started.id); i++) {
      recs = ((await (await fetch(`${live.c.url}/v1/vms/${vmId}/recordings`, { headers: bearer })).json()) as { recordings: { id: string }[] }).recordings;
      await new Promise((r) => setTimeout(r, 200));
    }
    const viewer = await (await fetch(`${live.c.url}/v1/vms/${vmId}/viewer`, { method: 'POST', headers: bearer, body: JSON.stringify({ viewOnly: true }) })).json() as { token: string };
    const browser = await launchBrowser();
    try {
      const page = await browser.context.newPage();
      await page.goto(`${live.c.url}/view/${vmId}/replay/${started.id}?token=${viewer.token}&speed=4&until=${shotAt}`);
      await page.waitForSelector('#status[data-state="done"]', { timeout: 60_000 });
      await page.waitForTimeout(500);
      const replayed = await page.evaluate(() => {
        const c = (globalThis as unknown as { document: { querySelector(s: string): { width: number; height: number; getContext(k: '2d'): { getImageData(x: number, y: number, w: number, hh: number): { data: Uint8ClampedArray } } } } }).document.querySelector('#screen canvas');
        return { w: c.width, h: c.height, data: Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data) };
      });
      assert.deepEqual([replayed.w, replayed.h], [shot.width, shot.height]);
      let same = 0;
      for (let i = 0; i < shot.data.length; i += 4) if (shot.data[i] === replayed.data[i] && shot.data[i + 1] === replayed.data[i + 1] && shot.data[i + 2] === replayed.data[i + 2]) same++;
      const share = same / (shot.data.length / 4);
      assert.ok(share > 0.995, `replayed frame at t=${shotAt} ms matches the screenshot: ${(share * 100).toFixed(3)}% of pixels`);
    } finally {
      await browser.close();
    }
  });
});
