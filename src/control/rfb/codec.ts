// RFB (RFC 6143) message codecs for the controller's own client, pure: a byte queue, the client messages it sends
// (encoders) and an incremental client-side protocol machine that consumes the server's bytes (handshake, ServerInit,
// FramebufferUpdate with Raw, CopyRect and the DesktopSize / PointerPos pseudo-encodings, ServerCutText, Bell,
// colour maps) and applies them to a Framebuffer. No sockets here: connection.ts feeds it.
import { HangarError } from '../../errors.js';
import { Framebuffer } from './framebuffer.js';

export const ENCODING = {
  RAW: 0,
  COPY_RECT: 1,
  /** Pseudo-encodings. */
  DESKTOP_SIZE: -223,
  POINTER_POS: -232,
} as const;

/** The client's pixel format: 32 bpp little-endian true colour with red in the lowest byte, so pixels arrive as R,G,B,X. */
export const PIXEL_FORMAT = Buffer.from([32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 0, 8, 16, 0, 0, 0]);

/** Pointer button bits of PointerEvent. */
export const BUTTON = { left: 1, middle: 2, right: 4, wheelUp: 8, wheelDown: 16, wheelLeft: 32, wheelRight: 64 } as const;

/** A FIFO of received chunks that hands out exact byte counts (copies only when a read spans chunks). */
export class ByteQueue {
  private chunks: Buffer[] = [];
  private head = 0; // offset into chunks[0]
  length = 0;

  push(b: Buffer): void {
    if (b.length === 0) return;
    this.chunks.push(b);
    this.length += b.length;
  }

  /** The next n bytes without consuming them (n ≤ length). */
  peek(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[0]!;
    if (first.length - this.head >= n) return first.subarray(this.head, this.head + n);
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    let i = 0;
    let start = this.head;
    while (off < n) {
      const c = this.chunks[i++]!;
      const k = Math.min(c.length - start, n - off);
      c.copy(out, off, start, start + k);
      off += k;
      start = 0;
    }
    return out;
  }

  take(n: number): Buffer {
    const out = this.peek(n);
    this.skip(n);
    return out;
  }

  skip(n: number): void {
    this.length -= n;
    while (n > 0) {
      const c = this.chunks[0]!;
      const left = c.length - this.head;
      if (left > n) { this.head += n; return; }
      n -= left;
      this.chunks.shift();
      this.head = 0;
    }
  }
}

// ---- client → server messages

export function setPixelFormat(): Buffer {
  return Buffer.concat([Buffer.from([0, 0, 0, 0]), PIXEL_FORMAT]);
}

export function setEncodings(encodings: readonly number[]): Buffer {
  const b = Buffer.alloc(4 + 4 * encodings.length);
  b[0] = 2;
  b.writeUInt16BE(encodings.length, 2);
  encodings.forEach((e, i) => b.writeInt32BE(e, 4 + 4 * i));
  return b;
}

export function updateRequest(incremental: boolean, x: number, y: number, w: number, h: number): Buffer {
  const b = Buffer.alloc(10);
  b[0] = 3;
  b[1] = incremental ? 1 : 0;
  b.writeUInt16BE(x, 2);
  b.writeUInt16BE(y, 4);
  b.writeUInt16BE(w, 6);
  b.writeUInt16BE(h, 8);
  return b;
}

export function keyEvent(down: boolean, keysym: number): Buffer {
  const b = Buffer.alloc(8);
  b[0] = 4;
  b[1] = down ? 1 : 0;
  b.writeUInt32BE(keysym >>> 0, 4);
  return b;
}

export function pointerEvent(buttons: number, x: number, y: number): Buffer {
  const b = Buffer.alloc(6);
  b[0] = 5;
  b[1] = buttons & 0xff;
  b.writeUInt16BE(Math.max(0, Math.min(0xffff, Math.round(x))), 2);
  b.writeUInt16BE(Math.max(0, Math.min(0xffff, Math.round(y))), 4);
  return b;
}

/**
 * ClientCutText. RFB carries Latin-1 only: characters outside it cannot be sent and are refused here (the caller
 * says so to the user) rather than silently replaced.
 */
export function clientCutText(text: string): Buffer {
  if (!isLatin1(text)) throw new HangarError('INVALID_ARGUMENT', 'the RFB clipboard carries Latin-1 text only; this text has characters outside it (type it instead)', { reason: 'not_latin1' });
  const t = Buffer.from(text, 'latin1');
  const b = Buffer.alloc(8);
  b[0] = 6;
  b.writeUInt32BE(t.length, 4);
  return Buffer.concat([b, t]);
}

export function isLatin1(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0xff) return false;
  return true;
}

// ---- server → client

export interface ServerInit {
  width: number;
  height: number;
  name: string;
}

/** What the protocol machine reports. */
export interface ProtocolEvents {
  /** Bytes to send to the server. */
  send(b: Buffer): void;
  ready?(init: ServerInit): void;
  /** One FramebufferUpdate has been applied completely. */
  update?(rects: number): void;
  cutText?(text: string): void;
  bell?(): void;
  resize?(width: number, height: number): void;
  pointer?(x: number, y: number): void;
}

