// The frame codec: round trips, bounds (length, type, JSON size), chunking at every byte, the HELLO_OK scanner in
// stale bytes, and a fast-check fuzz: arbitrary input only ever throws AGENT_FAILED and never holds more than a frame.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isHangarError } from '../../src/errors.js';
import { encodeFrame, FRAME, FrameDecoder, frameJson, HEADER, HelloScanner, LIMITS } from '../../src/agent/codec.js';

const reason = (r: string) => (e: unknown): boolean => isHangarError(e, 'AGENT_FAILED') && e.details.reason === r;

test('frames round trip, whole or split at every byte', () => {
  const wire = Buffer.concat([encodeFrame(FRAME.OK, 7, { a: 1 }), encodeFrame(FRAME.DATA, 9, Buffer.from('xyz')), encodeFrame(FRAME.EOF, 9)]);
  for (let cut = 0; cut <= wire.length; cut++) {
    const d = new FrameDecoder();
    const frames = [...d.push(wire.subarray(0, cut)), ...d.push(wire.subarray(cut))];
    assert.deepEqual(frames.map((f) => [f.type, f.stream, f.payload.toString()]), [[FRAME.OK, 7, '{"a":1}'], [FRAME.DATA, 9, 'xyz'], [FRAME.EOF, 9, '']]);
    assert.equal(d.buffered, 0);
  }
});

test('bounds: a length over 1 MiB + 5, under 5, an unknown type, a control frame over 64 KiB', () => {
  const hdr = (len: number, type: number): Buffer => { const b = Buffer.alloc(HEADER); b.writeUInt32BE(len, 0); b[4] = type; return b; };
  assert.throws(() => new FrameDecoder().push(hdr(LIMITS.maxPayload + 6, FRAME.DATA)), reason('frame-too-large'));
  assert.throws(() => new FrameDecoder().push(hdr(4, FRAME.DATA)), reason('frame-too-small'));
  assert.throws(() => new FrameDecoder().push(hdr(10, 0x7f)), reason('unknown-type'));
  assert.throws(() => new FrameDecoder().push(hdr(LIMITS.maxJson + 6, FRAME.EVENT)), reason('json-too-large'));
  // The decision comes from the header alone: nothing of the oversized payload is buffered.
  const d = new FrameDecoder();
  assert.throws(() => d.push(hdr(LIMITS.maxPayload + 6, FRAME.DATA)));
  assert.equal(d.buffered, 0);
  assert.throws(() => d.push(Buffer.alloc(1)), reason('frame-too-large'), 'a failed decoder stays failed');
  assert.equal(new FrameDecoder().push(encodeFrame(FRAME.DATA, 1, Buffer.alloc(LIMITS.maxPayload))).length, 1);
});

test('JSON payloads: objects only, a nesting bomb is bad-json, not a crash', () => {
  const f = (p: string) => ({ type: FRAME.OK, stream: 1, payload: Buffer.from(p) });
  assert.deepEqual(frameJson(f('{"x":[1]}')), { x: [1] });
  assert.throws(() => frameJson(f('[1]')), reason('bad-json'));
  assert.throws(() => frameJson(f('{"x":')), reason('bad-json'));
  const bomb = '['.repeat(60_000) + ']'.repeat(4000);
  assert.throws(() => frameJson(f(bomb.slice(0, LIMITS.maxJson))), reason('bad-json'));
});

test('the HELLO_OK scanner skips stale bytes (half frames, garbage) and keeps at most a needle of them', () => {
  const session = 'ab'.repeat(16);
  const hello = encodeFrame(FRAME.HELLO_OK, 0, `{"v":1,"session":"${session}","pid":1}`);
  const stale = Buffer.concat([encodeFrame(FRAME.DATA, 3, Buffer.alloc(5000, 1)).subarray(0, 2000), encodeFrame(FRAME.HELLO_OK, 0, `{"v":1,"session":"${'cd'.repeat(16)}"}`), Buffer.from('junk')]);
  const s = new HelloScanner(session);
  let out: Buffer | null = null;
  const wire = Buffer.concat([stale, hello, encodeFrame(FRAME.OK, 1, {})]);
  for (let i = 0; i < wire.length && !out; i += 97) out = s.push(wire.subarray(i, i + 97));
  assert.ok(out);
  const frames = new FrameDecoder().push(out);
  assert.equal(frames[0]!.type, FRAME.HELLO_OK);
  assert.equal(frameJson(frames[0]!).session, session);
  assert.throws(() => { const t = new HelloScanner(session, 1000); for (let i = 0; i < 10; i++) t.push(Buffer.alloc(500)); }, reason('no-hello'));
});

test('fuzz: arbitrary bytes in arbitrary chunks throw nothing but AGENT_FAILED and buffer at most one frame', () => {
  fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 30 }), fc.boolean(), (chunks, prefixValid) => {
    const d = new FrameDecoder();
    try {
      if (prefixValid) d.push(encodeFrame(FRAME.OK, 1, { ok: true }));
      for (const c of chunks) {
        for (const f of d.push(Buffer.from(c))) { try { frameJson(f); } catch (e) { assert.ok(isHangarError(e, 'AGENT_FAILED')); } }
        assert.ok(d.buffered <= LIMITS.maxPayload + HEADER + 300);
      }
    } catch (e) {
      assert.ok(isHangarError(e, 'AGENT_FAILED'), String(e));
    }
  }), { numRuns: 2000 });
});
