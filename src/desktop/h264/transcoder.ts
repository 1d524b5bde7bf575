// The host-side RFB → H.264 transcoder (a prototype, #18 point 4): speaks RFB as a client to the guest's x11vnc
// (the controller's RFB protocol machine keeps the framebuffer), encodes every completed update with ffmpeg
// (encoder.ts) and serves the viewer (noVNC over a WebSocket) as an RFB server whose FramebufferUpdates are H.264
// rectangles (encoding 50, WebCodecs in the page). The viewer's keys, pointer and clipboard go to the guest as they
// came. The guest is untrusted: its screen size and the rectangles of one update are bounded (GUEST_LIMITS), and
// any protocol error ends both connections.
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { HangarError } from '../../errors.js';
import { RfbClientProtocol } from '../../control/rfb/codec.js';
import { startEncoder, type Encoder, type EncoderSettings } from './encoder.js';
import { ENCODING_H264, H264_FLAGS, RfbServerProtocol, h264Update } from './rfb-server.js';

export const GUEST_LIMITS = { maxWidth: 4096, maxHeight: 4096, maxRectsPerUpdate: 10_000 } as const;
/** Frames are not encoded while more than this is waiting in the WebSocket to the viewer. */
export const HIGH_WATER_BYTES = 1 << 20;
/** WebSocket close codes. */
export const CLOSE = { guest: 4502, noH264: 4415, viewer: 4400 } as const;

/** Why a guest screen of this size is refused, or null. */
export function guestScreenProblem(width: number, height: number): string | null {
  if (width < 16 || height < 16) return `the guest screen ${width}x${height} is smaller than 16x16`;
  if (width > GUEST_LIMITS.maxWidth || height > GUEST_LIMITS.maxHeight) return `the guest screen ${width}x${height} is larger than ${GUEST_LIMITS.maxWidth}x${GUEST_LIMITS.maxHeight}`;
  if (width % 2 || height % 2) return `the guest screen ${width}x${height} is not of even size (H.264 4:2:0)`;
  return null;
}

export interface TranscoderStats {
  guestUpdates: number;
  framesSent: number;
  bytesSent: number;
  encoder: { in: number; out: number; collapsed: number } | null;
}

export interface Transcoder {
  stats(): TranscoderStats;
  /** The ffmpeg process id (for CPU accounting), once encoding. */
  encoderPid(): number | undefined;
  close(): void;
  readonly done: Promise<void>;
}

export interface TranscoderOptions {
  encoder?: Omit<EncoderSettings, 'width' | 'height'>;
  ffmpeg?: string;
}

/** Serves one viewer `ws` from the guest's RFB server on `guest` until either side closes. */
export function transcode(guest: Duplex, ws: WebSocket, opts: TranscoderOptions = {}): Transcoder {
  let closed = false;
  let encoder: Encoder | null = null;
  let viewer: RfbServerProtocol | null = null;
  let dirty = false;
  let drainTimer: NodeJS.Timeout | null = null;
  const early: Buffer[] = [];
  const st = { guestUpdates: 0, framesSent: 0, bytesSent: 0 };
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => { resolveDone = r; });

  const end = (code: number, reason: string): void => {
    if (closed) return;
    closed = true;
    if (drainTimer) clearTimeout(drainTimer);
    encoder?.close();
    guest.destroy();
    if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(code, reason.slice(0, 120));
    resolveDone();
  };

  const guestProto = new RfbClientProtocol({
    send: (b) => { if (!guest.destroyed) guest.write(b); },
    ready: (init) => {
      const problem = guestScreenProblem(init.width, init.height);
      if (problem) throw new HangarError('VM_UNREACHABLE', problem, { width: init.width, height: init.height });
      viewer = new RfbServerProtocol({
        send: (b) => { if (ws.readyState === ws.OPEN) ws.send(b); },
        encodings: (list) => {
          if (encoder) return;
          if (!list.includes(ENCODING_H264)) { end(CLOSE.noH264, 'the viewer does not decode H.264'); return; }
          encoder = startEncoder({ ...opts.encoder, width: init.width, height: init.height }, (f) => {
            if (ws.readyState !== ws.OPEN) return;
            const msg = h264Update(init.width, init.height, f.data, st.framesSent === 0 ? H264_FLAGS.resetContext : 0);
            ws.send(msg);
            st.framesSent++;
            st.bytesSent += msg.length;
          }, (e) => end(CLOSE.guest, `encoder: ${e.message}`), opts.ffmpeg);
          offer();
        },
        input: (m) => { if (!guest.destroyed) guest.write(m); },
        cutText: (m) => { if (!guest.destroyed) guest.write(m); },
      }, init);
      for (const b of early.splice(0)) viewerPush(b);
    },
    update: (rects) => {
      st.guestUpdates++;
      if (rects > GUEST_LIMITS.maxRectsPerUpdate) throw new HangarError('VM_UNREACHABLE', `an update of ${rects} rectangles (at most ${GUEST_LIMITS.maxRectsPerUpdate})`, { rects });
      offer();
    },
    resize: (w, h) => { throw new HangarError('VM_UNREACHABLE', `the guest screen changed to ${w}x${h} (the prototype does not re-encode at a new size)`); },
  });

  /** Hands the current screen to the encoder unless the viewer is behind (then again once it has caught up). */
  function offer(): void {
    if (closed || !encoder || !guestProto.fb) return;
    if (ws.bufferedAmount > HIGH_WATER_BYTES) {
      dirty = true;
      drainTimer ??= setTimeout(() => { drainTimer = null; if (dirty) { dirty = false; offer(); } }, 10);
      return;
    }
    dirty = false;
    encoder.offer(guestProto.fb.data);
  }

  function viewerPush(b: Buffer): void {
    try { viewer!.push(b); } catch (e) { end(CLOSE.viewer, (e as Error).message); }
  }

  guest.on('data', (d: Buffer) => {
    try { guestProto.push(d); } catch (e) { end(CLOSE.guest, (e as Error).message); }
  });
  guest.on('error', (e) => end(CLOSE.guest, `guest: ${e.message}`));
  guest.on('close', () => end(CLOSE.guest, 'the guest closed the connection'));
  ws.on('message', (data: Buffer) => { if (closed) return; if (viewer) viewerPush(data); else early.push(data); });
  ws.on('close', () => end(1000, 'viewer gone'));
  ws.on('error', () => end(1011, 'viewer error'));

  return {
    stats: () => ({ ...st, encoder: encoder?.stats() ?? null }),
    encoderPid: () => encoder?.pid,
    close: () => end(1001, 'closed'),
    done,
  };
}