type Phase = 'version' | 'security-types' | 'security-result' | 'reason' | 'init' | 'init-name' | 'message' | 'update' | 'rect' | 'failed';

const SUPPORTED_SECURITY_NONE = 1;
/** Largest text accepted in ServerCutText or a failure reason (a server cannot make us buffer more). */
const MAX_TEXT = 1 << 20;
const MAX_NAME = 4096;
/**
 * The largest screen the host allocates a framebuffer for (the guest is untrusted: ServerInit and DesktopSize give
 * up to 65535 × 65535, 16 GiB): each side at most 8192, at most 8192 × 4320 pixels (135 MiB).
 */
export const MAX_SIDE = 8192;
export const MAX_PIXELS = 8192 * 4320;

/**
 * The client side of RFB 3.8 (3.7 and 3.3 servers too), security type None only (Hangar's guests have no VNC
 * password: the controller is the only way in). Feed it the server's bytes with push(); it sends its own messages
 * through events.send and keeps `fb` current.
 */
export class RfbClientProtocol {
  fb: Framebuffer | null = null;
  init: ServerInit | null = null;
  private readonly q = new ByteQueue();
  private phase: Phase = 'version';
  private minor = 8;
  private rectsLeft = 0;
  private rectsInUpdate = 0;
  private pendingInit: { width: number; height: number; nameLen: number } | null = null;
  private rect: { x: number; y: number; w: number; h: number; enc: number } | null = null;

  constructor(private readonly ev: ProtocolEvents, private readonly encodings: readonly number[] = [ENCODING.COPY_RECT, ENCODING.RAW, ENCODING.DESKTOP_SIZE, ENCODING.POINTER_POS]) {}

  /** Whether a FramebufferUpdate is being received right now (the framebuffer is mid-change). */
  get midUpdate(): boolean {
    return this.phase === 'update' || this.phase === 'rect';
  }

  push(chunk: Buffer): void {
    if (this.phase === 'failed') return;
    this.q.push(chunk);
    try {
      while (this.step()) { /* consume all complete messages */ }
    } catch (e) {
      this.phase = 'failed';
      throw e;
    }
  }

  /** A screen size the host allocates for, or VM_UNREACHABLE. */
  private screenSize(width: number, height: number): { width: number; height: number } {
    if (width < 1 || height < 1 || width > MAX_SIDE || height > MAX_SIDE || width * height > MAX_PIXELS) this.fail(`a screen of ${width}x${height} (at most ${MAX_SIDE} a side, ${MAX_PIXELS} pixels)`, { width, height });
    return { width, height };
  }

  private fail(message: string, details: Record<string, unknown> = {}): never {
    throw new HangarError('VM_UNREACHABLE', `RFB: ${message}`, details);
  }

  /** Consumes one unit if it is complete; false when more bytes are needed. */
  private step(): boolean {
    const q = this.q;
    switch (this.phase) {
      case 'version': {
        if (q.length < 12) return false;
        const banner = q.take(12).toString('latin1');
        const m = /^RFB (\d{3})\.(\d{3})\n$/.exec(banner);
        if (!m) this.fail('not an RFB server', { banner: JSON.stringify(banner) });
        const minor = Number(m[1]) > 3 ? 8 : Math.min(Number(m[2]), 8);
        this.minor = minor >= 8 ? 8 : minor >= 7 ? 7 : 3;
        this.ev.send(Buffer.from(`RFB 003.00${this.minor}\n`, 'latin1'));
        this.phase = 'security-types';
        return true;
      }
      case 'security-types': {
        if (this.minor === 3) {
          if (q.length < 4) return false;
          const type = q.take(4).readUInt32BE(0);
          if (type === 0) { this.phase = 'reason'; return true; }
          if (type !== SUPPORTED_SECURITY_NONE) this.fail(`security type ${type} is not supported (only None)`, { type });
          this.ev.send(Buffer.from([1])); // ClientInit: shared
          this.phase = 'init';
          return true;
        }
        if (q.length < 1) return false;
        const n = q.peek(1)[0]!;
        if (n === 0) { q.skip(1); this.phase = 'reason'; return true; }
        if (q.length < 1 + n) return false;
        const types = [...q.take(1 + n).subarray(1)];
        if (!types.includes(SUPPORTED_SECURITY_NONE)) this.fail(`no supported security type (offered ${types.join(', ')}; only None is)`, { types });
        this.ev.send(Buffer.from([SUPPORTED_SECURITY_NONE]));
        if (this.minor === 8) this.phase = 'security-result';
        else { this.ev.send(Buffer.from([1])); this.phase = 'init'; }
        return true;
      }
      case 'security-result': {
        if (q.length < 4) return false;
        const r = q.take(4).readUInt32BE(0);
        if (r !== 0) { this.phase = 'reason'; return true; }
        this.ev.send(Buffer.from([1]));
        this.phase = 'init';
        return true;
      }
      case 'reason': {
        if (q.length < 4) return false;
        const len = q.peek(4).readUInt32BE(0);
        if (len > MAX_TEXT) this.fail('the server refused the connection');
        if (q.length < 4 + len) return false;
        const reason = q.take(4 + len).subarray(4).toString('latin1');
        this.fail(`the server refused the connection: ${reason}`, { reason });
        break;
      }
      case 'init': {
        if (q.length < 24) return false;
        const b = q.take(24);
        const nameLen = b.readUInt32BE(20);
        if (nameLen > MAX_NAME) this.fail('desktop name too long', { nameLen });
        this.pendingInit = { ...this.screenSize(b.readUInt16BE(0), b.readUInt16BE(2)), nameLen };
        this.phase = 'init-name';
        return true;
      }
      case 'init-name': {
        const p = this.pendingInit!;
        if (q.length < p.nameLen) return false;
        const name = q.take(p.nameLen).toString('utf8');
        this.init = { width: p.width, height: p.height, name };
        this.fb = new Framebuffer(p.width, p.height);
        this.ev.send(Buffer.concat([setPixelFormat(), setEncodings(this.encodings), updateRequest(false, 0, 0, p.width, p.height)]));
        this.phase = 'message';
        this.ev.ready?.(this.init);
        return true;
      }
      case 'message': return this.message();
      case 'update': {
        if (this.rectsLeft === 0) return this.endUpdate();
        if (q.length < 12) return false;
        const h = q.take(12);
        this.rect = { x: h.readUInt16BE(0), y: h.readUInt16BE(2), w: h.readUInt16BE(4), h: h.readUInt16BE(6), enc: h.readInt32BE(8) };
        this.phase = 'rect';
        return true;
      }
      case 'rect': return this.rectBody();
      case 'failed': return false;
    }
    return false;
  }

