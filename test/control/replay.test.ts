// Session recordings end to end on a host desktop (Xvfb + x11vnc + an xterm, test/support/rfb.ts): 10 s recorded
// through the controller's own RFB client while text is typed, then replayed in the viewer page in headless
// Chromium (noVNC fed from the recording) up to a moment t: the replayed frame matches the screenshot the
// computer-use service took at t. Plus the recording store: frames, index, retention, refusals.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { parseAction } from '../../src/control/actions.js';
import { ComputerService } from '../../src/control/computer.js';
import { recordFor } from '../../src/control/recorder.js';
import { recordingRoutes } from '../../src/control/recording-routes.js';
import { desktopRoutes } from '../../src/desktop/routes.js';
import { decodeFrames, RecordingStore } from '../../src/desktop/recordings.js';
import { newViewerSecret, signViewerToken } from '../../src/desktop/token.js';
import { HangarMetrics } from '../../src/metrics.js';
import { createApiHarness, type ApiHarness } from '../support/api.js';
import { skipUnlessDesktopTools, startDesktop, type Desktop } from '../support/rfb.js';
import { launchBrowser, skipUnlessChromium, type Browser } from '../support/viewer.js';

const skip = (await skipUnlessDesktopTools()) || skipUnlessChromium();

test('the recording store: frames with times, the index, retention by age, refusals', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-rec-'));
  let now = 1_000_000;
  try {
    const store = new RecordingStore(dir, { maxAgeS: 60, maxBytes: 10 }, () => now);
    const r = store.start('vm-a', 'viewer');
    r.write(Buffer.from('RFB 0'));
    now += 250;
    r.write(Buffer.from('03.008\n')); // past maxBytes: truncated, not written
    r.end();
    const [m] = store.list('vm-a');
    assert.deepEqual({ ...m, startedAt: undefined, endedAt: undefined }, { id: r.id, vmId: 'vm-a', source: 'viewer', startedAt: undefined, endedAt: undefined, durationMs: 250, bytes: 5, truncated: true });
    assert.deepEqual(decodeFrames(store.file(r.id)).map((f) => [f.ms, f.data.toString()]), [[0, 'RFB 0']]);
    assert.deepEqual(store.list('vm-b'), []);
    assert.throws(() => store.get('rec-000000000000'), (e: Error & { code?: string }) => e.code === 'RECORDING_NOT_FOUND');
    assert.throws(() => store.get('../etc/passwd'), (e: Error & { code?: string }) => e.code === 'RECORDING_NOT_FOUND');
    writeFileSync(join(dir, 'rec-0123456789ab.hrec'), 'HREC1\n'); // an orphan (no index): pruned by its mtime
    utimesSync(join(dir, 'rec-0123456789ab.hrec'), 0, 0);
    now += 61_000;
    assert.deepEqual(store.prune().sort(), [r.id, 'rec-0123456789ab'].sort());
    assert.deepEqual(store.list(), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

describe('record 10 s, replay in Chromium: the frame at t is the screenshot at t', { skip }, () => {
  let desk: Desktop;
  let dir: string;
  let h: ApiHarness;
  let browser: Browser;
  const secret = newViewerSecret();
  const dial = (): Promise<net.Socket> => new Promise((res, rej) => { const s = net.connect(desk.port, '127.0.0.1', () => res(s)); s.once('error', rej); });
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hangar-replay-'));
    desk = await startDesktop({ width: 640, height: 400, typedFile: join(dir, 'typed.txt') });
    browser = await launchBrowser();
  });
  after(async () => { await browser?.close(); await h?.close(); await desk?.stop(); rmSync(dir, { recursive: true, force: true }); });

  test('replay matches', async () => {
    const recordings = new RecordingStore(join(dir, 'recordings'));
    h = await createApiHarness({
      extraRoutes: (c) => [
        ...desktopRoutes(c, { lookup: (id) => ({ state: 'ready', viewerNonce: h.store.viewerNonce(id)! }), rotateNonce: () => true, dial, metrics: new HangarMetrics(), secret }),
        ...recordingRoutes(c, { lookup: (id) => ({ state: 'ready', profile: 'desktop', viewerNonce: h.store.viewerNonce(id)! }), secret, recordings, dial }),
      ],
    });
    h.insertVm('vm-aaaaaaaa', 'ready');
    await h.app.listen({ host: '127.0.0.1', port: 0 });
    const base = `http://127.0.0.1:${(h.app.server.address() as net.AddressInfo).port}`;
    const svc = new ComputerService({ dial });
    const act = (b: object): ReturnType<ComputerService['run']> => svc.run('vm-aaaaaaaa', parseAction(b));
    await act({ action: 'screen_size' });
    const rec = recordFor(await dial(), recordings.start('vm-aaaaaaaa', 'api'), 10_000);
    const t0 = Date.now();
    await act({ action: 'left_click', coordinate: [100, 100] });
    await act({ action: 'type', text: 'the first line' });
    await new Promise((r) => setTimeout(r, 1500));
    await act({ action: 'type', text: ' and more' });
    await new Promise((r) => setTimeout(r, 2000));
    const shotAt = Date.now() - t0;
    const shot = PNG.sync.read(Buffer.from(((await act({ action: 'screenshot' })).image as { data: string }).data, 'base64'));
    await act({ action: 'type', text: ' and then something else entirely' });
    await rec.done;
    svc.close();

    const { recordings: list } = await (await fetch(`${base}/v1/vms/vm-aaaaaaaa/recordings`, { headers: { authorization: `Bearer ${h.ctx.token}` } })).json() as { recordings: { id: string; durationMs: number }[] };
    assert.equal(list.length, 1);
    assert.ok(list[0]!.durationMs >= 9_900, `recorded ${list[0]!.durationMs} ms`);
    const token = signViewerToken(secret, 'vm-aaaaaaaa', h.store.viewerNonce('vm-aaaaaaaa')!, Date.now() + 60_000, undefined, 'view');
    const page = await browser.context.newPage();
    await page.goto(`${base}/view/vm-aaaaaaaa/replay/${rec.id}?token=${token}&speed=4&until=${shotAt}`);
    page.on('console', (m) => browser.console.push(m.text()));
    page.on('pageerror', (e) => browser.console.push(`pageerror: ${e.message}`));
    await page.waitForSelector('#status[data-state="done"]', { timeout: 30_000 }).catch(async (e: Error) => {
      throw new Error(`${e.message}; status ${await page.textContent('#status')} ${await page.textContent('#position')}; console: ${browser.console.join(' | ')}`);
    });
    await page.waitForTimeout(300);
    const replayed = await page.evaluate(() => {
      const c = (globalThis as unknown as { document: { querySelector(s: string): { width: number; height: number; getContext(k: '2d'): { getImageData(x: number, y: number, w: number, hh: number): { data: Uint8ClampedArray } } } } }).document.querySelector('#screen canvas');
      return { w: c.width, h: c.height, data: Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data) };
    });
    assert.deepEqual([replayed.w, replayed.h], [640, 400]);
    let same = 0;
    for (let i = 0; i < shot.data.length; i += 4) if (shot.data[i] === replayed.data[i] && shot.data[i + 1] === replayed.data[i + 1] && shot.data[i + 2] === replayed.data[i + 2]) same++;
    const share = same / (shot.data.length / 4);
    assert.ok(share > 0.999, `replayed frame matches the screenshot at t=${shotAt} ms: ${(share * 100).toFixed(3)}% of pixels`);
    const end = await page.goto(`${base}/view/vm-aaaaaaaa/replay/${rec.id}?token=bad`);
    assert.equal(end?.status(), 401);
  });
});
