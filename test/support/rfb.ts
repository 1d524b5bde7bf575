// RFB servers for tests: a real desktop (Xvfb + x11vnc on the host loopback, an xterm on it), a small in-process
// server that speaks the RFB 3.8 handshake (security None) and then echoes, and a TCP relay that counts the
// connections reaching a backend. Every process started here is killed by stop(), also after a failure.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { killGroup, which } from '../../src/util/exec.js';

export const RFB_BANNER = 'RFB 003.008\n';

/** A free TCP port on 127.0.0.1 (released right away; callers retry on the rare race). */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address() as net.AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

export async function skipUnlessDesktopTools(): Promise<string | false> {
  const missing: string[] = [];
  for (const t of ['Xvfb', 'x11vnc', 'xterm']) if (!(await which(t))) missing.push(t);
  return missing.length ? `needs ${missing.join(', ')} (Debian packages xvfb, x11vnc, xterm; scripts/install-deps.sh installs them)` : false;
}

export interface Desktop {
  display: number;
  /** x11vnc's RFB port on 127.0.0.1. */
  port: number;
  /** A line typed into the xterm ends up in this file (the xterm runs `tee FILE`), when started with `typedFile`. */
  typedFile?: string;
  stop(): Promise<void>;
}

export interface DesktopOptions {
  width?: number;
  height?: number;
  /** Start an xterm (blue, top-left, 80x24) running `tee FILE` so keystrokes can be checked on the host. */
  typedFile?: string;
}

function spawnGroup(cmd: string, args: string[], stdout: 'pipe' | 'ignore' = 'ignore'): ChildProcess {
  // Own process group (killGroup); argument arrays only.
  return spawn(cmd, args, { stdio: ['ignore', stdout, 'pipe'], detached: true });
}

async function stopChild(c: ChildProcess | undefined): Promise<void> {
  if (!c || c.exitCode !== null || c.signalCode !== null) return;
  const exited = once(c, 'exit').catch(() => undefined);
  killGroup(c.pid, 'SIGTERM');
  const t = setTimeout(() => killGroup(c.pid, 'SIGKILL'), 3000);
  await exited;
  clearTimeout(t);
}

function stderrTail(c: ChildProcess): () => string {
  let tail = '';
  c.stderr?.on('data', (d: Buffer) => { tail = (tail + d.toString()).slice(-2000); });
  return () => tail;
}