  private message(): boolean {
    const q = this.q;
    if (q.length < 1) return false;
    const type = q.peek(1)[0]!;
    switch (type) {
      case 0: { // FramebufferUpdate
        if (q.length < 4) return false;
        const h = q.take(4);
        this.rectsLeft = h.readUInt16BE(2);
        this.rectsInUpdate = this.rectsLeft;
        this.phase = 'update';
        return true;
      }
      case 1: { // SetColourMapEntries: not used with true colour, skipped
        if (q.length < 6) return false;
        const n = q.peek(6).readUInt16BE(4);
        if (q.length < 6 + 6 * n) return false;
        q.skip(6 + 6 * n);
        return true;
      }
      case 2: q.skip(1); this.ev.bell?.(); return true;
      case 3: { // ServerCutText (Latin-1)
        if (q.length < 8) return false;
        const len = q.peek(8).readInt32BE(4);
        if (len < 0 || len > MAX_TEXT) this.fail('clipboard text too large or extended (not supported)', { len });
        if (q.length < 8 + len) return false;
        this.ev.cutText?.(q.take(8 + len).subarray(8).toString('latin1'));
        return true;
      }
      default:
        this.fail(`unknown server message type ${type}`, { type });
    }
  }

  private rectBody(): boolean {
    const q = this.q;
    const r = this.rect!;
    const fb = this.fb!;
    switch (r.enc) {
      case ENCODING.RAW: {
        // Nothing outside the screen: a rectangle's bytes are buffered until complete, so its size is bounded first.
        if (r.x + r.w > fb.width || r.y + r.h > fb.height) this.fail('a rectangle outside the screen', { ...r, width: fb.width, height: fb.height });
        const n = r.w * r.h * 4;
        if (q.length < n) return false;
        fb.putRaw(r.x, r.y, r.w, r.h, q.take(n));
        break;
      }
      case ENCODING.COPY_RECT: {
        if (q.length < 4) return false;
        const s = q.take(4);
        fb.copyRect(s.readUInt16BE(0), s.readUInt16BE(2), r.x, r.y, r.w, r.h);
        break;
      }
      case ENCODING.DESKTOP_SIZE:
        this.screenSize(r.w, r.h);
        this.fb = new Framebuffer(r.w, r.h);
        if (this.init) this.init = { ...this.init, width: r.w, height: r.h };
        this.ev.resize?.(r.w, r.h);
        break;
      case ENCODING.POINTER_POS:
        this.ev.pointer?.(r.x, r.y);
        break;
      default:
        this.fail(`the server used encoding ${r.enc}, which was not asked for`, { encoding: r.enc });
    }
    this.rect = null;
    this.rectsLeft--;
    this.phase = 'update';
    return true;
  }

  private endUpdate(): boolean {
    this.phase = 'message';
    const n = this.rectsInUpdate;
    const fb = this.fb!;
    // The next one at once: the server answers an incremental request when something changes (continuous view).
    this.ev.send(updateRequest(true, 0, 0, fb.width, fb.height));
    this.ev.update?.(n);
    return true;
  }
}
