// POST /v1/vms/:id/exec (buffered, SSE, background) and the /procs routes, over the FAKE agent (commands run on the
// host in a temp directory): output, exit codes, signals, env, truncation, streaming as produced, background
// processes listed, waited for and killed, and the HTTP status of each agent error.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SseParser, type SseEvent } from '../../src/cli/sse.js';
import { auth } from '../support/api.js';
import { createAgentApi, type AgentApi } from './agent-harness.js';

let api: AgentApi;
before(async () => { api = await createAgentApi({ unavailable: new Set(['vm-b']) }); });
after(async () => { await api.close(); });

const exec = (body: unknown, id = 'vm-a', headers: Record<string, string> = auth) => api.app.inject({ method: 'POST', url: `/v1/vms/${id}/exec`, headers, payload: body as object });

/** Reads an SSE answer, with the time each event arrived. */
async function sse(body: unknown, signal?: AbortSignal): Promise<(SseEvent & { at: number })[]> {
  const res = await fetch(`${api.url}/v1/vms/vm-a/exec?stream=sse`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(body), ...(signal ? { signal } : {}) });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
  const p = new SseParser();
  const out: (SseEvent & { at: number })[] = [];
  const dec = new TextDecoder();
  for await (const chunk of res.body!) for (const e of p.push(dec.decode(chunk as Uint8Array, { stream: true }))) out.push({ ...e, at: performance.now() });
  return out;
}

describe('POST /v1/vms/:id/exec', () => {
  test('buffered: stdout, stderr and the exit code', async () => {
    const r = await exec({ cmd: 'echo out; echo err >&2; exit 3' });
    assert.equal(r.statusCode, 200, r.body);
    const b = r.json();
    assert.equal(b.exitCode, 3);
    assert.equal(b.signal, null);
    assert.equal(b.stdout, 'out\n');
    assert.equal(b.stderr, 'err\n');
    assert.equal(b.truncated, false);
    assert.match(b.proc, /.+/);
  });

  test('argv, env and cwd reach the process', async () => {
    await api.app.inject({ method: 'POST', url: '/v1/vms/vm-a/files/mkdir', headers: auth, payload: { path: '/work' } });
    const r = await exec({ argv: ['sh', '-c', 'echo "$FOO" && pwd'], env: { FOO: 'bar baz' }, cwd: '/work', user: 'user' });
    assert.equal(r.statusCode, 200, r.body);
    const [foo, pwd] = (r.json().stdout as string).trim().split('\n');
    assert.equal(foo, 'bar baz');
    assert.ok(pwd!.endsWith('/vm-a/work'), pwd);
    assert.deepEqual(api.agent.execs.at(-1)!.req.user, 'user');
  });

  test('a process killed by a signal reports it, with no exit code', async () => {
    const r = await exec({ cmd: 'kill -TERM $$' });
    assert.deepEqual({ code: r.json().exitCode, signal: r.json().signal }, { code: null, signal: 'TERM' });
  });

  test('a timeout kills the process and says so', async () => {
    const r = await exec({ argv: ['sleep', '10'], timeoutMs: 200 });
    assert.equal(r.json().timedOut, true);
    assert.equal(r.json().signal, 'TERM');
  });

  test('output past maxOutputBytes is counted, not kept, and flagged', async () => {
    const r = await exec({ cmd: 'head -c 100000 /dev/zero', maxOutputBytes: 10 });
    const b = r.json();
    assert.equal(b.stdout.length, 10);
    assert.equal(b.stdoutBytes, 100000);
    assert.equal(b.truncated, true);
  });

  test('base64 output carries bytes that are not text', async () => {
    const r = await api.app.inject({ method: 'POST', url: '/v1/vms/vm-a/exec?encoding=base64', headers: auth, payload: { cmd: "printf '\\377\\000a'" } });
    assert.deepEqual([...Buffer.from(r.json().stdout, 'base64')], [0xff, 0, 0x61]);
  });

  test('SSE: output arrives as produced, not at exit', async () => {
    const events = await sse({ cmd: 'echo one; sleep 0.6; echo two' });
    assert.deepEqual(events.map((e) => e.event), ['start', 'stdout', 'stdout', 'exit']);
    assert.equal(JSON.parse(events[1]!.data).data, 'one\n');
    assert.ok(events[3]!.at - events[1]!.at > 400, 'the first line came well before the exit');
    assert.deepEqual(JSON.parse(events[3]!.data), { code: 0, signal: null, timedOut: false });
  });

  test('SSE: a client that goes away kills its foreground process', async () => {
    const ctl = new AbortController();
    const res = await fetch(`${api.url}/v1/vms/vm-a/exec`, { method: 'POST', headers: { ...auth, accept: 'text/event-stream', 'content-type': 'application/json' }, body: JSON.stringify({ argv: ['sleep', '30'], tag: 'gone' }), signal: ctl.signal });
    assert.equal(res.status, 200);
    ctl.abort();
    const deadline = Date.now() + 3000;
    for (;;) {
      const procs = (await api.app.inject({ method: 'GET', url: '/v1/vms/vm-a/procs', headers: auth })).json().procs as { tag?: string; running: boolean }[];
      if (procs.find((p) => p.tag === 'gone')?.running === false) break;
      assert.ok(Date.now() < deadline, 'killed once the client left');
      await new Promise((r) => setTimeout(r, 50));
    }
  });

  test('refused: argv and cmd together, a bad env name, no token, a stopped VM, no such VM, an agent that does not answer', async () => {
    assert.equal((await exec({ argv: ['x'], cmd: 'x' })).statusCode, 400);
    assert.equal((await exec({})).statusCode, 400);
    const env = await exec({ cmd: 'true', env: { 'A=B': 'x' } });
    assert.equal(env.statusCode, 400);
    assert.equal(env.json().error.code, 'INVALID_ARGUMENT');
    assert.equal((await exec({ cmd: 'true' }, 'vm-a', {})).statusCode, 401);
    const off = await exec({ cmd: 'true' }, 'vm-off');
    assert.deepEqual([off.statusCode, off.json().error.code], [409, 'VM_INVALID_STATE']);
    const none = await exec({ cmd: 'true' }, 'vm-nope');
    assert.deepEqual([none.statusCode, none.json().error.code], [404, 'VM_NOT_FOUND']);
    const down = await exec({ cmd: 'true' }, 'vm-b');
    assert.deepEqual([down.statusCode, down.json().error.code], [503, 'AGENT_UNAVAILABLE']);
  });
});

