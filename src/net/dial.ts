// Reaching a VM's TCP port from "the host side". In production the controller runs in the root namespace and
// connects directly (bridge mode, or netns mode through the veth route). When the host side is itself a
// namespace (cfg.hostNetns: shared machines and tests, where the root namespace's network must not be touched)
// and the controller is not inside it, each connection goes through a small relay process started in that
// namespace: same path for the bytes (host side → veth → VM), one extra process per connection.
import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import { connect, type OnReadOpts, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { HangarError } from '../errors.js';
import type { NetConfig } from './config.js';

export interface DialOptions {
  timeoutMs?: number;
  /**
   * Read up to this many bytes per read(2) on a direct connection (default: Node's 64 KiB). A bulk stream such as a
   * VNC framebuffer then costs far fewer system calls and callbacks per byte. The bytes are still 'data' events.
   */
  readBufferBytes?: number;
}

export interface Dialer {
  /** Connects to host:port; resolves once the TCP connection is established. */
  connect(host: string, port: number, opts?: DialOptions): Promise<Duplex>;
  /** How connections are made, for /v1/host and doctor. */
  readonly via: 'direct' | 'relay';
}

/** True when this process already lives in the named namespace (compare namespace inodes). */
export function inNetns(name: string): boolean {
  try {
    const self = statSync('/proc/self/ns/net');
    const ns = statSync(`/run/netns/${name}`);
    return self.ino === ns.ino && self.dev === ns.dev;
  } catch {
    return false;
  }
}

/** Largest read buffer a caller may ask for (one per connection). */
const MAX_READ_BUFFER = 4 * 1024 * 1024;

/**
 * net.connect's `onread` without a copy per read: libuv reads straight into a window of a slab (2× `size`, shared
 * by consecutive reads), and each read's bytes are emitted as 'data' as a view of that slab; the next read gets the
 * window after them, and a new slab comes once fewer than size/2 bytes are left (a slab is freed when the last
 * chunk viewing it is). So a chunk handed out is never overwritten, and no byte is copied on its way to the
 * viewer (the copy out of one reused buffer was ~19% of the bridge's to-viewer CPU in bench/proxy's profile).
 * Node keeps pause()/resume() working in this mode (reading stops and restarts), and end and errors are reported as
 * usual. Unlike a stream, 'data' emitted with nobody listening would be lost (an RFB server speaks first): until the
 * first 'data' listener comes, reads are kept and reading stops; they are handed over, in order, when it arrives.
 */
function largeReads(size: number, socket: () => Socket): OnReadOpts & { buffer: () => Uint8Array; attach(s: Socket): void } {
  const early: Buffer[] = [];
  let slab = Buffer.allocUnsafeSlow(2 * size);
  let off = 0;
  /** The window the next read fills: from `off` to at most `size` bytes on (a fresh slab when under size/2 is left). */
  const next = (): Uint8Array => {
    if (slab.length - off < size / 2) { slab = Buffer.allocUnsafeSlow(2 * size); off = 0; }
    return slab.subarray(off, off + Math.min(size, slab.length - off));
  };
  return {
    buffer: next,
    callback: (n: number, buf: Uint8Array): boolean => {
      const s = socket();
      const chunk = Buffer.from(buf.buffer, buf.byteOffset, n); // a view, not a copy
      if (buf.buffer === slab.buffer) off = ((buf.byteOffset - slab.byteOffset + n + 7) & ~7); // 8-byte aligned
      if (s.listenerCount('data') === 0) {
        early.push(chunk);
        return false;
      }
      s.emit('data', chunk);
      return !s.isPaused();
    },
    attach: (s) => {
      const onListener = (event: string | symbol): void => {
        if (event !== 'data') return;
        s.off('newListener', onListener);
        // After the listener is in place (it is added right after this event), before any later read.
        process.nextTick(() => { for (const c of early.splice(0)) s.emit('data', c); });
      };
      s.on('newListener', onListener);
    },
  };
}

function directConnect(host: string, port: number, timeoutMs: number, readBufferBytes?: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const ref: { s?: Socket } = {}; // the reads' callback needs the socket that connect() is about to return
    const onread = readBufferBytes ? largeReads(Math.min(Math.max(readBufferBytes, 4096), MAX_READ_BUFFER), () => ref.s!) : undefined;
    const s = connect({ host, port, noDelay: true, ...(onread ? { onread: { buffer: onread.buffer, callback: onread.callback } } : {}) });
    ref.s = s;
    onread?.attach(s);
    const timer = setTimeout(() => { s.destroy(); reject(new HangarError('VM_UNREACHABLE', `${host}:${port} did not answer within ${timeoutMs} ms`, { host, port })); }, timeoutMs);
    s.once('connect', () => { clearTimeout(timer); resolve(s); });
    s.once('error', (e) => { clearTimeout(timer); reject(new HangarError('VM_UNREACHABLE', `${host}:${port}: ${e.message}`, { host, port }, { cause: e })); });
  });
}

