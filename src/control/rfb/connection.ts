// A thin RFB connection over any byte stream (a TCP socket to the guest's VNC server through the controller's dialer):
// feeds the protocol machine, writes what it sends, and offers what the computer-use service needs — the current
// framebuffer, "the next update has arrived", input events, the clipboard — as promises.
import type { Duplex } from 'node:stream';
import { HangarError } from '../../errors.js';
import { RfbClientProtocol, clientCutText, keyEvent, pointerEvent, type ServerInit } from './codec.js';
import type { Framebuffer } from './framebuffer.js';

export interface RfbConnection {
  readonly init: ServerInit;
  /** The screen as of the last complete update. */
  framebuffer(): Framebuffer;
  /** Last pointer position: what the server reported (PointerPos) or what we last sent. */
  pointer(): { x: number; y: number };
  /** Latest clipboard text the server sent (Latin-1), or null. */
  clipboard(): string | null;
  /** Number of complete updates so far. */
  updates(): number;
  /** Resolves after the next complete update (or after `timeoutMs` without one; resolves false then). */
  nextUpdate(timeoutMs: number): Promise<boolean>;
  /** Resolves once no update has arrived for `quietMs` (at most `maxMs`). */
  settle(quietMs: number, maxMs: number): Promise<void>;
  key(keysym: number, down: boolean): void;
  pointerEvent(buttons: number, x: number, y: number): void;
  setClipboard(text: string): void;
  /** Resolves when everything written so far has been handed to the stream. */
  flush(): Promise<void>;
  readonly closed: boolean;
  onClose(cb: (err?: Error) => void): void;
  close(): void;
  /**
   * Ends the connection the polite way: our FIN, then waits (at most timeoutMs) until the server has closed its
   * end too, so the server has seen the client go. Then closed as close() does.
   */
  shutdown(timeoutMs: number): Promise<void>;
}

/** Connects an RFB client over `stream`; resolves after ServerInit and the first full framebuffer update. */
export function rfbConnect(stream: Duplex, timeoutMs = 10_000): Promise<RfbConnection> {
  return new Promise((resolve, reject) => {
    let updates = 0;
    let lastUpdateAt = 0;
    let pointer = { x: 0, y: 0 };
    let clip: string | null = null;
    let closed = false;
    const waiters = new Set<() => void>();
    const closers: ((err?: Error) => void)[] = [];
    let settled = false;
    const proto = new RfbClientProtocol({
      send: (b) => { if (!stream.destroyed) stream.write(b); },
      update: () => {
        updates++;
        lastUpdateAt = Date.now();
        for (const w of [...waiters]) w();
        if (updates === 1 && !settled) { settled = true; clearTimeout(timer); resolve(conn); }
      },
      pointer: (x, y) => { pointer = { x, y }; },
      cutText: (t) => { clip = t; },
    });
    const end = (err?: Error): void => {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      for (const w of [...waiters]) w();
      stream.destroy();
      if (!settled) { settled = true; reject(err ?? new HangarError('VM_UNREACHABLE', 'the VM desktop closed the connection during the RFB handshake')); }
      for (const c of closers) c(err);
    };
    const timer = setTimeout(() => end(new HangarError('VM_UNREACHABLE', `the VM desktop did not send a first screen within ${timeoutMs} ms`)), timeoutMs);
    stream.on('data', (d: Buffer) => {
      try { proto.push(d); } catch (e) { end(e as Error); }
    });
    stream.on('error', (e) => end(new HangarError('VM_UNREACHABLE', `the VM desktop connection failed: ${e.message}`, {}, { cause: e })));
    stream.on('close', () => end());
    stream.on('end', () => end());

    const live = (): void => {
      if (closed) throw new HangarError('VM_UNREACHABLE', 'the connection to the VM desktop is closed');
    };
    const conn: RfbConnection = {
      get init() { return proto.init!; },
      framebuffer: () => proto.fb!,
      pointer: () => pointer,
      clipboard: () => clip,
      updates: () => updates,
      nextUpdate: (ms) => new Promise<boolean>((res) => {
        if (closed) { res(false); return; }
        const done = (ok: boolean): void => { waiters.delete(w); clearTimeout(t); res(ok); };
        const w = (): void => done(!closed);
        const t = setTimeout(() => done(false), ms);
        waiters.add(w);
      }),
      settle: async (quietMs, maxMs) => {
        const deadline = Date.now() + maxMs;
        for (;;) {
          const now = Date.now();
          if (closed || now >= deadline) return;
          const quietFor = now - lastUpdateAt;
          if (quietFor >= quietMs && !proto.midUpdate) return;
          await conn.nextUpdate(Math.max(1, Math.min(quietMs - quietFor, deadline - now)));
        }
      },
      key: (keysym, down) => { live(); stream.write(keyEvent(down, keysym)); },
      pointerEvent: (buttons, x, y) => {
        live();
        pointer = { x: Math.round(x), y: Math.round(y) };
        stream.write(pointerEvent(buttons, x, y));
      },
      setClipboard: (text) => { live(); stream.write(clientCutText(text)); },
      flush: () => new Promise<void>((res) => { if (closed || stream.writableLength === 0) res(); else stream.once('drain', () => res()); }),
      get closed() { return closed; },
      onClose: (cb) => { closers.push(cb); },
      close: () => end(),
      shutdown: (ms) => new Promise<void>((res) => {
        if (closed) { res(); return; }
        const t = setTimeout(() => { end(); res(); }, ms);
        closers.push(() => { clearTimeout(t); res(); });
        stream.end();
      }),
    };
  });
}