describe('background processes: /procs', () => {
  test('outlives its request, is listed, signalled, killed and waited for', async () => {
    const r = await exec({ cmd: 'echo started; exec sleep 30', background: true, tag: 'bg' });
    assert.equal(r.statusCode, 202, r.body);
    const { proc, pid } = r.json();
    assert.ok(pid > 0);
    const listed = (await api.app.inject({ method: 'GET', url: '/v1/vms/vm-a/procs', headers: auth })).json().procs.find((p: { proc: string }) => p.proc === proc);
    assert.equal(listed.running, true);
    assert.equal(listed.background, true);
    assert.equal(listed.tag, 'bg');
    const waiting = api.app.inject({ method: 'GET', url: `/v1/vms/vm-a/procs/${proc}/wait`, headers: auth });
    const del = await api.app.inject({ method: 'DELETE', url: `/v1/vms/vm-a/procs/${proc}`, headers: auth });
    assert.equal(del.statusCode, 204);
    assert.deepEqual((await waiting).json(), { code: null, signal: 'KILL', timedOut: false });
  });

  test('signal by name; an unknown process is 404 PROC_NOT_FOUND', async () => {
    const { proc } = (await exec({ argv: ['sleep', '30'], background: true })).json();
    const s = await api.app.inject({ method: 'POST', url: `/v1/vms/vm-a/procs/${proc}/signal`, headers: auth, payload: { signal: 'SIGINT' } });
    assert.deepEqual(s.json(), { proc, signal: 'INT' });
    assert.equal((await api.app.inject({ method: 'GET', url: `/v1/vms/vm-a/procs/${proc}/wait`, headers: auth })).json().signal, 'INT');
    const missing = await api.app.inject({ method: 'DELETE', url: '/v1/vms/vm-a/procs/nope', headers: auth });
    assert.deepEqual([missing.statusCode, missing.json().error.code], [404, 'PROC_NOT_FOUND']);
    assert.equal((await api.app.inject({ method: 'POST', url: `/v1/vms/vm-a/procs/${proc}/signal`, headers: auth, payload: { signal: 'term; rm' } })).statusCode, 400);
  });
});
