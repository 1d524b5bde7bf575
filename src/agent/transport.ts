// The byte streams a session runs over: a Unix socket (QEMU's chardev for the virtio-serial port org.hangar.guest,
// or `hangar-agent --listen-unix` in tests) and Firecracker's hybrid vsock (its Unix socket, then `CONNECT 1024\n`
// answered by `OK <port>\n`). Where the socket is comes from the driver (VmmHandle.guestChannel).
import { connect, type Socket } from 'node:net';
import { HangarError } from '../errors.js';
import type { GuestChannel } from '../guest-protocol.js';

export { AGENT_VSOCK_PORT, type GuestChannel } from '../guest-protocol.js';

function unavailable(path: string, e: Error): HangarError {
  return new HangarError('AGENT_UNAVAILABLE', `agent channel ${path}: ${e.message}`, { path }, { cause: e });
}

export function connectUnix(path: string, timeoutMs = 5000): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ path });
    const timer = setTimeout(() => { s.destroy(); reject(new HangarError('AGENT_TIMEOUT', `agent channel ${path}: no connection within ${timeoutMs} ms`, { path })); }, timeoutMs);
    s.once('error', (e) => { clearTimeout(timer); reject(unavailable(path, e)); });
    s.once('connect', () => { clearTimeout(timer); s.removeAllListeners('error'); resolve(s); });
  });
}

/** Firecracker's host-initiated vsock: CONNECT PORT, then OK; bytes after the OK line belong to the session. */
export async function connectVsock(path: string, port: number, timeoutMs = 5000): Promise<Socket> {
  const s = await connectUnix(path, timeoutMs);
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const fail = (e: HangarError): void => { clearTimeout(timer); s.off('data', onData); s.destroy(); reject(e); };
    const timer = setTimeout(() => fail(new HangarError('AGENT_UNAVAILABLE', `vsock ${path}: no answer to CONNECT ${port}`, { path, port })), timeoutMs);
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      const nl = buf.indexOf(0x0a);
      if (nl < 0) { if (buf.length > 64) fail(new HangarError('AGENT_UNAVAILABLE', `vsock ${path}: a garbled handshake`, { path })); return; }
      const line = buf.subarray(0, nl).toString('latin1');
      if (!/^OK \d+$/.test(line)) { fail(new HangarError('AGENT_UNAVAILABLE', `vsock ${path}: CONNECT ${port} refused (${JSON.stringify(line.slice(0, 40))}): is the agent listening?`, { path, port })); return; }
      clearTimeout(timer);
      s.off('data', onData);
      s.off('close', onClose);
      const rest = buf.subarray(nl + 1);
      if (rest.length) s.unshift(rest);
      resolve(s);
    };
    const onClose = (): void => fail(new HangarError('AGENT_UNAVAILABLE', `vsock ${path}: closed during CONNECT ${port} (no listener in the guest yet)`, { path, port }));
    s.on('data', onData);
    s.once('close', onClose);
    s.write(`CONNECT ${port}\n`);
  });
}

export function connectChannel(ch: GuestChannel, timeoutMs = 5000): Promise<Socket> {
  return ch.kind === 'unix' ? connectUnix(ch.path, timeoutMs) : connectVsock(ch.path, ch.port, timeoutMs);
}
