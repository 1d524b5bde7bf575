// The RFB codecs against recorded bytes (an x11vnc session: handshake, ServerInit, Raw updates; test/fixtures/
// rfb-x11vnc-96x64.bin) split at every kind of boundary, against synthetic CopyRect / DesktopSize / PointerPos /
// cut-text messages, and the client messages byte for byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ByteQueue, MAX_SIDE, RfbClientProtocol, clientCutText, keyEvent, pointerEvent, setEncodings, updateRequest, ENCODING } from '../../../src/control/rfb/codec.js';
import { Framebuffer, crop, scale, encodeImage } from '../../../src/control/rfb/framebuffer.js';
import { PNG } from 'pngjs';
import { ROOT } from '../../support/env.js';
import { RFB_BANNER, serverCutText } from '../../support/rfb.js';

const recorded = readFileSync(join(ROOT, 'test/fixtures/rfb-x11vnc-96x64.bin'));

function run(chunks: Buffer[]): { p: RfbClientProtocol; sent: Buffer[]; updates: number; ready: number } {
  const sent: Buffer[] = [];
  let updates = 0;
  let ready = 0;
  const p = new RfbClientProtocol({ send: (b) => sent.push(b), update: () => { updates++; }, ready: () => { ready++; } });
  for (const c of chunks) p.push(c);
  return { p, sent, updates, ready };
}

function split(b: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  let off = 0;
  for (let i = 0; off < b.length; i++) { const n = sizes[i % sizes.length]!; out.push(b.subarray(off, off + n)); off += n; }
  return out;
}

test('a recorded x11vnc session: handshake, ServerInit and its updates', () => {
  const { p, sent, updates, ready } = run([recorded]);
  assert.equal(ready, 1);
  assert.equal(p.init!.width, 96);
  assert.equal(p.init!.height, 64);
  assert.ok(updates >= 2, `updates: ${updates}`);
  assert.equal(sent[0]!.toString('latin1'), 'RFB 003.008\n');
  assert.deepEqual([...sent[1]!], [1]); // security None
  assert.deepEqual([...sent[2]!], [1]); // ClientInit shared
  assert.equal(sent[3]![0], 0); // SetPixelFormat, then SetEncodings and a full request in the same write
  assert.ok(!p.fb!.uniform(), 'the xterm is on the screen');
  assert.equal(p.midUpdate, false);
});

test('the same framebuffer however the bytes are split (1 byte, primes, whole)', () => {
  const whole = run([recorded]).p.fb!.data;
  for (const sizes of [[1], [7, 13, 4096], [11, 1, 65536], [3, 24, 5]]) {
    const r = run(split(recorded, sizes));
    assert.ok(r.p.fb!.data.equals(whole), `sizes ${sizes.join(',')}`);
  }
});

/** A server stream: banner, None, ServerInit 8x4 "t", then `msgs`. */
function server(...msgs: Buffer[]): Buffer {
  const init = Buffer.alloc(24);
  init.writeUInt16BE(8, 0); init.writeUInt16BE(4, 2); init.writeUInt32BE(1, 20);
  return Buffer.concat([Buffer.from(RFB_BANNER), Buffer.from([1, 1]), Buffer.alloc(4), init, Buffer.from('t'), ...msgs]);
}
function rect(x: number, y: number, w: number, h: number, enc: number, body = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16BE(x, 0); b.writeUInt16BE(y, 2); b.writeUInt16BE(w, 4); b.writeUInt16BE(h, 6); b.writeInt32BE(enc, 8);
  return Buffer.concat([b, body]);
}
function update(...rects: Buffer[]): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt16BE(rects.length, 2);
  return Buffer.concat([h, ...rects]);
}
const px = (n: number, r: number, g: number, b: number): Buffer => Buffer.concat(Array.from({ length: n }, () => Buffer.from([r, g, b, 0])));

test('Raw, CopyRect (overlapping), PointerPos, DesktopSize, ServerCutText and Bell', () => {
  let pointer: [number, number] | null = null;
  let cut = '';
  let bells = 0;
  let resized: [number, number] | null = null;
  const sent: Buffer[] = [];
  const p = new RfbClientProtocol({ send: (b) => sent.push(b), pointer: (x, y) => { pointer = [x, y]; }, cutText: (t) => { cut = t; }, bell: () => { bells++; }, resize: (w, h) => { resized = [w, h]; } });
  p.push(server(
    update(rect(0, 0, 2, 1, ENCODING.RAW, Buffer.concat([px(1, 255, 0, 0), px(1, 0, 255, 0)])), rect(1, 0, 2, 1, ENCODING.COPY_RECT, Buffer.from([0, 0, 0, 0])), rect(5, 3, 0, 0, ENCODING.POINTER_POS)),
    Buffer.from([2]), serverCutText('grüß'),
  ));
  const fb = p.fb!;
  const at = (x: number, y: number): number[] => [...fb.data.subarray((y * fb.width + x) * 4, (y * fb.width + x) * 4 + 4)];
  // CopyRect from (0,0) 2 wide to (1,0): overlap handled (red, red, green).
  assert.deepEqual([at(0, 0), at(1, 0), at(2, 0)], [[255, 0, 0, 255], [255, 0, 0, 255], [0, 255, 0, 255]]);
  assert.deepEqual(pointer, [5, 3]);
  assert.equal(cut, 'grüß');
  assert.equal(bells, 1);
  // After each complete update: the next incremental request.
  assert.ok(sent.at(-1)!.equals(updateRequest(true, 0, 0, 8, 4)));
  p.push(update(rect(0, 0, 16, 10, ENCODING.DESKTOP_SIZE)));
  assert.deepEqual(resized, [16, 10]);
  assert.equal(p.fb!.width, 16);
});

