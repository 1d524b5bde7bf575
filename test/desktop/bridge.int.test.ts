// The bridge against a real RFB server: x11vnc on Xvfb (host loopback), behind a relay that counts the
// connections reaching it, behind a real listening controller.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { metricValue } from '../../src/metrics.js';
import { countingRelay, parseServerInit, RFB_BANNER, skipUnlessDesktopTools, startDesktop, type Desktop, type TcpServer } from '../support/rfb.js';
import { closed, mustOpen, openVnc, startHarness, until, type Harness } from './harness.js';

const skip = await skipUnlessDesktopTools();

test('x11vnc through the bridge: banner, RFB handshake to ServerInit; refused viewers never reach it; nothing logs a token', { skip, timeout: 120_000 }, async (t) => {
  let desktop: Desktop | undefined;
  let relay: TcpServer | undefined;
  let h: Harness | undefined;
  try {
    desktop = await startDesktop({ width: 800, height: 600 });
    relay = await countingRelay(desktop.port);
    h = await startHarness({ rfbPort: relay.port, limits: { viewersPerVm: 1 } });
    h.addVm('vm-x');
    h.addVm('vm-y');
    const { json } = await h.viewer('vm-x');
    const other = (await h.viewer('vm-y')).json.token;

    // Refusals first: the RFB server must see no connection at all.
    const tampered = json.token.slice(0, 10) + (json.token[10] === 'x' ? 'y' : 'x') + json.token.slice(11);
    for (const [what, token] of [['missing', undefined], ['tampered', tampered], ['expired', h.sign('vm-x', Date.now() - 1)], ['other VM', other]] as const) {
      const r = await openVnc(h.base, 'vm-x', token);
      assert.ok(!('ws' in r), what);
      assert.equal(r.status, 401, what);
    }
    assert.equal(relay.accepted(), 0, 'x11vnc saw no connection for refused viewers');
    assert.equal(h.dials(), 0);

    const { ws, reader } = mustOpen(await openVnc(h.base, 'vm-x', json.token));
    assert.equal(ws.protocol, 'binary');
    assert.equal((await reader.read(12)).toString('latin1'), RFB_BANNER);
    ws.send(Buffer.from(RFB_BANNER));
    const n = (await reader.read(1))[0]!;
    const types = [...(await reader.read(n))];
    assert.ok(types.includes(1), `x11vnc -nopw offers security type None: ${types}`);
    ws.send(Buffer.from([1]));
    assert.equal((await reader.read(4)).readUInt32BE(0), 0, 'SecurityResult OK');
    ws.send(Buffer.from([1])); // shared
    const head = await reader.read(24);
    const init = parseServerInit(Buffer.concat([head, await reader.read(head.readUInt32BE(20))]));
    t.diagnostic(`ServerInit: ${init.width}x${init.height} "${init.name}"`);
    assert.deepEqual([init.width, init.height], [800, 600]);
    // A full framebuffer update of the whole screen comes back through the bridge.
    const setPixel = Buffer.from([0, 0, 0, 0, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0]);
    const setEnc = Buffer.from([2, 0, 0, 1, 0, 0, 0, 0]); // Raw only
    const req = Buffer.from([3, 0, 0, 0, 0, 0, 0x03, 0x20, 0x02, 0x58]); // non-incremental 800x600
    ws.send(Buffer.concat([setPixel, setEnc, req]));
    await until(() => reader.total >= 12 + 1 + n + 4 + 24 + init.name.length + 800 * 600 * 4, 20_000, 'a raw 800x600 framebuffer update');
    assert.equal(relay.accepted(), 1);

    const busy = await openVnc(h.base, 'vm-x', json.token);
    assert.ok(!('ws' in busy));
    assert.equal(busy.status, 429, 'one viewer allowed');
    assert.equal(relay.accepted(), 1);

    const done = closed(ws);
    ws.close(1000);
    assert.equal((await done).code, 1000);
    await until(() => relay!.open() === 0, 10_000, 'x11vnc connection closed after the viewer left');
    const toViewer = await metricValue(h.metrics.proxyBytes, { direction: 'to_viewer' });
    assert.ok(toViewer >= 800 * 600 * 4, `to_viewer bytes: ${toViewer}`);
    assert.equal(await metricValue(h.metrics.proxyBytes, { direction: 'to_vm' }), 12 + 1 + 1 + setPixel.length + setEnc.length + req.length);
    assert.equal(relay.received(), await metricValue(h.metrics.proxyBytes, { direction: 'to_vm' }), 'the relay saw exactly the bytes counted');

    const log = h.logs.join('');
    for (const tok of [json.token, other, tampered]) assert.ok(!log.includes(tok.slice(0, 30)), 'no token in the log');
  } finally {
    await h?.close();
    await relay?.close();
    await desktop?.stop();
  }
});
