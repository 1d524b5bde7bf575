// The bridge and the viewer routes through a real listening controller (buildServer + desktop routes + bridge),
// with in-process TCP backends: an RFB 3.8 server that echoes after the handshake, and purpose-built ones for
// flooding and stalling. The x11vnc version of the main cases is bridge.int.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type net from 'node:net';
import { WebSocket } from 'ws';
import { createServer } from 'node:http';
import { attachVncBridge, CLOSE } from '../../src/desktop/bridge.js';
import { normaliseOrigin } from '../../src/desktop/deps.js';
import { HangarMetrics, metricValue } from '../../src/metrics.js';
import { isHangarError } from '../../src/errors.js';
import { newViewerSecret } from '../../src/desktop/token.js';
import { fakeRfbServer, parseServerInit, RFB_BANNER, tcpServer, type TcpServer } from '../support/rfb.js';
import { closed, mustOpen, openVnc, startHarness, tcpDial, until, type Harness } from './harness.js';

async function withHarness(backend: TcpServer, opts: Parameters<typeof startHarness>[0], fn: (h: Harness) => Promise<void>): Promise<void> {
  const h = await startHarness({ rfbPort: backend.port, ...opts });
  try {
    await fn(h);
  } finally {
    await h.close();
    await backend.close();
  }
}

test('right token: the RFB handshake runs through the bridge, subprotocol binary, bytes counted', async () => {
  const rfb = await fakeRfbServer();
  await withHarness(rfb, {}, async (h) => {
    h.addVm('vm-a');
    const { status, json } = await h.viewer('vm-a');
    assert.equal(status, 200);
    assert.equal(json.url, `/view/vm-a?token=${json.token}`);
    const { ws, reader } = mustOpen(await openVnc(h.base, 'vm-a', json.token));
    assert.equal(ws.protocol, 'binary');
    const r = reader;
    assert.equal((await r.read(12)).toString('latin1'), RFB_BANNER);
    ws.send(Buffer.from(RFB_BANNER));
    assert.deepEqual([...(await r.read(2))], [1, 1]);
    ws.send(Buffer.from([1]));
    assert.equal((await r.read(4)).readUInt32BE(0), 0);
    ws.send(Buffer.from([1]));
    const init = parseServerInit(await r.read(24 + 'hangar-fake'.length));
    assert.deepEqual(init, { width: 64, height: 48, name: 'hangar-fake' });
    // After the handshake the server echoes: a pointer event comes back byte for byte.
    const ev = Buffer.from([5, 0, 0, 10, 0, 20]);
    ws.send(ev);
    assert.deepEqual(await r.read(6), ev);
    assert.deepEqual(h.touches, ['vm-a'], 'viewer input marks the VM active (throttled to once a second)');
    assert.deepEqual(h.dialOpts, [{ readBufferBytes: 256 * 1024 }], 'the VM is read in 256 KiB pieces (framebuffer bursts)');
    ws.close(1000);
    await until(() => h.bridge.viewers('vm-a') === 0, 5000, 'the viewer slot to be released');
    const toVm = 12 + 1 + 1 + 6;
    const toViewer = 12 + 2 + 4 + 24 + 11 + 6;
    assert.equal(await metricValue(h.metrics.proxyBytes, { direction: 'to_vm' }), toVm);
    assert.equal(await metricValue(h.metrics.proxyBytes, { direction: 'to_viewer' }), toViewer);
    assert.match(await h.metrics.render(), /hangar_proxy_bytes_total\{direction="to_viewer"\} 59/);
  });
});

test('missing, malformed, tampered, expired and other-VM tokens: 401 JSON before the upgrade, VM never dialled', async () => {
  const rfb = await fakeRfbServer();
  await withHarness(rfb, {}, async (h) => {
    h.addVm('vm-a');
    h.addVm('vm-b');
    const b = (await h.viewer('vm-b')).json.token;
    const a = (await h.viewer('vm-a')).json.token;
    const tampered = a.slice(0, 40) + (a[40] === 'A' ? 'B' : 'A') + a.slice(41);
    const expired = h.sign('vm-a', Date.now() - 1);
    const cases: [string, string | undefined, string][] = [
      ['missing', undefined, 'missing'], ['empty', '', 'missing'], ['malformed', 'hello', 'malformed'],
      ['tampered', tampered, 'invalid'], ['expired', expired, 'expired'], ['token of vm-b', b, 'invalid'],
    ];
    for (const [what, token, reason] of cases) {
      const r = await openVnc(h.base, 'vm-a', token);
      assert.ok(!('ws' in r), `${what}: must be refused`);
      assert.equal(r.status, 401, what);
      assert.equal(r.body.error.code, 'VIEWER_TOKEN_INVALID', what);
      assert.equal(r.body.error.details.reason, reason, what);
    }
    assert.equal(h.dials(), 0, 'the bridge never dialled the VM');
    assert.equal(rfb.accepted(), 0, 'the RFB server saw no connection');
    assert.equal(await metricValue(h.metrics.errors, { code: 'VIEWER_TOKEN_INVALID' }), cases.length);
  });
});

