// Exit codes exactly as the README's table says, for every error code in src/errors.ts and for every command's
// failure paths that need no VM: the fake API answers each error code, a closed port is an unreachable
// controller, and bad input never reaches the API.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { ERRORS, exitCodeOf, type ErrorCode } from '../../src/errors.js';
import { COMMANDS } from '../../src/cli/main.js';
import { ROOT } from '../support/env.js';
import { fail, fakeApi, fakeSnapshot, fakeVm, hangar, ok, type Handler } from './fake-api.js';

const CODES = Object.keys(ERRORS) as ErrorCode[];

/** exit → the codes the README's table lists for it; 'every other code' is exit 4. */
function readmeTable(): Map<ErrorCode, number> {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const rows = [...readme.matchAll(/^\| ([0-5]) \| [^|]+ \|\s*([^|]*?)\s*\|$/gm)];
  assert.equal(rows.length, 6, 'the README has one row per exit code 0..5');
  const m = new Map<ErrorCode, number>();
  for (const [, exit, codes] of rows) {
    for (const [, c] of codes!.matchAll(/`([A-Z_]+)`/g)) {
      assert.ok(c! in ERRORS, `README lists ${c}, which src/errors.ts does not have`);
      assert.ok(!m.has(c as ErrorCode), `${c} is listed once`);
      m.set(c as ErrorCode, Number(exit));
    }
  }
  return m;
}

test('exitCodeOf matches the README table for every error code (unlisted codes are 4, "other error")', () => {
  const table = readmeTable();
  for (const code of CODES) {
    assert.equal(exitCodeOf(code), table.get(code) ?? 4, `${code}: README says ${table.get(code) ?? '4 (not listed)'}; add a new code to the README's table`);
  }
  // The decisions the README documents.
  assert.deepEqual(['VM_NAME_TAKEN', 'VM_INVALID_STATE', 'CONFLICT', 'UNAUTHORIZED', 'VM_NOT_FOUND'].map((c) => exitCodeOf(c as ErrorCode)), [2, 2, 2, 2, 2]);
  assert.deepEqual(['VMM_NOT_AVAILABLE', 'NOT_ROOT', 'NO_DISK_SPACE'].map((c) => exitCodeOf(c as ErrorCode)), [3, 3, 3]);
  assert.equal(exitCodeOf('CONTROLLER_UNREACHABLE'), 5);
});

/** Every command that talks to the controller, with arguments that pass the CLI's own checks. */
const API_COMMANDS: string[][] = [
  ['vm', 'create', '--name', 'alice'], ['vm', 'create', '--no-wait'], ['vm', 'create', '--from-snapshot', 'snap-0123'], ['vm', 'ls'],
  ['vm', 'show', 'alice'], ['vm', 'rm', 'alice'], ['vm', 'start', 'alice'], ['vm', 'start', 'alice', '--no-wait'], ['vm', 'stop', 'alice'],
  ['vm', 'pause', 'alice'], ['vm', 'resume', 'alice'], ['vm', 'console', 'alice'], ['vm', 'console', 'alice', '--follow'], ['vm', 'open', 'alice'],
  ['vm', 'hibernate', 'alice'], ['snapshot', 'create', '--vm', 'alice'], ['snapshot', 'create', '--image', 'desktop'], ['snapshot', 'ls'],
  ['vm', 'screenshot', 'alice', '-o', '/dev/null'], ['vm', 'type', 'alice', 'hi'], ['vm', 'key', 'alice', 'Return'], ['vm', 'click', 'alice', '1', '2'],
  ['vm', 'move', 'alice', '1', '2'], ['vm', 'scroll', 'alice', '1', '2'], ['vm', 'drag', 'alice', '1', '2', '3', '4'], ['vm', 'clipboard', 'alice'],
  ['vm', 'computer', 'alice', '{"action":"screenshot"}'], ['vm', 'network', 'alice'], ['vm', 'network', 'alice', '--egress', 'none'],
  ['snapshot', 'show', 'snap-0123'], ['snapshot', 'rm', 'snap-0123'], ['events'], ['events', '--vm', 'alice'], ['doctor'], ['doctor', '--vm', 'alice'],
  ['tenant', 'create', 'acme', '--max-vms', '3'], ['tenant', 'ls'], ['tenant', 'show', 'acme'], ['tenant', 'set', 'acme', '--max-vms', 'none'], ['tenant', 'rm', 'acme'],
  ['key', 'create', '--tenant', 'acme', '--scope', 'write', '--expires', '30d'], ['key', 'ls'], ['key', 'rm', 'key-0123abcd'], ['audit', '--since', '1h'],
  ['volume', 'create', 'data', '--size', '1G'], ['volume', 'ls'], ['volume', 'show', 'data'], ['volume', 'resize', 'data', '--size', '2G'],
  ['volume', 'snapshot', 'data', '--name', 'copy'], ['volume', 'rm', 'data'], ['volume', 'attach', 'data', 'alice', '--path', '/data'], ['volume', 'detach', 'data', 'alice'],
  ['vm', 'exec', 'alice', 'true'], ['vm', 'shell', 'alice'], ['vm', 'ps', 'alice'], ['vm', 'kill', 'alice', 'p1'], ['vm', 'cp', 'alice:/a', 'alice:/b'],
  ['pool', 'create', 'desk', '--size', '2', '--profile', 'desktop'], ['pool', 'ls'], ['pool', 'show', 'desk'], ['pool', 'rm', 'desk'],
];

