// The API schemas (src/api/schemas.ts and the create-VM schema in src/vm/input.ts) through the server: JSON bodies
// are never type-coerced, query strings are; every refusal is a 400 with structured details and reaches nothing
// behind the edge; the limits /openapi.json shows are exactly the limits enforced, also for configured limits.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_LIMITS, type VmLimits } from '../../src/vm/input.js';
import { createFakeApi, fakeAuth, type FakeApi } from './fake-api.js';

type Json = Record<string, unknown>;

async function post(api: FakeApi, url: string, payload: unknown): Promise<{ status: number; body: Json }> {
  const res = await api.app.inject({ method: 'POST', url, headers: { ...fakeAuth, 'content-type': 'application/json' }, payload: JSON.stringify(payload) });
  return { status: res.statusCode, body: res.json() as Json };
}

const details = (b: Json): Json => (b.error as { details: Json }).details;
const code = (b: Json): string => (b.error as { code: string }).code;
const message = (b: Json): string => (b.error as { message: string }).message;

describe('JSON bodies are validated as sent, without coercion', () => {
  let api: FakeApi;
  before(async () => { api = await createFakeApi(); });
  after(async () => { await api.close(); });

  test('a string for a number, a number for a string, a list for a scalar, true for a number: 400, nothing created', async () => {
    const cases: [Json, string, string][] = [
      [{ vcpus: '1e3' }, 'vcpus', 'integer'],
      [{ vcpus: '2' }, 'vcpus', 'integer'],
      [{ memMiB: 'abc' }, 'memMiB', 'integer'],
      [{ memMiB: true }, 'memMiB', 'integer'],
      [{ ttlSeconds: [3600] }, 'ttlSeconds', 'integer'],
      [{ vcpus: null }, 'vcpus', 'integer'],
      [{ name: 123 }, 'name', 'string'],
      [{ name: ['a'] }, 'name', 'string'],
      [{ image: { id: 'x' } }, 'image', 'string'],
      [{ vcpus: 1.5 }, 'vcpus', 'integer'],
    ];
    for (const [payload, field, expected] of cases) {
      const before = api.calls.length;
      const { status, body } = await post(api, '/v1/vms', payload);
      assert.equal(status, 400, JSON.stringify(payload));
      assert.equal(code(body), 'INVALID_ARGUMENT', JSON.stringify(payload));
      const d = details(body);
      assert.equal(d.field, field);
      assert.equal(d.in, 'body');
      assert.equal(d.reason, 'type');
      assert.equal(d.expected, expected);
      assert.deepEqual(d.got, Object.values(payload)[0]);
      assert.deepEqual(api.mutations(before), [], `${JSON.stringify(payload)} reached the service`);
    }
  });

  test('messages name the field and the rule; details carry min/max/allowed for the CLI', async () => {
    const mem = await post(api, '/v1/vms', { memMiB: 'abc' });
    assert.equal(message(mem.body), 'memMiB must be an integer from 128 to 16384 (got "abc")');
    assert.deepEqual(details(mem.body), { field: 'memMiB', in: 'body', reason: 'type', expected: 'integer', min: 128, max: 16384, got: 'abc' });
    const range = await post(api, '/v1/vms', { memMiB: 64 });
    assert.deepEqual(details(range.body), { field: 'memMiB', in: 'body', reason: 'range', expected: 'integer', min: 128, max: 16384, got: 64 });
    const profile = await post(api, '/v1/vms', { profile: 'server' });
    assert.match(message(profile.body), /^profile must be one of desktop, browser/);
    assert.deepEqual(details(profile.body), { field: 'profile', in: 'body', reason: 'enum', allowed: ['desktop', 'browser'], got: 'server' });
    const name = await post(api, '/v1/vms', { name: 'Bad Name' });
    assert.equal(details(name.body).reason, 'format');
    const long = await post(api, '/v1/vms', { name: 'x'.repeat(200) });
    assert.deepEqual({ ...details(long.body), got: undefined }, { field: 'name', in: 'body', reason: 'range', expected: 'string', min: 1, max: 63, got: undefined });
    assert.equal((details(long.body).got as string).length, 64, 'the offending string is cut to 64 characters');
    const unknown = await post(api, '/v1/vms', { sudo: true });
    assert.equal(code(unknown.body), 'UNKNOWN_FIELD');
    assert.equal(details(unknown.body).field, 'sudo');
    assert.equal(details(unknown.body).reason, 'unknown');
    const notObject = await post(api, '/v1/vms', ['a']);
    assert.deepEqual(details(notObject.body), { field: '', in: 'body', reason: 'type', expected: 'object', got: ['a'] });
    assert.deepEqual(api.mutations(), []);
  });

  test('snapshot, viewer bodies: the same rules (exactly one of vm/image; ttlSeconds bounded by the desktop limit)', async () => {
    for (const payload of [{}, { vm: 'a', image: 'b' }]) {
      const { status, body } = await post(api, '/v1/snapshots', payload);
      assert.equal(status, 400);
      assert.deepEqual(details(body), { field: '', in: 'body', reason: 'required', allowed: ['vm', 'image'] });
    }
    assert.equal(details((await post(api, '/v1/snapshots', { vm: 7 })).body).expected, 'string');
    const ttl = await post(api, '/v1/vms/vm-a/viewer', { ttlSeconds: '60' });
    assert.equal(ttl.status, 400);
    assert.equal(details(ttl.body).field, 'ttlSeconds');
    const tooLong = await post(api, '/v1/vms/vm-a/viewer', { ttlSeconds: 7200 });
    assert.deepEqual({ reason: details(tooLong.body).reason, max: details(tooLong.body).max }, { reason: 'range', max: 3600 });
    assert.equal((await post(api, '/v1/vms/vm-a/viewer', { ttlSeconds: 60 })).status, 200);
    assert.deepEqual(api.mutations(), []);
  });

  test('a valid body reaches the service once, normalised with the defaults', async () => {
    const before = api.calls.length;
    const { status } = await post(api, '/v1/vms', { name: 'ok', profile: 'browser' });
    assert.equal(status, 202);
    assert.equal(api.mutations(before).length, 1);
    assert.deepEqual(api.created().at(-1), { image: 'browser', profile: 'browser', vcpus: 1, memMiB: 1024, name: 'ok', ttlSeconds: null, vmm: null, fromSnapshot: null, network: null, given: { vcpus: false, memMiB: false, profile: true } });
  });
});

