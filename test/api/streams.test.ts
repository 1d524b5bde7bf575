import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildServer } from '../../src/api/server.js';
import type { EventPort } from '../../src/api/routes.js';
import { StreamGate, streamKey, type StreamLimits } from '../../src/api/streams.js';
import { isHangarError } from '../../src/errors.js';
import type { Store } from '../../src/store/store.js';
import { createApiHarness, TEST_TOKEN, type ApiHarness } from '../support/api.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** The store's event port, counting its live listeners. */
function countingEvents(store: Store): EventPort & { listeners: () => number } {
  let n = 0;
  return {
    events: (o) => store.events(o),
    lastEventSeq: () => store.lastEventSeq(),
    get version() { return store.version; },
    onEvent: (l) => {
      n++;
      const off = store.onEvent(l);
      return () => { n--; off(); };
    },
    listeners: () => n,
  };
}

interface Server { h: ApiHarness; app: FastifyInstance; port: number; events: ReturnType<typeof countingEvents>; responses: ServerResponse[]; close(): Promise<void> }

async function server(streams: Partial<StreamLimits>): Promise<Server> {
  const h = await createApiHarness();
  const events = countingEvents(h.store);
  const app = await buildServer({ ...h.ctx, events }, { streams: { maxClients: 8, maxPerKey: 8, maxBufferedBytes: 1 << 20, stallMs: 60_000, ...streams } });
  const responses: ServerResponse[] = [];
  app.server.on('request', (_req, res: ServerResponse) => responses.push(res));
  await app.listen({ host: '127.0.0.1', port: 0 });
  h.insertVm('vm-a', 'stopped');
  mkdirSync(join(h.stateDir, 'vms', 'vm-a'), { recursive: true });
  writeFileSync(join(h.stateDir, 'vms', 'vm-a', 'console.log'), 'boot line 1\nboot line 2\n');
  return { h, app, port: (app.server.address() as AddressInfo).port, events, responses, close: async () => { for (const r of responses) r.socket?.destroy(); await app.close(); await h.close(); } };
}

interface RawStream {
  socket: Socket;
  status: number;
  received: () => Buffer;
  /** Whether `text` came (patterns are searched as data arrives, at no cost per poll). */
  saw: (text: string) => () => boolean;
}

/** A raw HTTP request on its own connection; resolves once the status line came. `read: false` then stops reading. */
function rawGet(port: number, path: string, read = true): Promise<RawStream> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const watches: { text: string; seen: boolean }[] = [];
    let last = '';
    let done = false;
    const received = (): Buffer => Buffer.concat(chunks);
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      const probe = last + c.toString('latin1');
      for (const w of watches) if (probe.includes(w.text)) w.seen = true;
      last = probe.slice(-256);
      if (done || !probe.includes('\r\n\r\n')) return;
      done = true;
      if (!read) socket.pause();
      const head = received().toString('latin1');
      resolve({
        socket, status: Number(head.split(' ')[1]), received,
        saw: (text) => {
          const w = { text, seen: received().toString('latin1').includes(text) };
          watches.push(w);
          return () => w.seen;
        },
      });
    });
    socket.on('error', (e) => { if (!done) reject(e); });
    socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TEST_TOKEN}\r\n\r\n`);
  });
}

/** The body of a chunked HTTP response (headers dropped). */
function dechunk(raw: Buffer): Buffer {
  const out: Buffer[] = [];
  let i = raw.indexOf('\r\n\r\n') + 4;
  while (i < raw.length) {
    const eol = raw.indexOf('\r\n', i);
    if (eol < 0) break;
    const n = parseInt(raw.subarray(i, eol).toString('latin1'), 16);
    if (!n) break;
    out.push(raw.subarray(eol + 2, eol + 2 + n));
    i = eol + 2 + n + 2;
  }
  return Buffer.concat(out);
}

test('the gate: a cap per key and a global one, RATE_LIMITED past either; release is idempotent', () => {
  const gate = new StreamGate({ maxClients: 3, maxPerKey: 2 });
  const a1 = gate.acquire('a');
  gate.acquire('a');
  assert.throws(() => gate.acquire('a'), (e: unknown) => isHangarError(e, 'RATE_LIMITED') && e.details.scope === 'key');
  gate.acquire('b');
  assert.throws(() => gate.acquire('c'), (e: unknown) => isHangarError(e, 'RATE_LIMITED') && e.details.scope === 'global');
  a1();
  a1();
  assert.equal(gate.open, 2);
  gate.acquire('c');
  assert.throws(() => gate.acquire('a'), (e: unknown) => isHangarError(e, 'RATE_LIMITED') && e.details.scope === 'global');
});

test('the key is a hash of the Authorization header, never the token', () => {
  const k = streamKey(`Bearer ${TEST_TOKEN}`);
  assert.equal(k, createHash('sha256').update(`Bearer ${TEST_TOKEN}`).digest('hex').slice(0, 32));
  assert.ok(!k.includes(TEST_TOKEN));
  assert.notEqual(k, streamKey('Bearer other'));
});

test('the N+1th stream gets 429 RATE_LIMITED (events and console follow share the cap); a slot frees when a client leaves', async () => {
  const s = await server({ maxClients: 8, maxPerKey: 2 });
  try {
    const one = await rawGet(s.port, '/v1/events');
    const two = await rawGet(s.port, '/v1/vms/vm-a/console?follow=true');
    assert.equal(one.status, 200);
    assert.equal(two.status, 200);
    const three = await fetch(`http://127.0.0.1:${s.port}/v1/events`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } });
    assert.equal(three.status, 429);
    const body = await three.json() as { error: { code: string; details: { scope: string; limit: number } } };
    assert.equal(body.error.code, 'RATE_LIMITED');
    assert.deepEqual(body.error.details, { scope: 'key', limit: 2 });
    const four = await rawGet(s.port, '/v1/vms/vm-a/console?follow=true');
    assert.equal(four.status, 429);
    four.socket.destroy();
    // The tail (no follow) is not a stream: not capped.
    assert.equal((await fetch(`http://127.0.0.1:${s.port}/v1/vms/vm-a/console`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } })).status, 200);
    one.socket.destroy();
    await until(() => s.events.listeners() === 0, 'the event listener to go');
    const again = await rawGet(s.port, '/v1/events');
    assert.equal(again.status, 200);
    again.socket.destroy();
    two.socket.destroy();
  } finally {
    await s.close();
  }
  const g = await server({ maxClients: 1, maxPerKey: 5 });
  try {
    const one = await rawGet(g.port, '/v1/events');
    const res = await fetch(`http://127.0.0.1:${g.port}/v1/events`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } });
    assert.equal(res.status, 429);
    assert.equal(((await res.json()) as { error: { details: { scope: string } } }).error.details.scope, 'global');
    one.socket.destroy();
  } finally {
    await g.close();
  }
});

