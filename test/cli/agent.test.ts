// hangar vm exec / ps / kill / cp against a real API server over the FAKE agent (commands run on the host in a temp
// directory): output streamed as produced, exit codes passed through (128+n for a signal), stdin forwarded when it
// is not a terminal, env and cwd, rest-argument parsing (`exec ID ls --help` runs ls), cp in every direction with
// progress unless quiet, and the pure parts (env, start message, exit codes, cp path syntax).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { envFrom, execStart } from '../../src/cli/agent.js';
import { intoDir, parseCpSpec } from '../../src/cli/cp.js';
import { exitCodeFor } from '../../src/cli/exec-socket.js';
import { main } from '../../src/cli/main.js';
import type { CliIO } from '../../src/cli/command.js';
import { TEST_TOKEN } from '../support/api.js';
import { createAgentApi, type AgentApi } from '../api/agent-harness.js';

let api: AgentApi;
let local: string;
before(async () => { api = await createAgentApi(); local = mkdtempSync(join(tmpdir(), 'hangar-cp-')); });
after(async () => { await api.close(); rmSync(local, { recursive: true, force: true }); });

interface Run { code: number; out: string; err: string; outAt: number[] }
async function hangar(argv: string[], opts: { stdin?: Readable } = {}): Promise<Run> {
  const r: Run = { code: 0, out: '', err: '', outAt: [] };
  const io: CliIO = {
    out: (s) => { r.out += s; r.outAt.push(performance.now()); }, err: (s) => { r.err += s; },
    env: { HANGAR_URL: api.url, HANGAR_TOKEN: TEST_TOKEN },
    ...(opts.stdin ? { stdin: opts.stdin } : {}),
  };
  r.code = await main(argv, io);
  return r;
}

describe('hangar vm exec', () => {
  test('stdout and stderr apart, the exit code passed through', async () => {
    const r = await hangar(['vm', 'exec', 'vm-a', '--', 'sh', '-c', 'echo out; echo err >&2; exit 7']);
    assert.deepEqual([r.code, r.out, r.err], [7, 'out\n', 'err\n']);
  });

  test('a signal exits 128+n', async () => {
    assert.equal((await hangar(['vm', 'exec', 'vm-a', 'sh', '-c', 'kill -TERM $$'])).code, 143);
  });

  test('output arrives as produced, not at exit', async () => {
    const t0 = performance.now();
    const r = await hangar(['vm', 'exec', 'vm-a', 'sh', '-c', 'echo a; sleep 0.6; echo b']);
    assert.equal(r.out, 'a\nb\n');
    assert.ok(r.outAt[0]! - t0 < performance.now() - t0 - 400, 'the first line came long before the end');
  });

  test('stdin is forwarded when it is not a terminal', async () => {
    const stdin = Readable.from([Buffer.from('hello '), Buffer.from('stdin')]);
    const r = await hangar(['vm', 'exec', 'vm-a', 'cat'], { stdin });
    assert.deepEqual([r.code, r.out], [0, 'hello stdin']);
    const tty = Object.assign(new PassThrough(), { isTTY: true });
    const t = await hangar(['vm', 'exec', 'vm-a', 'cat'], { stdin: tty });
    assert.equal(t.code, 0, 'a terminal is not forwarded without -i: cat reads /dev/null');
    assert.equal(api.agent.execs.at(-1)!.req.stdin, false);
  });

  test('--env, --cwd, --user; options after the command are the command\'s', async () => {
    await api.app.inject({ method: 'POST', url: '/v1/vms/vm-a/files/mkdir', headers: { authorization: `Bearer ${TEST_TOKEN}` }, payload: { path: '/srv' } });
    const r = await hangar(['vm', 'exec', 'vm-a', '--env', 'A=1', '--env', 'B=x=y', '--cwd', '/srv', '--user', '1000', 'sh', '-c', 'echo $A $B; pwd']);
    assert.match(r.out, /^1 x=y\n.*\/srv\n$/);
    assert.equal(api.agent.execs.at(-1)!.req.user, 1000);
    const h = await hangar(['vm', 'exec', 'vm-a', 'printf', '%s\\n', '--help']);
    assert.deepEqual([h.code, h.out], [0, '--help\n']);
  });

  test('bad input is exit 2 before anything runs', async () => {
    const n = api.agent.execs.length;
    assert.equal((await hangar(['vm', 'exec', 'vm-a'])).code, 2);
    assert.equal((await hangar(['vm', 'exec', 'vm-a', '--env', 'nope', 'true'])).code, 2);
    assert.equal((await hangar(['vm', 'exec', 'vm-off', 'true'])).code, 2, 'a stopped VM is VM_INVALID_STATE');
    assert.equal(api.agent.execs.length, n);
  });
});

