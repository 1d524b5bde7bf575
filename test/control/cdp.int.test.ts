// CDP on a real booted browser-profile VM (ONE VM shared by every test here; run under the integration lock): the
// guest's Chromium listens on guest loopback only, Hangar reaches it through the guest agent's TCP forward, and
// Playwright (playwright-core, the real client) drives it through Hangar's endpoint while a person watches in the
// viewer — new page, goto a page served in the guest (busybox httpd on guest loopback), evaluate, screenshot. The
// /json/version discovery document has Chromium's shape with Hangar's URL; the CDP token's wsUrl works as Puppeteer's
// browserWSEndpoint (a raw WebSocket speaking CDP, as Puppeteer does). Refusals come with stable codes.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { PNG } from 'pngjs';
import { chromium } from 'playwright-core';
import { WebSocket } from 'ws';
import type { AgentSession } from '../../src/agent/port.js';
import { signViewerToken } from '../../src/desktop/token.js';
import { run } from '../../src/util/exec.js';
import { ROOT, skipUnlessRoot } from '../support/env.js';
import { imageSkipReason } from '../support/controller.js';
import { startLiveController, type LiveController } from '../support/live-controller.js';
import type { Page } from 'playwright-core';
import { launchBrowser, openViewer, skipUnlessChromium, viewerState, waitState, type Browser } from '../support/viewer.js';

const skip = skipUnlessRoot() || skipUnlessChromium() || (await imageSkipReason('browser')) || false;
const PAGE = '<!doctype html><title>served in the guest</title><h1 id="h">hello from the guest</h1>';