test('every API command covered here, and every command of the CLI is either here or has no API call', () => {
  const offline = new Set(['up', 'down', 'image build', 'image ls', 'image rm', 'image prune', 'kernel lint']);
  for (const c of COMMANDS) {
    const name = c.path.join(' ');
    assert.ok(offline.has(name) || API_COMMANDS.some((a) => a.slice(0, c.path.length).join(' ') === name), `${name} is in the exit-code walk`);
  }
});

/** Runs `argv` against a fake API answering `code` and checks the exit code, the printed code and the --json envelope. */
async function expectExit(env: NodeJS.ProcessEnv, argv: string[], c: ErrorCode): Promise<void> {
  const r = await hangar(argv, env);
  assert.equal(r.code, exitCodeOf(c), `${argv.join(' ')} answered ${c}: ${r.err}`);
  assert.match(r.err, new RegExp(`hangar: ${c}: `), `${argv.join(' ')}: the code is printed`);
  if (argv[1] === 'console' || argv[1] === 'shell') return; // the console and the shell are text: no --json
  const j = await hangar([...argv, '--json'], env);
  assert.equal(j.code, exitCodeOf(c));
  assert.equal(JSON.parse(j.out).error.code, c, `${argv.join(' ')} --json: the envelope on stdout`);
}

/** One code or more per exit class, and the ones a newcomer met. */
const SAMPLE: ErrorCode[] = ['INVALID_ARGUMENT', 'VM_NOT_FOUND', 'VM_NAME_TAKEN', 'UNAUTHORIZED', 'VMM_NOT_AVAILABLE', 'NO_DISK_SPACE', 'INTERNAL', 'VM_BOOT_TIMEOUT', 'VMM_CRASHED'];

test('every error code the controller answers exits as the registry says, through every API command', async () => {
  let code: ErrorCode = 'INTERNAL';
  // Lists succeed (names resolve) unless the list is all the command asks; everything else answers the error.
  let failLists = false;
  const handler: Handler = (r) => {
    if (r.method === 'GET' && r.path === '/v1/vms' && !failLists) return ok({ vms: [fakeVm()] });
    if (r.method === 'GET' && r.path === '/v1/snapshots' && !failLists) return ok({ snapshots: [fakeSnapshot()] });
    return fail(code);
  };
  const api = await fakeApi(handler);
  try {
    for (const c of CODES) {
      code = c;
      await expectExit(api.env, ['vm', 'rm', 'alice'], c);
    }
    for (const argv of API_COMMANDS) {
      for (const c of SAMPLE) {
        code = c;
        failLists = argv[1] === 'ls' || argv[1] === 'show'; // their one request is the list
        await expectExit(api.env, argv, c);
      }
    }
    failLists = false;
  } finally {
    await api.close();
  }
});

test('an unreachable controller is exit 5 for every API command', async () => {
  const port = await new Promise<number>((res) => { const s = createServer(); s.listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => res(p)); }); });
  const env = { HANGAR_URL: `http://127.0.0.1:${port}`, HANGAR_TOKEN: 't' };
  for (const argv of API_COMMANDS) {
    const r = await hangar(argv, env);
    assert.equal(r.code, 5, `${argv.join(' ')}: ${r.err}`);
    assert.match(r.err, /CONTROLLER_UNREACHABLE: the controller at http:\/\/127\.0\.0\.1:\d+ does not answer/);
  }
});

test('a 401 without the envelope is UNAUTHORIZED, exit 2, with a hint about the token', async () => {
  const api = await fakeApi(() => ({ status: 401, body: 'nope' }));
  try {
    const r = await hangar(['vm', 'ls'], api.env);
    assert.equal(r.code, 2);
    assert.match(r.err, /UNAUTHORIZED: .*\n {2}the token \(from HANGAR_TOKEN\) is not this controller's/);
  } finally {
    await api.close();
  }
});

test('bad input is exit 2 for every command, before any request: unknown option, extra or missing argument, wrong type', async () => {
  const api = await fakeApi(() => ok({ vms: [fakeVm()] }));
  try {
    for (const c of COMMANDS) {
      const name = c.path.join(' ');
      const required = (c.args ?? []).filter((a) => !a.optional).map(() => 'x');
      // (A rest argument, as vm exec's command, takes any further words.)
      const cases = [[...c.path, ...required, '--frobnicate'], ...((c.args ?? []).some((a) => a.rest) ? [] : [[...c.path, ...required, ...(c.args ?? []).map(() => 'x'), 'extra']])];
      if (required.length) cases.push([...c.path]);
      for (const o of Object.entries(c.options).filter(([, d]) => d.int).map(([k]) => k)) cases.push([...c.path, ...required, `--${o}`, 'abc']);
      for (const o of Object.entries(c.options).filter(([, d]) => d.type === 'string').map(([k]) => k)) cases.push([...c.path, ...required, `--${o}`]);
      for (const argv of cases) {
        const before = api.requests.length;
        const r = await hangar(argv, api.env);
        assert.equal(r.code, 2, `${argv.join(' ')}: ${r.err}`);
        assert.match(r.err, /INVALID_ARGUMENT/, argv.join(' '));
        assert.equal(api.requests.length, before, `${name}: nothing was sent`);
      }
    }
  } finally {
    await api.close();
  }
});

test('extra arguments are refused by name', async () => {
  const r = await hangar(['vm', 'ls', 'alice']);
  assert.equal(r.code, 2);
  assert.match(r.err, /INVALID_ARGUMENT: unexpected argument "alice": 'hangar vm ls' takes no arguments/);
  const s = await hangar(['vm', 'rm', 'alice', 'bob', '--json']);
  assert.equal(JSON.parse(s.out).error.details.argument, 'bob');
});