describe('hangar vm ps / kill', () => {
  test('lists a background process and kills it', async () => {
    const { proc } = (await api.app.inject({ method: 'POST', url: '/v1/vms/vm-a/exec', headers: { authorization: `Bearer ${TEST_TOKEN}` }, payload: { argv: ['sleep', '30'], background: true, tag: 'cli' } })).json();
    const ps = await hangar(['vm', 'ps', 'vm-a']);
    assert.match(ps.out, new RegExp(`${proc}\\s+\\d+\\s+running\\s+background\\s+cli\\s+sleep 30`));
    assert.equal((await hangar(['vm', 'kill', 'vm-a', proc])).code, 0);
    const json = JSON.parse((await hangar(['vm', 'ps', 'vm-a', '--json'])).out) as { proc: string; running: boolean }[];
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(json.find((p) => p.proc === proc));
    assert.equal((await hangar(['vm', 'kill', 'vm-a', 'nope'])).code, 2);
  });
});

describe('hangar vm cp', () => {
  test('local → VM → local, into directories, with progress unless --quiet', async () => {
    const src = join(local, 'a.bin');
    writeFileSync(src, Buffer.alloc(3 * 1024 * 1024, 7));
    await api.app.inject({ method: 'POST', url: '/v1/vms/vm-a/files/mkdir', headers: { authorization: `Bearer ${TEST_TOKEN}` }, payload: { path: '/in' } });
    const up = await hangar(['vm', 'cp', src, 'vm-a:/in']);
    assert.equal(up.code, 0, up.err);
    assert.match(up.err, /MiB/);
    assert.equal(readFileSync(join(api.agent.rootOf('vm-a'), 'in/a.bin')).length, 3 * 1024 * 1024);
    const down = await hangar(['vm', 'cp', '--quiet', 'vm-a:/in/a.bin', join(local, 'b.bin')]);
    assert.deepEqual([down.code, down.err], [0, '']);
    assert.deepEqual(readFileSync(join(local, 'b.bin')), readFileSync(src));
  });

  test('VM to VM through the copy route', async () => {
    writeFileSync(join(api.agent.rootOf('vm-a'), 'token.json'), '{"t":1}');
    const r = await hangar(['vm', 'cp', 'vm-a:/token.json', 'vm-b:/token.json', '--json']);
    assert.equal(r.code, 0, r.err);
    assert.equal(JSON.parse(r.out).size, 7);
    assert.equal(readFileSync(join(api.agent.rootOf('vm-b'), 'token.json'), 'utf8'), '{"t":1}');
  });

  test('errors: no VM side, a relative guest path, a missing guest file', async () => {
    assert.equal((await hangar(['vm', 'cp', 'a', 'b'])).code, 2);
    assert.equal((await hangar(['vm', 'cp', 'vm-a:etc/hosts', 'x'])).code, 2);
    const missing = await hangar(['vm', 'cp', 'vm-a:/nope', join(local, 'n')]);
    assert.equal(missing.code, 2);
    assert.match(missing.err, /GUEST_PATH_NOT_FOUND/);
  });
});

describe('pure parts', () => {
  test('cp path syntax', () => {
    assert.deepEqual(parseCpSpec('alice:/home/user/x'), { vm: 'alice', path: '/home/user/x' });
    assert.deepEqual(parseCpSpec('./a:b'), { local: './a:b' });
    assert.deepEqual(parseCpSpec('/tmp/x'), { local: '/tmp/x' });
    assert.deepEqual(parseCpSpec('-'), { local: '-' });
    assert.throws(() => parseCpSpec('alice:rel'), /absolute/);
    assert.equal(intoDir('/d/', false, 'f'), '/d/f');
    assert.equal(intoDir('/d', true, 'f'), '/d/f');
    assert.equal(intoDir('/d/x', false, 'f'), '/d/x');
  });
  test('exit codes, env, the start message', () => {
    assert.equal(exitCodeFor({ code: 3, signal: null, timedOut: false }), 3);
    assert.equal(exitCodeFor({ code: null, signal: 'KILL', timedOut: false }), 137);
    assert.equal(exitCodeFor({ code: null, signal: 'INT', timedOut: false }), 130);
    assert.deepEqual(envFrom(['A=1', 'B=']), { A: '1', B: '' });
    assert.throws(() => envFrom(['=x']), /NAME=VALUE/);
    assert.deepEqual(execStart({ timeout: '5', shell: true }, ['ls', '-l'], true), { cmd: 'ls -l', timeoutMs: 5000, stdin: true });
    assert.throws(() => execStart({}, [], false), /missing the command/);
  });
});
