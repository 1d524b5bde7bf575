// Validation in the user's terms: a server 400 about a body field is reported for the flag that set it, with the
// server's range or allowed values, one message per mistake — from structured details, from today's validator
// output, and through `hangar vm create` against a fake API and against the real API server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FIELD_FLAGS, fieldOf, inFlagTerms } from '../../src/cli/flags.js';
import { HangarError, type ErrorCode } from '../../src/errors.js';
import { auth, createApiHarness } from '../support/api.js';
import { fail, fakeApi, hangar } from './fake-api.js';

const msg = (code: ErrorCode, message: string, details: Record<string, unknown>, given: Record<string, string> = {}): string => {
  const e = inFlagTerms(new HangarError(code, message, details), given);
  assert.ok(e instanceof HangarError);
  return e.message;
};

test('structured details (field, reason, min, max, allowed, expected) become one sentence about the flag', () => {
  assert.equal(msg('INVALID_ARGUMENT', 'x', { field: 'memMiB', reason: 'type', min: 128, max: 16384, expected: 'integer' }, { '--mem': 'abc' }), '--mem must be an integer from 128 to 16384 (got "abc")');
  assert.equal(msg('INVALID_ARGUMENT', 'x', { field: 'ttlSeconds', reason: 'range', min: 60, max: 604800 }, { '--ttl': '-1' }), '--ttl must be an integer from 60 to 604800 (got "-1")');
  assert.equal(msg('INVALID_ARGUMENT', 'x', { field: 'vcpus', reason: 'range', min: 1 }, { '--vcpus': '0' }), '--vcpus must be an integer of at least 1 (got "0")');
  assert.equal(msg('INVALID_ARGUMENT', 'x', { field: 'profile', reason: 'enum', allowed: ['desktop', 'browser'] }, { '--profile': 'nope' }), '--profile must be one of: desktop, browser (got "nope")');
  assert.equal(msg('INVALID_ARGUMENT', 'x', { field: 'vmm', allowed: ['qemu', 'firecracker'] }, { '--vmm': 'xen' }), '--vmm must be one of: qemu, firecracker (got "xen")', 'allowed alone means enum');
  assert.equal(msg('INVALID_ARGUMENT', 'x', { field: 'name', reason: 'required' }), '--name is required');
  assert.equal(msg('UNKNOWN_FIELD', "unknown field 'fromSnapshot' in body", { field: 'fromSnapshot' }, { '--from-snapshot': 'snap-1' }), "--from-snapshot is not supported by this controller (it does not know 'fromSnapshot')");
  const e = inFlagTerms(new HangarError('INVALID_ARGUMENT', 'x', { field: 'memMiB', min: 1, max: 2 }), { '--mem': '3' }) as HangarError;
  assert.deepEqual([e.code, e.details.field, e.details.flag, e.details.min], ['INVALID_ARGUMENT', 'memMiB', '--mem', 1], 'code and details kept, the flag added');
});

test('without min/max/allowed: the server message, addressed to the flag', () => {
  // Today's Fastify validator: the field only in details.validation[].path and in the message.
  assert.equal(msg('INVALID_ARGUMENT', 'body/vcpus must be >= 1', { validation: [{ keyword: 'minimum', path: '/vcpus' }] }, { '--vcpus': '0' }), '--vcpus must be >= 1 (got "0")');
  assert.equal(msg('INVALID_ARGUMENT', 'body/profile must be equal to one of the allowed values', { validation: [{ keyword: 'enum', path: '/profile' }] }, { '--profile': 'nope' }),
    '--profile must be equal to one of the allowed values (got "nope")');
  // normalizeCreate's own words carry the got already.
  assert.equal(msg('INVALID_ARGUMENT', 'name must match /^[a-z0-9]$/ (got "A")', { field: 'name' }, { '--name': 'A' }), '--name must match /^[a-z0-9]$/ (got "A")');
  assert.equal(msg('INVALID_ARGUMENT', 'the image is odd', { field: 'image', reason: 'format' }, { '--image': '..' }), '--image: the image is odd (got "..")');
});

