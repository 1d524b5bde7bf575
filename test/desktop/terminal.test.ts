// The browser terminal: terminal tokens are not viewer tokens (and the other way round), the page is served only
// with a valid terminal token and references nothing outside the controller (xterm.js from node_modules, no CDN),
// the PTY WebSocket is admitted by token, Origin and Host as the viewer's is, and runs a shell whose output comes back.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { signViewerToken, verifyViewerToken } from '../../src/desktop/token.js';
import { auth } from '../support/api.js';
import { createAgentApi, TEST_SECRET, type AgentApi } from '../api/agent-harness.js';

let api: AgentApi;
before(async () => { api = await createAgentApi(); });
after(async () => { await api.close(); });

const terminal = async (id = 'vm-a'): Promise<{ token: string; url: string }> => (await api.app.inject({ method: 'POST', url: `/v1/vms/${id}/terminal`, headers: auth, payload: {} })).json();
const viewer = async (id = 'vm-a'): Promise<{ token: string; url: string }> => (await api.app.inject({ method: 'POST', url: `/v1/vms/${id}/viewer`, headers: auth, payload: {} })).json();
const host = (): string => new URL(api.url).host;

function connect(path: string, headers: Record<string, string> = {}): Promise<{ ws: WebSocket; text: () => string; closed: Promise<number> }> {
  const ws = new WebSocket(`${api.url.replace('http', 'ws')}${path}`, { headers });
  const out: Buffer[] = [];
  ws.on('message', (d: Buffer, bin: boolean) => { if (bin) out.push(d.subarray(1)); });
  const closed = new Promise<number>((r) => ws.once('close', (c) => r(c)));
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws, text: () => Buffer.concat(out).toString(), closed }));
    ws.once('unexpected-response', (_q, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

describe('terminal tokens', () => {
  test('a terminal token and a viewer token are not interchangeable', () => {
    const nonce = Buffer.alloc(16, 3);
    const t = signViewerToken(TEST_SECRET, 'vm-a', nonce, Date.now() + 60_000, undefined, 'control', 'terminal');
    const v = signViewerToken(TEST_SECRET, 'vm-a', nonce, Date.now() + 60_000);
    assert.equal(verifyViewerToken(TEST_SECRET, 'vm-a', nonce, t, Date.now(), 'terminal').ok, true);
    assert.deepEqual(verifyViewerToken(TEST_SECRET, 'vm-a', nonce, t, Date.now()), { ok: false, reason: 'invalid' });
    assert.deepEqual(verifyViewerToken(TEST_SECRET, 'vm-a', nonce, v, Date.now(), 'terminal'), { ok: false, reason: 'invalid' });
  });

  test('POST /v1/vms/:id/terminal answers a token and the page URL; needs the bearer token', async () => {
    const r = await terminal();
    assert.match(r.url, /^\/terminal\/vm-a\?token=[\w-]{76}$/);
    assert.equal((await api.app.inject({ method: 'POST', url: '/v1/vms/vm-a/terminal', payload: {} })).statusCode, 401);
  });
});

describe('the terminal page', () => {
  test('served with a terminal token; refused with a viewer token or none', async () => {
    const ok = await api.app.inject({ method: 'GET', url: (await terminal()).url, headers: { host: host() } });
    assert.equal(ok.statusCode, 200);
    assert.match(ok.body, /data-vm="vm-a"/);
    assert.match(String(ok.headers['content-security-policy']), /default-src 'self'/);
    assert.equal(ok.headers['cache-control'], 'no-store');
    const v = await viewer();
    assert.equal((await api.app.inject({ method: 'GET', url: `/terminal/vm-a?token=${v.token}`, headers: { host: host() } })).statusCode, 401);
    assert.equal((await api.app.inject({ method: 'GET', url: '/terminal/vm-a', headers: { host: host() } })).statusCode, 401);
    const t = await terminal();
    assert.equal((await api.app.inject({ method: 'GET', url: `/view/vm-a?token=${t.token}`, headers: { host: host() } })).statusCode, 401, 'a terminal token opens no viewer');
  });

  test('references only the controller: xterm.js from node_modules, no CDN', async () => {
    const page = (await api.app.inject({ method: 'GET', url: (await terminal()).url, headers: { host: host() } })).body;
    const refs = [...page.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    assert.ok(refs.length >= 3);
    for (const r of refs) assert.ok(r.startsWith('/static/') || r.startsWith('data:'), r);
    assert.doesNotMatch(page, /https?:\/\//);
    for (const f of ['/static/xterm/xterm.mjs', '/static/xterm/xterm.css', '/static/xterm/addon-fit.mjs', '/static/hangar/terminal.js']) {
      const r = await api.app.inject({ method: 'GET', url: f });
      assert.equal(r.statusCode, 200, f);
      assert.doesNotMatch(r.body, /(?:src=|import\s[^;]*from\s*|@import\s+)["'](?:https?:)?\/\//, `${f} loads nothing from elsewhere`);
    }
  });
});

describe('the terminal WebSocket', () => {
  test('a terminal token opens a shell whose output comes back', async () => {
    const { token } = await terminal();
    const s = await connect(`/v1/vms/vm-a/terminal/ws?token=${token}&cols=90&rows=20`, { origin: api.url });
    s.ws.send(Buffer.from('echo hello-term\nexit\n'));
    await s.closed;
    assert.match(s.text(), /hello-term/);
    assert.deepEqual(api.agent.execs.at(-1)!.req.pty, { cols: 90, rows: 20 });
  });

  test('refused: a viewer token, no token, a foreign Origin, a foreign Host', async () => {
    const v = await viewer();
    await assert.rejects(connect(`/v1/vms/vm-a/terminal/ws?token=${v.token}`), /HTTP 401/);
    await assert.rejects(connect('/v1/vms/vm-a/terminal/ws'), /HTTP 401/);
    const { token } = await terminal();
    await assert.rejects(connect(`/v1/vms/vm-a/terminal/ws?token=${token}`, { origin: 'http://evil.example' }), /HTTP 403/);
    await assert.rejects(connect(`/v1/vms/vm-a/terminal/ws?token=${token}`, { host: 'evil.example' }), /HTTP 403/);
  });

  test('a revoke ends terminal tokens too', async () => {
    const { token } = await terminal('vm-b');
    assert.equal((await api.app.inject({ method: 'POST', url: '/v1/vms/vm-b/viewer/revoke', headers: auth })).statusCode, 200);
    await assert.rejects(connect(`/v1/vms/vm-b/terminal/ws?token=${token}`), /HTTP 401/);
  });
});
