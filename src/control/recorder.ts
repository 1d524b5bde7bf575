// A recording made by the controller itself (POST /v1/vms/:id/recordings): its own RFB connection to the VM, asking
// only for encodings the viewer page's noVNC replays (Raw, CopyRect, DesktopSize), every byte the VM sends written
// to a recording for `durationMs`, then closed.
import type { Duplex } from 'node:stream';
import type { SessionRecorder } from '../desktop/deps.js';
import { ENCODING, RfbClientProtocol } from './rfb/codec.js';

export interface ApiRecording {
  id: string;
  /** Resolves when the recording has ended (its time is up, stop() was called, or the VM closed the connection). */
  done: Promise<void>;
  stop(): void;
}

export function recordFor(stream: Duplex, rec: SessionRecorder & { id: string }, durationMs: number): ApiRecording {
  let stopTimer: NodeJS.Timeout | null = null;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => { resolveDone = r; });
  const stop = (): void => {
    if (stopTimer) clearTimeout(stopTimer);
    stopTimer = null;
    rec.end();
    stream.destroy();
    resolveDone();
  };
  const proto = new RfbClientProtocol({ send: (b) => { if (!stream.destroyed) stream.write(b); } }, [ENCODING.COPY_RECT, ENCODING.RAW, ENCODING.DESKTOP_SIZE]);
  stream.on('data', (d: Buffer) => {
    rec.write(d);
    try { proto.push(d); } catch { stop(); }
  });
  stream.on('close', stop);
  stream.on('error', stop);
  stopTimer = setTimeout(stop, durationMs);
  return { id: rec.id, done, stop };
}
