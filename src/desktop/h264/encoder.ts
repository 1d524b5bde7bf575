// The H.264 encoder of the transcoder: one ffmpeg process per viewer (libx264, ultrafast, zerolatency: no
// look-ahead, no B-frames, so each frame written comes out before the next is needed), fed raw RGBA frames on stdin
// and read back as FLV on stdout (flv.ts). Pacing: at most one frame in the encoder; screens changed meanwhile
// collapse into the newest one, so a slow encoder lowers the frame rate, never adds queueing latency.
// The argument plan is pure (encoderArgs); the process is spawned with an argument array.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { HangarError } from '../../errors.js';
import { FlvDemuxer, type EncodedFrame } from './flv.js';

export const FFMPEG = '/usr/bin/ffmpeg'; // Debian's ffmpeg package (a prototype: no setting for it)

export interface EncoderSettings {
  width: number;
  height: number;
  /** x264 constant rate factor: lower is better quality, more bytes (default 26). */
  crf?: number;
  /** Frames between key frames (default 600: a desktop rarely needs one; a new viewer gets its own encoder). */
  keyInterval?: number;
  /** x264 threads (default 1: the host has few cores and many VMs). */
  threads?: number;
}

/** Why the encoder cannot run here, or null. */
export function encoderSkipReason(ffmpeg = FFMPEG): string | null {
  return existsSync(ffmpeg) ? null : `needs ffmpeg with libx264 at ${ffmpeg} (Debian package ffmpeg)`;
}

export function encoderArgs(s: EncoderSettings): string[] {
  if (!Number.isInteger(s.width) || !Number.isInteger(s.height) || s.width < 16 || s.height < 16 || s.width % 2 || s.height % 2) {
    throw new HangarError('INVALID_ARGUMENT', `H.264 needs an even screen size of at least 16x16, not ${s.width}x${s.height}`, { width: s.width, height: s.height });
  }
  const crf = s.crf ?? 26;
  if (!(crf >= 0 && crf <= 51)) throw new HangarError('INVALID_ARGUMENT', 'crf must be in 0..51', { crf });
  return [
    '-hide_banner', '-loglevel', 'error', '-nostdin',
    '-f', 'rawvideo', '-pix_fmt', 'rgba', '-video_size', `${s.width}x${s.height}`, '-framerate', '30', '-i', 'pipe:0',
    '-an', '-fps_mode', 'passthrough',
    '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-crf', String(crf),
    '-g', String(s.keyInterval ?? 600), '-bf', '0', '-threads', String(s.threads ?? 1), '-pix_fmt', 'yuv420p',
    '-flush_packets', '1', '-flvflags', 'no_duration_filesize', '-f', 'flv', 'pipe:1',
  ];
}

export interface Encoder {
  /** Offers the screen as it is now (copied); encoded at once if the encoder is idle, else when it is. */
  offer(rgba: Buffer): void;
  /** Frames written to ffmpeg / frames it returned / offers collapsed into a later frame. */
  stats(): { in: number; out: number; collapsed: number };
  readonly pid: number | undefined;
  close(): void;
}

/** Starts ffmpeg; onFrame gets every encoded frame in order, onError the first failure (then it is closed). */
export function startEncoder(s: EncoderSettings, onFrame: (f: EncodedFrame) => void, onError: (e: Error) => void, ffmpeg = FFMPEG): Encoder {
  const frameBytes = s.width * s.height * 4;
  const proc: ChildProcess = spawn(ffmpeg, encoderArgs(s), { stdio: ['pipe', 'pipe', 'pipe'] });
  let closed = false;
  let inFlight = false;
  let pending: Buffer | null = null;
  const st = { in: 0, out: 0, collapsed: 0 };
  let stderr = '';
  const fail = (e: Error): void => {
    if (closed) return;
    enc.close();
    onError(e);
  };
  const write = (frame: Buffer): void => {
    inFlight = true;
    st.in++;
    proc.stdin!.write(frame);
  };
  const demux = new FlvDemuxer((f) => {
    st.out++;
    inFlight = false;
    onFrame(f);
    if (pending && !closed) { const p = pending; pending = null; write(p); }
  });
  proc.stdout!.on('data', (d: Buffer) => {
    try { demux.push(d); } catch (e) { fail(e as Error); }
  });
  proc.stderr!.on('data', (d: Buffer) => { if (stderr.length < 4096) stderr += d.toString(); });
  proc.stdin!.on('error', () => { /* reported by exit */ });
  proc.on('error', (e) => fail(new HangarError('MISSING_HOST_TOOLS', `ffmpeg could not start: ${e.message}`, { ffmpeg }, { cause: e })));
  proc.on('exit', (code, signal) => fail(new HangarError('COMMAND_FAILED', `ffmpeg exited (${code ?? signal}): ${stderr.trim().slice(0, 500)}`, { code, signal })));
  const enc: Encoder = {
    offer(rgba) {
      if (closed) return;
      if (rgba.length !== frameBytes) { fail(new HangarError('INTERNAL', `a frame of ${rgba.length} bytes for a ${s.width}x${s.height} encoder`)); return; }
      const copy = Buffer.from(rgba);
      if (inFlight) { if (pending) st.collapsed++; pending = copy; return; }
      write(copy);
    },
    stats: () => ({ ...st }),
    get pid() { return proc.pid; },
    close() {
      if (closed) return;
      closed = true;
      proc.stdin!.destroy();
      proc.kill('SIGKILL');
    },
  };
  return enc;
}
