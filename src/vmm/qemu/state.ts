// QEMU memory state to and from a file: a migration stream over a Unix socket that Hangar owns.
//
// The transport, chosen among what QEMU 7.2 offers (it has no file: URI):
// - exec:CMD — QEMU runs CMD with /bin/sh -c, so a path becomes part of a shell command line. Rejected.
// - fd:NAME  — the file descriptor must reach QEMU over the QMP socket with SCM_RIGHTS (getfd); Node's net.Socket
//   cannot send descriptors, so it would need a helper process in another language. Rejected.
// - unix:PATH — QEMU connects to (migrate) or listens on (-incoming) a socket in the VM's run directory, and this
//   process is the other end: it moves the bytes between the socket and the file and hashes them on the way. No
//   shell, no helper process, and the path is validated strictly before QEMU sees it. Chosen.
//
// Golden snapshots of a VM whose RAM is a shared file (memory-backend-file,share=on) are saved with the migration
// capability x-ignore-shared: the stream carries the device state only and the RAM file is copied beside it. A
// clone maps that copy privately (share=off) and loads the stream with the same capability (-incoming defer, the
// capability, then migrate-incoming): nothing of the RAM goes through the socket, unchanged pages stay shared in
// the page cache between clones, written pages are copied on write.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chown, rm, stat } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HangarError, toHangarError } from '../../errors.js';
import { tailFile } from '../../util/tail.js';
import { sleep } from '../../util/timeout.js';
import type { MachineSpec } from '../types.js';
import { qemuRunPaths, type QemuRunPaths } from './paths.js';
import type { QmpClient } from './qmp.js';

/** What saving needs of a running QEMU (QemuHandle is one). */
export interface QemuStateSource {
  readonly pid: number;
  readonly paths: QemuRunPaths;
  client(): Promise<QmpClient>;
  /** The unprivileged user QEMU runs as: the socket it connects to is handed to it. */
  readonly socketOwner?: { uid: number; gid: number } | null;
}

/** What loading needs of a QEMU started with -incoming (QemuHandle is one). */
export interface QemuIncoming extends QemuStateSource {
  readonly process: { readonly alive: boolean };
  readonly exited: Promise<unknown>;
  stop(opts?: { graceMs?: number }): Promise<unknown>;
}

/** What QEMU may be handed as a socket path: absolute, plain characters only, fits in sun_path. */
const SAFE_PATH_RE = /^\/[A-Za-z0-9._/-]{1,106}$/;
/** QEMU throttles migration to 128 MiB/s by default; to a local file that only costs time. */
const MAX_BANDWIDTH = 64 * 1024 ** 3;
const POLL_MS = 50;

export interface StreamResult {
  bytes: number;
  sha256: string;
  ms: number;
}

export function safeSocketPath(path: string, field = 'socket'): string {
  if (!SAFE_PATH_RE.test(path) || path.split('/').includes('..')) {
    throw new HangarError('INVALID_ARGUMENT', `${field} must be an absolute path of [A-Za-z0-9._/-] of at most 107 bytes (got ${JSON.stringify(path)})`, { field });
  }
  return path;
}

function failed(message: string, details: Record<string, unknown> = {}, cause?: unknown): HangarError {
  return new HangarError('SNAPSHOT_FAILED', message, details, cause === undefined ? undefined : { cause });
}

/** A pass-through that counts and hashes what flows through it. */
function meter(): Transform & { bytes(): number; result(): { bytes: number; sha256: string } } {
  const hash = createHash('sha256');
  let bytes = 0;
  const t = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      bytes += chunk.length;
      cb(null, chunk);
    },
  });
  return Object.assign(t, { bytes: () => bytes, result: () => ({ bytes, sha256: hash.digest('hex') }) });
}

/** Errors by which a stream learns that its peer closed the connection. */
const PEER_CLOSED = new Set(['ERR_STREAM_PREMATURE_CLOSE', 'EPIPE', 'ECONNRESET']);

/**
 * Streams `file` into `socket`, hashing on the way. QEMU closes its end of an incoming migration as soon as it has
 * read the end-of-stream marker, which can beat this side's own shutdown: a peer close once every byte of the file
 * has been handed to the socket is the normal end, not a failure (whether QEMU accepted the state is for
 * query-status to say). A close before that is an error.
 */
