// Viewing without driving: the bridge parses each viewer's RFB stream and drops its input unless its token is a
// control one and it is the viewer in control. A view-only viewer's pointer, keys and cut text never reach the VM
// (the fake RFB server keeps every byte it received after the handshake); of two control viewers only the one in
// control gets through, until a handoff. Plus the ClientStreamFilter and ControlRegistry on their own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { ControlRegistry } from '../../src/desktop/control.js';
import { ClientStreamFilter } from '../../src/desktop/rfb-filter.js';
import { keyEvent, pointerEvent, clientCutText, updateRequest } from '../../src/control/rfb/codec.js';
import { fakeRfbServer, RFB_BANNER } from '../support/rfb.js';
import { API_TOKEN, startHarness, until, WsReader, type Harness } from './harness.js';

const HANDSHAKE = Buffer.concat([Buffer.from(RFB_BANNER), Buffer.from([1]), Buffer.from([1])]);
const INPUT = Buffer.concat([keyEvent(true, 0x61), keyEvent(false, 0x61), pointerEvent(1, 10, 10), clientCutText('secret')]);
const REQUEST = updateRequest(true, 0, 0, 64, 48);

function open(h: Harness, token: string, viewer?: string): Promise<{ ws: WebSocket; reader: WsReader }> {
  const url = `${h.base.replace(/^http/, 'ws')}/v1/vms/vm-a/vnc?token=${token}${viewer ? `&viewer=${viewer}` : ''}`;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ['binary'], { perMessageDeflate: false });
    const reader = new WsReader(ws);
    ws.once('open', () => resolve({ ws, reader }));
    ws.once('unexpected-response', (_q, res) => reject(new Error(`refused ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

/** Runs the RFB handshake through the bridge (the fake server's banner, security, ServerInit). */
async function handshake(c: { ws: WebSocket; reader: WsReader }): Promise<void> {
  await c.reader.read(12);
  c.ws.send(HANDSHAKE.subarray(0, 12));
  await c.reader.read(2);
  c.ws.send(HANDSHAKE.subarray(12, 13));
  await c.reader.read(4);
  c.ws.send(HANDSHAKE.subarray(13));
  await c.reader.read(24 + 'hangar-fake'.length);
}

const token = async (h: Harness, viewOnly: boolean): Promise<string> => (await h.viewer('vm-a', viewOnly ? { viewOnly: true } : {})).json.token;

test("a view-only viewer's input never reaches the VM; its screen requests do", async () => {
  const rfb = await fakeRfbServer({ quiet: true });
  const h = await startHarness({ rfbPort: rfb.port });
  try {
    h.addVm('vm-a');
    const c = await open(h, await token(h, true));
    await handshake(c);
    c.ws.send(INPUT);
    c.ws.send(REQUEST);
    c.ws.send(INPUT.subarray(0, 5)); // split messages too
    c.ws.send(Buffer.concat([INPUT.subarray(5), REQUEST]));
    await until(() => (rfb.afterHandshake()[0]?.length ?? 0) >= 2 * REQUEST.length, 5000, 'the requests');
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(rfb.afterHandshake()[0], Buffer.concat([REQUEST, REQUEST]), 'only the update requests reached the VM');
    const [s] = h.bridge.sessions();
    assert.equal(s!.scope, 'view');
    assert.equal(s!.inputDropped, 8);
    c.ws.close();
  } finally {
    await h.close();
    await rfb.close();
  }
});

test('two control viewers: the first is in control; after a handoff the second one is', async () => {
  const rfb = await fakeRfbServer({ quiet: true });
  const h = await startHarness({ rfbPort: rfb.port });
  try {
    h.addVm('vm-a');
    const t = await token(h, false);
    const a = await open(h, t, 'alice');
    await handshake(a);
    const b = await open(h, t, 'bob');
    await handshake(b);
    const ka = keyEvent(true, 0x61);
    const kb = keyEvent(true, 0x62);
    b.ws.send(kb);
    a.ws.send(ka);
    await until(() => (rfb.afterHandshake()[0]?.length ?? 0) >= 8, 5000, "alice's key");
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(rfb.afterHandshake()[1] ?? Buffer.alloc(0), Buffer.alloc(0), "bob's key was dropped");

    const ctl = (body: object, q = `token=${t}`): Promise<Response> => fetch(`${h.base}/v1/vms/vm-a/control?${q}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    // Bob asks; only alice (or the API) may hand over.
    assert.equal((await (await ctl({ action: 'request', viewer: 'bob' })).json() as { waiting: boolean }).waiting, true);
    const stolen = await ctl({ action: 'grant', viewer: 'bob', to: 'bob' });
    assert.equal(stolen.status, 409);
    assert.equal((await stolen.json() as { error: { code: string } }).error.code, 'VIEWER_NOT_IN_CONTROL');
    const handed = await ctl({ action: 'grant', viewer: 'alice', to: 'bob' });
    assert.equal(handed.status, 200);
    b.ws.send(kb);
    a.ws.send(ka);
    await until(() => (rfb.afterHandshake()[1]?.length ?? 0) >= 8, 5000, "bob's key");
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(rfb.afterHandshake()[0]!.length, 8, "alice's second key was dropped");
    // The API sees who.
    const st = await fetch(`${h.base}/v1/vms/vm-a/control`, { headers: { authorization: `Bearer ${API_TOKEN}` } });
    assert.deepEqual(await st.json(), { id: 'vm-a', controlled: true, pending: 0, viewers: 2, controller: 'bob', queue: [] });
    // Bob leaves: nobody waits, nobody is in control.
    b.ws.close();
    await until(async () => ((await (await fetch(`${h.base}/v1/vms/vm-a/control?token=${t}`)).json()) as { controlled: boolean }).controlled === false, 5000, 'control released');
    a.ws.close();
  } finally {
    await h.close();
    await rfb.close();
  }
});

