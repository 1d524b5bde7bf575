// CDP through Hangar with a FAKE AgentPort (named as such): its connectTcp dials a Chromium launched here on the
// host loopback with --remote-debugging-port, standing in for the guest's. Playwright (playwright-core, the real
// client) connects over CDP through Hangar's endpoint — bearer headers, or the token URL alone — opens a page,
// evaluates, screenshots, while a VNC viewer of another VM is connected on the same server. Refusals (a desktop VM,
// a view-only or another VM's token, no credentials) come before anything is dialled.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { chromium } from 'playwright-core';
import { WebSocket } from 'ws';
import type { AgentPort, AgentSession } from '../../src/agent/port.js';
import { authorizeBearerForVm } from '../../src/api/tenancy.js';
import { attachCdpBridge, type CdpBridge } from '../../src/control/cdp-bridge.js';
import { rewriteVersion, upgradeRequest } from '../../src/control/cdp.js';
import { ComputerService } from '../../src/control/computer.js';
import { controlRoutes, type ControlDeps } from '../../src/control/routes.js';
import { newViewerSecret, signViewerToken, type TokenScope } from '../../src/desktop/token.js';
import { auth, createApiHarness, type ApiHarness } from '../support/api.js';
import { freePort } from '../support/rfb.js';
import { CHROMIUM, CHROMIUM_ARGS, skipUnlessChromium } from '../support/viewer.js';

const skip = skipUnlessChromium();

/** FAKE agent port: every VM's "guest" TCP port is this host's 127.0.0.1:<port>; counts the dials. */
function fakeAgentPort(port: () => number): AgentPort & { dials: number } {
  const fake = {
    dials: 0,
    status: () => ({ state: 'ready', session: 'fake', since: 0 }) as const,
    session: async (): Promise<AgentSession> => {
      const s: Partial<AgentSession> = {
        session: 'fake', hostname: 'fake',
        connectTcp: (p: number) => new Promise<Duplex>((resolve, reject) => {
          assert.equal(p, 9222, 'CDP dials the guest port 9222');
          fake.dials++;
          const c = net.connect(port(), '127.0.0.1', () => resolve(c));
          c.once('error', reject);
        }),
      };
      return s as AgentSession;
    },
  };
  return fake;
}