export async function sendFile(file: string, socket: Socket): Promise<{ bytes: number; sha256: string }> {
  quietAfterDone(socket);
  const { size } = await stat(file);
  const m = meter();
  try {
    await pipeline(createReadStream(file), m, socket);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (!(code && PEER_CLOSED.has(code) && m.bytes() === size)) throw e;
  }
  return m.result();
}

/**
 * The fix for bench/snapshot's crash (a run that ended with Node's version line and no figures): once a pipeline
 * has settled it no longer listens on its streams, and QEMU resetting its end of the migration socket afterwards
 * (ECONNRESET/EPIPE, which it does when it closes a socket with unread bytes) was an 'error' event nobody handled —
 * an uncaught exception that ends the process. Errors during the transfer still reach the pipeline; one after it
 * is only logged away, and the socket is destroyed.
 */
export function quietAfterDone(socket: Socket): void {
  socket.on('error', () => { socket.destroy(); });
}

function listen(path: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(path, () => { srv.off('error', reject); resolve(srv); });
  });
}

/**
 * Writes the paused guest's memory and device state to `file` (QMP migrate to unix:). The guest must be paused
 * (QMP stop) so the stream and a disk copy taken afterwards describe the same instant. QEMU is left in
 * 'postmigrate': `cont` runs the guest on, `quit` ends it.
 */
export async function saveQemuState(handle: QemuStateSource, file: string, opts: { timeoutMs?: number; ignoreShared?: boolean } = {}): Promise<StreamResult> {
  const t0 = performance.now();
  const qmp = await handle.client();
  const status = await qmp.queryStatus();
  if (status.running) throw failed(`QEMU ${handle.pid} is running: pause the guest before saving its state`, { status: status.status });
  const sock = safeSocketPath(handle.paths.migrateOutSocket, 'migrateOutSocket');
  await rm(sock, { force: true });
  const srv = await listen(sock);
  // Made by this (root) process under umask 077: a QEMU running as its own user must be able to connect.
  if (handle.socketOwner) await chown(sock, handle.socketOwner.uid, handle.socketOwner.gid);
  const m = meter();
  let conn: Socket | undefined;
  const written = new Promise<void>((resolve, reject) => {
    srv.once('connection', (s) => {
      conn = s;
      quietAfterDone(s);
      srv.close(); // one stream only
      pipeline(s, m, createWriteStream(file, { mode: 0o600 })).then(resolve, reject);
    });
  });
  written.catch(() => undefined);
  try {
    await qmp.execute('migrate-set-parameters', { 'max-bandwidth': MAX_BANDWIDTH });
    // Set for this save only, and always (a later hibernation of the same QEMU must carry its RAM).
    await setIgnoreShared(qmp, !!opts.ignoreShared);
    await qmp.migrate(`unix:${sock}`);
    const deadline = Date.now() + (opts.timeoutMs ?? 300_000);
    for (;;) {
      const q = await qmp.queryMigrate();
      if (q.status === 'completed') break;
      if (q.status === 'failed' || q.status === 'cancelled') {
        throw failed(`QEMU could not write its state: migration ${q.status}${q['error-desc'] ? `: ${String(q['error-desc'])}` : ''}`, { status: q.status });
      }
      if (Date.now() > deadline) throw failed(`saving the guest state did not finish within ${opts.timeoutMs ?? 300_000} ms`, { status: q.status ?? null });
      await sleep(POLL_MS);
    }
    await written; // QEMU closes its end once the stream is complete
  } catch (e) {
    conn?.destroy();
    await qmp.execute('migrate_cancel').catch(() => undefined);
    await rm(file, { force: true });
    throw isSnapshotError(e) ? e : failed(`saving the guest state failed: ${(e as Error).message}`, {}, e);
  } finally {
    srv.close();
    await rm(sock, { force: true });
    if (opts.ignoreShared) await setIgnoreShared(qmp, false).catch(() => undefined);
  }
  return { ...m.result(), ms: Math.round(performance.now() - t0) };
}

/** x-ignore-shared: RAM blocks backed by a shared file are left out of the stream (both ends must agree). */
export function setIgnoreShared(qmp: QmpClient, on: boolean): Promise<unknown> {
  return qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'x-ignore-shared', state: on }] });
}