test('a VM that is missing or not ready is refused (401 / 409 with its state) without dialling', async () => {
  const rfb = await fakeRfbServer();
  await withHarness(rfb, {}, async (h) => {
    h.addVm('vm-p');
    const token = (await h.viewer('vm-p')).json.token;
    h.setState('vm-p', 'paused');
    const r = await openVnc(h.base, 'vm-p', token);
    assert.ok(!('ws' in r));
    assert.equal(r.status, 409);
    assert.equal(r.body.error.code, 'VM_INVALID_STATE');
    assert.equal(r.body.error.details.state, 'paused');
    // A VM that does not exist has no viewer nonce: no token can be valid for it (this was 404 VM_NOT_FOUND
    // before tokens were bound to the VM's nonce; a token never tells whether a VM exists).
    const gone = await openVnc(h.base, 'vm-x', h.sign('vm-x', Date.now() + 60_000));
    assert.ok(!('ws' in gone));
    assert.equal(gone.status, 401);
    assert.equal(gone.body.error.code, 'VIEWER_TOKEN_INVALID');
    assert.equal(gone.body.error.details.reason, 'invalid');
    assert.equal(rfb.accepted(), 0);
  });
});

test('viewer limit: the next viewer gets 429 before the upgrade; a slot frees when a viewer leaves', async () => {
  const rfb = await fakeRfbServer();
  await withHarness(rfb, { limits: { viewersPerVm: 2 } }, async (h) => {
    h.addVm('vm-a');
    const token = (await h.viewer('vm-a')).json.token;
    const { ws: one } = mustOpen(await openVnc(h.base, 'vm-a', token));
    const { ws: two } = mustOpen(await openVnc(h.base, 'vm-a', token));
    const three = await openVnc(h.base, 'vm-a', token);
    assert.ok(!('ws' in three));
    assert.equal(three.status, 429);
    assert.equal(three.body.error.code, 'VIEWER_LIMIT');
    assert.equal(rfb.accepted(), 2);
    one.close();
    await until(() => h.bridge.viewers('vm-a') === 1, 5000, 'one viewer left');
    const { ws: again } = mustOpen(await openVnc(h.base, 'vm-a', token));
    assert.equal(h.bridge.viewers('vm-a'), 2);
    two.close();
    again.close();
    await until(() => h.bridge.viewers('vm-a') === 0, 5000, 'all viewers gone');
  });
});