describe('CDP on a browser-profile VM (Playwright through Hangar, a viewer connected)', { skip, concurrency: false }, () => {
  let live: LiveController;
  let vmId = '';
  let agent: AgentSession;
  let viewer: Browser | undefined;
  let viewerPage: Page | undefined;
  const bearer = (): Record<string, string> => ({ authorization: `Bearer ${live.c.token}` });
  /** A CDP WebSocket upgrade: 101 when accepted, else the status and the error code. */
  const upgrade = (url: string, headers: Record<string, string> = {}): Promise<{ status: number; code?: string }> => new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once('open', () => { ws.close(); resolve({ status: 101 }); });
    ws.once('unexpected-response', (_q, res) => {
      let t = '';
      res.on('data', (d: Buffer) => { t += d.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, code: (JSON.parse(t) as { error: { code: string } }).error.code }));
    });
    ws.once('error', reject);
  });

  before(async () => {
    live = await startLiveController({ net: { cidr: '10.223.0.0/29' } });
    const created = await run(process.execPath, [join(ROOT, 'bin', 'hangar.js'), 'vm', 'create', '--profile', 'browser', '--name', 'cdp-e2e', '--json'], { env: live.env, timeoutMs: 300_000 });
    vmId = (JSON.parse(created.stdout) as { id: string }).id;
    agent = await live.c.agents.session(vmId, { timeoutMs: 120_000 });
    // A page served in the guest, on guest loopback: Chromium reaches it, nothing outside the VM does.
    await agent.mkdir('/tmp/www', { parents: true });
    await agent.writeFile('/tmp/www/index.html', Readable.from([Buffer.from(PAGE)]));
    (await agent.exec({ argv: ['busybox', 'httpd', '-f', '-p', '127.0.0.1:8080', '-h', '/tmp/www'], background: true, tag: 'httpd' })).detach();
    // Chromium starts after READY; under TCG it takes a while to listen.
    const deadline = Date.now() + 240_000;
    while (!(await agent.info()).listening.some((l) => l.port === 9222)) {
      if (Date.now() > deadline) throw new Error("the guest's Chromium did not listen on 9222");
      await new Promise((r) => setTimeout(r, 1000));
    }
    // Listening is not answering yet: under TCG its first /json/version takes seconds.
    while ((await fetch(`${live.c.url}/v1/vms/${vmId}/cdp/json/version`, { headers: bearer() })).status !== 200) {
      if (Date.now() > deadline) throw new Error("the guest's Chromium did not answer /json/version");
      await new Promise((r) => setTimeout(r, 1000));
    }
    const v = await (await fetch(`${live.c.url}/v1/vms/${vmId}/viewer`, { method: 'POST', headers: { ...bearer(), 'content-type': 'application/json' }, body: '{}' })).json() as { url: string };
    viewer = await launchBrowser();
    viewerPage = await openViewer(viewer, `${live.c.url}${v.url}`);
    await waitState(viewerPage, 'connected', 60_000);
  });
  after(async () => {
    await viewer?.close();
    await live?.destroy();
  });

  test("the guest's Chromium listens on guest loopback only", async () => {
    const cdp = (await agent.info()).listening.filter((l) => l.port === 9222);
    assert.ok(cdp.length >= 1);
    for (const l of cdp) assert.match(l.addr, /^(127\.0\.0\.1|::1|\[::1\])$/, `9222 bound to ${l.addr}`);
  });

  test("discovery: /json/version has Chromium's shape and Hangar's WebSocket URL", async () => {
    const res = await fetch(`${live.c.url}/v1/vms/${vmId}/cdp/json/version`, { headers: bearer() });
    const doc = await res.json() as Record<string, string>;
    assert.equal(res.status, 200, JSON.stringify(doc));
    assert.deepEqual(Object.keys(doc).sort(), ['Browser', 'Protocol-Version', 'User-Agent', 'V8-Version', 'WebKit-Version', 'webSocketDebuggerUrl']);
    assert.match(doc.Browser!, /^Chrome\/\d+/);
    assert.match(doc.webSocketDebuggerUrl!, new RegExp(`^${live.c.url.replace('http', 'ws')}/v1/vms/${vmId}/cdp\\?token=[A-Za-z0-9_-]+$`));
  });

  test('Playwright connectOverCDP through Hangar while a viewer is connected: new page, goto, evaluate, screenshot', { timeout: 300_000 }, async () => {
    const browser = await chromium.connectOverCDP(`${live.c.url}/v1/vms/${vmId}/cdp`, { headers: bearer(), timeout: 120_000 });
    try {
      const ctx = browser.contexts()[0] ?? await browser.newContext();
      const page = await ctx.newPage();
      page.setDefaultTimeout(120_000);
      await page.goto('http://127.0.0.1:8080/');
      assert.equal(await page.title(), 'served in the guest');
      assert.equal(await page.textContent('#h'), 'hello from the guest');
      assert.equal(await page.evaluate('location.origin'), 'http://127.0.0.1:8080');
      assert.equal(await page.evaluate(() => 6 * 7), 42);
      const png = PNG.sync.read(await page.screenshot());
      const size = await page.evaluate('[innerWidth, innerHeight]');
      assert.deepEqual([png.width, png.height], size);
      await page.close();
    } finally {
      await browser.close(); // closes the connection, not the guest's browser
    }
    assert.equal((await viewerState(viewerPage!)).state, 'connected', 'the viewer stayed connected throughout');
  });

  test("the CDP token's wsUrl works as Puppeteer's browserWSEndpoint (CDP over a plain WebSocket)", { timeout: 120_000 }, async () => {
    const t = await (await fetch(`${live.c.url}/v1/vms/${vmId}/cdp/token`, { method: 'POST', headers: bearer() })).json() as { wsUrl: string; url: string };
    const ws = new WebSocket(t.wsUrl);
    await new Promise((r, j) => { ws.once('open', r); ws.once('error', j); });
    const reply = new Promise<{ id: number; result: { product: string } }>((r) => ws.on('message', (d: Buffer) => { const m = JSON.parse(d.toString()) as { id?: number }; if (m.id === 1) r(m as { id: number; result: { product: string } }); }));
    ws.send(JSON.stringify({ id: 1, method: 'Browser.getVersion' }));
    assert.match((await reply).result.product, /^Chrome\//);
    ws.close();
    // Playwright takes the token URL alone too (no headers).
    const b = await chromium.connectOverCDP(t.url, { timeout: 120_000 });
    assert.match(b.version(), /^\d+\./);
    await b.close();
  });

  test("refused with stable codes: a view-only token, another VM's token, no credentials", async () => {
    const ws = `${live.c.url.replace('http', 'ws')}/v1/vms/${vmId}/cdp`;
    const view = await (await fetch(`${live.c.url}/v1/vms/${vmId}/viewer`, { method: 'POST', headers: { ...bearer(), 'content-type': 'application/json' }, body: JSON.stringify({ viewOnly: true }) })).json() as { token: string };
    assert.deepEqual(await upgrade(`${ws}?token=${view.token}`), { status: 403, code: 'TOKEN_SCOPE' });
    // The CDP token the controller would hand out for another VM (its key is the state directory's viewer.key).
    const secret = Buffer.from(readFileSync(join(live.stateDir, 'viewer.key'), 'utf8').trim(), 'base64');
    const other = signViewerToken(secret, 'vm-0therv3m', Buffer.alloc(16, 7), Date.now() + 60_000, undefined, 'cdp');
    assert.deepEqual(await upgrade(`${ws}?token=${other}`), { status: 401, code: 'VIEWER_TOKEN_INVALID' });
    assert.deepEqual(await upgrade(ws), { status: 401, code: 'UNAUTHORIZED' });
    const json = await fetch(`${live.c.url}/v1/vms/${vmId}/cdp/json/version?token=${view.token}`);
    assert.equal(((await json.json()) as { error: { code: string } }).error.code, 'TOKEN_SCOPE');
  });
});
