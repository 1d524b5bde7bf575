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
 * net.connect's `onread`: libuv reads into one buffer of `size` bytes owned by this connection, and each read's
 * bytes are copied out (one memcpy, far cheaper than the system calls saved) and emitted as 'data'. Node keeps
 * pause()/resume() working in this mode (reading stops and restarts), and end and errors are reported as usual.
 * Unlike a stream, 'data' emitted with nobody listening would be lost (an RFB server speaks first): until the first
 * 'data' listener comes, reads are kept and reading stops; they are handed over, in order, when it arrives.
 */
function largeReads(size: number, socket: () => Socket): OnReadOpts & { attach(s: Socket): void } {
  const early: Buffer[] = [];
  return {
    buffer: Buffer.allocUnsafe(size),
    callback: (n: number, buf: Uint8Array): boolean => {
      const s = socket();
      const chunk = Buffer.from(buf.subarray(0, n));
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
