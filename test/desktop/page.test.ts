import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildOpenApi } from '../../src/api/openapi.js';
import type { ApiContext } from '../../src/api/routes.js';
import { parseVncRequest } from '../../src/desktop/bridge.js';
import { resolveLimits, ViewerRegistry } from '../../src/desktop/deps.js';
import { escapeHtml, renderErrorPage, renderViewerPage, VIEWER_CSP } from '../../src/desktop/page.js';
import { desktopRoutes } from '../../src/desktop/routes.js';
import { loadStaticTable } from '../../src/desktop/static.js';
import { newViewerSecret } from '../../src/desktop/token.js';
import { isHangarError } from '../../src/errors.js';
import { HangarMetrics } from '../../src/metrics.js';

test('bridge paths: the VM id is decoded, the token read, anything else is not the bridge', () => {
  assert.deepEqual(parseVncRequest('/v1/vms/vm-a/vnc?token=abc'), { vmId: 'vm-a', token: 'abc', viewer: undefined });
  assert.deepEqual(parseVncRequest('/v1/vms/vm-a/vnc?token=abc&viewer=v-1'), { vmId: 'vm-a', token: 'abc', viewer: 'v-1' });
  assert.equal(parseVncRequest('/v1/vms/vm-a/vnc?viewer=a%20b')!.viewer, '!', 'a malformed viewer id');
  assert.deepEqual(parseVncRequest('/v1/vms/vm%20a/vnc'), { vmId: 'vm a', token: undefined, viewer: undefined });
  assert.deepEqual(parseVncRequest('/v1/vms/vm-a/vnc?token=a&token=b'), { vmId: 'vm-a', token: '!', viewer: undefined }, 'two tokens: malformed');
  for (const u of ['/v1/vms/vm-a/vnc/x', '/v1/vms//vnc', '/v1/vms/a/b/vnc', '/view/vm-a', '/v1/vms/%E0%A4%A/vnc', undefined]) {
    assert.equal(parseVncRequest(u), null, String(u));
  }
});

test('pages: the VM id is escaped, no inline script, no token, no outside URL; CSP allows only self', () => {
  const html = renderViewerPage('<img src=x onerror=alert(1)>');
  assert.ok(!html.includes('<img'), 'escaped');
  assert.match(html, /&#60;img src=x onerror=alert\(1\)&#62;/);
  assert.equal(html.split('<script').length - 1, 1, 'one script element: the external module');
  assert.ok(!/(https?:)?\/\/[a-z]/i.test(html), 'no absolute URL');
  assert.match(html, /<script type="module" src="\/static\/hangar\/viewer\.js">/);
  assert.match(renderErrorPage('Viewer link expired', 'ask <again>'), /ask &#60;again&#62;/);
  assert.match(VIEWER_CSP, /^default-src 'self'/);
  assert.ok(!/unsafe-inline|unsafe-eval|\*/.test(VIEWER_CSP));
  assert.equal(escapeHtml(`"'&`), '&#34;&#39;&#38;');
});

test('static table: only noVNC core/vendor, xterm.js and the viewer/terminal assets, each with its MIME type', () => {
  const t = loadStaticTable();
  const keys = [...t.keys()];
  assert.ok(keys.includes('/static/novnc/core/rfb.js'));
  assert.ok(keys.includes('/static/hangar/viewer.js') && keys.includes('/static/hangar/viewer.css'));
  assert.ok(keys.every((k) => /^\/static\/(novnc\/(core|vendor)\/|hangar\/)[\w./-]+\.(js|css)$/.test(k) || /^\/static\/xterm\/(xterm\.mjs|xterm\.css|addon-fit\.mjs)$/.test(k)) && keys.every((k) => !k.includes('..')), keys.join(' '));
  assert.equal(t.get('/static/novnc/core/rfb.js')!.type, 'text/javascript; charset=utf-8');
  assert.equal(t.get('/static/hangar/viewer.css')!.type, 'text/css; charset=utf-8');
});

test('limits and the viewer registry: bad limits refused; slots are taken synchronously and released once', () => {
  assert.throws(() => resolveLimits({ idleMs: 0 }), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT'));
  assert.throws(() => resolveLimits({ tokenTtlMs: 7_200_000 }), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT'));
  const r = new ViewerRegistry();
  const a = r.reserve('vm', 2);
  r.reserve('vm', 2);
  assert.throws(() => r.reserve('vm', 2), (e: unknown) => isHangarError(e, 'VIEWER_LIMIT'));
  a();
  a();
  assert.equal(r.count('vm'), 1, 'a release counts once');
});

test('the desktop routes are in the OpenAPI document (the WebSocket as a 101 answer) and need a 32-byte secret', () => {
  const ctx = { metrics: new HangarMetrics() } as unknown as ApiContext;
  const desk = { lookup: () => null, rotateNonce: () => false, dial: () => Promise.reject(new Error('no')), metrics: ctx.metrics, secret: newViewerSecret() };
  const doc = buildOpenApi(desktopRoutes(ctx, desk)) as { paths: Record<string, Record<string, { responses: Record<string, unknown>; security: unknown[] }>> };
  assert.ok(doc.paths['/v1/vms/{id}/viewer']?.post);
  assert.deepEqual(doc.paths['/v1/vms/{id}/viewer']!.post!.security, [{ bearer: [] }]);
  assert.ok(doc.paths['/v1/vms/{id}/vnc']?.get?.responses['101']);
  assert.ok(doc.paths['/view/{id}']?.get);
  assert.throws(() => desktopRoutes(ctx, { ...desk, secret: Buffer.alloc(8) }), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT'));
});
