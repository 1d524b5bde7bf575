// The direct dialer (src/net/dial.ts) on the host loopback: with readBufferBytes the connection reads into its own
// large buffer and still behaves as a stream: every byte in order, pause() stops reading (backpressure), resume()
// restarts it, 'end' arrives, a chunk handed out stays valid after later reads, and reads are not copied (views of
// a shared slab).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { createDialer } from '../../src/net/dial.js';

async function server(payload: Buffer): Promise<{ port: number; close(): Promise<void> }> {
  const srv = net.createServer((s) => {
    s.on('error', () => undefined);
    s.end(payload);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { port: (srv.address() as net.AddressInfo).port, close: () => new Promise((r) => srv.close(() => r())) };
}

test('large reads: every byte in order, chunks up to the buffer size that stay valid, pause/resume, end', async () => {
  const payload = randomBytes(24 * 1024 * 1024);
  const srv = await server(payload);
  try {
    const dialer = createDialer({});
    assert.equal(dialer.via, 'direct');
    for (const readBufferBytes of [undefined, 256 * 1024]) {
      const s = await dialer.connect('127.0.0.1', srv.port, readBufferBytes ? { readBufferBytes } : {});
      const chunks: Buffer[] = [];
      let paused = 0;
      let largest = 0;
      await new Promise<void>((resolve, reject) => {
        s.on('data', (d: Buffer) => {
          chunks.push(d); // kept: must not be overwritten by later reads
          largest = Math.max(largest, d.length);
          if (chunks.length % 8 === 0) {
            // A slow consumer: no 'data' may arrive while paused.
            s.pause();
            paused++;
            const before = chunks.length;
            setTimeout(() => {
              if (chunks.length !== before) reject(new Error('data while paused'));
              s.resume();
            }, 5);
          }
        });
        s.once('end', resolve);
        s.once('error', reject);
      });
      s.destroy();
      const got = Buffer.concat(chunks);
      assert.equal(got.length, payload.length, String(readBufferBytes));
      assert.equal(createHash('sha256').update(got).digest('hex'), createHash('sha256').update(payload).digest('hex'), 'every byte, in order');
      assert.ok(paused > 0);
      if (readBufferBytes) {
        assert.ok(largest <= readBufferBytes, `no chunk above the buffer size (${largest})`);
        assert.ok(largest > 64 * 1024, `reads larger than Node's default 64 KiB happen (${largest})`);
      } else {
        assert.ok(largest <= 64 * 1024, `default reads are at most 64 KiB (${largest})`);
      }
    }
  } finally {
    await srv.close();
  }
});

test('large reads: what the server says first is kept until someone listens (an RFB banner), then the rest in order', { timeout: 10_000 }, async () => {
  const srv = net.createServer((s) => {
    s.on('error', () => undefined);
    s.write('RFB 003.008\n'); // servers that speak first
    s.once('data', () => s.end('after'));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  try {
    const s = await createDialer({}).connect('127.0.0.1', (srv.address() as net.AddressInfo).port, { readBufferBytes: 64 * 1024 });
    await new Promise((r) => setTimeout(r, 150)); // the banner has arrived by now, with no listener
    const got: string[] = [];
    await new Promise<void>((resolve, reject) => {
      s.on('data', (d: Buffer) => {
        got.push(d.toString());
        if (got.length === 1) s.write('go');
      });
      s.once('end', resolve);
      s.once('error', reject);
    });
    s.destroy();
    assert.deepEqual(got, ['RFB 003.008\n', 'after']);
  } finally {
    await new Promise((r) => srv.close(r));
  }
});

test('large reads are not copied: small reads are views of one shared slab, each keeping its own bytes', { timeout: 10_000 }, async () => {
  // The server writes 40 small messages one by one, each after the client saw the previous (one read each).
  const srv = net.createServer((s) => {
    s.on('error', () => undefined);
    let i = 0;
    const next = (): void => { if (i < 40) s.write(`m${String(i++).padStart(3, '0')};`); else s.end(); };
    s.on('data', next);
    next();
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  try {
    const s = await createDialer({}).connect('127.0.0.1', (srv.address() as net.AddressInfo).port, { readBufferBytes: 64 * 1024 });
    const chunks: Buffer[] = [];
    await new Promise<void>((resolve, reject) => {
      s.on('data', (d: Buffer) => { chunks.push(d); s.write('k'); });
      s.once('end', resolve);
      s.once('error', reject);
    });
    s.destroy();
    assert.equal(Buffer.concat(chunks).toString(), Array.from({ length: 40 }, (_, i) => `m${String(i).padStart(3, '0')};`).join(''));
    const slabs = new Set(chunks.map((c) => c.buffer));
    assert.ok(chunks.length >= 10, `one read per message or so (${chunks.length})`);
    assert.ok(slabs.size < chunks.length / 4, `chunks share slabs (${slabs.size} for ${chunks.length} chunks): no copy per read`);
    // A copy would be a buffer of its own or a slice of Node's 8 KiB pool; a view's memory is the read slab.
    for (const c of chunks) assert.ok(c.buffer.byteLength >= 64 * 1024, `a view of the read buffer (${c.buffer.byteLength})`);
  } finally {
    await new Promise((r) => srv.close(r));
  }
});

test('readBanner: a stream that errors, then errors again when destroyed, is a rejection, never an uncaught error', async () => {
  const { Duplex } = await import('node:stream');
  const { readBanner } = await import('../../src/net/dial.js');
  const s = new Duplex({ read() {}, write(_c, _e, cb) { cb(); } });
  s._destroy = (_e, cb) => { cb(new Error('aborted by destroy')); };
  setImmediate(() => s.emit('error', new Error('read ECONNRESET')));
  await assert.rejects(readBanner({ via: 'relay', connect: async () => s }, '10.0.0.2', 5900, 2000), /ECONNRESET/);
  await new Promise((r) => setImmediate(r)); // the destroy's error has been emitted by now
});
