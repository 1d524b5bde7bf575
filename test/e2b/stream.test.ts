// @e2b/desktop's stream URL against the E2B layer (src/e2b/stream.ts): the pure host parser and answer, and the REAL
// desktop SDK's stream.start({ requireAuth: true }) + getUrl({ authKey }) over a fake guest agent: the URL's host
// (`6080-<sandboxId>.<domain>`) is answered with a redirect to a fresh viewer page on the controller's public origin,
// only with the key the SDK set (never run in the guest); without it, or with another, 401; other hosts route as
// usual. The real viewer in Chromium behind a TLS proxy: sdk.int.test.ts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Sandbox as Desktop } from '@e2b/desktop';
import { createE2b, type E2b } from '../../src/e2b/index.js';
import { desktopCommand } from '../../src/e2b/desktop.js';
import { newAccessToken } from '../../src/e2b/model.js';
import { STREAM_PORT, StreamKeys, streamAnswer, streamHostOf, streamRewrite } from '../../src/e2b/stream.js';
import { createApiHarness, type ApiHarness } from '../support/api.js';
import { createFakeAgent, type FakeAgentPort } from '../support/fake-agent.js';

const VM = 'vm-e2b5t001';

test('streamHostOf: <port>-<sandboxId>.<domain>[:port], nothing else', () => {
  assert.deepEqual(streamHostOf('6080-vm-ab12cd34.e2b.localhost:8443'), { port: 6080, sandboxId: 'vm-ab12cd34', domain: 'e2b.localhost' });
  assert.deepEqual(streamHostOf('49983-vm-1.example.com'), { port: 49983, sandboxId: 'vm-1', domain: 'example.com' });
  for (const h of ['127.0.0.1:8080', 'localhost', 'api.example.com', '6080-.x', '6080-vm', undefined]) assert.equal(streamHostOf(h), null, String(h));
});

test('streamAnswer: only 6080/vnc.html, only with the key; view_only passes through', () => {
  const keys = new StreamKeys();
  keys.set(VM, 'Key123');
  const h = { port: STREAM_PORT, sandboxId: VM };
  assert.deepEqual(streamAnswer(h, '/vnc.html', { password: 'Key123' }, keys), { kind: 'viewer', vmId: VM, viewOnly: false });
  assert.deepEqual(streamAnswer(h, '/vnc.html', { password: 'Key123', view_only: 'true' }, keys), { kind: 'viewer', vmId: VM, viewOnly: true });
  assert.equal(streamAnswer(h, '/vnc.html', {}, keys).kind, 'refuse');
  assert.equal(streamAnswer(h, '/vnc.html', { password: 'Key124' }, keys).kind, 'refuse');
  assert.equal(streamAnswer(h, '/other', { password: 'Key123' }, keys).kind, 'refuse');
  assert.equal(streamAnswer({ ...h, port: 8080 }, '/vnc.html', { password: 'Key123' }, keys).kind, 'refuse');
  keys.forget(VM);
  assert.equal(streamAnswer(h, '/vnc.html', { password: 'Key123' }, keys).kind, 'refuse');
});

test('streamRewrite: a known sandbox\'s stream host goes to the stream route, query kept; other requests untouched', () => {
  const known = (id: string): boolean => id === VM;
  assert.equal(streamRewrite(`6080-${VM}.e2b.localhost:8443`, '/vnc.html?autoconnect=true&password=K', known), `/e2b/stream/${VM}/vnc.html?autoconnect=true&password=K`);
  assert.equal(streamRewrite(`6080-${VM}.e2b.localhost`, '/x', known), `/e2b/stream/${VM}/vnc.html?refuse=path`);
  assert.equal(streamRewrite(`49983-${VM}.e2b.localhost`, '/vnc.html', known), `/e2b/stream/${VM}/vnc.html?refuse=path`);
  assert.equal(streamRewrite('6080-vm-other.e2b.localhost', '/vnc.html', known), null, 'not a sandbox');
  assert.equal(streamRewrite('127.0.0.1:8080', '/vnc.html', known), null);
});

test('desktopCommand: the stream password is kept, not run; ~/.vnc is not needed', () => {
  assert.deepEqual(desktopCommand('x11vnc -storepasswd AbC123xyz ~/.vnc/passwd'), { kind: 'stream-key', key: 'AbC123xyz' });
  assert.equal(desktopCommand('x11vnc -storepasswd a;b ~/.vnc/passwd'), null, 'only the SDK\'s alphanumeric keys');
  assert.deepEqual(desktopCommand('mkdir -p ~/.vnc'), { kind: 'ok' });
});