describe('CDP through Hangar (fake agent, host Chromium)', { skip }, () => {
  let h: ApiHarness;
  let chrome: ChildProcess;
  let profile: string;
  let cdpPort = 0;
  let base = '';
  let bridge: CdpBridge;
  let page: http.Server;
  let pageUrl = '';
  const secret = newViewerSecret();
  const agents = fakeAgentPort(() => cdpPort);

  before(async () => {
    page = http.createServer((_q, res) => { res.writeHead(200, { 'content-type': 'text/html' }); res.end('<title>served</title><h1 id="h">hello from the test world</h1>'); });
    await new Promise<void>((r) => page.listen(0, '127.0.0.1', r));
    pageUrl = `http://127.0.0.1:${(page.address() as net.AddressInfo).port}/`;
    cdpPort = await freePort();
    profile = mkdtempSync(join(tmpdir(), 'hangar-cdp-'));
    chrome = spawn(CHROMIUM, [...CHROMIUM_ARGS, '--headless=new', `--remote-debugging-port=${cdpPort}`, `--user-data-dir=${profile}`, 'about:blank'], { stdio: 'ignore', detached: true });
    for (let i = 0; ; i++) {
      const ok = await fetch(`http://127.0.0.1:${cdpPort}/json/version`).then((r) => r.ok, () => false);
      if (ok) break;
      if (i > 100) throw new Error('Chromium did not start');
      await new Promise((r) => setTimeout(r, 100));
    }
    const deps: ControlDeps = {
      lookup: (id) => {
        const vm = h.store.getVm(id);
        const nonce = h.store.viewerNonce(id);
        return vm && nonce ? { state: vm.state, profile: vm.profile, viewerNonce: nonce } : null;
      },
      secret, agents, computer: new ComputerService({ dial: () => Promise.reject(new Error('not here')) }),
    };
    h = await createApiHarness({ extraRoutes: (c) => controlRoutes(c, deps) });
    h.insertVm('vm-dddddddd', 'ready'); // a desktop VM
    h.store.insertVm({ id: 'vm-bbbbbbbb', name: 'browser', state: 'creating', imageId: 'img', profile: 'browser', vmm: 'qemu', vcpus: 1, memMiB: 512, ttlS: null, expiresAt: null, runDir: join(h.stateDir, 'b'), spec: null, net: null });
    h.store.setState('vm-bbbbbbbb', 'booting');
    h.store.setState('vm-bbbbbbbb', 'ready');
    await h.app.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(h.app.server.address() as net.AddressInfo).port}`;
    bridge = attachCdpBridge(h.app.server, { ...deps, authorizeBearer: (hdr, id) => authorizeBearerForVm(h.ctx, hdr, id, 'write').vmId, origins: () => new Set([base]) });
  });
  after(async () => {
    bridge?.close();
    await h?.close();
    if (chrome?.pid) { try { process.kill(-chrome.pid, 'SIGKILL'); } catch { /* gone */ } }
    page?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  const token = (id: string, scope: TokenScope): string => signViewerToken(secret, id, h.store.viewerNonce(id)!, Date.now() + 60_000, undefined, scope);
  /** A CDP WebSocket upgrade; resolves with the HTTP status (101 when accepted) and the error code. */
  const upgrade = (path: string, headers: Record<string, string> = {}): Promise<{ status: number; code?: string }> => new Promise((resolve, reject) => {
    const ws = new WebSocket(`${base.replace('http', 'ws')}${path}`, { headers });
    ws.once('open', () => { ws.close(); resolve({ status: 101 }); });
    ws.once('unexpected-response', (_q, res) => {
      let t = '';
      res.on('data', (d: Buffer) => { t += d.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, code: (JSON.parse(t) as { error: { code: string } }).error.code }));
    });
    ws.once('error', reject);
  });

  test('refused before anything is dialled: a desktop VM, a view-only token, another VM\'s token, no credentials', async () => {
    assert.deepEqual(await upgrade('/v1/vms/vm-dddddddd/cdp', auth), { status: 409, code: 'CDP_UNAVAILABLE' });
    const json = await fetch(`${base}/v1/vms/vm-dddddddd/cdp/json/version`, { headers: auth });
    assert.equal(json.status, 409);
    assert.equal(((await json.json()) as { error: { code: string } }).error.code, 'CDP_UNAVAILABLE');
    assert.deepEqual(await upgrade(`/v1/vms/vm-bbbbbbbb/cdp?token=${token('vm-bbbbbbbb', 'view')}`), { status: 403, code: 'TOKEN_SCOPE' });
    assert.deepEqual(await upgrade(`/v1/vms/vm-bbbbbbbb/cdp?token=${token('vm-dddddddd', 'cdp')}`), { status: 401, code: 'VIEWER_TOKEN_INVALID' });
    assert.deepEqual(await upgrade('/v1/vms/vm-bbbbbbbb/cdp'), { status: 401, code: 'UNAUTHORIZED' });
    assert.deepEqual(await upgrade('/v1/vms/vm-bbbbbbbb/cdp', { ...auth, origin: 'http://evil.example' }), { status: 403, code: 'VIEWER_ORIGIN_REFUSED' });
    assert.deepEqual(await upgrade('/v1/vms/vm-bbbbbbbb/nope', auth), { status: 404, code: 'NOT_FOUND' });
    assert.equal(agents.dials, 0, 'nothing dialled');
  });

  test("discovery: Chromium's /json/version shape, its URLs replaced by Hangar's", async () => {
    const res = await fetch(`${base}/v1/vms/vm-bbbbbbbb/cdp/json/version/`, { headers: auth });
    const doc = await res.json() as Record<string, string>;
    assert.equal(res.status, 200);
    assert.match(doc.Browser!, /Chrome/);
    assert.match(doc.webSocketDebuggerUrl!, new RegExp(`^${base.replace('http', 'ws')}/v1/vms/vm-bbbbbbbb/cdp\\?token=[A-Za-z0-9_-]{76}$`));
    assert.ok(!JSON.stringify(doc).includes(String(cdpPort)), "no trace of the guest's own endpoint");
  });

  test('Playwright connectOverCDP through Hangar: new page, goto, evaluate, screenshot (bearer, then the token URL)', async () => {
    const browser = await chromium.connectOverCDP(`${base}/v1/vms/vm-bbbbbbbb/cdp`, { headers: auth });
    try {
      const ctx = browser.contexts()[0] ?? await browser.newContext();
      const p = await ctx.newPage();
      await p.goto(pageUrl);
      assert.equal(await p.evaluate(() => 6 * 7), 42);
      assert.equal(await p.title(), 'served');
      const shot = await p.screenshot();
      assert.equal(shot.subarray(1, 4).toString(), 'PNG');
      await p.close();
    } finally {
      await browser.close();
    }
    const t = await (await fetch(`${base}/v1/vms/vm-bbbbbbbb/cdp/token`, { method: 'POST', headers: auth })).json() as { url: string; wsUrl: string };
    const b2 = await chromium.connectOverCDP(t.url); // no headers: the token is in the URL
    assert.ok(b2.version());
    await b2.close();
    const b3 = await chromium.connectOverCDP(t.wsUrl); // as Puppeteer's browserWSEndpoint
    assert.ok(b3.contexts().length >= 1);
    await b3.close();
    assert.ok(agents.dials >= 4);
  });

  test('pure parts: the discovery rewrite and the upgrade sent to Chromium', () => {
    assert.deepEqual(rewriteVersion({ Browser: 'Chrome/1', webSocketDebuggerUrl: 'ws://127.0.0.1:9222/devtools/browser/x', extra: 1 }, 'ws://h/v1/vms/a/cdp?token=t'),
      { Browser: 'Chrome/1', webSocketDebuggerUrl: 'ws://h/v1/vms/a/cdp?token=t' });
    const req = upgradeRequest('/devtools/browser/abc', 'dGhlIHNhbXBsZSBub25jZQ==');
    assert.match(req, /^GET \/devtools\/browser\/abc HTTP\/1.1\r\nHost: 127.0.0.1:9222\r\n/);
    assert.ok(!/origin/i.test(req));
    assert.throws(() => upgradeRequest('/x', 'bad key\r\nX: y'));
  });
});
