// The viewer → VM half of RFB, parsed so the bridge can drop input: a pure, incremental filter over the client's
// byte stream (handshake, then client messages). Handshake and screen messages (SetPixelFormat, SetEncodings,
// FramebufferUpdateRequest, EnableContinuousUpdates, fences) always pass; input (KeyEvent, PointerEvent,
// ClientCutText, QEMU extended key events, xvp power actions, GII, SetDesktopSize) passes only while `allowInput()` says
// so — a view-only viewer, or one not in control. A message the filter cannot size ends the stream: the bridge
// closes that viewer rather than guess where the next message starts.

export type FilterVerdict = { ok: true; out: Buffer; dropped: number } | { ok: false; reason: string };

type Phase = 'version' | 'security' | 'vnc-auth' | 'init' | 'messages';

/** Message types whose effect is input (dropped unless input is allowed). */
const INPUT_TYPES = new Set([4, 5, 6, 250, 252, 253, 255]);

export class ClientStreamFilter {
  private buf: Buffer = Buffer.alloc(0);
  private phase: Phase = 'version';
  private dead: string | null = null;

  constructor(private readonly allowInput: () => boolean) {}

  /** Messages dropped so far (input from a viewer that may not send any). */
  dropped = 0;

  /** Feeds bytes from the viewer; returns the bytes to forward to the VM. */
  push(chunk: Buffer): FilterVerdict {
    if (this.dead) return { ok: false, reason: this.dead };
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: Buffer[] = [];
    let dropped = 0;
    for (;;) {
      if (this.bodyLeft > 0) { // the rest of a long cut text: streamed through (or dropped), never buffered whole
        if (this.buf.length === 0) break;
        const k = Math.min(this.bodyLeft, this.buf.length);
        if (this.bodyPass) out.push(this.buf.subarray(0, k));
        this.buf = this.buf.subarray(k);
        this.bodyLeft -= k;
        continue;
      }
      const n = this.next();
      if (n === null) break;
      if (n < 0) { this.dead = this.reasonFor(); return { ok: false, reason: this.dead }; }
      const msg = this.buf.subarray(0, n);
      this.buf = this.buf.subarray(n);
      if (this.phase === 'messages' && msg[0] === 6 && n === 8) { // ClientCutText header; its text follows
        this.bodyLeft = Math.abs(msg.readInt32BE(4));
        this.bodyPass = this.allowInput();
        if (!this.bodyPass) { dropped++; continue; }
        out.push(msg);
        continue;
      }
      if (this.phase === 'messages' && this.isInput(msg) && !this.allowInput()) { dropped++; continue; }
      this.advance(msg);
      out.push(msg);
    }
    this.dropped += dropped;
    return { ok: true, out: out.length === 1 ? out[0]! : Buffer.concat(out), dropped };
  }

  private unknownType = -1;
  private bodyLeft = 0;
  private bodyPass = false;

  private reasonFor(): string {
    if (this.phase === 'version') return 'not an RFB 3.7/3.8 client';
    if (this.phase === 'security') return 'a security type the bridge cannot follow';
    return `unknown client message type ${this.unknownType}`;
  }

  private isInput(msg: Buffer): boolean {
    return INPUT_TYPES.has(msg[0]!); // SetDesktopSize (252) too: resizing is not for a viewer without control
  }

  /** Moves the handshake on after a complete unit passed. */
  private advance(msg: Buffer): void {
    switch (this.phase) {
      case 'version': this.phase = 'security'; break;
      case 'security': this.phase = msg[0] === 2 ? 'vnc-auth' : 'init'; break;
      case 'vnc-auth': this.phase = 'init'; break;
      case 'init': this.phase = 'messages'; break;
      default: break;
    }
  }

  /** Length of the next complete unit, null when more bytes are needed, -1 when it cannot be sized. */
  private next(): number | null {
    const b = this.buf;
    if (b.length === 0) return null;
    switch (this.phase) {
      case 'version': {
        if (b.length < 12) return null;
        // RFB 3.3 has the server choose the security type (no client byte): not followed here, noVNC speaks 3.8.
        return /^RFB 003\.00[78]\n$/.test(b.subarray(0, 12).toString('latin1')) ? 12 : -1;
      }
      case 'security': return b[0] === 1 || b[0] === 2 ? 1 : -1;
      case 'vnc-auth': return b.length < 16 ? null : 16;
      case 'init': return 1;
      case 'messages': return this.messageLength(b);
    }
  }

  private messageLength(b: Buffer): number | null {
    const t = b[0]!;
    const need = (n: number): number | null => (b.length < n ? null : n);
    switch (t) {
      case 0: return need(20); // SetPixelFormat
      case 2: return b.length < 4 ? null : need(4 + 4 * b.readUInt16BE(2)); // SetEncodings
      case 3: return need(10); // FramebufferUpdateRequest
      case 4: return need(8); // KeyEvent
      case 5: return need(6); // PointerEvent
      case 6: return need(8); // ClientCutText header (push() streams its text; a negative length is the extended clipboard)
      case 150: return need(10); // EnableContinuousUpdates
      case 248: return b.length < 9 ? null : need(9 + b[8]!); // ClientFence
      case 250: return b.length < 4 ? null : need(4); // xvp (power actions)
      case 253: return this.gii(b); // GII
      case 252: return b.length < 8 ? null : need(8 + 16 * b[6]!); // SetDesktopSize
      case 255: { // QEMU client messages
        if (b.length < 2) return null;
        if (b[1] === 0) return need(12); // extended key event
        if (b[1] === 1) { // audio: enable/disable (4) or set format (10)
          if (b.length < 4) return null;
          return need(b.readUInt16BE(2) === 2 ? 10 : 4);
        }
        this.unknownType = t;
        return -1;
      }
      default:
        this.unknownType = t;
        return -1;
    }
  }

  /** General Input Interface: type, endian-and-subtype, u16 length, payload. */
  private gii(b: Buffer): number | null {
    if (b.length < 4) return null;
    const big = (b[1]! & 0x80) !== 0;
    const len = big ? b.readUInt16BE(2) : b.readUInt16LE(2);
    return b.length < 4 + len ? null : 4 + len;
  }
}
