// The server side of RFB 3.8 toward the viewer (noVNC) for the H.264 transcoder, pure: the handshake (security type
// None: the viewer reached us through the controller's token check), ServerInit, the client messages (SetPixelFormat
// and SetEncodings are noted, FramebufferUpdateRequest counted, KeyEvent / PointerEvent / ClientCutText handed on as
// the guest must see them) and the FramebufferUpdate encoders (H.264 rectangles, encoding 50, as noVNC's
// core/decoders/h264.js reads them: u32 length, u32 flags, Annex-B). Anything else from the viewer is refused.
import { HangarError } from '../../errors.js';
import { ByteQueue, PIXEL_FORMAT } from '../../control/rfb/codec.js';

export const ENCODING_H264 = 50;
/** noVNC's H.264 rectangle flags. */
export const H264_FLAGS = { resetContext: 1, resetAllContexts: 2 } as const;
/** Bounds on what the viewer may send. */
export const VIEWER_LIMITS = { maxEncodings: 256, maxCutText: 1 << 20 } as const;

export interface ViewerEvents {
  send(b: Buffer): void;
  /** The viewer finished the handshake and said which encodings it decodes. */
  encodings?(list: number[]): void;
  /** KeyEvent or PointerEvent, exactly the bytes the guest's server must receive. */
  input?(msg: Buffer): void;
  cutText?(msg: Buffer): void;
  updateRequest?(incremental: boolean): void;
}

type Phase = 'version' | 'security' | 'client-init' | 'message' | 'failed';

const bad = (message: string, details: Record<string, unknown> = {}): never => {
  throw new HangarError('INVALID_ARGUMENT', `viewer RFB: ${message}`, details);
};

export function serverInit(width: number, height: number, name: string): Buffer {
  const n = Buffer.from(name, 'utf8');
  const b = Buffer.alloc(24 + n.length);
  b.writeUInt16BE(width, 0);
  b.writeUInt16BE(height, 2);
  PIXEL_FORMAT.copy(b, 4);
  b.writeUInt32BE(n.length, 20);
  n.copy(b, 24);
  return b;
}

/** One FramebufferUpdate with one H.264 rectangle covering the screen. */
export function h264Update(width: number, height: number, data: Buffer, flags = 0): Buffer {
  const h = Buffer.alloc(4 + 12 + 8);
  h[0] = 0;
  h.writeUInt16BE(1, 2);
  h.writeUInt16BE(0, 4);
  h.writeUInt16BE(0, 6);
  h.writeUInt16BE(width, 8);
  h.writeUInt16BE(height, 10);
  h.writeInt32BE(ENCODING_H264, 12);
  h.writeUInt32BE(data.length, 16);
  h.writeUInt32BE(flags, 20);
  return Buffer.concat([h, data]);
}

export class RfbServerProtocol {
  encodings: number[] | null = null;
  private readonly q = new ByteQueue();
  private phase: Phase = 'version';

  constructor(private readonly ev: ViewerEvents, private readonly init: { width: number; height: number; name: string }) {
    ev.send(Buffer.from('RFB 003.008\n', 'latin1'));
  }

  get ready(): boolean { return this.phase === 'message'; }

  push(chunk: Buffer): void {
    if (this.phase === 'failed') return;
    this.q.push(chunk);
    try {
      while (this.step()) { /* every complete message */ }
    } catch (e) {
      this.phase = 'failed';
      throw e;
    }
  }

  private step(): boolean {
    const q = this.q;
    switch (this.phase) {
      case 'version': {
        if (q.length < 12) return false;
        const v = q.take(12).toString('latin1');
        if (!/^RFB 003\.00[78]\n$/.test(v)) bad('only RFB 3.7 and 3.8 viewers are served', { version: JSON.stringify(v) });
        this.ev.send(Buffer.from([1, 1])); // one security type: None
        this.phase = 'security';
        return true;
      }
      case 'security': {
        if (q.length < 1) return false;
        const t = q.take(1)[0]!;
        if (t !== 1) bad(`security type ${t} was not offered`, { type: t });
        this.ev.send(Buffer.alloc(4)); // SecurityResult OK
        this.phase = 'client-init';
        return true;
      }
      case 'client-init':
        if (q.length < 1) return false;
        q.skip(1); // shared flag: the transcoder's guest connection is always shared
        this.ev.send(serverInit(this.init.width, this.init.height, this.init.name));
        this.phase = 'message';
        return true;
      case 'message': return this.message();
      case 'failed': return false;
    }
  }

  private message(): boolean {
    const q = this.q;
    if (q.length < 1) return false;
    const type = q.peek(1)[0]!;
    switch (type) {
      case 0: // SetPixelFormat: the rectangles are H.264, whatever the viewer's format
        if (q.length < 20) return false;
        q.skip(20);
        return true;
      case 2: { // SetEncodings
        if (q.length < 4) return false;
        const n = q.peek(4).readUInt16BE(2);
        if (n > VIEWER_LIMITS.maxEncodings) bad(`${n} encodings (at most ${VIEWER_LIMITS.maxEncodings})`, { count: n });
        if (q.length < 4 + 4 * n) return false;
        const b = q.take(4 + 4 * n);
        const list: number[] = [];
        for (let i = 0; i < n; i++) list.push(b.readInt32BE(4 + 4 * i));
        this.encodings = list;
        this.ev.encodings?.(list);
        return true;
      }
      case 3: { // FramebufferUpdateRequest
        if (q.length < 10) return false;
        const incremental = q.take(10)[1] !== 0; // taken first: ?.() would skip evaluating its argument
        this.ev.updateRequest?.(incremental);
        return true;
      }
      case 4: // KeyEvent
        if (q.length < 8) return false;
        this.ev.input?.(q.take(8));
        return true;
      case 5: // PointerEvent
        if (q.length < 6) return false;
        this.ev.input?.(q.take(6));
        return true;
      case 6: { // ClientCutText (Latin-1; the extended form, a negative length, is not offered)
        if (q.length < 8) return false;
        const len = q.peek(8).readInt32BE(4);
        if (len < 0 || len > VIEWER_LIMITS.maxCutText) bad(`clipboard of ${len} bytes`, { length: len });
        if (q.length < 8 + len) return false;
        this.ev.cutText?.(q.take(8 + len));
        return true;
      }
      default:
        return bad(`message type ${type} is not served`, { type });
    }
  }
}
