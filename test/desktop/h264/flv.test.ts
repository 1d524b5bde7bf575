// The encoder-output demuxer: FLV tags become one Annex-B frame each (SPS/PPS in front of key frames), split reads
// are reassembled, non-video tags skipped, and a malformed or oversized stream is refused (bounded buffering).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { FlvDemuxer, MAX_TAG_BYTES, type EncodedFrame } from '../../../src/desktop/h264/flv.js';
import { annexBTypes, NAL } from '../../../src/desktop/h264/annexb.js';

/** An AVCDecoderConfigurationRecord with one SPS and one PPS, 4-byte NAL lengths. */
function config(): Buffer {
  const sps = Buffer.from([0x67, 0x42, 0xc0, 0x1f, 0xaa]);
  const pps = Buffer.from([0x68, 0xce]);
  return Buffer.concat([Buffer.from([1, 0x42, 0xc0, 0x1f, 0xff, 0xe1, 0, sps.length]), sps, Buffer.from([1, 0, pps.length]), pps]);
}

const HEADER = Buffer.concat([Buffer.from('FLV', 'latin1'), Buffer.from([1, 1, 0, 0, 0, 9]), Buffer.alloc(4)]);

function tag(type: number, body: Buffer): Buffer {
  const h = Buffer.alloc(11);
  h[0] = type;
  h.writeUIntBE(body.length, 1, 3);
  const prev = Buffer.alloc(4);
  prev.writeUInt32BE(11 + body.length);
  return Buffer.concat([h, body, prev]);
}
const video = (key: boolean, packet: number, payload: Buffer): Buffer => tag(9, Buffer.concat([Buffer.from([(key ? 0x10 : 0x20) | 7, packet, 0, 0, 0]), payload]));
const nal = (type: number, n: number): Buffer => { const b = Buffer.alloc(4 + 1 + n, 0x55); b.writeUInt32BE(1 + n); b[4] = 0x60 | type; return b; };

function stream(): Buffer {
  return Buffer.concat([HEADER, tag(18, Buffer.from('onMetaData')), video(true, 0, config()), video(true, 1, nal(NAL.IDR, 50)), video(false, 1, nal(NAL.SLICE, 9)), tag(8, Buffer.alloc(3))]);
}

test('each video tag is one frame; the key frame carries SPS and PPS first', () => {
  const frames: EncodedFrame[] = [];
  new FlvDemuxer((f) => frames.push(f)).push(stream());
  assert.equal(frames.length, 2);
  assert.equal(frames[0]!.key, true);
  assert.deepEqual(annexBTypes(frames[0]!.data), [NAL.SPS, NAL.PPS, NAL.IDR]);
  assert.equal(frames[1]!.key, false);
  assert.deepEqual(annexBTypes(frames[1]!.data), [NAL.SLICE]);
});

test('a stream fed one byte at a time gives the same frames', () => {
  const whole: Buffer[] = [];
  new FlvDemuxer((f) => whole.push(f.data)).push(stream());
  const bytes: Buffer[] = [];
  const d = new FlvDemuxer((f) => bytes.push(f.data));
  const s = stream();
  for (let i = 0; i < s.length; i++) d.push(s.subarray(i, i + 1));
  assert.deepEqual(bytes, whole);
});

test('a tag larger than MAX_TAG_BYTES is refused from its header, before it is buffered', () => {
  const h = Buffer.alloc(11);
  h[0] = 9;
  h.writeUIntBE(MAX_TAG_BYTES + 1, 1, 3);
  assert.throws(() => new FlvDemuxer(() => undefined).push(Buffer.concat([HEADER, h])), /at most/);
});

test('not FLV, a frame before the configuration, or a non-AVC codec is refused', () => {
  assert.throws(() => new FlvDemuxer(() => undefined).push(Buffer.alloc(13)), /not FLV/);
  assert.throws(() => new FlvDemuxer(() => undefined).push(Buffer.concat([HEADER, video(false, 1, nal(NAL.SLICE, 3))])), /before the decoder configuration/);
  assert.throws(() => new FlvDemuxer(() => undefined).push(Buffer.concat([HEADER, tag(9, Buffer.from([0x12, 1, 0, 0, 0]))])), /not AVC/);
});

test('fuzz: garbage after a valid header is refused or ignored, and a failed demuxer stays quiet', () => {
  for (let i = 0; i < 500; i++) {
    const d = new FlvDemuxer(() => undefined);
    try { d.push(Buffer.concat([HEADER, video(true, 0, config()), randomBytes(1 + (i % 300))])); } catch (e) { assert.match((e as Error).message, /^(encoder output|H\.264): /); d.push(stream()); }
  }
});
