// One session over one byte stream: the magic and HELLO/HELLO_OK (a fresh random session id), requests and their
// answers, and streams with credit windows both ways. The guest is untrusted: every frame is checked against the
// codec's bounds, a window it exceeds, a stream it invents, a flood of frames (a token bucket) or garbage drop the
// session with AGENT_FAILED; the host never buffers more than a stream's window for it.
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { HangarError } from '../errors.js';
import { encodeFrame, FRAME, FrameDecoder, frameJson, HelloScanner, LIMITS, MAGIC, protocolError, type Frame, type FrameType } from './codec.js';

export interface HelloInfo {
  session: string;
  pid: number;
  hostname: string;
  bootId: string;
  caps: string[];
}

export interface SessionLimits {
  /** Frames per second the guest may send on average, and the burst (a token bucket). */
  framesPerSecond: number;
  frameBurst: number;
  /** How long an answer may take. */
  requestTimeoutMs: number;
}
export const DEFAULT_SESSION_LIMITS: SessionLimits = { framesPerSecond: 20_000, frameBurst: 40_000, requestTimeoutMs: 30_000 };

/** What a stream's owner hears. */
export interface StreamEvents {
  data?(b: Buffer, stderr: boolean): void;
  eof?(): void;
  event?(e: Record<string, unknown>): void;
  /** The guest's ERR after OK, or the session's end. */
  error?(e: HangarError): void;
  /** More send credit arrived. */
  credit?(): void;
}

/** The guest's ERR → a HangarError of the registry. */
export function guestError(p: Record<string, unknown>, what: string): HangarError {
  const guestCode = typeof p.code === 'string' ? p.code.slice(0, 64) : 'EIO';
  const message = `${what}: ${typeof p.message === 'string' ? p.message.slice(0, 500) : guestCode}`;
  const details = { guestCode };
  switch (guestCode) {
    case 'ENOENT': case 'ENOTDIR': return new HangarError('GUEST_PATH_NOT_FOUND', message, details);
    case 'EEXIST': case 'ENOTEMPTY': return new HangarError('GUEST_PATH_EXISTS', message, details);
    case 'EACCES': case 'EPERM': case 'EROFS': return new HangarError('GUEST_PERMISSION_DENIED', message, details);
    case 'NO_SUCH_PROC': return new HangarError('PROC_NOT_FOUND', message, details);
    case 'BAD_REQUEST': return new HangarError('INVALID_ARGUMENT', message, details);
    default: return new HangarError('GUEST_OP_FAILED', message, { ...details, errno: guestCode });
  }
}

/** A stream of this session, host side. */
export class HostStream {
  /** Bytes of DATA/STDERR the guest may still send (our window for it). */
  private granted = LIMITS.window;
  private received = 0;
  private consumed = 0;
  /** Bytes we may still send. */
  credit = LIMITS.window;
  closed = false;
  handlers: StreamEvents = {};
  /** Frames that came before the owner listened (the answer's continuation runs a microtask later). */
  private early: (() => void)[] | null = [];

  constructor(readonly session: Session, readonly id: number) {}

  /** Sets the owner's handlers and delivers what came before them. */
  listen(h: StreamEvents): void {
    this.handlers = { ...this.handlers, ...h };
    const q = this.early;
    this.early = null;
    for (const f of q ?? []) f();
  }

  /** @internal delivers now, or queues until listen() (bounded: DATA by the window, the rest by the frame rate). */
  deliver(f: () => void): void {
    if (this.early) this.early.push(f);
    else f();
  }

  /** The consumer took N bytes: grant more once a quarter window is free. */
  consume(n: number): void {
    this.consumed += n;
    const delta = this.consumed + LIMITS.window - this.granted;
    if (delta >= LIMITS.window / 4 && !this.closed) {
      this.granted += delta;
      this.session.send(FRAME.WINDOW, this.id, { bytes: delta });
    }
  }

  /** Bytes received and not yet consumed (never more than the window). */
  get buffered(): number { return this.received - this.consumed; }

  /** @internal */
  onData(n: number): void {
    this.received += n;
    if (this.received > this.granted) throw protocolError('window-exceeded', `stream ${this.id}: ${this.received - this.granted} bytes past the window`, { stream: this.id });
  }

  /** Sends DATA within the credit; resolves when all of it went out (waits for WINDOW and for the socket). */
  async write(b: Buffer): Promise<void> {
    let off = 0;
    while (off < b.length) {
      if (this.closed) throw this.session.failure ?? new HangarError('AGENT_UNAVAILABLE', 'the stream ended', {});
      if (this.credit <= 0) { await this.waitCredit(); continue; }
      const n = Math.min(b.length - off, this.credit, 64 * 1024);
      this.credit -= n;
      const ok = this.session.send(FRAME.DATA, this.id, b.subarray(off, off + n));
      off += n;
      if (!ok) await this.session.drained();
    }
  }

  private waitCredit(): Promise<void> {
    return new Promise((resolve) => {
      const prev = this.handlers.credit;
      const prevError = this.handlers.error;
      const done = (): void => { this.handlers.credit = prev; this.handlers.error = prevError; resolve(); };
      this.handlers.credit = () => { prev?.(); done(); };
      this.handlers.error = (e) => { prevError?.(e); done(); };
    });
  }

