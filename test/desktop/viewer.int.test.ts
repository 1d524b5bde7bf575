// The viewer page in a real headless Chromium against a real desktop: Xvfb + x11vnc on the host loopback with an
// xterm running `tee FILE`, behind a real listening controller (buildServer + desktop routes + bridge). Keystrokes
// typed in the page must land in FILE; the canvas must show the desktop; the page must explain why it is
// disconnected (paused, stopped, not found, link expired) and come back by itself when the VM does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fakeRfbServer, hasClientCutText, serverCutText, skipUnlessDesktopTools, startDesktop, type Desktop } from '../support/rfb.js';
import {
  launchBrowser, notBlank, openViewer, screenshot, skipUnlessChromium, typeText, viewerState, waitNotBlank, waitReason, waitState, type Browser,
} from '../support/viewer.js';
import { startHarness, tcpDial, until, type Harness } from './harness.js';

const skip = skipUnlessChromium() || (await skipUnlessDesktopTools());

test('viewer page in Chromium: connects, shows the desktop, types into it, clipboard both ways, explains disconnections', { skip, timeout: 180_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-viewer-'));
  const typed = join(dir, 'typed.txt');
  let desktop: Desktop | undefined;
  let h: Harness | undefined;
  let b: Browser | undefined;
  const dialTo = new Map<string, number>(); // VMs that are not the desktop
  try {
    desktop = await startDesktop({ typedFile: typed });
    const desktopPort = desktop.port;
    h = await startHarness({ dial: (id) => tcpDial(dialTo.get(id) ?? desktopPort)() });
    const harness = h;
    h.addVm('vm-desk');
    const { json } = await h.viewer('vm-desk');
    b = await launchBrowser();
    const page = await openViewer(b, `${h.base}${json.url}`);
    await waitState(page, 'connected');
    assert.ok(!page.url().includes('token='), `the token is stripped from the address bar: ${page.url()}`);
    assert.equal(await page.evaluate(() => typeof (globalThis as { hangarRfb?: unknown }).hangarRfb), 'object', 'window.hangarRfb');
    assert.equal(await page.evaluate(() => (globalThis as { hangarRfb?: { scaleViewport: boolean } }).hangarRfb?.scaleViewport), true);
    // A reload comes back: the tab kept the token (sessionStorage), and the address bar still shows none.
    await page.reload();
    await waitState(page, 'connected');
    assert.ok(!page.url().includes('token='), `after a reload too: ${page.url()}`);

    // The desktop is drawn: a blue xterm on a black root window.
    const stats = await waitNotBlank(page);
    const shot = await screenshot(page, 'viewer-host-desktop');
    t.diagnostic(`canvas ${stats.width}x${stats.height}, ${stats.colours} colours in ${stats.samples} samples, dominant ${(stats.dominantShare * 100).toFixed(1)}%; screenshot ${shot}`);
    assert.ok(notBlank(stats), `canvas is blank: ${JSON.stringify(stats)}`);
    assert.deepEqual([stats.width, stats.height], [1024, 768]);

    // Keyboard: through the canvas, noVNC, the bridge and x11vnc into the xterm, which tees it to a file.
    await typeText(page, 'hello hangar 42\n', { fx: 0.1, fy: 0.1 });
    await until(() => { try { return readFileSync(typed, 'utf8').includes('hello hangar 42'); } catch { return false; } }, 15_000, 'typed text in the file');
    await page.waitForTimeout(500); // the echo's framebuffer update
    await screenshot(page, 'viewer-host-desktop-typed');
    // Adaptive quality is wired to this connection, and noVNC asks for the quality it holds.
    const quality = await page.evaluate(() => {
      const g = globalThis as { hangarQuality?: { quality: number }; hangarRfb?: { qualityLevel: number } };
      return { policy: g.hangarQuality?.quality, rfb: g.hangarRfb?.qualityLevel };
    });
    assert.ok(quality.policy !== undefined && quality.policy === quality.rfb, `adaptive quality in the page: ${JSON.stringify(quality)}`);

    // Paused: the manager disconnects viewers; the page says why and reconnects by itself once resumed.
    harness.setState('vm-desk', 'paused');
    assert.equal(h.bridge.disconnect('vm-desk', 'VM paused'), 1);
    await waitReason(page, 'paused');
    assert.equal((await viewerState(page)).message, 'VM is paused');
    assert.equal((await viewerState(page)).state, 'disconnected');
    harness.setState('vm-desk', 'ready');
    await waitState(page, 'connected', 30_000);

    // Stopped, then gone.
    harness.setState('vm-desk', 'stopping');
    harness.setState('vm-desk', 'stopped');
    h.bridge.disconnect('vm-desk');
    await waitReason(page, 'stopped');
    assert.equal((await viewerState(page)).message, 'VM is stopped');
    await screenshot(page, 'viewer-vm-stopped');
    h.store.deleteVm('vm-desk');
    await waitReason(page, 'not_found', 45_000); // the next retry (backoff) finds no VM
    assert.equal((await viewerState(page)).message, 'VM not found');

    // A link that expires: while connected nothing changes; after a disconnection the page says so and stops.
    h.addVm('vm-two');
    const short = await h.viewer('vm-two', { ttlSeconds: 2 });
    const page2 = await openViewer(b, `${h.base}${short.json.url}`);
    await waitState(page2, 'connected');
    await page2.waitForTimeout(2500);
    assert.equal((await viewerState(page2)).state, 'connected', 'an open session outlives its token');
    h.bridge.disconnect('vm-two', 'test');
    await waitReason(page2, 'expired');
    assert.match((await viewerState(page2)).message, /expired/);
    await page2.reload(); // the expired token was dropped: the reload ends on the refusal page, and stays there
    await waitState(page2, 'refused');
    await page2.waitForTimeout(500);
    assert.equal((await viewerState(page2)).state, 'refused');

    // Clipboard both ways, against an RFB server that shows what it receives and sends what we ask
    // (x11vnc here neither owns an X selection from ClientCutText nor relays one, so it cannot show this).
    const fake = await fakeRfbServer({ quiet: true });
    try {
      dialTo.set('vm-clip', fake.port);
      h.addVm('vm-clip');
      const page3 = await openViewer(b, `${h.base}${(await h.viewer('vm-clip')).json.url}`);
      await waitState(page3, 'connected');
      await page3.click('#clip summary'); // the clipboard box is folded away by default
      await page3.fill('#clipboard', 'from the browser');
      await until(() => fake.afterHandshake().some((bytes) => hasClientCutText(bytes, 'from the browser')), 10_000, 'ClientCutText at the VM');
      for (const sock of fake.sockets()) sock.write(serverCutText('from the desktop'));
      await until(async () => (await page3.inputValue('#clipboard')) === 'from the desktop', 10_000, 'ServerCutText in the page');
    } finally {
      await fake.close();
    }

    const problems = b.console.filter((l) => /pageerror|Content Security Policy|Refused to/i.test(l));
    assert.deepEqual(problems, [], 'no page errors or CSP violations');
  } catch (e) {
    if (b) t.diagnostic(`browser console:\n${b.console.slice(-30).join('\n')}`);
    throw e;
  } finally {
    await b?.close();
    await h?.close();
    await desktop?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
