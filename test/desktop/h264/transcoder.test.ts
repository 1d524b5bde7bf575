// The transcoder end to end in-process (no VM): a scripted guest RFB server on the loopback and a WebSocket viewer
// speaking RFB. A viewer that offers H.264 gets FramebufferUpdates of encoding 50 starting with a key frame (real
// ffmpeg; skipped without it) and its keys reach the guest byte for byte; one that does not is closed; a guest
// whose screen or update exceeds GUEST_LIMITS is cut off. Also the pure size check.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { annexBTypes, NAL } from '../../../src/desktop/h264/annexb.js';
import { encoderSkipReason } from '../../../src/desktop/h264/encoder.js';
import { CLOSE, GUEST_LIMITS, guestScreenProblem, transcode, type Transcoder } from '../../../src/desktop/h264/transcoder.js';
import { ENCODING_H264 } from '../../../src/desktop/h264/rfb-server.js';
import { keyEvent, setEncodings, updateRequest } from '../../../src/control/rfb/codec.js';

test('guest screens: ordinary sizes pass, tiny, huge and odd ones are refused with a reason', () => {
  assert.equal(guestScreenProblem(1280, 800), null);
  assert.equal(guestScreenProblem(GUEST_LIMITS.maxWidth, GUEST_LIMITS.maxHeight), null);
  assert.match(guestScreenProblem(8, 800) ?? '', /smaller/);
  assert.match(guestScreenProblem(65535, 65535) ?? '', /larger/);
  assert.match(guestScreenProblem(GUEST_LIMITS.maxWidth + 2, 800) ?? '', /larger/);
  assert.match(guestScreenProblem(1281, 800) ?? '', /even/);
});

