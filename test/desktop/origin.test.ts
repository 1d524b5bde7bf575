// Origin and Host against the public origins (DNS rebinding): a page served under another name — Origin and Host
// both the attacker's — is refused before any dial, on the bridge, the viewer page and its status poll; the
// controller's own origins and the configured viewerOrigins pass. listenOrigins: what "own" means.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostAllowed, listenOrigins, publicOrigins } from '../../src/desktop/deps.js';
import { originAllowed } from '../../src/desktop/bridge.js';
import { fakeRfbServer } from '../support/rfb.js';
import { rawRequest, startHarness, until, type Harness } from './harness.js';

async function withHarness(opts: Parameters<typeof startHarness>[0], fn: (h: Harness, accepted: () => number) => Promise<void>): Promise<void> {
  const rfb = await fakeRfbServer();
  const h = await startHarness({ ...opts, rfbPort: rfb.port });
  try {
    await fn(h, () => rfb.accepted());
  } finally {
    await h.close();
    await rfb.close();
  }
}

const vnc = (id: string, token: string): string => `/v1/vms/${id}/vnc?token=${token}`;

test('DNS rebinding: Origin == Host == evil.example:7070 gets 403 before any dial; the controller\'s own origin gets 101', async () => {
  await withHarness({}, async (h, accepted) => {
    h.addVm('vm-a');
    const token = (await h.viewer('vm-a')).json.token;
    const evil = { host: 'evil.example:7070', origin: 'http://evil.example:7070' };
    const r = await rawRequest(h.base, vnc('vm-a', token), evil, true);
    assert.equal(r.status, 403, 'before the fix: 101 (Origin was compared with the request\'s own Host)');
    assert.equal((JSON.parse(r.body) as { error: { code: string } }).error.code, 'VIEWER_ORIGIN_REFUSED');
    // No Origin (not a browser) but an unknown Host: refused too.
    const noOrigin = await rawRequest(h.base, vnc('vm-a', token), { host: 'evil.example:7070' }, true);
    assert.equal(noOrigin.status, 403);
    const d = (JSON.parse(noOrigin.body) as { error: { code: string; details: Record<string, unknown> } }).error;
    assert.equal(d.code, 'VIEWER_ORIGIN_REFUSED');
    assert.equal(d.details.reason, 'host');
    assert.equal(h.dials(), 0, 'nothing dialled');
    assert.equal(accepted(), 0);

    // The viewer page and the status poll refuse the rebound name as well.
    const page = await rawRequest(h.base, `/view/vm-a?token=${token}`, { host: 'evil.example:7070' });
    assert.equal(page.status, 403);
    assert.match(page.body, /not served here/);
    assert.ok(!page.body.includes('data-vm'), 'no viewer page under a foreign name');
    const st = await rawRequest(h.base, `/v1/vms/vm-a/viewer-status?token=${token}`, { host: 'evil.example:7070' });
    assert.equal(st.status, 403);
    assert.equal((JSON.parse(st.body) as { error: { code: string } }).error.code, 'VIEWER_ORIGIN_REFUSED');

    // The controller's own origin, as its own page sends it.
    const own = new URL(h.base);
    const ok = await rawRequest(h.base, vnc('vm-a', token), { host: own.host, origin: h.base }, true);
    assert.equal(ok.status, 101);
    const okPage = await rawRequest(h.base, `/view/vm-a?token=${token}`, { host: own.host });
    assert.equal(okPage.status, 200);
    await until(() => h.bridge.viewers('vm-a') === 0);
  });
});

test('a configured viewer origin (a reverse proxy) passes with its own Host or the controller\'s; others do not', async () => {
  await withHarness({ allowedOrigins: ['https://desk.example.com'] }, async (h) => {
    h.addVm('vm-a');
    const token = (await h.viewer('vm-a')).json.token;
    const own = new URL(h.base).host;
    for (const host of ['desk.example.com', 'DESK.example.com:443', own]) {
      const r = await rawRequest(h.base, vnc('vm-a', token), { host, origin: 'https://desk.example.com' }, true);
      assert.equal(r.status, 101, host);
      await until(() => h.bridge.viewers('vm-a') === 0);
    }
    for (const [host, origin] of [['desk.example.com', 'https://evil.example'], ['evil.example', 'https://desk.example.com'], ['desk.example.com.evil.example', 'https://desk.example.com.evil.example']]) {
      const r = await rawRequest(h.base, vnc('vm-a', token), { host: host!, origin: origin! }, true);
      assert.equal(r.status, 403, `${host} ${origin}`);
    }
  });
});

test('originAllowed compares with the public origins only, never with Host', () => {
  const allowed = new Set(['http://127.0.0.1:7070', 'https://desk.example.com']);
  assert.equal(originAllowed(undefined, allowed), true, 'not a browser: the token guards it');
  assert.equal(originAllowed('http://127.0.0.1:7070', allowed), true);
  assert.equal(originAllowed('https://desk.example.com:443', allowed), true);
  for (const o of ['http://evil.example:7070', 'null', 'http://127.0.0.1:7071', 'chrome-extension://x', 'not a url']) assert.equal(originAllowed(o, allowed), false, o);
  assert.equal(originAllowed('http://evil.example:7070', new Set()), false, 'no public origins known: no browser origin passes');
});

test('listenOrigins: the listen address and the loopback names; a wildcard listen adds the interface addresses', () => {
  assert.deepEqual(listenOrigins({ host: '127.0.0.1', address: '127.0.0.1', port: 7070 }),
    ['http://127.0.0.1:7070', 'http://localhost:7070', 'http://[::1]:7070']);
  assert.deepEqual(listenOrigins({ host: 'hangar.lan', address: '10.0.0.5', port: 80 }).sort(),
    ['http://10.0.0.5:80', 'http://127.0.0.1:80', 'http://[::1]:80', 'http://hangar.lan:80', 'http://localhost:80']);
  const wild = listenOrigins({ host: '0.0.0.0', address: '0.0.0.0', port: 7070 }, ['127.0.0.1', '192.168.1.9', 'fe80::1']);
  assert.ok(wild.includes('http://192.168.1.9:7070') && wild.includes('http://[fe80::1]:7070'));
  assert.ok(!wild.some((o) => o.includes('0.0.0.0')));
  const pub = publicOrigins({ ownOrigins: () => listenOrigins({ host: '127.0.0.1', address: '127.0.0.1', port: 7070 }), allowedOrigins: ['https://desk.example.com'] });
  for (const host of ['127.0.0.1:7070', 'localhost:7070', '[::1]:7070', 'desk.example.com', 'desk.example.com:443']) assert.equal(hostAllowed(host, pub), true, host);
  for (const host of ['evil.example:7070', '127.0.0.1:7071', 'desk.example.com:80', undefined]) assert.equal(hostAllowed(host, pub), false, String(host));
  assert.equal(hostAllowed('anything', publicOrigins({})), true, 'nothing configured: no Host check');
});