const PAD = 'x'.repeat(8 * 1024);

test('an SSE client that never reads: thousands of events keep its buffer bounded; it gets them all, in order, once it reads', async () => {
  const s = await server({});
  try {
    const slow = await rawGet(s.port, '/v1/events', false);
    const res = s.responses.find((r) => r.req.url === '/v1/events');
    assert.ok(res);
    let maxBuffered = 0;
    const N = 2000;
    for (let i = 0; i < N; i++) {
      s.h.store.appendEvent('vm-a', 'test.big', { i, pad: PAD });
      maxBuffered = Math.max(maxBuffered, res.writableLength);
      if (i % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    console.log(`never-reading SSE client, ${N} events of 8 KiB (${(N * 8) >> 10} MiB): the response buffered at most ${maxBuffered} bytes`);
    assert.ok(maxBuffered < 64 * 1024, `buffered ${maxBuffered} bytes`);
    assert.equal(s.events.listeners(), 1);
    // Once it reads, it gets every event, in order, read back from the store.
    slow.socket.resume();
    await until(slow.saw(`"i":${N - 1},`), 'the last event', 20_000);
    const ids = [...slow.received().toString().matchAll(/"i":(\d+),/g)].map((m) => Number(m[1]));
    assert.deepEqual(ids, Array.from({ length: N }, (_, i) => i));
    slow.socket.destroy();
    await until(() => s.events.listeners() === 0, 'the event listener to go');
  } finally {
    await s.close();
  }
});

test('a client that reads nothing for stallMs while events wait is dropped with a last comment line, and its listener goes', async () => {
  const s = await server({ stallMs: 300 });
  try {
    const slow = await rawGet(s.port, '/v1/events', false);
    const res = s.responses.find((r) => r.req.url === '/v1/events');
    assert.ok(res);
    for (let i = 0; i < 3000 && !res.writableEnded; i++) {
      s.h.store.appendEvent('vm-a', 'test.big', { i, pad: PAD });
      if (i % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    await until(() => s.events.listeners() === 0, 'the stalled client to be dropped');
    assert.ok(res.writableLength < 64 * 1024, `buffered ${res.writableLength} bytes`);
    slow.socket.resume();
    await until(slow.saw(': dropped: the client read nothing for 300 ms'), 'the last comment line');
    slow.socket.destroy();
  } finally {
    await s.close();
  }
});

test('a client past maxBufferedBytes is dropped at once', async () => {
  const s = await server({ maxBufferedBytes: 4096 });
  try {
    const slow = await rawGet(s.port, '/v1/events', false);
    for (let i = 0; i < 3000 && s.events.listeners() > 0; i++) {
      s.h.store.appendEvent('vm-a', 'test.big', { i, pad: PAD });
      if (i % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    assert.equal(s.events.listeners(), 0, 'dropped, its listener removed');
    slow.socket.destroy();
  } finally {
    await s.close();
  }
});

test('console follow with a client that never reads: the file is read only as fast as the client takes it', async () => {
  const s = await server({});
  try {
    const log = join(s.h.stateDir, 'vms', 'vm-a', 'console.log');
    const slow = await rawGet(s.port, '/v1/vms/vm-a/console?follow=true', false);
    const res = s.responses.find((r) => r.req.url?.startsWith('/v1/vms/vm-a/console'));
    assert.ok(res);
    await sleep(300); // the follower has taken the file's size
    const piece = 'guest wrote this line\n'.repeat(1 << 14); // 352 KiB
    let maxBuffered = 0;
    for (let i = 0; i < 48; i++) { // 16.5 MiB
      appendFileSync(log, piece);
      await sleep(10);
      maxBuffered = Math.max(maxBuffered, res.writableLength);
    }
    for (let i = 0; i < 30; i++) { await sleep(20); maxBuffered = Math.max(maxBuffered, res.writableLength); }
    console.log(`never-reading console follower, ${(48 * piece.length) >> 20} MiB appended: the response buffered at most ${maxBuffered} bytes`);
    assert.ok(maxBuffered < 256 * 1024, `buffered ${maxBuffered} bytes`);
    slow.socket.resume();
    let total = 0;
    slow.socket.on('data', (c: Buffer) => { total += c.length; });
    await until(() => total + 1 > 48 * piece.length || slow.socket.bytesRead > 48 * piece.length + 1024, 'everything appended', 20_000);
    await sleep(200);
    assert.equal(dechunk(slow.received()).toString().split('guest wrote this line').length - 1, 48 * (1 << 14), 'nothing lost');
    slow.socket.destroy();
  } finally {
    await s.close();
  }
});