function isSnapshotError(e: unknown): e is HangarError {
  return e instanceof HangarError && e.code === 'SNAPSHOT_FAILED';
}

async function connectWhenListening(path: string, timeoutMs: number, alive: () => boolean): Promise<Socket> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await new Promise<Socket>((resolve, reject) => {
        const s = connect({ path });
        s.once('connect', () => { s.off('error', reject); resolve(s); });
        s.once('error', reject);
      });
    } catch (e) {
      if (!alive() || Date.now() > deadline) throw e;
      await sleep(POLL_MS);
    }
  }
}

/**
 * Starts QEMU for `spec` waiting for a migration stream, feeds it `file`, and returns the handle once the state is
 * loaded and the guest is paused (nothing of the guest has run yet: the caller checks, then `cont`). With
 * `sha256`, a stream that does not hash to it fails the restore before the guest runs.
 */
export async function restoreQemuState<H extends QemuIncoming>(
  start: (incoming: string) => Promise<H>, spec: MachineSpec, file: string, opts: { sha256?: string; timeoutMs?: number; ignoreShared?: boolean } = {},
): Promise<{ handle: H } & StreamResult> {
  const t0 = performance.now();
  const sock = safeSocketPath(qemuRunPaths(spec.runDir).migrateInSocket, 'migrateInSocket');
  await rm(sock, { force: true });
  // The capability must be set before the stream is read: QEMU then waits (defer) until told where to listen.
  const handle = await start(opts.ignoreShared ? 'defer' : `unix:${sock}`);
  const timeoutMs = opts.timeoutMs ?? 300_000;
  try {
    if (opts.ignoreShared) {
      const qmp = await handle.client();
      await setIgnoreShared(qmp, true);
      await qmp.execute('migrate-incoming', { uri: `unix:${sock}` });
    }
    const s = await connectWhenListening(sock, 10_000, () => handle.process.alive);
    const sent = sendFile(file, s);
    sent.catch(() => undefined); // awaited below; not unhandled if QMP fails first
    const qmp = await handle.client();
    const deadline = Date.now() + timeoutMs;
    await Promise.race([sent, handle.exited.then(() => { throw failed('QEMU exited while loading the state'); })]);
    for (;;) {
      const st = await qmp.queryStatus();
      if (st.status === 'paused' || st.status === 'postmigrate') break;
      if (st.running) throw failed('the restored guest started running before Hangar resumed it', { status: st.status });
      if (st.status !== 'inmigrate' && st.status !== 'prelaunch') throw failed(`loading the state ended in QEMU state ${st.status}`, { status: st.status });
      if (Date.now() > deadline) throw failed(`loading the state did not finish within ${timeoutMs} ms`, { status: st.status });
      await sleep(POLL_MS);
    }
    const got = await sent;
    if (opts.sha256 && got.sha256 !== opts.sha256) {
      throw failed(`the state file ${file} does not match its manifest (sha256 ${got.sha256}, expected ${opts.sha256})`, { file });
    }
    return { handle, ...got, ms: Math.round(performance.now() - t0) };
  } catch (e) {
    await handle.stop({ graceMs: 0 }).catch(() => undefined);
    const vmmLog = await tailFile(handle.paths.vmmLog, 20);
    const err = toHangarError(e, 'SNAPSHOT_FAILED');
    throw err.code === 'SNAPSHOT_FAILED' ? new HangarError('SNAPSHOT_FAILED', err.message, { ...err.details, vmmLog }, { cause: e })
      : failed(`restoring ${file} failed: ${err.message}${vmmLog.trim() ? ` (QEMU: ${vmmLog.trim().split('\n').at(-1)})` : ''}`, { file, vmmLog }, e);
  } finally {
    await rm(sock, { force: true });
  }
}

/**
 * Whether the guest holds the agent port open (QEMU reports the virtio-serial port's guest side as the chardev's
 * frontend-open). The resume agent keeps it open for good, so after a restore this says whether anyone will read
 * the sync line — an image without the agent costs no wait.
 */
export async function agentListening(handle: QemuStateSource): Promise<boolean> {
  const list = await (await handle.client()).execute<{ label: string; 'frontend-open'?: boolean }[]>('query-chardev');
  return list.some((c) => c.label === 'agent' && c['frontend-open'] === true);
}