/** A guest RFB server: handshake, ServerInit of w×h, then `afterInit(socket)` once the client's first request is in. */
async function guest(w: number, h: number, afterInit: (s: net.Socket) => void): Promise<{ port: number; received: Buffer[]; close(): void }> {
  const received: Buffer[] = [];
  const srv = net.createServer((s) => {
    s.write('RFB 003.008\n');
    let buf = Buffer.alloc(0);
    let phase = 0;
    s.on('data', (d: Buffer) => {
      if (phase === 4) { received.push(d); return; }
      buf = Buffer.concat([buf, d]);
      if (phase === 0 && buf.length >= 12) { buf = buf.subarray(12); s.write(Buffer.from([1, 1])); phase = 1; }
      if (phase === 1 && buf.length >= 1) { buf = buf.subarray(1); s.write(Buffer.alloc(4)); phase = 2; }
      if (phase === 2 && buf.length >= 1) {
        buf = buf.subarray(1);
        const init = Buffer.alloc(24);
        init.writeUInt16BE(w, 0);
        init.writeUInt16BE(h, 2);
        Buffer.from([32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 0, 8, 16]).copy(init, 4);
        init.writeUInt32BE(5, 20); // a name: the controller's client cannot take an empty one (ByteQueue.take(0))
        s.write(Buffer.concat([init, Buffer.from('guest')]));
        phase = 3;
      }
      // SetPixelFormat (20) + SetEncodings (4 + 4n) + FramebufferUpdateRequest (10) from the transcoder's client
      if (phase === 3 && buf.length >= 20 + 4 && buf.length >= 20 + 4 + 4 * buf.readUInt16BE(22) + 10) { phase = 4; afterInit(s); }
    });
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return { port: (srv.address() as net.AddressInfo).port, received, close: () => srv.close() };
}

function rawUpdate(w: number, h: number): Buffer {
  const head = Buffer.alloc(16);
  head.writeUInt16BE(1, 2);
  head.writeUInt16BE(w, 8);
  head.writeUInt16BE(h, 10);
  const px = Buffer.alloc(w * h * 4);
  for (let i = 0; i < px.length; i += 4) { px[i] = (i / 4) % 256; px[i + 1] = 40; px[i + 2] = 200; }
  return Buffer.concat([head, px]);
}

interface Viewer { ws: WebSocket; messages: Buffer[]; closed: Promise<number>; transcoder: Transcoder; close(): void }

/** A WebSocket viewer through a transcoder to the guest; does the RFB client handshake and sends `encodings`. */
async function viewer(guestPort: number, encodings: number[]): Promise<Viewer> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await once(wss, 'listening');
  let transcoder!: Transcoder;
  wss.on('connection', (ws) => { transcoder = transcode(net.connect(guestPort, '127.0.0.1'), ws); });
  const ws = new WebSocket(`ws://127.0.0.1:${(wss.address() as net.AddressInfo).port}`);
  const messages: Buffer[] = [];
  let phase = 0;
  ws.on('message', (d: Buffer) => {
    messages.push(d);
    if (process.env.H264_DEBUG) console.error('viewer got', d.length, phase);
    if (phase === 0) { ws.send(Buffer.from('RFB 003.008\n')); phase = 1; } else if (phase === 1) { ws.send(Buffer.from([1])); phase = 2; } else if (phase === 2) { ws.send(Buffer.from([1])); phase = 3; } else if (phase === 3) {
      ws.send(Buffer.concat([setEncodings(encodings), updateRequest(false, 0, 0, 64, 48)]));
      phase = 4;
    }
  });
  const closed = once(ws, 'close').then(([code, reason]) => { if (process.env.H264_DEBUG) console.error('closed', code, String(reason)); return code as number; });
  await once(ws, 'open');
  return { ws, messages, closed, get transcoder() { return transcoder; }, close: () => { ws.close(); wss.close(); } };
}

const skip = encoderSkipReason() ?? false;

test('a viewer offering H.264 gets encoding-50 updates starting with a key frame; its keys reach the guest unchanged', { skip }, async () => {
  const g = await guest(64, 48, (s) => s.write(rawUpdate(64, 48)));
  const v = await viewer(g.port, [ENCODING_H264, 0]);
  try {
    const deadline = Date.now() + 10_000;
    let update: Buffer | undefined;
    while (!update && Date.now() < deadline) {
      update = v.messages.find((m) => m.length > 24 && m[0] === 0 && m.readInt32BE(12) === ENCODING_H264);
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(update, 'an H.264 FramebufferUpdate arrived');
    assert.deepEqual([update.readUInt16BE(8), update.readUInt16BE(10)], [64, 48]);
    assert.equal(update.readUInt32BE(16), update.length - 24);
    const types = annexBTypes(update.subarray(24));
    assert.deepEqual(types.slice(0, 2), [NAL.SPS, NAL.PPS]);
    assert.ok(types.includes(NAL.IDR));
    v.ws.send(keyEvent(true, 0x78));
    while (!Buffer.concat(g.received).includes(keyEvent(true, 0x78)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(Buffer.concat(g.received).includes(keyEvent(true, 0x78)), 'the key event reached the guest');
    assert.ok(v.transcoder.stats().framesSent >= 1);
  } finally {
    v.close();
    g.close();
  }
});

test('a viewer that does not offer H.264 is closed with CLOSE.noH264', async () => {
  const g = await guest(64, 48, (s) => s.write(rawUpdate(64, 48)));
  const v = await viewer(g.port, [7, 0]);
  try {
    assert.equal(await v.closed, CLOSE.noH264);
  } finally {
    v.close();
    g.close();
  }
});

test('the untrusted guest: a screen over the limit, or an update of too many rectangles, ends the session', async () => {
  const big = await guest(GUEST_LIMITS.maxWidth + 2, 16, () => undefined);
  const v1 = await viewer(big.port, [ENCODING_H264]);
  try { assert.equal(await v1.closed, CLOSE.guest); } finally { v1.close(); big.close(); }
  const many = await guest(64, 48, (s) => {
    const n = GUEST_LIMITS.maxRectsPerUpdate + 1;
    const b = Buffer.alloc(4 + n * 16);
    b.writeUInt16BE(n, 2);
    for (let i = 0; i < n; i++) { const o = 4 + i * 16; b.writeUInt16BE(1, o + 4); b.writeUInt16BE(1, o + 6); b.writeInt32BE(1, o + 8); } // 1x1 CopyRect from 0,0
    s.write(b);
  });
  const v2 = await viewer(many.port, [ENCODING_H264]);
  try { assert.equal(await v2.closed, CLOSE.guest); } finally { v2.close(); many.close(); }
});
