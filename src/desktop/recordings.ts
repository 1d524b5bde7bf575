// Session recordings: the VM → viewer half of an RFB session (handshake included, so a client can replay it from
// the start), with timestamps, in a file under the state dir — as Guacamole records sessions. A viewer session is
// recorded when the config says so; the API can record through the controller's own RFB client. Retention: files
// older than maxAgeS are pruned, and a recording stops growing at maxBytes.
//
// File layout (`<id>.hrec`): "HREC1\n", then frames of [ms since start, u32 BE][length, u32 BE][bytes]. Next to it
// `<id>.json`: { id, vmId, source, startedAt, endedAt, durationMs, bytes, truncated }, written when it ends.
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { HangarError } from '../errors.js';
import type { SessionRecorder } from './deps.js';

export const RECORDING_MAGIC = Buffer.from('HREC1\n', 'latin1');
export const RECORDING_ID = /^rec-[0-9a-f]{12}$/;

export interface RecordingMeta {
  id: string;
  vmId: string;
  source: 'viewer' | 'api';
  startedAt: string;
  endedAt: string | null;
  durationMs: number;
  bytes: number;
  truncated: boolean;
}

export interface RecordingRetention {
  /** Recordings older than this are deleted (by prune). */
  maxAgeS: number;
  /** A recording stops growing past this size (its meta says truncated). */
  maxBytes: number;
}

export const DEFAULT_RETENTION: RecordingRetention = { maxAgeS: 7 * 86_400, maxBytes: 512 * 1024 * 1024 };

/** One frame of a recording file: [ms][len][bytes]. Pure. */
export function encodeFrame(ms: number, chunk: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt32BE(Math.max(0, Math.min(0xffffffff, Math.round(ms))), 0);
  h.writeUInt32BE(chunk.length, 4);
  return Buffer.concat([h, chunk]);
}

/** The frames of a recording file. Pure; a torn last frame (the controller died mid-write) is ignored. */
export function decodeFrames(file: Buffer): { ms: number; data: Buffer }[] {
  if (!file.subarray(0, RECORDING_MAGIC.length).equals(RECORDING_MAGIC)) throw new HangarError('INVALID_ARGUMENT', 'not a Hangar recording');
  const out: { ms: number; data: Buffer }[] = [];
  let off = RECORDING_MAGIC.length;
  while (off + 8 <= file.length) {
    const ms = file.readUInt32BE(off);
    const len = file.readUInt32BE(off + 4);
    if (off + 8 + len > file.length) break;
    out.push({ ms, data: file.subarray(off + 8, off + 8 + len) });
    off += 8 + len;
  }
  return out;
}

export class RecordingStore {
  constructor(readonly dir: string, readonly retention: RecordingRetention = DEFAULT_RETENTION, private readonly now: () => number = Date.now) {}

  /** Starts a recording file; write() each chunk as it is forwarded, end() once. */
  start(vmId: string, source: RecordingMeta['source']): SessionRecorder & { id: string } {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const id = `rec-${randomBytes(6).toString('hex')}`;
    const started = this.now();
    const fd = openSync(join(this.dir, `${id}.hrec`), 'wx', 0o600);
    writeSync(fd, RECORDING_MAGIC);
    let bytes = 0;
    let truncated = false;
    let ended = false;
    const meta = (): RecordingMeta => ({
      id, vmId, source, startedAt: new Date(started).toISOString(), endedAt: ended ? new Date(this.now()).toISOString() : null,
      durationMs: this.now() - started, bytes, truncated,
    });
    return {
      id,
      write: (chunk) => {
        if (ended || truncated) return;
        if (bytes + chunk.length > this.retention.maxBytes) { truncated = true; return; }
        writeSync(fd, encodeFrame(this.now() - started, chunk));
        bytes += chunk.length;
      },
      end: () => {
        if (ended) return;
        ended = true;
        closeSync(fd);
        writeFileAtomicSync(join(this.dir, `${id}.json`), JSON.stringify(meta()));
      },
    };
  }

  list(vmId?: string): RecordingMeta[] {
    if (!existsSync(this.dir)) return [];
    const out: RecordingMeta[] = [];
    for (const f of readdirSync(this.dir)) {
      if (!f.endsWith('.json')) continue;
      try {
        const m = JSON.parse(readFileSync(join(this.dir, f), 'utf8')) as RecordingMeta;
        if (!vmId || m.vmId === vmId) out.push(m);
      } catch { /* a torn index file: the recording is listed once it is rewritten */ }
    }
    return out.sort((a, b) => a.startedAt.localeCompare(b.startedAt));
  }

  get(id: string): RecordingMeta {
    if (!RECORDING_ID.test(id)) throw new HangarError('RECORDING_NOT_FOUND', `no recording ${id}`, { id });
    const p = join(this.dir, `${id}.json`);
    if (!existsSync(p)) throw new HangarError('RECORDING_NOT_FOUND', `no recording ${id} (or it is still being recorded)`, { id });
    return JSON.parse(readFileSync(p, 'utf8')) as RecordingMeta;
  }

  file(id: string): Buffer {
    this.get(id);
    return readFileSync(join(this.dir, `${id}.hrec`));
  }

  remove(id: string): void {
    this.get(id);
    rmSync(join(this.dir, `${id}.hrec`), { force: true });
    rmSync(join(this.dir, `${id}.json`), { force: true });
  }

  /** Deletes recordings past maxAgeS; returns their ids. */
  prune(): string[] {
    const cutoff = this.now() - this.retention.maxAgeS * 1000;
    const gone: string[] = [];
    for (const m of this.list()) {
      if (Date.parse(m.endedAt ?? m.startedAt) < cutoff) { this.remove(m.id); gone.push(m.id); }
    }
    if (existsSync(this.dir)) { // recording files whose index never got written (a crash) go by their mtime
      for (const f of readdirSync(this.dir)) {
        const id = f.replace(/\.hrec$/, '');
        if (f.endsWith('.hrec') && !existsSync(join(this.dir, `${id}.json`)) && statSync(join(this.dir, f)).mtimeMs < cutoff) { rmSync(join(this.dir, f), { force: true }); gone.push(id); }
      }
    }
    return gone;
  }
}

function writeFileAtomicSync(path: string, text: string): void {
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  writeSync(fd, text);
  closeSync(fd);
  renameSync(tmp, path); // readers never see half a file
}
