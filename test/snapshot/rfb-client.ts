// A minimal RFB 3.8 client for tests: the handshake with security type None, then pointer and key events, over
// any byte stream (a connection from VmManager.dialVm). It never asks for framebuffer updates; whatever the server
// sends is read and dropped.
import type { Duplex } from 'node:stream';

export interface RfbSession {
  width: number;
  height: number;
  name: string;
  pointer(x: number, y: number, buttons?: number): void;
  /** Types text: printable ASCII as its keysym (the server adds Shift where needed), '\n' as Return. */
  type(text: string, delayMs?: number): Promise<void>;
  close(): void;
}

const RETURN = 0xff0d;

class Reader {
  private buf = Buffer.alloc(0);
  private wait: (() => void) | null = null;
  private error: Error | null = null;

  constructor(s: Duplex) {
    s.on('data', (d: Buffer) => { this.buf = Buffer.concat([this.buf, d]); this.wait?.(); });
    s.on('error', (e: Error) => { this.error = e; this.wait?.(); });
    s.on('close', () => { this.error ??= new Error('RFB connection closed'); this.wait?.(); });
  }

  async take(n: number, timeoutMs = 10_000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.buf.length < n) {
      if (this.error) throw this.error;
      if (Date.now() > deadline) throw new Error(`RFB: wanted ${n} bytes, have ${this.buf.length} after ${timeoutMs} ms`);
      await new Promise<void>((r) => { this.wait = r; setTimeout(r, 200); });
      this.wait = null;
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  drain(): void {
    this.buf = Buffer.alloc(0);
  }
}

export async function rfbConnect(s: Duplex): Promise<RfbSession> {
  const r = new Reader(s);
  const version = (await r.take(12)).toString('latin1');
  if (!/^RFB 003\.00[378]\n$/.test(version)) throw new Error(`not an RFB server: ${JSON.stringify(version)}`);
  s.write('RFB 003.008\n');
  const n = (await r.take(1))[0]!;
  if (n === 0) {
    const len = (await r.take(4)).readUInt32BE(0);
    throw new Error(`RFB server refused: ${(await r.take(len)).toString('utf8')}`);
  }
  const types = [...(await r.take(n))];
  if (!types.includes(1)) throw new Error(`RFB server offers no security type None (offers ${types.join(', ')})`);
  s.write(Buffer.from([1]));
  const result = (await r.take(4)).readUInt32BE(0);
  if (result !== 0) throw new Error(`RFB security handshake failed (${result})`);
  s.write(Buffer.from([1])); // ClientInit: shared
  const init = await r.take(24);
  const name = (await r.take(init.readUInt32BE(20))).toString('utf8');
  s.on('data', () => r.drain());
  const key = (keysym: number, down: boolean): void => {
    const m = Buffer.alloc(8);
    m.writeUInt8(4, 0);
    m.writeUInt8(down ? 1 : 0, 1);
    m.writeUInt32BE(keysym, 4);
    s.write(m);
  };
  return {
    width: init.readUInt16BE(0),
    height: init.readUInt16BE(2),
    name,
    pointer: (x, y, buttons = 0) => {
      const m = Buffer.alloc(6);
      m.writeUInt8(5, 0);
      m.writeUInt8(buttons, 1);
      m.writeUInt16BE(x, 2);
      m.writeUInt16BE(y, 4);
      s.write(m);
    },
    type: async (text, delayMs = 15) => {
      for (const ch of text) {
        const code = ch === '\n' ? RETURN : ch.charCodeAt(0);
        if (ch !== '\n' && (code < 0x20 || code > 0x7e)) throw new Error(`cannot type ${JSON.stringify(ch)}`);
        key(code, true);
        key(code, false);
        await new Promise((res) => setTimeout(res, delayMs));
      }
    },
    close: () => s.destroy(),
  };
}