test('refusals: not RFB, no security None, a server that refuses, an encoding not asked for', () => {
  assert.throws(() => run([Buffer.from('HTTP/1.1 200\r\n')]), /not an RFB server/);
  assert.throws(() => run([Buffer.from(RFB_BANNER), Buffer.from([1, 2])]), /only None/);
  const reason = Buffer.concat([Buffer.from(RFB_BANNER), Buffer.from([0]), Buffer.from([0, 0, 0, 4]), Buffer.from('busy')]);
  assert.throws(() => run([reason]), /busy/);
  assert.throws(() => run([server(update(rect(0, 0, 1, 1, 7)))]), (e: Error & { code?: string }) => e.code === 'VM_UNREACHABLE' && /encoding 7/.test(e.message));
});

test('the guest is untrusted: a screen too large (ServerInit or DesktopSize) or a Raw rectangle outside it is refused before anything is allocated or buffered; an empty desktop name is fine', () => {
  const withInit = (w: number, h: number, name = 't'): Buffer => {
    const init = Buffer.alloc(24);
    init.writeUInt16BE(w, 0); init.writeUInt16BE(h, 2); init.writeUInt32BE(Buffer.byteLength(name), 20);
    return Buffer.concat([Buffer.from(RFB_BANNER), Buffer.from([1, 1]), Buffer.alloc(4), init, Buffer.from(name)]);
  };
  const refused = (b: Buffer, re: RegExp): void => assert.throws(() => run([b]), (e: Error & { code?: string }) => e.code === 'VM_UNREACHABLE' && re.test(e.message));
  refused(withInit(65535, 65535), /screen of 65535x65535/);
  refused(withInit(8193, 16), /screen of 8193x16/);
  refused(withInit(8192, 8192), /screen of 8192x8192/);
  refused(withInit(0, 10), /screen of 0x10/);
  refused(server(update(rect(0, 0, 65535, 65535, ENCODING.DESKTOP_SIZE))), /screen of 65535x65535/);
  // The 8x4 screen of server(): a Raw rectangle past its edge, which would otherwise wait for 16 GiB of pixels.
  refused(server(update(rect(0, 0, 65535, 65535, ENCODING.RAW))), /outside the screen/);
  refused(server(update(rect(7, 0, 2, 1, ENCODING.RAW, Buffer.concat([px(2, 1, 2, 3)])))), /outside the screen/);
  const ok = run([withInit(MAX_SIDE, 4320, '')]);
  assert.equal(ok.ready, 1, 'the largest screen and an empty name');
  assert.equal(ok.p.init!.name, '');
});

test('client messages, byte for byte', () => {
  assert.deepEqual([...keyEvent(true, 0xff0d)], [4, 1, 0, 0, 0, 0, 0xff, 0x0d]);
  assert.deepEqual([...keyEvent(false, 0x0100017e)], [4, 0, 0, 0, 0x01, 0x00, 0x01, 0x7e]);
  assert.deepEqual([...pointerEvent(5, 300, 2)], [5, 5, 1, 44, 0, 2]);
  assert.deepEqual([...setEncodings([1, 0, -223])], [2, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x21]);
  assert.deepEqual([...clientCutText('aé')], [6, 0, 0, 0, 0, 0, 0, 2, 0x61, 0xe9]);
  assert.throws(() => clientCutText('日本'), (e: Error & { code?: string }) => e.code === 'INVALID_ARGUMENT');
});

test('ByteQueue: peek and take across chunks', () => {
  const q = new ByteQueue();
  q.push(Buffer.from('ab')); q.push(Buffer.from('cde')); q.push(Buffer.from('f'));
  assert.equal(q.peek(4).toString(), 'abcd');
  assert.equal(q.take(1).toString(), 'a');
  assert.equal(q.take(4).toString(), 'bcde');
  assert.equal(q.length, 1);
  assert.equal(q.take(1).toString(), 'f');
  assert.equal(q.take(0).length, 0, 'nothing from an empty queue');
});

test('crop, scale and the encoders', () => {
  const fb = new Framebuffer(4, 2);
  fb.putRaw(0, 0, 2, 1, Buffer.concat([px(1, 10, 20, 30), px(1, 40, 50, 60)]));
  const c = crop(fb, { x: 0, y: 0, width: 2, height: 1 });
  assert.deepEqual([...c.data], [10, 20, 30, 255, 40, 50, 60, 255]);
  assert.throws(() => crop(fb, { x: 3, y: 0, width: 2, height: 1 }), /not inside/);
  const s = scale(fb, 0.5);
  assert.deepEqual([s.width, s.height], [2, 1]);
  assert.deepEqual([...s.data.subarray(0, 4)], [25 / 2, 35 / 2, 45 / 2, 255].map(Math.floor));
  const png = PNG.sync.read(encodeImage(fb, 'png'));
  assert.deepEqual([png.width, png.height, png.data[4], png.data[5]], [4, 2, 40, 50]);
  assert.equal(encodeImage(fb, 'jpeg').subarray(0, 2).toString('hex'), 'ffd8');
});