// Runs inside the namespace: pipes stdin/stdout to the TCP connection; says "connected" on stderr once it is.
const RELAY = `
const [host, port] = process.argv.slice(1);
const s = require('node:net').connect({ host, port: Number(port), noDelay: true });
s.once('connect', () => { process.stderr.write('connected\\n'); process.stdin.pipe(s); s.pipe(process.stdout); });
s.once('error', (e) => { process.stderr.write('error ' + e.message + '\\n'); process.exit(1); });
s.once('close', () => process.exit(0));
process.stdin.once('end', () => s.end());`;

function relayConnect(netns: string, host: string, port: number, timeoutMs: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', netns, process.execPath, '-e', RELAY, host, String(port)], { stdio: ['pipe', 'pipe', 'pipe'] });
    let err = '';
    let settled = false;
    const fail = (msg: string): void => {
      if (settled) return;
      settled = true;
      child.kill('SIGKILL');
      reject(new HangarError('VM_UNREACHABLE', `${host}:${port} from ${netns}: ${msg}`, { host, port, netns }));
    };
    const timer = setTimeout(() => fail(`no connection within ${timeoutMs} ms`), timeoutMs);
    child.stderr.on('data', (c: Buffer) => {
      err += c.toString();
      if (!settled && err.includes('connected\n')) {
        settled = true;
        clearTimeout(timer);
        const duplex = Duplex.from({ readable: child.stdout, writable: child.stdin });
        duplex.on('close', () => child.kill('SIGTERM'));
        resolve(duplex);
      }
    });
    child.once('exit', () => { clearTimeout(timer); fail(err.trim() || 'relay exited'); });
    child.once('error', (e) => { clearTimeout(timer); fail(e.message); });
  });
}

export function createDialer(cfg: Pick<NetConfig, 'hostNetns'>): Dialer {
  const ns = cfg.hostNetns;
  if (ns && !inNetns(ns)) {
    return { via: 'relay', connect: (host, port, o = {}) => relayConnect(ns, host, port, o.timeoutMs ?? 5000) };
  }
  return { via: 'direct', connect: (host, port, o = {}) => directConnect(host, port, o.timeoutMs ?? 5000, o.readBufferBytes) };
}

/** Connects and reads the first bytes the server sends (the RFB banner), then closes. */
export async function readBanner(dialer: Dialer, host: string, port: number, timeoutMs = 5000): Promise<string> {
  const s = await dialer.connect(host, port, { timeoutMs });
  try {
    return await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new HangarError('VM_UNREACHABLE', `${host}:${port} sent nothing within ${timeoutMs} ms`, { host, port })), timeoutMs);
      s.once('data', (d: Buffer) => { clearTimeout(timer); resolve(d.toString('latin1')); });
      // `on`: destroying a relayed stream after an error reports another (an abort), which must not go uncaught.
      s.on('error', (e) => { clearTimeout(timer); reject(new HangarError('VM_UNREACHABLE', e.message, { host, port })); });
      s.once('end', () => { clearTimeout(timer); reject(new HangarError('VM_UNREACHABLE', `${host}:${port} closed without a banner`, { host, port })); });
    });
  } finally {
    s.destroy();
  }
}