describe('query strings and params are text: converted only when exactly a number or a boolean', () => {
  let api: FakeApi;
  before(async () => { api = await createFakeApi(); });
  after(async () => { await api.close(); });

  const get = async (url: string, method: 'GET' | 'POST' = 'GET'): Promise<{ status: number; body: Json | string }> => {
    const res = await api.app.inject({ method, url, headers: fakeAuth, ...(method === 'POST' ? { payload: {} } : {}) });
    return { status: res.statusCode, body: String(res.headers['content-type']).includes('json') ? res.json() as Json : res.body };
  };

  test('"42", "true" are converted; "1e3", "yes", a repeated key are refused in the query', async () => {
    assert.equal((await get('/v1/vms/vm-a/console?lines=1')).body, 'line 2\n');
    assert.equal((await get('/v1/vms?wait=true&timeoutMs=5000', 'POST')).status, 201);
    assert.equal((await get('/v1/vms?wait=false', 'POST')).status, 202);
    for (const [url, field, reason] of [
      ['/v1/vms/vm-a/console?lines=1e3', 'lines', 'type'],
      ['/v1/vms/vm-a/console?lines=0', 'lines', 'range'],
      ['/v1/vms/vm-a/console?follow=yes', 'follow', 'type'],
      ['/v1/vms/vm-a/console?lines=1&lines=2', 'lines', 'type'],
      ['/v1/vms/vm-a/console?nope=1', 'nope', 'unknown'],
      ['/v1/events?since=-1', 'since', 'format'],
      ['/v1/events?since=later', 'since', 'format'],
    ] as const) {
      const { status, body } = await get(url);
      assert.equal(status, 400, url);
      assert.deepEqual({ field: details(body as Json).field, in: details(body as Json).in, reason: details(body as Json).reason }, { field, in: 'query', reason }, url);
    }
    const before = api.calls.length;
    assert.equal((await get('/v1/vms?wait=yes', 'POST')).status, 400);
    assert.deepEqual(api.mutations(before), [], 'a bad query string creates nothing either');
  });
});

