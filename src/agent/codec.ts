// The frame codec of PROTOCOL.md, pure and bounded: encoding frames, and a decoder that never holds more than one
// frame (≤ 1 MiB + 9 bytes) plus one chunk of input, refuses lengths out of range, unknown types and JSON payloads
// over 64 KiB with AGENT_FAILED (details.reason: a stable word), and finds the start of a session in stale bytes.
import { HangarError } from '../errors.js';

export const FRAME = {
  HELLO: 0x01, HELLO_OK: 0x02, REQ: 0x10, OK: 0x11, ERR: 0x12, DATA: 0x20, STDERR: 0x21, EOF: 0x22, WINDOW: 0x23,
  EVENT: 0x24, CANCEL: 0x25, PING: 0x30, PONG: 0x31,
} as const;
export type FrameType = (typeof FRAME)[keyof typeof FRAME];
const TYPES: ReadonlySet<number> = new Set(Object.values(FRAME));
const JSON_TYPES: ReadonlySet<number> = new Set([FRAME.HELLO, FRAME.HELLO_OK, FRAME.REQ, FRAME.OK, FRAME.ERR, FRAME.WINDOW, FRAME.EVENT, FRAME.CANCEL, FRAME.PING, FRAME.PONG]);

export const LIMITS = {
  /** Largest payload of a frame. */
  maxPayload: 1024 * 1024,
  /** Largest JSON payload (control frames). */
  maxJson: 64 * 1024,
  /** Open streams per session. */
  maxStreams: 256,
  /** The window each side grants per stream at its start. */
  window: 256 * 1024,
} as const;

/** The 18 bytes the host writes before HELLO: a length of 0 (never a frame) and a name. */
export const MAGIC = Buffer.from('\x00\x00\x00\x00HANGAR-AGENT1\n', 'latin1');
export const HEADER = 9;

export interface Frame {
  type: FrameType;
  stream: number;
  payload: Buffer;
}

/** Why a session was dropped (details.reason of AGENT_FAILED): stable words tests and the status rely on. */
export type ProtocolFault =
  | 'frame-too-large' | 'frame-too-small' | 'unknown-type' | 'json-too-large' | 'bad-json' | 'flood' | 'window-exceeded'
  | 'too-many-streams' | 'unknown-stream' | 'bad-answer' | 'no-hello';

export function protocolError(reason: ProtocolFault, message: string, details: Record<string, unknown> = {}): HangarError {
  return new HangarError('AGENT_FAILED', `guest agent protocol error (${reason}): ${message}`, { reason, ...details });
}

export function encodeFrame(type: FrameType, stream: number, payload: Buffer | string | object = Buffer.alloc(0)): Buffer {
  const body = Buffer.isBuffer(payload) ? payload : Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload));
  if (body.length > LIMITS.maxPayload) throw new HangarError('INVALID_ARGUMENT', `a frame payload is at most ${LIMITS.maxPayload} bytes`, { size: body.length });
  if (!Number.isInteger(stream) || stream < 0 || stream > 0xffffffff) throw new HangarError('INVALID_ARGUMENT', 'a stream id is a u32', { stream });
  const h = Buffer.allocUnsafe(HEADER);
  h.writeUInt32BE(body.length + 5, 0);
  h.writeUInt8(type, 4);
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, body]);
}

/** Parses a control frame's JSON payload within the bounds; anything else is a protocol error. */
export function frameJson(f: Frame): Record<string, unknown> {
  if (f.payload.length > LIMITS.maxJson) throw protocolError('json-too-large', `a JSON payload of ${f.payload.length} bytes`, { size: f.payload.length });
  if (f.payload.length === 0) return {};
  let v: unknown;
  try {
    v = JSON.parse(f.payload.toString('utf8'));
  } catch (e) {
    throw protocolError('bad-json', e instanceof Error ? e.message.slice(0, 200) : 'unparsable');
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw protocolError('bad-json', 'a control payload must be a JSON object');
  return v as Record<string, unknown>;
}

/**
 * Incremental decoder. push() returns the complete frames; it throws AGENT_FAILED (and stays failed) on a length out
 * of range or an unknown type. Memory: the pending chunks never exceed one frame plus the last chunk pushed.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private total = 0;
  private failed: HangarError | null = null;

  get buffered(): number { return this.total; }

  push(chunk: Buffer): Frame[] {
    if (this.failed) throw this.failed;
    if (chunk.length) { this.chunks.push(chunk); this.total += chunk.length; }
    const out: Frame[] = [];
    for (;;) {
      if (this.total < HEADER) break;
      const head = this.peek(HEADER);
      const len = head.readUInt32BE(0);
      const type = head.readUInt8(4);
      if (len > LIMITS.maxPayload + 5) throw this.fail(protocolError('frame-too-large', `a frame of ${len} bytes`, { length: len }));
      if (len < 5) throw this.fail(protocolError('frame-too-small', `a frame length of ${len}`, { length: len }));
      if (!TYPES.has(type)) throw this.fail(protocolError('unknown-type', `frame type 0x${type.toString(16)}`, { type }));
      if (JSON_TYPES.has(type) && len - 5 > LIMITS.maxJson) throw this.fail(protocolError('json-too-large', `a control frame of ${len - 5} bytes`, { size: len - 5 }));
      if (this.total < 4 + len) break;
      const whole = this.take(4 + len);
      out.push({ type: type as FrameType, stream: whole.readUInt32BE(5), payload: whole.subarray(HEADER) });
    }
    return out;
  }

  private fail(e: HangarError): HangarError {
    this.failed = e;
    this.chunks = [];
    this.total = 0;
    return e;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length >= n) return this.chunks[0]!;
    const b = Buffer.concat(this.chunks);
    this.chunks = [b];
    return b;
  }

  private take(n: number): Buffer {
    let first = this.chunks[0]!;
    if (first.length < n) {
      // Gather exactly the chunks the frame spans (one copy per frame).
      let got = 0;
      let k = 0;
      while (got < n) got += this.chunks[k++]!.length;
      first = Buffer.concat(this.chunks.slice(0, k));
      this.chunks.splice(0, k, first);
    }
    const out = first.subarray(0, n);
    if (first.length === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.total -= n;
    return out;
  }
}

/**
 * Before its session starts the host skips whatever the channel still holds (a half-sent frame of an earlier
 * session, bytes from before a snapshot) up to the guest's HELLO_OK for ITS session id: the frame's header is
 * found by its type, stream 0 and the JSON prefix the agent writes. Keeps at most the needle's length of input.
 */
export class HelloScanner {
  private readonly needle: Buffer;
  private tail = Buffer.alloc(0);
  private skipped = 0;

  constructor(session: string, private readonly maxSkip = 4 * 1024 * 1024) {
    this.needle = Buffer.concat([Buffer.from([FRAME.HELLO_OK, 0, 0, 0, 0]), Buffer.from(`{"v":1,"session":"${session}"`)]);
  }

  /** The bytes from the HELLO_OK frame on (its 4-byte length included), or null while not found. */
  push(chunk: Buffer): Buffer | null {
    const b = Buffer.concat([this.tail, chunk]);
    const at = b.indexOf(this.needle);
    if (at >= 4) return b.subarray(at - 4);
    if (at >= 0) { this.tail = b; return null; } // the length is not there (cannot happen after a full header): wait
    const keep = Math.min(b.length, this.needle.length + 4);
    this.skipped += b.length - keep;
    if (this.skipped > this.maxSkip) throw protocolError('no-hello', `no HELLO_OK within ${this.maxSkip} bytes`);
    this.tail = Buffer.from(b.subarray(b.length - keep));
    return null;
  }
}
