// The migration transport (src/snapshot/qemu.ts): plain absolute socket paths before QEMU sees one, and the end of
// a stream QEMU closes as soon as it has read it all.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isHangarError } from '../../../src/errors.js';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { safeSocketPath, sendFile } from '../../../src/vmm/qemu/state.js';

test('QEMU is only ever handed plain absolute socket paths', () => {
  assert.equal(safeSocketPath('/var/lib/hangar/vms/vm-1/migrate-in.sock'), '/var/lib/hangar/vms/vm-1/migrate-in.sock');
  for (const bad of ['relative.sock', '/a b/c.sock', '/a;rm -rf /', '/a,server=on', '/x/../y.sock', `/${'a'.repeat(110)}`, '/a\nb', '/$(id)']) {
    assert.throws(() => safeSocketPath(bad), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT'), bad);
  }
});

// QEMU closes an incoming migration socket as soon as it has read the end-of-stream marker; that close can beat
// the sender's own shutdown (CI saw "Premature close" on a resume). The peer here reads every byte, then closes
// at once, many times over: sendFile must count that as done. A peer that hangs up early is an error.
test('sendFile: a peer that closes right after the last byte is the normal end; an early close is an error', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hangar-sendfile-'));
  try {
    const file = join(dir, 'state.bin');
    const data = randomBytes(3 * 1024 * 1024 + 17);
    await writeFile(file, data);
    const want = createHash('sha256').update(data).digest('hex');
    const serve = async (closeAfter: number, fn: (sock: string) => Promise<void>): Promise<void> => {
      const sock = join(dir, 'peer.sock');
      const srv = createServer((c) => {
        let got = 0;
        c.on('error', () => undefined);
        c.on('data', (d: Buffer) => {
          got += d.length;
          if (got >= closeAfter) c.destroy();
        });
      });
      await new Promise<void>((r) => srv.listen(sock, r));
      try {
        await fn(sock);
      } finally {
        await new Promise((r) => srv.close(r));
      }
    };
    const dial = (sock: string): Promise<Socket> => new Promise((resolve, reject) => {
      const s = connect({ path: sock }, () => resolve(s));
      s.once('error', reject);
    });
    await serve(data.length, async (sock) => {
      for (let i = 0; i < 40; i++) assert.deepEqual(await sendFile(file, await dial(sock)), { bytes: data.length, sha256: want });
    });
    await serve(1024 * 1024, async (sock) => {
      await assert.rejects(sendFile(file, await dial(sock)), (e: NodeJS.ErrnoException) => ['ECONNRESET', 'EPIPE', 'ERR_STREAM_PREMATURE_CLOSE'].includes(e.code ?? ''));
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

// bench/snapshot's crash: QEMU resetting the migration socket after the stream was done was an 'error' event no
// one listened to any more (an uncaught exception ends the process with Node's version line and nothing else).
test('sendFile: a socket error after the stream is done is absorbed, not an uncaught exception', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hangar-sendfile-late-'));
  try {
    const file = join(dir, 'state.bin');
    await writeFile(file, randomBytes(64 * 1024));
    const sock = join(dir, 'peer.sock');
    const srv = createServer((c) => { c.on('error', () => undefined); c.resume(); });
    await new Promise<void>((r) => srv.listen(sock, r));
    try {
      const s = await new Promise<Socket>((resolve, reject) => {
        const x = connect({ path: sock }, () => resolve(x));
        x.once('error', reject);
      });
      await sendFile(file, s);
      const late = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
      // With no listener left, emit() throws the error: that throw is the crash.
      assert.doesNotThrow(() => s.emit('error', late));
      assert.ok(s.listenerCount('error') >= 1);
    } finally {
      await new Promise((r) => srv.close(r));
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