/** The create-VM body as /openapi.json documents it. */
async function documentedCreate(api: FakeApi): Promise<Record<string, { minimum?: number; maximum?: number; minLength?: number; maxLength?: number }>> {
  const doc = (await api.app.inject({ method: 'GET', url: '/openapi.json', headers: fakeAuth })).json();
  return doc.paths['/v1/vms'].post.requestBody.content['application/json'].schema.properties;
}

async function checkDocumentedLimitsAreEnforced(api: FakeApi, expected: VmLimits): Promise<void> {
  const props = await documentedCreate(api);
  const documented = {
    vcpus: { min: props.vcpus?.minimum, max: props.vcpus?.maximum },
    memMiB: { min: props.memMiB?.minimum, max: props.memMiB?.maximum },
    ttlSeconds: { min: props.ttlSeconds?.minimum, max: props.ttlSeconds?.maximum },
    name: { maxLength: props.name?.maxLength },
  };
  assert.deepEqual(documented, expected, 'the document shows the configured limits');
  for (const field of ['vcpus', 'memMiB', 'ttlSeconds'] as const) {
    const { min, max } = documented[field] as { min: number; max: number };
    for (const [value, ok] of [[min, true], [max, true], [min - 1, false], [max + 1, false]] as const) {
      const before = api.calls.length;
      const { status, body } = await post(api, '/v1/vms', { [field]: value });
      if (ok) {
        assert.equal(status, 202, `${field}=${value} is documented as allowed: ${JSON.stringify(body)}`);
        assert.equal(api.created().at(-1)?.[field], value);
      } else {
        assert.equal(status, 400, `${field}=${value} is documented as refused`);
        assert.deepEqual(details(body), { field, in: 'body', reason: 'range', expected: 'integer', min, max, got: value });
        assert.deepEqual(api.mutations(before), []);
      }
    }
  }
  const maxName = documented.name.maxLength!;
  assert.equal((await post(api, '/v1/vms', { name: 'n'.repeat(maxName) })).status, 202);
  assert.equal((await post(api, '/v1/vms', { name: 'n'.repeat(maxName + 1) })).status, 400);
}

describe('the limits in /openapi.json are the limits enforced', () => {
  test('defaults: vcpus 1–8, memMiB 128–16384, ttlSeconds 60–604800, names up to 63', async () => {
    const api = await createFakeApi();
    try {
      await checkDocumentedLimitsAreEnforced(api, DEFAULT_LIMITS);
    } finally {
      await api.close();
    }
  });

  test('configured limits change both the document and what is enforced', async () => {
    const limits: VmLimits = { vcpus: { min: 2, max: 32 }, memMiB: { min: 256, max: 65536 }, ttlSeconds: { min: 1, max: 86400 }, name: { maxLength: 20 } };
    const api = await createFakeApi({ limits });
    try {
      await checkDocumentedLimitsAreEnforced(api, limits);
      // Defaults stay inside a configured range: a host that requires 2 vCPUs gets 2, not 1.
      assert.equal((await post(api, '/v1/vms', {})).status, 202);
      assert.deepEqual({ vcpus: api.created().at(-1)?.vcpus, memMiB: api.created().at(-1)?.memMiB }, { vcpus: 2, memMiB: 512 });
    } finally {
      await api.close();
    }
  });
});
