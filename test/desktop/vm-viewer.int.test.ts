// The whole path a person takes: a desktop VM booted by the controller, the view URL from `hangar vm open`,
// real headless Chromium through the controller's authenticated bridge to the guest's VNC server. Typing into
// the guest's terminal runs a command there; its output comes back through the serial console.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { run } from '../../src/util/exec.js';
import { waitForMarker } from '../../src/vmm/console.js';
import { ROOT, skipUnlessRoot } from '../support/env.js';
import { imageSkipReason } from '../support/controller.js';
import { startLiveController, type LiveController } from '../support/live-controller.js';
import { launchBrowser, openViewer, screenshot, skipUnlessChromium, typeText, waitNotBlank, waitState, type Browser } from '../support/viewer.js';

const skip = skipUnlessRoot() || skipUnlessChromium() || (await imageSkipReason()) || false;

describe('a desktop VM in the browser', { skip, concurrency: false }, () => {
  let live: LiveController;
  let browser: Browser;
  before(async () => {
    live = await startLiveController({ net: { cidr: '10.218.0.0/29' } });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await live?.destroy();
  });

  test('open the view URL, see the desktop, type a command that runs in the guest', async () => {
    const created = await run(process.execPath, [join(ROOT, 'bin', 'hangar.js'), 'vm', 'create', '--name', 'viewer-e2e', '--json'], { env: live.env, timeoutMs: 300_000 });
    const vm = JSON.parse(created.stdout) as { id: string; state: string };
    assert.equal(vm.state, 'ready');
    const open = await run(process.execPath, [join(ROOT, 'bin', 'hangar.js'), 'vm', 'open', vm.id, '--json'], { env: live.env });
    const { url } = JSON.parse(open.stdout) as { url: string };
    assert.match(url, new RegExp(`^${live.c.url}/view/${vm.id}\\?token=`));

    const page = await openViewer(browser, url);
    await waitState(page, 'connected', 60_000);
    const stats = await waitNotBlank(page, 60_000);
    const shot = await screenshot(page, 'vm-desktop');
    assert.ok(stats.colours >= 2, `the desktop is not a single colour (${JSON.stringify(stats)}); screenshot ${shot}`);

    // The terminal has focus under the pointer (twm: focus follows the mouse). The command writes a file in the
    // guest and copies it to the guest's console channel, which the host reads in the serial console log.
    const word = `typed-${randomBytes(4).toString('hex')}`;
    await typeText(page, `echo ${word} > ~/e2e.txt && cat ~/e2e.txt > /run/hangar-console\n`, { fx: 0.2, fy: 0.2 });
    const consolePath = live.c.manager.consolePath(vm.id);
    const hit = await waitForMarker(consolePath, new RegExp(`^${word}$`), { timeoutMs: 60_000 });
    assert.equal(hit.line.trim(), word);
    await screenshot(page, 'vm-desktop-after-typing');
    await page.close();
  });
});
