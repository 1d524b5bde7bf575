// Long-lived responses (the event stream, console follow) with limits: a cap on streams open at once, globally and
// per bearer key (429 RATE_LIMITED past it), and flow control: a source stops producing while the client's buffer
// is full and goes on at 'drain'; a client whose buffer passes a bound, or that reads nothing for too long while
// output waits, is dropped (with a last comment line when the stream's format has one). A client that never reads
// costs the controller a bounded buffer, and its listeners go when it does.
import { createHash } from 'node:crypto';
import { open, stat } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { HangarError } from '../errors.js';
import type { EventRecord } from '../store/store.js';
import type { EventPort } from './routes.js';

export interface StreamLimits {
  /** Streams open at once, all clients together. */
  maxClients: number;
  /** Streams open at once per bearer key (keyed by a hash of the Authorization header). */
  maxPerKey: number;
  /** A client whose unsent output passes this many bytes is dropped. */
  maxBufferedBytes: number;
  /** A client that reads nothing for this long while output waits is dropped. */
  stallMs: number;
}

export const DEFAULT_STREAM_LIMITS: StreamLimits = { maxClients: 64, maxPerKey: 32, maxBufferedBytes: 1024 * 1024, stallMs: 60_000 };

/** The key a client's streams are counted under: a hash of its Authorization header (never the secret itself). */
export function streamKey(authorization: string | string[] | undefined): string {
  const h = Array.isArray(authorization) ? authorization.join(',') : authorization ?? '';
  return createHash('sha256').update(h).digest('hex').slice(0, 32);
}

/** Counts open streams; `open` refuses one past a cap with RATE_LIMITED and returns its (idempotent) release. */
export class StreamGate {
  private total = 0;
  private readonly perKey = new Map<string, number>();

  constructor(readonly limits: Pick<StreamLimits, 'maxClients' | 'maxPerKey'>) {}

  get open(): number { return this.total; }

  acquire(key: string): () => void {
    const mine = this.perKey.get(key) ?? 0;
    if (this.total >= this.limits.maxClients) {
      throw new HangarError('RATE_LIMITED', `too many open streams (${this.total} of at most ${this.limits.maxClients}); close one and retry`, { scope: 'global', limit: this.limits.maxClients });
    }
    if (mine >= this.limits.maxPerKey) {
      throw new HangarError('RATE_LIMITED', `too many open streams for this API key (${mine} of at most ${this.limits.maxPerKey}); close one and retry`, { scope: 'key', limit: this.limits.maxPerKey });
    }
    this.total++;
    this.perKey.set(key, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total--;
      const n = (this.perKey.get(key) ?? 1) - 1;
      if (n > 0) this.perKey.set(key, n);
      else this.perKey.delete(key);
    };
  }
}

/** A streaming response with flow control. */
export interface StreamSink {
  /** Writes a chunk; false when the client's buffer is full: the source waits for `onDrain`. */
  write(chunk: string | Buffer): boolean;
  /** The client's buffer is full (a write returned false and no 'drain' came yet). */
  readonly paused: boolean;
  /** The client went, was dropped, or the stream ended: nothing more is written. */
  readonly closed: boolean;
  onDrain(fn: () => void): void;
  /** Runs once, when the stream is over for any reason: remove listeners and timers here. */
  onClose(fn: () => void): void;
  /** Ends the stream normally. */
  end(): void;
  /** Ends the stream for `reason`, with the last line `lastLine(reason)` when there is one. */
  drop(reason: string): void;
}

/** How long a dropped client gets to take its last line before its socket is closed. */
const DROP_GRACE_MS = 2000;

/**
 * Wraps a hijacked response. `release` (the gate's) runs when the stream is over; `lastLine` formats the reason of
 * a drop for the stream's format (an SSE comment), or omits it (plain text).
 */
export function openStream(res: ServerResponse, limits: Pick<StreamLimits, 'maxBufferedBytes' | 'stallMs'>, release: () => void, lastLine: (reason: string) => string | null = () => null): StreamSink {
  let paused = false;
  let closed = false;
  let stall: NodeJS.Timeout | undefined;
  const drains: (() => void)[] = [];
  const closes: (() => void)[] = [];
  const finish = (): void => {
    if (closed) return;
    closed = true;
    if (stall) clearTimeout(stall);
    release();
    for (const fn of closes.splice(0)) fn();
  };
  const sink: StreamSink = {
    get paused() { return paused; },
    get closed() { return closed; },
    write: (chunk) => {
      if (closed) return false;
      const ok = res.write(chunk);
      if (res.writableLength > limits.maxBufferedBytes) {
        sink.drop(`dropped: the client did not keep up (more than ${limits.maxBufferedBytes} bytes waiting)`);
        return false;
      }
      if (!ok && !paused) {
        paused = true;
        stall = setTimeout(() => sink.drop(`dropped: the client read nothing for ${limits.stallMs} ms`), limits.stallMs);
        stall.unref();
      }
      return ok;
    },
    onDrain: (fn) => { drains.push(fn); },
    onClose: (fn) => { if (closed) fn(); else closes.push(fn); },
    end: () => {
      if (closed) return;
      finish();
      res.end();
    },
    drop: (reason) => {
      if (closed) return;
      finish();
      const line = lastLine(reason);
      if (line) res.end(line);
      else res.end();
      // The last line waits behind what the client did not read: it gets a moment, then the socket goes.
      setTimeout(() => res.destroy(), DROP_GRACE_MS).unref();
    },
  };
  res.on('drain', () => {
    if (closed) return;
    paused = false;
    if (stall) clearTimeout(stall);
    stall = undefined;
    for (const fn of drains) fn();
  });
  res.on('close', finish);
  res.on('error', finish);
  return sink;
}

