// QMP framing against a tiny in-test server that speaks QMP's JSON lines (a stand-in for framing edge cases
// only; qmp.int.test.ts talks to a real QEMU).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isHangarError } from '../../../src/errors.js';
import { connectQmpWhenReady, QmpClient, type QmpEvent } from '../../../src/vmm/qemu/qmp.js';

const GREETING = { QMP: { version: { qemu: { micro: 22, minor: 2, major: 7 }, package: 'test' }, capabilities: ['oob'] } };
type Cmd = { execute: string; arguments?: Record<string, unknown>; id?: string };
type Handler = (cmd: Cmd, sock: Socket) => void;

/** Answers qmp_capabilities itself; every other command goes to `handler`. */
async function fakeQmp(path: string, handler: Handler, opts: { greeting?: boolean } = {}): Promise<Server> {
  const server = createServer((sock) => {
    if (opts.greeting !== false) sock.write(`${JSON.stringify(GREETING)}\r\n`);
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const cmd = JSON.parse(buf.slice(0, nl)) as Cmd;
        buf = buf.slice(nl + 1);
        if (cmd.execute === 'qmp_capabilities') sock.write(`${JSON.stringify({ return: {}, id: cmd.id })}\r\n`);
        else handler(cmd, sock);
      }
    });
    sock.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(path, r));
  return server;
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'hangar-qmp-'));
  try { await fn(dir); } finally { await rm(dir, { recursive: true, force: true }); }
}

const closeServer = (s: Server): Promise<void> => new Promise((r) => s.close(() => r()));

test('negotiates, matches replies by id across split and merged chunks, delivers interleaved events', () => withDir(async (dir) => {
  const path = join(dir, 'q.sock');
  const server = await fakeQmp(path, (cmd, sock) => {
    if (cmd.execute === 'query-status') {
      // An event and the reply in one write, then the reply dribbled out byte by byte.
      const ev = JSON.stringify({ event: 'STOP', timestamp: { seconds: 1, microseconds: 2 } });
      const reply = JSON.stringify({ return: { status: 'paused', running: false }, id: cmd.id });
      sock.write(`${ev}\r\n${reply.slice(0, 5)}`);
      let i = 5;
      const drip = setInterval(() => {
        sock.write(reply.slice(i, i + 1));
        if (++i >= reply.length) { clearInterval(drip); sock.write('\r\n'); }
      }, 1);
    } else if (cmd.execute === 'echo') {
      sock.write(`${JSON.stringify({ return: cmd.arguments, id: cmd.id })}\n`);
    }
  });
  const qmp = await QmpClient.connect(path);
  try {
    assert.equal(qmp.version, '7.2.22');
    const events: QmpEvent[] = [];
    qmp.onEvent((e) => events.push(e));
    assert.deepEqual(await qmp.queryStatus(), { status: 'paused', running: false });
    // Two in flight at once: each answer goes to its own caller.
    const [a, b] = await Promise.all([qmp.execute('echo', { n: 1 }), qmp.execute('echo', { n: 2 })]);
    assert.deepEqual([a, b], [{ n: 1 }, { n: 2 }]);
    assert.equal(events[0]?.event, 'STOP');
  } finally {
    qmp.close();
    await closeServer(server);
  }
}));

test('errors, id-less errors, timeouts, malformed input and a dropped connection are QMP_ERROR', () => withDir(async (dir) => {
  const path = join(dir, 'q.sock');
  const server = await fakeQmp(path, (cmd, sock) => {
    if (cmd.execute === 'cont') sock.write(`${JSON.stringify({ error: { class: 'GenericError', desc: 'not in this state' }, id: cmd.id })}\n`);
    if (cmd.execute === 'garbled') sock.write(`${JSON.stringify({ error: { class: 'GenericError', desc: 'Invalid JSON syntax' } })}\n`);
    if (cmd.execute === 'slow') setTimeout(() => sock.write(`${JSON.stringify({ return: {}, id: cmd.id })}\n`), 300);
    if (cmd.execute === 'ping') sock.write(`${JSON.stringify({ return: 'pong', id: cmd.id })}\n`);
    if (cmd.execute === 'junk') sock.write('{not json\n');
  });
  try {
    const qmp = await QmpClient.connect(path);
    await assert.rejects(qmp.cont(), (e: unknown) => {
      assert.ok(isHangarError(e, 'QMP_ERROR'));
      assert.equal(e.details.class, 'GenericError');
      assert.match(e.message, /cont failed: not in this state/);
      return true;
    });
    await assert.rejects(qmp.execute('garbled'), /Invalid JSON syntax/);
    await assert.rejects(qmp.execute('slow', undefined, { timeoutMs: 50 }), (e: unknown) => isHangarError(e, 'QMP_ERROR') && e.details.timeoutMs === 50);
    await new Promise((r) => setTimeout(r, 350)); // the late reply arrives and is dropped
    assert.equal(await qmp.execute('ping'), 'pong');
    const waiting = qmp.waitForEvent('SHUTDOWN', { timeoutMs: 5000 });
    await assert.rejects(qmp.execute('junk'), (e: unknown) => isHangarError(e, 'QMP_ERROR') && /malformed/.test(e.message));
    await assert.rejects(waiting, /closed while waiting/);
    assert.ok(qmp.isClosed);
    await assert.rejects(qmp.execute('ping'), (e: unknown) => isHangarError(e, 'QMP_ERROR'));
  } finally {
    await closeServer(server);
  }
}));

test('quit succeeds whether QEMU answers first or just closes', () => withDir(async (dir) => {
  const path = join(dir, 'q.sock');
  let answer = true;
  const server = await fakeQmp(path, (cmd, sock) => {
    if (cmd.execute !== 'quit') return;
    if (answer) sock.write(`${JSON.stringify({ return: {}, id: cmd.id })}\n${JSON.stringify({ event: 'SHUTDOWN', data: { guest: false, reason: 'host-qmp-quit' } })}\n`);
    sock.end();
  });
  try {
    const a = await QmpClient.connect(path);
    await a.quit();
    answer = false;
    const b = await QmpClient.connect(path);
    await b.quit();
    await b.closed;
  } finally {
    await closeServer(server);
  }
}));

test('connectQmpWhenReady waits for a socket that appears later; no greeting times out; abort stops it', () => withDir(async (dir) => {
  const path = join(dir, 'late.sock');
  let server: Server | undefined;
  const later = setTimeout(() => { void fakeQmp(path, () => undefined).then((s) => { server = s; }); }, 200);
  const t0 = Date.now();
  const qmp = await connectQmpWhenReady(path, { timeoutMs: 5000 });
  assert.ok(Date.now() - t0 >= 150);
  qmp.close();
  clearTimeout(later);
  await closeServer(server!);

  const mute = join(dir, 'mute.sock');
  const quiet = await fakeQmp(mute, () => undefined, { greeting: false });
  await assert.rejects(connectQmpWhenReady(mute, { timeoutMs: 200 }), (e: unknown) => isHangarError(e, 'QMP_ERROR') && /greeting/.test(e.message));
  await closeServer(quiet);

  const ac = new AbortController();
  setTimeout(() => ac.abort(), 100);
  await assert.rejects(connectQmpWhenReady(join(dir, 'never.sock'), { timeoutMs: 5000, signal: ac.signal }), (e: unknown) => isHangarError(e, 'QMP_ERROR') && e.details.cancelled === true);
}));