  eof(): void { if (!this.closed) this.session.send(FRAME.EOF, this.id); }

  /** Stops the stream (CANCEL); late frames of it are dropped, still within its window. */
  cancel(): void {
    if (this.closed) return;
    this.session.send(FRAME.CANCEL, this.id, {});
    this.session.finish(this, true);
  }
}

interface Pending {
  resolve: (r: { result: Record<string, unknown>; stream: HostStream }) => void;
  reject: (e: HangarError) => void;
  timer: NodeJS.Timeout;
  what: string;
}

export class Session {
  readonly id = randomBytes(16).toString('hex');
  hello: HelloInfo | null = null;
  failure: HangarError | null = null;
  private readonly decoder = new FrameDecoder();
  private scanner: HelloScanner | null = new HelloScanner(this.id);
  private nextId = 1;
  private readonly streams = new Map<number, HostStream>();
  /** Cancelled streams: their late frames are dropped (still counted against their windows). */
  private readonly cancelled = new Map<number, HostStream>();
  private readonly pending = new Map<number, Pending>();
  private tokens: number;
  private lastRefill = Date.now();
  private readonly closeHandlers: ((e: HangarError) => void)[] = [];
  private helloWait: { resolve: (h: HelloInfo) => void; reject: (e: HangarError) => void } | null = null;

  constructor(private readonly sock: Duplex, private readonly limits: SessionLimits = DEFAULT_SESSION_LIMITS) {
    this.tokens = limits.frameBurst;
    sock.on('data', (d: Buffer) => this.input(d));
    sock.on('error', (e) => this.close(new HangarError('AGENT_UNAVAILABLE', `agent channel: ${e.message}`, {})));
    sock.on('close', () => this.close(new HangarError('AGENT_UNAVAILABLE', 'the agent channel closed', {})));
  }

  get openStreams(): number { return this.streams.size; }
  get alive(): boolean { return !this.failure; }

  onClose(f: (e: HangarError) => void): void {
    if (this.failure) f(this.failure);
    else this.closeHandlers.push(f);
  }

