// The exec WebSocket's protocol over the FAKE agent: start with stdin and EOF, output tagged by stream, exit; attach
// to a background process (its kept output replayed); signals and resizes; refusals before the upgrade; bad
// messages; and backpressure (a client that does not read stops the process's output, then gets all of it).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { parseAgentSocket, startRequest } from '../../src/api/agent-ws.js';
import { auth } from '../support/api.js';
import { createAgentApi, type AgentApi } from './agent-harness.js';

let api: AgentApi;
before(async () => { api = await createAgentApi(); });
after(async () => { await api.close(); });

interface Session {
  ws: WebSocket;
  out: Buffer[];
  err: Buffer[];
  json: Record<string, unknown>[];
  closed: Promise<{ code: number }>;
}

function open(path = '/v1/vms/vm-a/exec/ws', headers: Record<string, string> = auth): Promise<Session> {
  const ws = new WebSocket(`${api.url.replace('http', 'ws')}${path}`, { headers });
  const s: Session = { ws, out: [], err: [], json: [], closed: new Promise((r) => ws.once('close', (code) => r({ code }))) };
  ws.on('message', (d: Buffer, binary: boolean) => {
    if (!binary) s.json.push(JSON.parse(d.toString()));
    else (d[0] === 1 ? s.out : s.err).push(d.subarray(1));
  });
  return new Promise((resolve, reject) => { ws.once('open', () => resolve(s)); ws.once('unexpected-response', (_q, res) => reject(new Error(`HTTP ${res.statusCode}`))); ws.once('error', reject); });
}

const until = async (fn: () => boolean, ms = 3000): Promise<void> => {
  const end = Date.now() + ms;
  while (!fn()) { assert.ok(Date.now() < end, 'in time'); await new Promise((r) => setTimeout(r, 20)); }
};

describe('GET /v1/vms/:id/exec/ws', () => {
  test('stdin (binary and text), EOF, stdout and stderr apart, exit', async () => {
    const s = await open();
    s.ws.send(JSON.stringify({ type: 'start', cmd: 'cat; echo done >&2; exit 4' }));
    await until(() => s.json.some((m) => m.type === 'started'));
    s.ws.send(Buffer.from('hello '));
    s.ws.send(JSON.stringify({ type: 'stdin', data: 'world' }));
    s.ws.send(JSON.stringify({ type: 'eof' }));
    assert.equal((await s.closed).code, 1000);
    assert.equal(Buffer.concat(s.out).toString(), 'hello world');
    assert.equal(Buffer.concat(s.err).toString(), 'done\n');
    assert.deepEqual(s.json.at(-1), { type: 'exit', code: 4, signal: null, timedOut: false });
  });

  test('signal and resize reach the process', async () => {
    const s = await open();
    s.ws.send(JSON.stringify({ type: 'start', argv: ['sleep', '30'], pty: { cols: 80, rows: 24 } }));
    await until(() => s.json.some((m) => m.type === 'started'));
    const proc = s.json[0]!.proc as string;
    s.ws.send(JSON.stringify({ type: 'resize', cols: 100, rows: 30 }));
    await until(() => api.agent.controls.some((c) => c.proc === proc && c.op === 'resize'));
    assert.deepEqual(api.agent.controls.find((c) => c.proc === proc && c.op === 'resize')!.args, [100, 30]);
    assert.deepEqual(api.agent.execs.at(-1)!.req.pty, { cols: 80, rows: 24 });
    s.ws.send(JSON.stringify({ type: 'signal', signal: 'INT' }));
    await s.closed;
    assert.deepEqual(s.json.at(-1), { type: 'exit', code: null, signal: 'INT', timedOut: false });
  });

  test('attach to a background process replays its kept output', async () => {
    const r = await api.app.inject({ method: 'POST', url: '/v1/vms/vm-a/exec', headers: auth, payload: { cmd: 'echo early; sleep 0.5; echo late', background: true } });
    const { proc } = r.json();
    await new Promise((res) => setTimeout(res, 150));
    const s = await open();
    s.ws.send(JSON.stringify({ attach: proc }));
    await s.closed;
    assert.equal(Buffer.concat(s.out).toString(), 'early\nlate\n');
    assert.equal(s.json.at(-1)!.type, 'exit');
  });

  test('refused before the upgrade: no token, a stopped VM, an unknown path', async () => {
    await assert.rejects(open('/v1/vms/vm-a/exec/ws', {}), /HTTP 401/);
    await assert.rejects(open('/v1/vms/vm-off/exec/ws'), /HTTP 409/);
    await assert.rejects(open('/v1/vms/vm-a/nothing/ws'), /HTTP 404/);
  });

  test('a bad first message is an error and close 1008', async () => {
    const s = await open();
    s.ws.send(JSON.stringify({ type: 'stdin', data: 'x' }));
    assert.equal((await s.closed).code, 1008);
    assert.equal(s.json[0]!.type, 'error');
    const t = await open();
    t.ws.send('not json');
    assert.equal((await t.closed).code, 1008);
  });

  test('backpressure: a client that reads nothing holds the process back, then gets every byte', async () => {
    const total = 64 * 1024 * 1024;
    const s = await open();
    let got = 0;
    s.ws.removeAllListeners('message');
    s.ws.on('message', (d: Buffer, binary: boolean) => { if (binary) got += d.length - 1; else s.json.push(JSON.parse(d.toString())); });
    s.ws.send(JSON.stringify({ type: 'start', argv: ['head', '-c', String(total), '/dev/zero'], tag: 'flood' }));
    await until(() => s.json.some((m) => m.type === 'started'));
    (s.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
    await new Promise((r) => setTimeout(r, 1000));
    const ps = (await api.app.inject({ method: 'GET', url: '/v1/vms/vm-a/procs', headers: auth })).json().procs as { tag?: string; running: boolean }[];
    assert.equal(ps.find((p) => p.tag === 'flood')?.running, true, 'the process waits for the client');
    (s.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    await s.closed;
    assert.equal(got, total);
  });
});

describe('the protocol, pure', () => {
  test('parseAgentSocket names the VM and the socket', () => {
    assert.deepEqual(parseAgentSocket('/v1/vms/vm-a/exec/ws')?.kind, 'exec');
    assert.equal(parseAgentSocket('/v1/vms/vm%2Da/terminal/ws?token=x')?.vmId, 'vm-a');
    assert.equal(parseAgentSocket('/v1/vms/vm-a/vnc'), null);
  });
  test('startRequest validates like POST /exec and defaults stdin on', () => {
    assert.deepEqual(startRequest({ type: 'start', argv: ['ls'] }), { argv: ['ls'], stdin: true });
    assert.deepEqual(startRequest({ type: 'start', cmd: 'ls', stdin: false, pty: { cols: 10, rows: 5 } }), { cmd: 'ls', stdin: false, pty: { cols: 10, rows: 5 } });
    assert.throws(() => startRequest({ type: 'start' }), /exactly one/);
    assert.throws(() => startRequest({ type: 'start', cmd: 'x', bogus: 1 }), /unknown field/);
    assert.throws(() => startRequest({ type: 'start', cmd: 'x', pty: { cols: 0, rows: 5 } }), /cols and rows/);
  });
});
