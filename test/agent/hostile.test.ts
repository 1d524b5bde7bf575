// A hostile guest: a fake agent on the socket (named as such) that answers HELLO and then sends oversized frames,
// garbage, a flood of small frames, a JSON bomb, or DATA past its window. Each time the session is dropped, the
// Agents port reports failed with the stable code AGENT_FAILED (details.reason says which), pending calls fail,
// and the host's memory stays bounded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agents } from '../../src/agent/agents.js';
import type { AgentClient } from '../../src/agent/client.js';
import { encodeFrame, FRAME, FrameDecoder, frameJson, LIMITS, MAGIC } from '../../src/agent/codec.js';
import { isHangarError } from '../../src/errors.js';

type Behaviour = (sock: Socket, req: { stream: number; op: unknown }) => void;

/** A FAKE guest agent: answers HELLO properly, then misbehaves on the first request as BEHAVIOUR says. */
async function fakeGuest(behaviour: Behaviour): Promise<{ path: string; close: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-fake-guest-'));
  const path = join(dir, 'guest.sock');
  const srv = createServer((sock) => {
    const dec = new FrameDecoder();
    let started = false;
    let buf = Buffer.alloc(0);
    sock.on('error', () => undefined);
    sock.on('data', (d: Buffer) => {
      let chunk = d;
      if (!started) {
        buf = Buffer.concat([buf, d]);
        const at = buf.indexOf(MAGIC);
        if (at < 0) return;
        started = true;
        chunk = buf.subarray(at + MAGIC.length);
      }
      for (const f of dec.push(chunk)) {
        const j = frameJson(f);
        if (f.type === FRAME.HELLO) sock.write(encodeFrame(FRAME.HELLO_OK, 0, { v: 1, session: j.session, pid: 1, hostname: 'evil', bootId: 'b', caps: [] }));
        else if (f.type === FRAME.REQ) behaviour(sock, { stream: f.stream, op: j.op });
      }
    });
  });
  await new Promise<void>((r) => srv.listen(path, r));
  return { path, close: () => { srv.close(); rmSync(dir, { recursive: true, force: true }); } };
}

async function expectDropped(behaviour: Behaviour, want: string, use: (c: AgentClient) => Promise<unknown> = (c) => c.exec({ argv: ['x'] }).then((h) => h.exit)): Promise<void> {
  const g = await fakeGuest(behaviour);
  try {
    const agents = new Agents({ channel: () => ({ kind: 'unix', path: g.path }), limits: { framesPerSecond: 2000, frameBurst: 4000, requestTimeoutMs: 5000 } });
    const c = (await agents.session('vm-1')) as AgentClient;
    assert.equal(c.hostname, 'evil');
    assert.equal(agents.status('vm-1').state, 'ready');
    global.gc?.();
    const rss0 = process.memoryUsage().rss;
    await assert.rejects(use(c), (e: unknown) => isHangarError(e, 'AGENT_FAILED') && e.details.reason === want, want);
    const st = agents.status('vm-1');
    assert.equal(st.state, 'failed');
    assert.ok(st.state === 'failed' && st.code === 'AGENT_FAILED' && st.message.includes(want));
    assert.equal(c.s.alive, false);
    assert.ok(process.memoryUsage().rss - rss0 < 64 * 1024 * 1024, 'memory bounded');
    agents.closeAll();
  } finally {
    g.close();
  }
}

test('an oversized frame drops the session (frame-too-large), decided from its header', async () => {
  await expectDropped((s, r) => {
    s.write(encodeFrame(FRAME.OK, r.stream, { proc: 'p1', pid: 2 }));
    const h = Buffer.alloc(9); h.writeUInt32BE(512 * 1024 * 1024, 0); h[4] = FRAME.DATA; h.writeUInt32BE(r.stream, 5);
    s.write(h);
    s.write(Buffer.alloc(2 * 1024 * 1024)); // the start of "512 MiB" that is never buffered
  }, 'frame-too-large');
});

test('garbage drops the session (unknown-type or a bad length)', async () => {
  await expectDropped((s) => s.write(Buffer.from('\x00\x00\x00\x10\x99garbage-garbage-garbage', 'latin1')), 'unknown-type', (c) => c.ps());
});

test('a JSON bomb in an answer is bad-json; an oversized JSON answer is json-too-large', async () => {
  await expectDropped((s, r) => s.write(encodeFrame(FRAME.OK, r.stream, Buffer.from('['.repeat(60_000)))), 'bad-json', (c) => c.ps());
  await expectDropped((s, r) => s.write(encodeFrame(FRAME.OK, r.stream, Buffer.from(`{"x":"${'a'.repeat(LIMITS.maxJson)}"}`))), 'json-too-large', (c) => c.ps());
});

test('a flood of small frames drops the session (flood)', async () => {
  await expectDropped((s, r) => {
    s.write(encodeFrame(FRAME.OK, r.stream, { proc: 'p1', pid: 2 }));
    const ev = encodeFrame(FRAME.EVENT, r.stream, { type: 'noise' });
    s.write(Buffer.concat(Array.from({ length: 20_000 }, () => ev)));
  }, 'flood');
});

test('DATA past the window drops the session (window-exceeded); the host never buffers more than the window', async () => {
  await expectDropped((s, r) => {
    s.write(encodeFrame(FRAME.OK, r.stream, { proc: 'p1', pid: 2 }));
    for (let i = 0; i < 5; i++) s.write(encodeFrame(FRAME.DATA, r.stream, Buffer.alloc(64 * 1024)));
  }, 'window-exceeded');
});

test('frames for streams never opened are unknown-stream', async () => {
  await expectDropped((s) => s.write(encodeFrame(FRAME.DATA, 999, Buffer.from('x'))), 'unknown-stream', (c) => c.ps());
});

test('after a failure the next session() opens a fresh session', async () => {
  let n = 0;
  const g = await fakeGuest((s, r) => { if (n++ === 0) s.write(Buffer.from('\x00\x00\x00\x10\x99garbage-garbage', 'latin1')); else s.write(encodeFrame(FRAME.OK, r.stream, { procs: [] })); });
  try {
    const agents = new Agents({ channel: () => ({ kind: 'unix', path: g.path }) });
    const a = await agents.session('vm-1');
    await assert.rejects(a.ps(), (e: unknown) => isHangarError(e, 'AGENT_FAILED'));
    assert.equal(agents.status('vm-1').state, 'failed');
    const b = await agents.session('vm-1');
    assert.notEqual(b.session, a.session);
    assert.deepEqual(await b.ps(), []);
    assert.equal(agents.status('vm-1').state, 'ready');
    agents.closeAll();
  } finally {
    g.close();
  }
});

test('no channel: AGENT_UNAVAILABLE, status absent', async () => {
  const agents = new Agents({ channel: () => null });
  await assert.rejects(agents.session('vm-x'), (e: unknown) => isHangarError(e, 'AGENT_UNAVAILABLE'));
  assert.deepEqual(agents.status('vm-x'), { state: 'absent' });
});