test('errors about no flag, or not validation errors, pass unchanged', () => {
  for (const e of [new HangarError('INVALID_ARGUMENT', 'x', { field: 'sudo' }), new HangarError('VM_NAME_TAKEN', 'taken', { field: 'name' }), new HangarError('INVALID_ARGUMENT', 'no field'), new Error('x')]) {
    assert.equal(inFlagTerms(e, {}), e);
  }
  assert.equal(fieldOf(new HangarError('INVALID_ARGUMENT', 'querystring/lines must be <= 10000')), 'lines');
  assert.equal(fieldOf(new HangarError('INVALID_ARGUMENT', 'x', { field: '/memMiB' })), 'memMiB');
  for (const f of ['memMiB', 'vcpus', 'ttlSeconds', 'profile', 'name', 'image', 'vmm', 'fromSnapshot']) assert.ok(FIELD_FLAGS[f]?.startsWith('--'), f);
});

test('vm create: --ttl -1 and --ttl=-1 reach the server as -1 and give the same range message; the CLI checks types itself', async () => {
  const api = await fakeApi((r) => {
    const b = r.body as Record<string, unknown>;
    if (b.ttlSeconds !== undefined) return fail('INVALID_ARGUMENT', 'ttlSeconds must be an integer from 60 to 604800 (got -1)', { field: 'ttlSeconds', reason: 'range', min: 60, max: 604800 });
    return fail('INVALID_ARGUMENT', 'body/profile must be equal to one of the allowed values', { field: 'profile', reason: 'enum', allowed: ['desktop', 'browser'] });
  });
  try {
    const a = await hangar(['vm', 'create', '--ttl', '-1'], api.env);
    const b = await hangar(['vm', 'create', '--ttl=-1'], api.env);
    assert.equal(a.code, 2);
    assert.equal(a.err, 'hangar: INVALID_ARGUMENT: --ttl must be an integer from 60 to 604800 (got "-1")\n');
    assert.equal(b.err, a.err);
    assert.deepEqual(api.requests.map((r) => (r.body as { ttlSeconds: unknown }).ttlSeconds), [-1, -1]);
    const p = await hangar(['vm', 'create', '--profile', 'nope', '--json'], api.env);
    assert.equal(JSON.parse(p.out).error.message, '--profile must be one of: desktop, browser (got "nope")');
    const before = api.requests.length;
    for (const [flag, v] of [['--mem', 'abc'], ['--vcpus', '2x'], ['--ttl', '1h']]) {
      const r = await hangar(['vm', 'create', flag!, v!], api.env);
      assert.equal(r.code, 2);
      assert.match(r.err, new RegExp(`^hangar: INVALID_ARGUMENT: ${flag} must be an integer \\(got "${v}"\\)\\n`));
    }
    assert.equal(api.requests.length, before, 'type errors never reach the controller');
  } finally {
    await api.close();
  }
});

test('vm create against the real API server: each refused value is reported for its flag', async () => {
  const h = await createApiHarness();
  const url = await h.app.listen({ host: '127.0.0.1', port: 0 });
  const env = { HANGAR_URL: url, HANGAR_TOKEN: auth.authorization.slice('Bearer '.length) };
  try {
    const cases: [string[], RegExp][] = [
      [['--vcpus', '0'], /^--vcpus must be .*1.* \(got "0"\)$/],
      [['--mem', '99'], /^--mem must be an integer from 128 to 16384 \(got "99"\)$/],
      [['--profile', 'nope'], /^--profile must be .* \(got "nope"\)$/],
      [['--ttl', '-1'], /^--ttl must be .* \(got "-1"\)$/],
      [['--ttl', '5'], /^--ttl must be .*60.* \(got "5"\)$/],
      [['--name', 'Not Valid'], /^--name must .*\(got "Not Valid"\)$/],
      [['--vmm', 'xen'], /^--vmm must be .* \(got "xen"\)$/],
      [['--pool', 'Bad Pool'], /^--pool must .*\(got "Bad Pool"\)$/],
    ];
    for (const [argv, re] of cases) {
      const r = await hangar(['vm', 'create', ...argv, '--json'], env);
      assert.equal(r.code, 2, `${argv.join(' ')}: ${r.out}`);
      const e = JSON.parse(r.out).error as { code: string; message: string; details: { flag: string } };
      assert.equal(e.code, 'INVALID_ARGUMENT');
      assert.match(e.message, re, argv.join(' '));
      assert.equal(e.details.flag, argv[0]);
    }
  } finally {
    await h.close();
  }
});
