// H.264 byte-stream helpers: AVCC units to Annex-B (AUDs dropped), NAL types of Annex-B, the decoder configuration
// record, and that lengths from the encoder never reach past the buffer (garbage is refused, never over-read).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { annexBTypes, avccUnits, parseDecoderConfig, toAnnexB, NAL } from '../../../src/desktop/h264/annexb.js';

const unit = (type: number, n = 3): Buffer => Buffer.concat([Buffer.from([0x60 | type]), Buffer.alloc(n, 0xab)]);
const avcc = (units: Buffer[], size = 4): Buffer => Buffer.concat(units.flatMap((u) => { const l = Buffer.alloc(size); l.writeUIntBE(u.length, 0, size); return [l, u]; }));

function config(sps = unit(NAL.SPS, 5), pps = unit(NAL.PPS, 2), lengthSize = 4): Buffer {
  const head = Buffer.from([1, 0x42, 0xc0, 0x1f, 0xfc | (lengthSize - 1), 0xe1]);
  const l = (b: Buffer): Buffer => { const x = Buffer.alloc(2); x.writeUInt16BE(b.length); return x; };
  return Buffer.concat([head, l(sps), sps, Buffer.from([1]), l(pps), pps]);
}

test('AVCC units become Annex-B with 4-byte start codes; access unit delimiters are dropped', () => {
  const units = avccUnits(avcc([unit(NAL.AUD, 1), unit(NAL.SEI), unit(NAL.IDR, 10)]), 4);
  assert.equal(units.length, 3);
  const b = toAnnexB(units);
  assert.deepEqual(annexBTypes(b), [NAL.SEI, NAL.IDR]);
  assert.deepEqual([...b.subarray(0, 4)], [0, 0, 0, 1]);
  assert.equal(b.length, 4 + 4 + 4 + 11);
});

test('1- and 2-byte NAL lengths work too', () => {
  for (const size of [1, 2]) assert.deepEqual(avccUnits(avcc([unit(NAL.SLICE), unit(NAL.SLICE, 7)], size), size).map((u) => u.length), [4, 8]);
});

test('a NAL length past the end, a zero length or a truncated length is refused', () => {
  const good = avcc([unit(NAL.SLICE, 20)]);
  assert.throws(() => avccUnits(good.subarray(0, good.length - 1), 4), /does not fit/);
  assert.throws(() => avccUnits(Buffer.from([0, 0, 0, 0]), 4), /does not fit/);
  assert.throws(() => avccUnits(Buffer.from([0, 0]), 4), /truncated/);
  assert.throws(() => avccUnits(good, 3), /not 1, 2 or 4/);
});

test('the decoder configuration record gives SPS, PPS, the length size and the WebCodecs codec string', () => {
  const c = parseDecoderConfig(config());
  assert.equal(c.lengthSize, 4);
  assert.equal(c.codec, 'avc1.42c01f');
  assert.equal(c.sps[0]![0]! & 0x1f, NAL.SPS);
  assert.equal(c.pps[0]![0]! & 0x1f, NAL.PPS);
  const full = config();
  for (let n = 0; n < full.length; n++) assert.throws(() => parseDecoderConfig(full.subarray(0, n)), `a record cut at ${n} bytes is refused`);
});

test('fuzz: random bytes are parsed or refused with an error, never over-read or hung', () => {
  for (let i = 0; i < 2000; i++) {
    const b = randomBytes(1 + (i % 64));
    try { for (const u of avccUnits(b, 4)) assert.ok(u.length > 0 && u.length <= b.length); } catch (e) { assert.match((e as Error).message, /^H\.264: /); }
    try { parseDecoderConfig(Buffer.concat([Buffer.from([1]), b])); } catch (e) { assert.match((e as Error).message, /^H\.264: /); }
    annexBTypes(b);
  }
});