test('ClientStreamFilter: sizes every message, passes input only when allowed, refuses what it cannot size', () => {
  let allow = false;
  const f = new ClientStreamFilter(() => allow);
  const hs = f.push(HANDSHAKE);
  assert.ok(hs.ok && hs.out.equals(HANDSHAKE));
  const enc = Buffer.from([2, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0]);
  const fence = Buffer.from([248, 0, 0, 0, 0, 0, 0, 0, 2, 9, 9]);
  const r = f.push(Buffer.concat([enc, INPUT, fence, Buffer.from([255, 0]), Buffer.alloc(10)]));
  assert.ok(r.ok);
  assert.deepEqual(r.out, Buffer.concat([enc, fence]));
  allow = true;
  const long = clientCutText('x'.repeat(100_000));
  const parts = [long.subarray(0, 3), long.subarray(3, 50_000), long.subarray(50_000)].map((p) => f.push(p));
  assert.deepEqual(Buffer.concat(parts.map((p) => (p.ok ? p.out : Buffer.alloc(0)))), long, 'a long cut text is streamed through');
  assert.deepEqual(f.push(Buffer.from([77])), { ok: false, reason: 'unknown client message type 77' });
  assert.equal(new ClientStreamFilter(() => true).push(Buffer.from('RFB 003.003\n')).ok, false);
});

test('ControlRegistry: first control viewer takes it, view-only never, release goes to the first waiting', () => {
  const c = new ControlRegistry();
  const leaveV = c.join('vm', 'v', 'view');
  assert.equal(c.state('vm').controller, null);
  assert.throws(() => c.request('vm', 'v'), (e: Error & { code?: string }) => e.code === 'TOKEN_SCOPE');
  const leaveA = c.join('vm', 'a', 'control');
  c.join('vm', 'b', 'control');
  assert.equal(c.state('vm').controller, 'a');
  assert.equal(c.request('vm', 'b'), 'pending');
  c.release('vm', 'a');
  assert.equal(c.state('vm').controller, 'b');
  assert.equal(c.request('vm', 'a'), 'pending');
  assert.throws(() => c.grant('vm', 'api', 'v'), (e: Error & { code?: string }) => e.code === 'TOKEN_SCOPE');
  leaveA();
  assert.deepEqual(c.state('vm').pending, []);
  leaveV();
});