describe('the desktop SDK\'s stream URL (fake agent)', () => {
  let h: ApiHarness;
  let e2b: E2b;
  let agent: FakeAgentPort;
  let detach: () => void;
  let opts: { apiKey: string; apiUrl: string; sandboxUrl: string; domain: string; requestTimeoutMs: number };
  const viewers: { id: string; viewOnly: boolean }[] = [];

  before(async () => {
    e2b = createE2b({
      desktop: { run: async (_vm, a) => ({ action: a.action, done: true }) }, publicOrigin: () => 'http://hangar.test:8080',
      limits: { vcpus: { min: 1, max: 4 }, memMiB: { min: 128, max: 8192 }, ttlSeconds: { min: 1, max: 86_400 }, name: { maxLength: 63 } },
    });
    h = await createApiHarness({
      extraRoutes: (c) => [...e2b.routes(c), {
        // Stands in for the desktop module's viewer route (src/desktop/routes.ts), which the stream redirect uses.
        method: 'POST', url: '/v1/vms/:id/viewer', auth: 'bearer', scope: 'viewer', summary: 'test viewer', schema: {},
        handler: async (req) => {
          const id = (req.params as { id: string }).id;
          const viewOnly = (req.body as { viewOnly?: boolean } | undefined)?.viewOnly === true;
          viewers.push({ id, viewOnly });
          return { url: `/view/${id}?token=t${viewers.length}`, token: `t${viewers.length}` };
        },
      }],
    });
    agent = createFakeAgent({ root: '/nonexistent-e2b-stream' });
    h.ctx.agents = agent;
    detach = await e2b.attach(h.app, h.ctx);
    await h.app.listen({ host: '127.0.0.1', port: 0 });
    const port = (h.app.server.address() as AddressInfo).port;
    opts = { apiKey: h.key('ta', 'write').secret, apiUrl: `http://127.0.0.1:${port}/e2b`, sandboxUrl: `http://127.0.0.1:${port}/e2b/sandbox`, domain: 'e2b.localhost:8443', requestTimeoutMs: 20_000 };
    h.insertVm(VM, 'ready', 'ta');
    e2b.state.set(VM, { templateId: 'desktop', metadata: {}, envs: {}, envdAccessToken: newAccessToken(), startedAt: new Date().toISOString(), endAt: Date.now() + 600_000, autoPause: false });
  });
  after(async () => { detach(); agent.close(); await h.close(); });

  /** GET the URL from the controller (the Host header kept, as a TLS proxy or wildcard DNS in front would). */
  const get = (url: string): Promise<{ statusCode: number; headers: IncomingHttpHeaders; body: string }> => new Promise((resolve, reject) => {
    const u = new URL(url);
    const port = (h.app.server.address() as AddressInfo).port;
    request({ host: '127.0.0.1', port, path: u.pathname + u.search, headers: { host: u.host } }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => { body += c; }).on('end', () => resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body }));
    }).on('error', reject).end();
  });

  test('stream.start({ requireAuth }) + getUrl({ authKey }): the SDK\'s own URL redirects to a fresh viewer; no key, no viewer', async () => {
    const d = await Desktop.connect(VM, opts);
    await d.stream.start({ requireAuth: true });
    const key = d.stream.getAuthKey();
    const url = d.stream.getUrl({ authKey: key });
    assert.match(url, new RegExp(`^https://6080-${VM}\\.e2b\\.localhost:8443/vnc\\.html\\?`));
    const r = await get(url);
    assert.equal(r.statusCode, 302, `${url}: ${r.body}`);
    assert.equal(r.headers.location, `http://hangar.test:8080/view/${VM}?token=t1`);
    assert.deepEqual(viewers, [{ id: VM, viewOnly: false }]);
    const ro = await get(d.stream.getUrl({ authKey: key, viewOnly: true }));
    assert.equal(ro.statusCode, 302);
    assert.deepEqual(viewers[1], { id: VM, viewOnly: true });
    assert.equal((await get(d.stream.getUrl())).statusCode, 401, 'no key');
    assert.equal((await get(d.stream.getUrl({ authKey: 'WrongKey1234' }))).statusCode, 401, 'another key');
    assert.equal(viewers.length, 2, 'no viewer minted for a refused request');
    assert.equal((await get(`https://6080-${VM}.e2b.localhost:8443/other?password=${key}`)).statusCode, 404, 'another path');
    assert.notEqual((await get(`https://6080-vm-unknown1.e2b.localhost:8443/vnc.html?password=${key}`)).statusCode, 302, 'an unknown sandbox: routed as usual');
    assert.equal(viewers.length, 2);
  });
});
