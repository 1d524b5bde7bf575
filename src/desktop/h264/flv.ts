// An incremental FLV demuxer for the encoder's output, pure: ffmpeg writes H.264 in FLV to its stdout because FLV
// frames every packet with its length (a raw Annex-B stream only shows where a frame ends when the next one starts,
// a frame of latency). Each video tag becomes one access unit in Annex-B; key frames carry the SPS/PPS in front, so
// a decoder can start (or restart) at any of them. Tag sizes are bounded: a broken encoder cannot make us buffer
// more than MAX_TAG_BYTES.
import { HangarError } from '../../errors.js';
import { ByteQueue } from '../../control/rfb/codec.js';
import { avccUnits, parseDecoderConfig, toAnnexB, type DecoderConfig } from './annexb.js';

export const MAX_TAG_BYTES = 8 << 20;

export interface EncodedFrame {
  key: boolean;
  /** Annex-B, SPS and PPS first on key frames. */
  data: Buffer;
}

type Phase = 'header' | 'tag' | 'failed';

const bad = (message: string, details: Record<string, unknown> = {}): never => {
  throw new HangarError('INTERNAL', `encoder output: ${message}`, details);
};

export class FlvDemuxer {
  config: DecoderConfig | null = null;
  private readonly q = new ByteQueue();
  private phase: Phase = 'header';

  constructor(private readonly onFrame: (f: EncodedFrame) => void) {}

  /** Feeds bytes; calls onFrame once per complete video frame. Throws (and stays failed) on a malformed stream. */
  push(chunk: Buffer): void {
    if (this.phase === 'failed') return;
    this.q.push(chunk);
    try {
      while (this.step()) { /* all complete tags */ }
    } catch (e) {
      this.phase = 'failed';
      throw e;
    }
  }

  private step(): boolean {
    const q = this.q;
    if (this.phase === 'header') {
      if (q.length < 13) return false; // 9-byte header + PreviousTagSize0
      const h = q.take(13);
      if (h.toString('latin1', 0, 3) !== 'FLV') bad('not FLV');
      const size = h.readUInt32BE(5);
      if (size !== 9) bad(`FLV header size ${size}`, { size });
      this.phase = 'tag';
      return true;
    }
    if (this.phase !== 'tag' || q.length < 11) return false;
    const h = q.peek(11);
    const type = h[0]! & 0x1f;
    const size = h.readUIntBE(1, 3);
    if (size > MAX_TAG_BYTES) bad(`a tag of ${size} bytes (at most ${MAX_TAG_BYTES})`, { size });
    if (q.length < 11 + size + 4) return false;
    q.skip(11);
    const body = q.take(size);
    q.skip(4); // PreviousTagSize
    if (type === 9) this.video(body);
    return true; // audio (8) and script data (18) tags are skipped
  }

  private video(b: Buffer): void {
    if (b.length < 5) bad('short video tag', { length: b.length });
    const codec = b[0]! & 0x0f;
    if (codec !== 7) bad(`video codec ${codec} is not AVC`, { codec });
    const key = b[0]! >> 4 === 1;
    const packet = b[1]!;
    const payload = b.subarray(5);
    if (packet === 0) { this.config = parseDecoderConfig(payload); return; }
    if (packet !== 1) return; // 2: end of sequence
    const cfg = this.config ?? bad('a frame before the decoder configuration');
    const units = avccUnits(payload, cfg.lengthSize);
    if (units.length === 0) return;
    this.onFrame({ key, data: toAnnexB(key ? [...cfg.sps, ...cfg.pps, ...units] : units) });
  }
}