/** One event as an SSE frame. */
export function sseFrame(e: EventRecord): string {
  return `id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`;
}

/** An SSE comment line (a drop's reason). */
export const sseComment = (text: string): string => `: ${text.replace(/[\r\n]+/g, ' ')}\n\n`;

const REPLAY_BATCH = 200;
const PING_MS = 15_000;

/**
 * Streams the events after `since` (those of `vmId` only, when given; of `tenant` only, when given), then live ones. The store is the buffer:
 * while the client's buffer is full, live events are not written but read back from the store at 'drain', in
 * order, so a slow client costs no memory here however many events are appended meanwhile.
 */
export function streamEvents(sink: StreamSink, events: EventPort, since: number, vmId?: string, tenant?: string): void {
  let sent = since;
  let live = false;
  const catchUp = (): void => {
    while (!sink.closed && !sink.paused) {
      const batch = events.events({ since: sent, limit: REPLAY_BATCH, ...(vmId ? { vmId } : {}), ...(tenant !== undefined ? { tenant } : {}) });
      for (const e of batch) {
        sent = e.seq;
        if (!sink.write(sseFrame(e))) return;
      }
      if (batch.length < REPLAY_BATCH) { live = true; return; }
    }
  };
  const off = events.onEvent((e) => {
    if (sink.closed || e.seq <= sent) return;
    if (!live || sink.paused) { live = false; return; } // read back from the store at 'drain'
    if (vmId && e.vmId !== vmId) return;
    if (tenant !== undefined && e.tenant !== tenant) return; // a tenant key's stream: its tenant's events only
    sent = e.seq;
    if (!sink.write(sseFrame(e))) live = false;
  });
  const ping = setInterval(() => { if (!sink.paused) sink.write(': ping\n\n'); }, PING_MS);
  ping.unref();
  sink.onDrain(() => { if (!live) catchUp(); });
  sink.onClose(() => { off(); clearInterval(ping); });
  catchUp();
}

const FOLLOW_POLL_MS = 250;
const FOLLOW_CHUNK = 64 * 1024;
/** Written when the followed log shrank (trimmed, or a restarted VMM reopened it). */
export const FOLLOW_RESTART_NOTE = '\n[hangar: the console log was trimmed or restarted; following its new end]\n';

/**
 * Streams `initial`, then what is appended to the file at `path`, until the client leaves or `alive()` turns false.
 * Reads only while the client's buffer has room: a client that does not read leaves the rest in the file.
 */
export function followFile(sink: StreamSink, path: string, initial: string, alive: () => boolean, pollMs = FOLLOW_POLL_MS): void {
  let pending: Buffer | null = Buffer.from(initial);
  let pos = -1;
  let busy = false;
  /** A 'drain' (or a poll) came while a round was running: run another one right after it. */
  let again = false;
  const buf = Buffer.alloc(FOLLOW_CHUNK);
  const tick = async (): Promise<void> => {
    if (busy) { again = true; return; }
    if (sink.closed || sink.paused) return;
    busy = true;
    again = false;
    try {
      while (pending && pending.length && !sink.paused && !sink.closed) {
        const piece = pending.subarray(0, FOLLOW_CHUNK);
        pending = pending.subarray(piece.length);
        sink.write(piece);
      }
      if (pending?.length) return;
      pending = null;
      const st = await stat(path).catch(() => null);
      if (!st || !alive()) { sink.end(); return; }
      if (pos < 0) pos = st.size;
      if (st.size < pos) { pos = st.size; sink.write(FOLLOW_RESTART_NOTE); }
      if (st.size === pos || sink.paused) return;
      const fh = await open(path, 'r').catch(() => null);
      if (!fh) return;
      try {
        while (pos < st.size && !sink.paused && !sink.closed) {
          const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, st.size - pos), pos);
          if (bytesRead === 0) break;
          pos += bytesRead;
          sink.write(Buffer.from(buf.subarray(0, bytesRead)));
        }
      } finally {
        await fh.close();
      }
    } finally {
      busy = false;
      if (again) void tick();
    }
  };
  const timer = setInterval(() => void tick(), pollMs);
  sink.onDrain(() => void tick());
  sink.onClose(() => clearInterval(timer));
  void tick();
}