test('origin: the controller\'s own page and configured origins open the bridge; another site\'s page gets 403 before any dial', async () => {
  const rfb = await fakeRfbServer();
  await withHarness(rfb, { allowedOrigins: ['https://desk.example.com'] }, async (h) => {
    h.addVm('vm-a');
    const token = (await h.viewer('vm-a')).json.token;
    for (const origin of ['https://evil.example', 'null', 'http://127.0.0.1:1', 'https://desk.example.com.evil.example', 'chrome-extension://abc']) {
      const r = await openVnc(h.base, 'vm-a', token, ['binary'], origin);
      assert.ok(!('ws' in r), `${origin}: must be refused`);
      assert.equal(r.status, 403, origin);
      assert.equal(r.body.error.code, 'VIEWER_ORIGIN_REFUSED', origin);
    }
    assert.equal(h.dials(), 0, 'a refused origin never dials the VM');
    for (const origin of [h.base, 'https://desk.example.com', 'HTTPS://DESK.example.com:443', undefined]) {
      const { ws, reader } = mustOpen(await openVnc(h.base, 'vm-a', token, ['binary'], origin));
      assert.equal((await reader.read(12)).toString('latin1'), RFB_BANNER, String(origin));
      ws.close();
      await until(() => h.bridge.viewers('vm-a') === 0, 5000, 'the viewer slot to be released');
    }
  });
  // Configured origins are checked when the bridge is built, not when a browser comes.
  const deps = { lookup: () => null, rotateNonce: () => false, dial: () => Promise.reject(new Error('never')), metrics: new HangarMetrics(), secret: newViewerSecret() };
  for (const bad of ['https://x.example/path', 'ftp://x.example', 'x.example', 'https://u:p@x.example', 'null']) {
    assert.throws(() => attachVncBridge(createServer(), { ...deps, allowedOrigins: [bad] }), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT'), bad);
  }
  assert.equal(normaliseOrigin('HTTPS://Desk.Example.com:443'), 'https://desk.example.com');
});

test('close propagates: viewer → VM connection closed; VM → viewer closed with 1000', async () => {
  const rfb = await fakeRfbServer();
  await withHarness(rfb, {}, async (h) => {
    h.addVm('vm-a');
    const token = (await h.viewer('vm-a')).json.token;
    const { ws } = mustOpen(await openVnc(h.base, 'vm-a', token));
    await until(() => rfb.open() === 1, 5000, 'the VM connection');
    assert.equal(h.holds.get('vm-a'), 1, 'a connected viewer holds the VM: idle hibernation cannot take it');
    ws.close(1000, 'bye');
    await until(() => rfb.open() === 0, 5000, 'the VM side to close after the viewer left');
    await until(() => h.holds.get('vm-a') === 0, 5000, 'the hold to be released when the viewer leaves');

    const { ws: ws2, reader: reader2 } = mustOpen(await openVnc(h.base, 'vm-a', token));
    await reader2.read(12);
    const end = closed(ws2);
    for (const s of rfb.sockets()) s.end();
    const c = await end;
    assert.equal(c.code, CLOSE.VM_CLOSED);
    assert.match(c.reason, /VM closed/);
    await until(() => h.bridge.viewers('vm-a') === 0, 5000, 'the slot to be released');
  });
});

test('idle timeout: no byte either way for idleMs closes with 4000 and drops the VM connection', async () => {
  const rfb = await fakeRfbServer();
  await withHarness(rfb, { limits: { idleMs: 300 } }, async (h) => {
    h.addVm('vm-a');
    const token = (await h.viewer('vm-a')).json.token;
    const t0 = Date.now();
    const { ws } = mustOpen(await openVnc(h.base, 'vm-a', token));
    const c = await closed(ws);
    const after = Date.now() - t0;
    assert.equal(c.code, CLOSE.IDLE);
    assert.ok(after >= 290 && after < 3000, `closed after ${after} ms`);
    await until(() => rfb.open() === 0, 5000, 'the VM connection to close');
  });
});

test('a text message closes with 1003; the VM unreachable is 502 and frees the slot; disconnect(vm) closes with 4001', async () => {
  const rfb = await fakeRfbServer();
  const dead = await tcpServer(() => undefined);
  const deadPort = dead.port;
  await dead.close(); // nothing listens there now
  await withHarness(rfb, { dial: (id) => tcpDial(id === 'vm-dead' ? deadPort : rfb.port)() }, async (h) => {
    h.addVm('vm-a');
    h.addVm('vm-dead');
    const token = (await h.viewer('vm-a')).json.token;
    const { ws } = mustOpen(await openVnc(h.base, 'vm-a', token));
    const c1 = closed(ws);
    ws.send('hello');
    assert.equal((await c1).code, CLOSE.BINARY_ONLY);

    const r = await openVnc(h.base, 'vm-dead', (await h.viewer('vm-dead')).json.token);
    assert.ok(!('ws' in r));
    assert.equal(r.status, 502);
    assert.equal(r.body.error.code, 'VM_UNREACHABLE');
    assert.equal(h.bridge.viewers('vm-dead'), 0);

    const { ws: ws2 } = mustOpen(await openVnc(h.base, 'vm-a', token));
    const c2 = closed(ws2);
    await until(() => h.bridge.viewers('vm-a') === 1);
    assert.equal(h.bridge.disconnect('vm-a', 'VM paused'), 1);
    assert.deepEqual(await c2, { code: CLOSE.VM_GONE, reason: 'VM paused' });
  });
});

test('quiesce(vm) (before the VM is saved): its viewers close with 4001 and it resolves only once the VM side has closed', async () => {
  const rfb = await fakeRfbServer();
  await withHarness(rfb, {}, async (h) => {
    h.addVm('vm-a');
    const token = (await h.viewer('vm-a')).json.token;
    const { ws } = mustOpen(await openVnc(h.base, 'vm-a', token));
    const c = closed(ws);
    await until(() => h.bridge.viewers('vm-a') === 1 && rfb.open() === 1);
    assert.equal(await h.bridge.quiesce('vm-b', 'VM hibernating'), 0, 'another VM: nothing to close');
    assert.equal(rfb.open(), 1);
    assert.equal(await h.bridge.quiesce('vm-a', 'VM hibernating', 5_000), 1);
    assert.equal(rfb.open(), 0, 'the VM side saw the connection end before quiesce resolved');
    assert.deepEqual(await c, { code: CLOSE.VM_GONE, reason: 'VM hibernating' });
  });
});

/** Writes a counting byte pattern as fast as the socket accepts it, up to `total`; reports what was accepted. */
function flood(s: net.Socket, total: number, progress: (n: number) => void): void {
  const chunk = Buffer.alloc(64 * 1024);
  let sent = 0;
  const pump = (): void => {
    while (sent < total) {
      for (let i = 0; i < chunk.length; i += 4) chunk.writeUInt32BE(((sent + i) / 4) >>> 0, i);
      sent += chunk.length;
      progress(sent);
      if (!s.write(Buffer.from(chunk))) { s.once('drain', pump); return; }
    }
    s.end();
  };
  pump();
}

test('backpressure VM → viewer: a viewer that stops reading pauses the VM socket; nothing piles up in the controller', async (t) => {
  const TOTAL = 512 * 1024 * 1024;
  let written = 0;
  const backend = await tcpServer((s) => flood(s, TOTAL, (n) => { written = n; }));
  const hw = 256 * 1024;
  await withHarness(backend, { limits: { highWaterBytes: hw } }, async (h) => {
    h.addVm('vm-a');
    const token = (await h.viewer('vm-a')).json.token;
    const heap0 = process.memoryUsage();
    const { ws, reader } = mustOpen(await openVnc(h.base, 'vm-a', token));
    ws.pause(); // the viewer stops reading
    // Wait until the backend's writes stall (kernel buffers full, the bridge no longer reads).
    let last = -1;
    await until(async () => {
      const stalled = written === last;
      last = written;
      await new Promise((r) => setTimeout(r, 300));
      return stalled && written === last;
    }, 20_000, 'the VM side to stall');
    const [s] = h.bridge.sessions();
    assert.ok(s, 'one session');
    assert.equal(s.vmPaused, true, 'reading from the VM is paused');
    assert.ok(s.bufferedToViewer <= hw + 128 * 1024, `queued towards the viewer: ${s.bufferedToViewer}`);
    assert.ok(written < 64 * 1024 * 1024, `the VM could push only ${written} bytes (kernel buffers), not ${TOTAL}`);
    const heap1 = process.memoryUsage();
    t.diagnostic(`stalled: the VM pushed ${written} of ${TOTAL} bytes; queued to the viewer ${s.bufferedToViewer}; rss +${heap1.rss - heap0.rss}`);
    assert.ok(heap1.rss - heap0.rss < 96 * 1024 * 1024, `rss grew by ${heap1.rss - heap0.rss}`);
    assert.ok(heap1.arrayBuffers - heap0.arrayBuffers < 32 * 1024 * 1024, `buffers grew by ${heap1.arrayBuffers - heap0.arrayBuffers}`);

    // The viewer reads again: the stream resumes, in order, with nothing lost.
    let expect = 0;
    let bad = -1;
    let carry = reader.detach();
    let got = carry.length;
    ws.on('message', (d: Buffer) => {
      got += d.length;
      const b = carry.length ? Buffer.concat([carry, d]) : d;
      const whole = b.length - (b.length % 4);
      for (let i = 0; i < whole && bad < 0; i += 4) {
        if (b.readUInt32BE(i) !== (expect >>> 0)) bad = expect;
        expect++;
      }
      carry = Buffer.from(b.subarray(whole));
    });
    ws.resume();
    await until(() => got >= 96 * 1024 * 1024, 60_000, 'the stream to resume');
    assert.equal(bad, -1, 'bytes arrive in order');
    ws.terminate();
  });
});

test('backpressure viewer → VM: a VM that does not read pauses the viewer socket', async (t) => {
  const backend = await tcpServer((s) => s.pause()); // never reads
  await withHarness(backend, {}, async (h) => {
    h.addVm('vm-a');
    const token = (await h.viewer('vm-a')).json.token;
    const { ws } = mustOpen(await openVnc(h.base, 'vm-a', token));
    // The bridge parses what viewers send: a valid RFB client stream (handshake, then long cut texts).
    ws.send(Buffer.from('RFB 003.008\n\x01\x01', 'latin1'));
    const chunk = Buffer.alloc(64 * 1024, 7);
    chunk.fill(0, 0, 8);
    chunk[0] = 6;
    chunk.writeUInt32BE(chunk.length - 8, 4);
    let sent = 0;
    const TOTAL = 512 * 1024 * 1024;
    let last = -1;
    await until(async () => {
      while (sent < TOTAL && ws.bufferedAmount < 1024 * 1024) { ws.send(chunk); sent += chunk.length; }
      const stalled = sent === last;
      last = sent;
      await new Promise((r) => setTimeout(r, 300));
      while (sent < TOTAL && ws.bufferedAmount < 1024 * 1024) { ws.send(chunk); sent += chunk.length; }
      return stalled && sent === last;
    }, 20_000, 'the viewer side to stall');
    const [s] = h.bridge.sessions();
    assert.ok(s);
    assert.equal(s.viewerPaused, true, 'reading from the viewer is paused');
    assert.ok(s.bufferedToVm <= 2 * 1024 * 1024, `queued towards the VM: ${s.bufferedToVm}`);
    assert.ok(sent < 96 * 1024 * 1024, `the viewer could push only ${sent} bytes`);
    t.diagnostic(`stalled: the viewer pushed ${sent} of ${TOTAL} bytes; queued to the VM ${s.bufferedToVm}`);
    ws.terminate();
  });
});

test('viewer token route: bearer required, ttl bounded, names resolve to the id, unknown VM 404', async () => {
  const rfb = await fakeRfbServer();
  await withHarness(rfb, {}, async (h) => {
    h.addVm('vm-a');
    const anon = await fetch(`${h.base}/v1/vms/vm-a/viewer`, { method: 'POST' });
    assert.equal(anon.status, 401);
    const t0 = Date.now();
    const { status, json } = await h.viewer('vm-a');
    assert.equal(status, 200);
    const exp = Date.parse(json.expiresAt);
    assert.ok(exp - t0 >= 299_000 && exp - t0 <= 301_000, 'default TTL 5 min');
    const short = await h.viewer('vm-a', { ttlSeconds: 30 });
    assert.ok(Date.parse(short.json.expiresAt) - Date.now() <= 30_000);
    assert.equal((await h.viewer('vm-a', { ttlSeconds: 7200 })).status, 400);
    assert.equal((await h.viewer('vm-a', { ttl: 5 })).status, 400);
    assert.equal((await h.viewer('nope')).status, 404);
  });
});

test('viewer page: 401 page without a valid token; with one, the page and its headers (CSP self, no referrer, no store)', async () => {
  const rfb = await fakeRfbServer();
  await withHarness(rfb, {}, async (h) => {
    h.addVm('vm-a');
    const { json } = await h.viewer('vm-a');
    for (const q of ['', '?token=bad', `?token=${h.sign('vm-a', Date.now() - 1)}`]) {
      const res = await fetch(`${h.base}/view/vm-a${q}`);
      assert.equal(res.status, 401, q);
      assert.match(res.headers.get('content-type') ?? '', /text\/html/);
      const text = await res.text();
      assert.match(text, /Viewer link (not valid|expired)/);
      // Only the "no token" page tries the tab's kept token (a reload); a bad or expired one must not loop.
      assert.equal(text.includes('/static/hangar/resume.js'), q === '', `resume.js on ${q || 'no token'}`);
      assert.equal(text.includes('data-vm="vm-a"'), q === '', q);
    }
    assert.equal((await fetch(`${h.base}/static/hangar/resume.js`)).status, 200);
    const other = (await h.viewer('vm-a')).json.token;
    assert.equal((await fetch(`${h.base}/view/vm-b?token=${other}`)).status, 401, 'a token for vm-a does not open vm-b');
    const res = await fetch(`${h.base}${json.url}`);
    assert.equal(res.status, 200);
    const html = await res.text();
    assert.match(res.headers.get('content-security-policy') ?? '', /default-src 'self'/);
    assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
    assert.equal(res.headers.get('cache-control'), 'no-store');
    assert.match(html, /<meta name="referrer" content="no-referrer">/);
    assert.match(html, /id="status" data-state="connecting"/);
    assert.ok(!html.includes(json.token), 'the page does not embed the token');
    assert.ok(!/https?:\/\//.test(html), 'no absolute (CDN) URL in the page');

    const st = await fetch(`${h.base}/v1/vms/vm-a/viewer-status?token=${json.token}`);
    assert.equal(st.status, 200);
    assert.deepEqual(await st.json(), { id: 'vm-a', state: 'ready', viewers: 0, maxViewers: 4, tokenExpiresAt: json.expiresAt });
    const stBad = await fetch(`${h.base}/v1/vms/vm-a/viewer-status?token=${h.sign('vm-a', Date.now() - 1)}`);
    assert.equal(stBad.status, 401);
    assert.equal(((await stBad.json()) as { error: { details: { reason: string } } }).error.details.reason, 'expired');
  });
});

test('static files: noVNC and the page script as ES modules with correct MIME types; nothing else is reachable', async () => {
  const rfb = await fakeRfbServer();
  await withHarness(rfb, {}, async (h) => {
    const rfbJs = await fetch(`${h.base}/static/novnc/core/rfb.js`);
    assert.equal(rfbJs.status, 200);
    assert.equal(rfbJs.headers.get('content-type'), 'text/javascript; charset=utf-8');
    assert.match(await rfbJs.text(), /export default class RFB/);
    const etag = rfbJs.headers.get('etag')!;
    assert.equal((await fetch(`${h.base}/static/novnc/core/rfb.js`, { headers: { 'if-none-match': etag } })).status, 304);
    assert.equal((await fetch(`${h.base}/static/novnc/vendor/pako/lib/zlib/inflate.js`)).status, 200);
    const css = await fetch(`${h.base}/static/hangar/viewer.css`);
    assert.equal(css.headers.get('content-type'), 'text/css; charset=utf-8');
    const js = await fetch(`${h.base}/static/hangar/viewer.js`);
    assert.match(await js.text(), /from '\/static\/novnc\/core\/rfb\.js'/);
    for (const p of [
      '/static/novnc/package.json', '/static/novnc/README.md', '/static/novnc/../../package.json', '/static/novnc/%2e%2e/%2e%2e/package.json',
      '/static/novnc/core/../../../package.json', '/static/novnc/core%2f..%2f..%2f..%2fpackage.json', '/static/hangar/../deps.js', '/static/..%2f..%2fetc/passwd',
    ]) {
      // fetch resolves dot segments itself (→ unknown route, 401 without a bearer); encoded ones reach the table: 404.
      const res = await fetch(`${h.base}${p}`);
      assert.ok([400, 401, 404].includes(res.status), `${p}: ${res.status}`);
    }
  });
});

test('a full flow never writes a token to the log (pino to a stream, trace level)', async () => {
  const rfb = await fakeRfbServer();
  const tokens: string[] = [];
  let logs: string[] = [];
  await withHarness(rfb, {}, async (h) => {
    logs = h.logs;
    h.addVm('vm-a');
    const { json } = await h.viewer('vm-a');
    tokens.push(json.token);
    await (await fetch(`${h.base}${json.url}`)).text();
    await (await fetch(`${h.base}/v1/vms/vm-a/viewer-status?token=${json.token}`)).text();
    const { ws, reader } = mustOpen(await openVnc(h.base, 'vm-a', json.token));
    await reader.read(12);
    ws.close();
    const expired = h.sign('vm-a', Date.now() - 1);
    tokens.push(expired);
    await openVnc(h.base, 'vm-a', expired);
    await (await fetch(`${h.base}/view/vm-a?token=${expired}`)).text();
    await (await fetch(`${h.base}/view/vm-a/nope?token=${expired}`)).text(); // 404 path
    await (await fetch(`${h.base}/v1/vms/vm-a/viewer-status?token=${expired}&x=1`)).text(); // 400 path
    await until(() => h.bridge.viewers('vm-a') === 0);
  });
  const all = logs.join('');
  assert.ok(logs.length >= 10, `log lines captured: ${logs.length}`);
  assert.match(all, /viewer connected/);
  assert.match(all, /viewer refused/);
  for (const t of tokens) {
    assert.ok(!all.includes(t), 'a token appears in the log');
    assert.ok(!all.includes(t.slice(0, 24)), 'part of a token appears in the log');
  }
});

test('an upgrade on another path is answered 404 (no other upgrade handler)', async () => {
  const rfb = await fakeRfbServer();
  await withHarness(rfb, {}, async (h) => {
    const r = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(`${h.base.replace('http', 'ws')}/v1/other?token=x`);
      ws.once('unexpected-response', (req, res) => { req.destroy(); resolve(res.statusCode ?? 0); });
      ws.once('error', reject);
    });
    assert.equal(r, 404);
  });
});