/** Resolves once a TCP server on `port` sends the RFB banner. */
export async function waitForRfb(port: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.setTimeout(1000, () => { s.destroy(); resolve(false); });
      s.once('data', (d) => { s.destroy(); resolve(d.toString('latin1').startsWith('RFB ')); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`no RFB server on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

/** Xvfb on a free display, x11vnc on a free loopback port (no password, shared), optionally an xterm. */
export async function startDesktop(opts: DesktopOptions = {}): Promise<Desktop> {
  const children: ChildProcess[] = [];
  const stop = async (): Promise<void> => { for (const c of children.reverse()) await stopChild(c); };
  try {
    // -displayfd: Xvfb picks a free display itself and prints it once it accepts clients.
    const xvfb = spawnGroup('Xvfb', ['-displayfd', '1', '-screen', '0', `${opts.width ?? 1024}x${opts.height ?? 768}x24`, '-nolisten', 'tcp', '-br'], 'pipe');
    children.push(xvfb);
    const xvfbErr = stderrTail(xvfb);
    const display = await new Promise<number>((resolve, reject) => {
      let out = '';
      const t = setTimeout(() => reject(new Error(`Xvfb did not start: ${xvfbErr()}`)), 15_000);
      xvfb.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /^(\d+)\n/.exec(out);
        if (m) { clearTimeout(t); resolve(Number(m[1])); }
      });
      xvfb.once('exit', (code) => { clearTimeout(t); reject(new Error(`Xvfb exited (${code}): ${xvfbErr()}`)); });
    });
    if (opts.typedFile) {
      const xterm = spawnGroup('xterm', ['-display', `:${display}`, '-geometry', '80x24+0+0', '-bg', '#1e3a8a', '-fg', '#fde047',
        '-fa', 'DejaVu Sans Mono', '-fs', '14', '-title', 'hangar-test', '-e', 'tee', opts.typedFile]);
      children.push(xterm);
    }
    let port = 0;
    for (let tries = 0; ; tries++) {
      port = await freePort();
      const vnc = spawnGroup('x11vnc', ['-display', `:${display}`, '-rfbport', String(port), '-localhost', '-noipv6', '-nopw', '-forever',
        '-shared', '-norc', '-noxdamage', '-xkb', '-quiet']);
      children.push(vnc);
      const vncErr = stderrTail(vnc);
      try {
        await Promise.race([waitForRfb(port), once(vnc, 'exit').then(() => { throw new Error(`x11vnc exited: ${vncErr()}`); })]);
        break;
      } catch (e) {
        await stopChild(vnc);
        if (tries >= 2) throw e;
      }
    }
    return { display, port, ...(opts.typedFile ? { typedFile: opts.typedFile } : {}), stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

export interface TcpServer {
  port: number;
  /** Connections accepted so far. */
  accepted(): number;
  /** Connections open now. */
  open(): number;
  /** Bytes received from clients so far. */
  received(): number;
  /** The accepted sockets (open ones), for tests that close from the backend side. */
  sockets(): net.Socket[];
  close(): Promise<void>;
}

/** A TCP server that runs `onConnection` per client and counts what it sees. */
export async function tcpServer(onConnection: (s: net.Socket, count: (n: number) => void) => void): Promise<TcpServer> {
  let accepted = 0;
  let received = 0;
  const open = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    accepted++;
    open.add(s);
    s.on('close', () => open.delete(s));
    s.on('error', () => undefined);
    onConnection(s, (n) => { received += n; });
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return {
    port: (srv.address() as net.AddressInfo).port,
    accepted: () => accepted,
    open: () => open.size,
    received: () => received,
    sockets: () => [...open],
    close: async () => {
      for (const s of open) s.destroy();
      await new Promise((r) => srv.close(r));
    },
  };
}

export interface FakeRfbServer extends TcpServer {
  /** Bytes each client sent after the handshake (quiet mode keeps up to 1 MiB per client), newest client last. */
  afterHandshake(): Buffer[];
}

/**
 * An in-process RFB 3.8 server: banner, security type None, a 64x48 ServerInit named "hangar-fake". After the
 * handshake it echoes every byte back (a stand-in for input events answered by updates), or with `quiet` keeps
 * what it receives (for checking client messages such as ClientCutText) and sends nothing by itself.
 */
export async function fakeRfbServer(opts: { quiet?: boolean } = {}): Promise<FakeRfbServer> {
  const kept: Buffer[][] = [];
  const srv = await tcpServer((s, count) => {
    s.setNoDelay(true);
    s.write(RFB_BANNER);
    const mine: Buffer[] = [];
    let keptBytes = 0;
    kept.push(mine);
    let buf = Buffer.alloc(0);
    let phase: 'version' | 'security' | 'init' | 'running' = 'version';
    const after = (d: Buffer): void => {
      if (!opts.quiet) { s.write(d); return; }
      if (keptBytes < 1024 * 1024) { mine.push(Buffer.from(d)); keptBytes += d.length; }
    };
    s.on('data', (d: Buffer) => {
      count(d.length);
      if (phase === 'running') { after(d); return; }
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (phase === 'version' && buf.length >= 12) {
          buf = buf.subarray(12);
          s.write(Buffer.from([1, 1])); // one security type: None
          phase = 'security';
        } else if (phase === 'security' && buf.length >= 1) {
          buf = buf.subarray(1);
          s.write(Buffer.alloc(4)); // SecurityResult OK
          phase = 'init';
        } else if (phase === 'init' && buf.length >= 1) {
          buf = buf.subarray(1);
          const name = Buffer.from('hangar-fake');
          const init = Buffer.alloc(24);
          init.writeUInt16BE(64, 0);
          init.writeUInt16BE(48, 2);
          Buffer.from([32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0]).copy(init, 4); // 32bpp true colour
          init.writeUInt32BE(name.length, 20);
          s.write(Buffer.concat([init, name]));
          phase = 'running';
          if (buf.length) after(buf);
          buf = Buffer.alloc(0);
          return;
        } else {
          return;
        }
      }
    });
  });
  return { ...srv, afterHandshake: () => kept.map((k) => Buffer.concat(k)) };
}

/** An RFB ServerCutText message (server → client clipboard, Latin-1). */
export function serverCutText(text: string): Buffer {
  const t = Buffer.from(text, 'latin1');
  const m = Buffer.alloc(8);
  m[0] = 3;
  m.writeUInt32BE(t.length, 4);
  return Buffer.concat([m, t]);
}

/** Whether `bytes` (client → server) hold an RFB ClientCutText carrying `text`. */
export function hasClientCutText(bytes: Buffer, text: string): boolean {
  const t = Buffer.from(text, 'latin1');
  const m = Buffer.alloc(8);
  m[0] = 6;
  m.writeUInt32BE(t.length, 4);
  return bytes.includes(Buffer.concat([m, t]));
}

/** A TCP relay to 127.0.0.1:targetPort that counts the connections reaching the backend through it. */
export function countingRelay(targetPort: number): Promise<TcpServer> {
  return tcpServer((s, count) => {
    s.pause();
    const up = net.connect(targetPort, '127.0.0.1', () => { s.resume(); });
    up.on('error', () => s.destroy());
    s.on('data', (d: Buffer) => count(d.length));
    s.pipe(up).pipe(s);
    s.on('close', () => up.destroy());
    up.on('close', () => s.destroy());
  });
}

/** The RFB client handshake up to ServerInit, over any message-based transport; returns the framebuffer size. */
export function parseServerInit(b: Buffer): { width: number; height: number; name: string } {
  const len = b.readUInt32BE(20);
  return { width: b.readUInt16BE(0), height: b.readUInt16BE(2), name: b.subarray(24, 24 + len).toString('utf8') };
}