  /** Writes the magic and HELLO; resolves on the guest's HELLO_OK for this session. */
  start(timeoutMs = 10_000): Promise<HelloInfo> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { const e = new HangarError('AGENT_TIMEOUT', `the guest agent did not answer HELLO within ${timeoutMs} ms`, {}); reject(e); this.close(e); }, timeoutMs);
      this.helloWait = {
        resolve: (h) => { clearTimeout(timer); resolve(h); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      };
      this.sock.write(Buffer.concat([MAGIC, encodeFrame(FRAME.HELLO, 0, { v: 1, session: this.id })]));
    });
  }

  send(type: FrameType, stream: number, payload?: Buffer | object): boolean {
    if (this.failure) return false;
    return this.sock.write(encodeFrame(type, stream, payload));
  }

  drained(): Promise<void> {
    if (this.failure || !this.sock.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => { this.sock.off('drain', done); this.sock.off('close', done); resolve(); };
      this.sock.once('drain', done);
      this.sock.once('close', done);
    });
  }

  /** Sends a request; resolves with the guest's OK (and the stream, which stays open when KEEP). */
  request(args: Record<string, unknown>, opts: { keep?: boolean; timeoutMs?: number } = {}): Promise<{ result: Record<string, unknown>; stream: HostStream }> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.streams.size >= LIMITS.maxStreams) return Promise.reject(new HangarError('AGENT_UNAVAILABLE', `the session has ${LIMITS.maxStreams} open streams`, {}));
    const id = this.nextId++;
    const stream = new HostStream(this, id);
    this.streams.set(id, stream);
    const what = `guest ${String(args.op)}`;
    return new Promise((resolve, reject) => {
      const ms = opts.timeoutMs ?? this.limits.requestTimeoutMs;
      const timer = setTimeout(() => {
        this.pending.delete(id);
        stream.cancel();
        reject(new HangarError('AGENT_TIMEOUT', `${what}: no answer within ${ms} ms`, { op: args.op }));
      }, ms);
      this.pending.set(id, {
        what, timer, reject,
        resolve: (r) => { if (!opts.keep) this.finish(stream, false); resolve(r); },
      });
      this.send(FRAME.REQ, id, args);
    });
  }

  /** Round trip of PING/PONG in ms. */
  async ping(): Promise<number> {
    const t0 = performance.now();
    if (this.failure) throw this.failure;
    const id = this.nextId++;
    const stream = new HostStream(this, id);
    this.streams.set(id, stream);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { this.pending.delete(id); this.finish(stream, false); reject(new HangarError('AGENT_TIMEOUT', 'no PONG', {})); }, this.limits.requestTimeoutMs);
      this.pending.set(id, { what: 'ping', timer, reject, resolve: () => { this.finish(stream, false); resolve(); } });
      this.send(FRAME.PING, id, {});
    });
    return performance.now() - t0;
  }

  /** @internal the stream ends (cancelled: its late frames are still expected). */
  finish(s: HostStream, cancelled: boolean): void {
    if (s.closed) return;
    s.closed = true;
    this.streams.delete(s.id);
    if (cancelled) {
      this.cancelled.set(s.id, s);
      if (this.cancelled.size > 4 * LIMITS.maxStreams) this.cancelled.delete(this.cancelled.keys().next().value as number);
    }
  }

  close(e: HangarError): void {
    if (this.failure) return;
    this.failure = e;
    this.helloWait?.reject(e);
    this.helloWait = null;
    for (const [, p] of this.pending) { clearTimeout(p.timer); p.reject(e); }
    this.pending.clear();
    for (const s of [...this.streams.values()]) { s.closed = true; s.deliver(() => s.handlers.error?.(e)); }
    this.streams.clear();
    this.cancelled.clear();
    this.sock.destroy();
    for (const f of this.closeHandlers.splice(0)) f(e);
  }

  private input(d: Buffer): void {
    if (this.failure) return;
    try {
      let chunk: Buffer | null = d;
      if (this.scanner) {
        chunk = this.scanner.push(d);
        if (!chunk) return;
        this.scanner = null;
      }
      for (const f of this.decoder.push(chunk)) {
        this.rate();
        this.frame(f);
        if (this.failure) return;
      }
    } catch (e) {
      this.close(e instanceof HangarError ? e : protocolError('bad-answer', e instanceof Error ? e.message : String(e)));
    }
  }

  private rate(): void {
    const now = Date.now();
    this.tokens = Math.min(this.limits.frameBurst, this.tokens + ((now - this.lastRefill) * this.limits.framesPerSecond) / 1000);
    this.lastRefill = now;
    if (--this.tokens < 0) throw protocolError('flood', `more than ${this.limits.framesPerSecond} frames per second`);
  }

  private frame(f: Frame): void {
    if (!this.hello) {
      if (f.type !== FRAME.HELLO_OK) return; // stale frames before our HELLO_OK
      const h = frameJson(f);
      if (h.session !== this.id) return;
      if (h.v !== 1) throw protocolError('bad-answer', `protocol version ${String(h.v)}`);
      this.hello = {
        session: this.id, pid: typeof h.pid === 'number' ? h.pid : 0, hostname: typeof h.hostname === 'string' ? h.hostname.slice(0, 255) : '',
        bootId: typeof h.bootId === 'string' ? h.bootId.slice(0, 64) : '', caps: Array.isArray(h.caps) ? h.caps.filter((c): c is string => typeof c === 'string').slice(0, 32) : [],
      };
      this.helloWait?.resolve(this.hello);
      this.helloWait = null;
      return;
    }
    if (f.stream === 0) throw protocolError('unknown-stream', `frame type 0x${f.type.toString(16)} on stream 0`);
    const s = this.streams.get(f.stream);
    if (!s) {
      const late = this.cancelled.get(f.stream);
      if (late) { if (f.type === FRAME.DATA || f.type === FRAME.STDERR) late.onData(f.payload.length); return; }
      if (f.stream >= this.nextId) throw protocolError('unknown-stream', `stream ${f.stream} was never opened`, { stream: f.stream });
      if (f.type === FRAME.DATA || f.type === FRAME.STDERR) throw protocolError('window-exceeded', `DATA on closed stream ${f.stream}`, { stream: f.stream });
      return; // a control frame of a finished stream
    }
    const p = this.pending.get(f.stream);
    switch (f.type) {
      case FRAME.OK:
      case FRAME.PONG:
        if (!p) throw protocolError('bad-answer', `a second answer on stream ${f.stream}`);
        this.pending.delete(f.stream);
        clearTimeout(p.timer);
        p.resolve({ result: frameJson(f), stream: s });
        return;
      case FRAME.ERR: {
        const e = guestError(frameJson(f), p?.what ?? 'guest');
        this.finish(s, false);
        if (p) { this.pending.delete(f.stream); clearTimeout(p.timer); p.reject(e); } else s.deliver(() => s.handlers.error?.(e));
        return;
      }
      case FRAME.DATA:
      case FRAME.STDERR:
        if (p) throw protocolError('bad-answer', `DATA before the answer on stream ${f.stream}`);
        s.onData(f.payload.length);
        s.deliver(() => s.handlers.data?.(f.payload, f.type === FRAME.STDERR));
        return;
      case FRAME.EOF: s.deliver(() => s.handlers.eof?.()); return;
      case FRAME.EVENT: { const ev = frameJson(f); s.deliver(() => s.handlers.event?.(ev)); return; }
      case FRAME.WINDOW: {
        const bytes = frameJson(f).bytes;
        if (typeof bytes !== 'number' || !Number.isSafeInteger(bytes) || bytes < 0 || bytes > 64 * 1024 * 1024) throw protocolError('bad-answer', 'a WINDOW without a sane byte count');
        s.credit += bytes;
        s.handlers.credit?.();
        return;
      }
      default:
        throw protocolError('unknown-type', `frame type 0x${f.type.toString(16)} from the guest`);
    }
  }
}
