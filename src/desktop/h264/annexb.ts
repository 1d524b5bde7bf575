// H.264 byte-stream helpers for the host-side transcoder, pure: length-prefixed NAL units (AVCC, what ffmpeg's FLV
// muxer carries) to Annex-B (start codes, what noVNC's H.264 decoder and WebCodecs read), the NAL units of an
// Annex-B buffer, and an AVCDecoderConfigurationRecord's SPS/PPS. Everything here reads encoder output, so every
// length is checked against the buffer it claims to lie in.
import { HangarError } from '../../errors.js';

export const START_CODE = Buffer.from([0, 0, 0, 1]);

/** NAL unit types used here. */
export const NAL = { SLICE: 1, IDR: 5, SEI: 6, SPS: 7, PPS: 8, AUD: 9 } as const;

const bad = (message: string, details: Record<string, unknown> = {}): never => {
  throw new HangarError('INTERNAL', `H.264: ${message}`, details);
};

/** The NAL units of an AVCC buffer (each preceded by a big-endian length of `lengthSize` bytes: 1, 2 or 4). */
export function avccUnits(buf: Buffer, lengthSize: number): Buffer[] {
  if (lengthSize !== 1 && lengthSize !== 2 && lengthSize !== 4) bad(`NAL length size ${lengthSize} is not 1, 2 or 4`, { lengthSize });
  const out: Buffer[] = [];
  let off = 0;
  while (off < buf.length) {
    if (off + lengthSize > buf.length) bad('truncated NAL length', { offset: off });
    const len = buf.readUIntBE(off, lengthSize);
    off += lengthSize;
    if (len === 0 || off + len > buf.length) bad(`NAL unit of ${len} bytes does not fit`, { offset: off, length: len, available: buf.length - off });
    out.push(buf.subarray(off, off + len));
    off += len;
  }
  return out;
}

/** NAL units joined with 4-byte start codes, dropping access unit delimiters (noVNC's parser warns on each). */
export function toAnnexB(units: readonly Buffer[]): Buffer {
  const parts: Buffer[] = [];
  for (const u of units) {
    if ((u[0]! & 0x1f) === NAL.AUD) continue;
    parts.push(START_CODE, u);
  }
  return Buffer.concat(parts);
}

/** The NAL unit types of an Annex-B buffer, in order (3- or 4-byte start codes). */
export function annexBTypes(buf: Buffer): number[] {
  const types: number[] = [];
  for (let i = 0; i + 3 < buf.length; i++) {
    if (buf[i] === 0 && buf[i + 1] === 0 && buf[i + 2] === 1) {
      types.push(buf[i + 3]! & 0x1f);
      i += 3;
    }
  }
  return types;
}

export interface DecoderConfig {
  /** NAL length size of the stream's units (1, 2 or 4). */
  lengthSize: number;
  sps: Buffer[];
  pps: Buffer[];
  /** 'avc1.PPCCLL', the WebCodecs codec string. */
  codec: string;
}

/** Parses an AVCDecoderConfigurationRecord (ISO 14496-15 §5.2.4.1). */
export function parseDecoderConfig(b: Buffer): DecoderConfig {
  if (b.length < 7 || b[0] !== 1) bad('not an AVCDecoderConfigurationRecord', { length: b.length, version: b[0] });
  const lengthSize = (b[4]! & 3) + 1;
  let off = 6;
  const list = (count: number, what: string): Buffer[] => {
    const out: Buffer[] = [];
    for (let i = 0; i < count; i++) {
      if (off + 2 > b.length) bad(`truncated ${what} length`);
      const len = b.readUInt16BE(off);
      off += 2;
      if (len === 0 || off + len > b.length) bad(`${what} of ${len} bytes does not fit`, { length: len });
      out.push(b.subarray(off, off + len));
      off += len;
    }
    return out;
  };
  const sps = list(b[5]! & 0x1f, 'SPS');
  if (off >= b.length) bad('truncated PPS count');
  const pps = list(b[off++]!, 'PPS');
  if (sps.length === 0 || pps.length === 0) bad('no SPS or no PPS');
  const hex = (n: number): string => n.toString(16).padStart(2, '0');
  return { lengthSize, sps, pps, codec: `avc1.${hex(b[1]!)}${hex(b[2]!)}${hex(b[3]!)}` };
}
