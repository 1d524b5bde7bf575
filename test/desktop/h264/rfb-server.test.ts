// The viewer-facing RFB server: the 3.8 handshake with security None, ServerInit, SetEncodings noted, input handed on
// byte for byte, H.264 rectangles framed as noVNC reads them, and everything else from the viewer refused (bounded).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ENCODING_H264, RfbServerProtocol, VIEWER_LIMITS, h264Update } from '../../../src/desktop/h264/rfb-server.js';
import { keyEvent, pointerEvent, clientCutText, setEncodings, setPixelFormat, updateRequest } from '../../../src/control/rfb/codec.js';

function server(): { p: RfbServerProtocol; sent: Buffer[]; input: Buffer[]; encodings: number[][]; requests: boolean[]; cut: Buffer[] } {
  const sent: Buffer[] = [], input: Buffer[] = [], encodings: number[][] = [], requests: boolean[] = [], cut: Buffer[] = [];
  const p = new RfbServerProtocol({ send: (b) => sent.push(b), input: (m) => input.push(m), encodings: (l) => encodings.push(l), updateRequest: (i) => requests.push(i), cutText: (m) => cut.push(m) }, { width: 1280, height: 800, name: 'vm' });
  return { p, sent, input, encodings, requests, cut };
}
const handshake = Buffer.concat([Buffer.from('RFB 003.008\n', 'latin1'), Buffer.from([1]), Buffer.from([1])]);

test('handshake: banner, security None, result OK, ServerInit with the guest size and name', () => {
  const s = server();
  assert.equal(s.sent[0]!.toString('latin1'), 'RFB 003.008\n');
  s.p.push(handshake);
  assert.deepEqual([...s.sent[1]!], [1, 1]);
  assert.deepEqual([...s.sent[2]!], [0, 0, 0, 0]);
  const init = s.sent[3]!;
  assert.equal(init.readUInt16BE(0), 1280);
  assert.equal(init.readUInt16BE(2), 800);
  assert.equal(init.subarray(24).toString(), 'vm');
  assert.ok(s.p.ready);
});

test('client messages: encodings noted, requests counted, key/pointer/clipboard handed on unchanged, split anywhere', () => {
  const s = server();
  const msgs = Buffer.concat([handshake, setPixelFormat(), setEncodings([1, ENCODING_H264, 7, -223]), updateRequest(false, 0, 0, 1280, 800), keyEvent(true, 0x78), pointerEvent(1, 10, 20), clientCutText('hi'), updateRequest(true, 0, 0, 1280, 800)]);
  for (let i = 0; i < msgs.length; i += 3) s.p.push(msgs.subarray(i, i + 3));
  assert.deepEqual(s.encodings, [[1, ENCODING_H264, 7, -223]]);
  assert.deepEqual(s.requests, [false, true]);
  assert.deepEqual(s.input, [keyEvent(true, 0x78), pointerEvent(1, 10, 20)]);
  assert.deepEqual(s.cut, [clientCutText('hi')]);
});

test('without an updateRequest listener the requests are still consumed (no loop on the same message)', () => {
  const sent: Buffer[] = [];
  const input: Buffer[] = [];
  const p = new RfbServerProtocol({ send: (b) => sent.push(b), input: (m) => input.push(m) }, { width: 64, height: 48, name: 'vm' });
  p.push(Buffer.concat([handshake, updateRequest(true, 0, 0, 64, 48), keyEvent(true, 1)]));
  assert.deepEqual(input, [keyEvent(true, 1)]);
});

test('refused: other versions, other security types, unknown messages, too many encodings, huge or extended clipboards', () => {
  assert.throws(() => server().p.push(Buffer.from('RFB 004.000\n')), /only RFB 3.7 and 3.8/);
  assert.throws(() => server().p.push(Buffer.concat([Buffer.from('RFB 003.008\n'), Buffer.from([2])])), /was not offered/);
  assert.throws(() => server().p.push(Buffer.concat([handshake, Buffer.from([250, 0, 0, 0])])), /type 250 is not served/);
  const many = Buffer.alloc(4); many[0] = 2; many.writeUInt16BE(VIEWER_LIMITS.maxEncodings + 1, 2);
  assert.throws(() => server().p.push(Buffer.concat([handshake, many])), /encodings \(at most/);
  const cut = Buffer.alloc(8); cut[0] = 6; cut.writeInt32BE(VIEWER_LIMITS.maxCutText + 1, 4);
  assert.throws(() => server().p.push(Buffer.concat([handshake, cut])), /clipboard/);
  cut.writeInt32BE(-8, 4);
  assert.throws(() => server().p.push(Buffer.concat([handshake, cut])), /clipboard/);
});

test('an H.264 update is one rectangle of encoding 50: length, flags, then the Annex-B payload', () => {
  const data = Buffer.from([0, 0, 0, 1, 0x65, 1, 2, 3]);
  const b = h264Update(1280, 800, data, 1);
  assert.equal(b[0], 0);
  assert.equal(b.readUInt16BE(2), 1);
  assert.deepEqual([b.readUInt16BE(4), b.readUInt16BE(6), b.readUInt16BE(8), b.readUInt16BE(10)], [0, 0, 1280, 800]);
  assert.equal(b.readInt32BE(12), ENCODING_H264);
  assert.equal(b.readUInt32BE(16), data.length);
  assert.equal(b.readUInt32BE(20), 1);
  assert.deepEqual(b.subarray(24), data);
});

test('fuzz: garbage after the handshake is refused with an error or waited on, never forwarded as input', () => {
  for (let i = 0; i < 1000; i++) {
    const s = server();
    const g = randomBytes(1 + (i % 40));
    try { s.p.push(Buffer.concat([handshake, g])); } catch (e) { assert.match((e as Error).message, /^viewer RFB: /); s.p.push(keyEvent(true, 1)); }
    for (const m of s.input) assert.ok((m[0] === 4 && m.length === 8) || (m[0] === 5 && m.length === 6));
  }
});
