// Route tests through injection (and one real listening server for streams): auth on every route, unknown
// fields, sizes, error codes, OpenAPI completeness.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Validator } from '@seriousme/openapi-schema-validator';
import { coreRoutes, eventsStart } from '../../src/api/core-routes.js';
import { openApiPath } from '../../src/api/openapi.js';
import { ID_MAX_LENGTH, idParams } from '../../src/api/schemas.js';
import { redactUrl } from '../../src/api/server.js';
import { ERRORS, exitCodeOf } from '../../src/errors.js';
import { auth, createApiHarness, TEST_TOKEN, type ApiHarness } from '../support/api.js';
import { createFakeApi, fakeAuth, type FakeApi } from './fake-api.js';

describe('controller API (injection)', () => {
  let h: ApiHarness;
  before(async () => {
    h = await createApiHarness();
    h.insertVm('vm-stopped', 'stopped');
    mkdirSync(join(h.stateDir, 'vms', 'vm-stopped'), { recursive: true });
    writeFileSync(join(h.stateDir, 'vms', 'vm-stopped', 'console.log'), Array.from({ length: 300 }, (_, i) => `line ${i + 1}`).join('\n') + '\n');
  });
  after(async () => { await h.close(); });

  const routeList = (): { method: string; url: string; auth: string }[] =>
    [...coreRoutes(h.ctx).map((r) => ({ method: r.method, url: r.url, auth: r.auth })), { method: 'GET', url: '/openapi.json', auth: 'bearer' }];

  test('every route but /healthz refuses a missing or wrong token with 401 UNAUTHORIZED', async () => {
    for (const r of routeList()) {
      const url = r.url.replace(':id', 'vm-stopped');
      if (r.auth === 'none') {
        assert.equal((await h.app.inject({ method: r.method, url })).statusCode, 200, url);
        continue;
      }
      for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: `Basic ${TEST_TOKEN}` }, { authorization: `Bearer ${TEST_TOKEN}x` }]) {
        const res = await h.app.inject({ method: r.method, url, headers });
        assert.equal(res.statusCode, 401, `${r.method} ${url} with ${JSON.stringify(headers)}`);
        assert.equal(res.json().error.code, 'UNAUTHORIZED');
      }
    }
  });

  test('the right token is accepted', async () => {
    const res = await h.app.inject({ method: 'GET', url: '/v1/vms', headers: auth });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json().vms.map((v: { id: string }) => v.id), ['vm-stopped']);
    assert.ok(res.headers['x-request-id']);
  });

  test('the cached VM list follows every write to the store', async () => {
    const list = async (): Promise<string[]> => (await h.app.inject({ method: 'GET', url: '/v1/vms', headers: auth })).json().vms.map((v: { id: string; state: string }) => `${v.id}:${v.state}`);
    assert.deepEqual(await list(), ['vm-stopped:stopped']);
    h.insertVm('vm-cache', 'ready');
    assert.deepEqual(await list(), ['vm-stopped:stopped', 'vm-cache:ready']);
    h.store.setState('vm-cache', 'paused');
    assert.deepEqual(await list(), ['vm-stopped:stopped', 'vm-cache:paused']);
    h.store.deleteVm('vm-cache');
    assert.deepEqual(await list(), ['vm-stopped:stopped']);
  });

  test('unknown fields in body or query are refused with UNKNOWN_FIELD and create nothing', async () => {
    const body = await h.app.inject({ method: 'POST', url: '/v1/vms', headers: auth, payload: { profile: 'desktop', sudo: true } });
    assert.equal(body.statusCode, 400);
    assert.equal(body.json().error.code, 'UNKNOWN_FIELD');
    assert.match(body.json().error.message, /sudo/);
    const query = await h.app.inject({ method: 'GET', url: '/v1/vms/vm-stopped/console?lines=5&evil=1', headers: auth });
    assert.equal(query.json().error.code, 'UNKNOWN_FIELD');
    assert.equal(h.store.listVms().length, 1);
  });

  test('invalid values are refused with INVALID_ARGUMENT before anything happens', async () => {
    for (const payload of [{ vcpus: 0 }, { vcpus: 'many' }, { memMiB: 5 }, { name: 'a;reboot' }, { name: '$(id)' }, { profile: 'server' }, { ttlSeconds: 5 }, { image: '../../etc' }]) {
      const res = await h.app.inject({ method: 'POST', url: '/v1/vms', headers: auth, payload });
      assert.equal(res.statusCode, 400, JSON.stringify(payload));
      assert.equal(res.json().error.code, 'INVALID_ARGUMENT', JSON.stringify(payload));
    }
    const notJson = await h.app.inject({ method: 'POST', url: '/v1/vms', headers: { ...auth, 'content-type': 'application/json' }, payload: '{nope' });
    assert.equal(notJson.statusCode, 400);
    assert.equal(h.store.listVms().length, 1);
    assert.equal(h.store.allocations().length, 0);
  });

  test('an oversized body is refused with 413 PAYLOAD_TOO_LARGE', async () => {
    const res = await h.app.inject({ method: 'POST', url: '/v1/vms', headers: auth, payload: { name: 'x', image: 'a'.repeat(64 * 1024) } });
    assert.equal(res.statusCode, 413);
    assert.equal(res.json().error.code, 'PAYLOAD_TOO_LARGE');
  });

  test('errors carry stable codes mapped to HTTP in one place', async () => {
    const cases: [string, string, number, string, unknown?][] = [
      ['GET', '/v1/vms/nope', 404, 'VM_NOT_FOUND'],
      ['POST', '/v1/vms/nope/stop', 404, 'VM_NOT_FOUND'],
      ['DELETE', '/v1/vms/nope', 404, 'VM_NOT_FOUND'],
      ['POST', '/v1/vms/vm-stopped/pause', 409, 'VM_INVALID_STATE'],
      ['POST', '/v1/vms/vm-stopped/resume', 409, 'VM_INVALID_STATE'],
      ['POST', '/v1/vms/vm-stopped/hibernate', 409, 'VM_INVALID_STATE'],
      ['GET', '/v1/nothing-here', 404, 'NOT_FOUND'],
      ['POST', '/v1/vms', 404, 'IMAGE_NOT_FOUND', { image: 'no-such-image' }],
      ['POST', '/v1/vms', 404, 'SNAPSHOT_NOT_FOUND', { fromSnapshot: 'no-such-snapshot' }],
    ];
    for (const [method, url, status, code, payload] of cases) {
      const res = await h.app.inject({ method: method as 'GET', url, headers: auth, ...(payload ? { payload: payload as object } : {}) });
      assert.equal(res.statusCode, status, `${method} ${url}`);
      assert.equal(res.json().error.code, code, `${method} ${url}`);
    }
    assert.match(String(h.store.mustGetVm('vm-stopped').state), /stopped/);
    // An action whose end state the VM is already in is done, not an error (stop of a stopped VM, start of a
    // running one, with or without waiting); the VM is unchanged.
    const stop = await h.app.inject({ method: 'POST', url: '/v1/vms/vm-stopped/stop', headers: auth });
    assert.equal(stop.statusCode, 200);
    assert.equal(stop.json().state, 'stopped');
    h.insertVm('vm-running', 'ready');
    const before = h.store.events({ since: 0 }).length;
    for (const url of ['/v1/vms/vm-running/start', '/v1/vms/vm-running/start?wait=true', '/v1/vms/vm-running/resume']) {
      const res = await h.app.inject({ method: 'POST', url, headers: auth });
      assert.equal(res.statusCode, 200, url);
      assert.equal(res.json().state, 'ready', url);
    }
    assert.equal(h.store.events({ since: 0 }).length, before, 'nothing happened to it');
    h.store.setState('vm-running', 'stopping');
    h.store.setState('vm-running', 'stopped');
    h.store.deleteVm('vm-running');
  });

  test('a VMM that cannot run here is refused before any record or address exists', async () => {
    const res = await h.app.inject({ method: 'POST', url: '/v1/vms', headers: auth, payload: { vmm: 'firecracker' } });
    assert.equal(res.statusCode, 503);
    assert.equal(res.json().error.code, 'VMM_NOT_AVAILABLE');
    assert.deepEqual(h.store.listVms().map((v) => v.id), ['vm-stopped']);
    assert.deepEqual(h.store.allocations(), []);
  });

  test('events: live only by default; since=0 replays what is kept; since=now and Last-Event-ID', () => {
    assert.equal(eventsStart(undefined, undefined, 64), 64, 'no parameter: live only, no replay of old events');
    assert.equal(eventsStart('now', undefined, 64), 64);
    assert.equal(eventsStart('0', undefined, 64), 0);
    assert.equal(eventsStart('12', undefined, 64), 12);
    assert.equal(eventsStart(undefined, '30', 64), 30, 'a reconnecting client resumes after its last event');
    assert.equal(eventsStart('0', '30', 64), 30);
  });

  test('console tail returns the last lines', async () => {
    const res = await h.app.inject({ method: 'GET', url: '/v1/vms/vm-stopped/console?lines=3', headers: auth });
    assert.equal(res.statusCode, 200);
    assert.equal(res.body, 'line 298\nline 299\nline 300\n');
  });

  test('host, images and metrics answer', async () => {
    const host = (await h.app.inject({ method: 'GET', url: '/v1/host', headers: auth })).json();
    assert.equal(host.network.mode, 'netns');
    assert.deepEqual(host.pool, { size: 5, used: 0, free: 5 });
    assert.ok(host.drivers.some((d: { kind: string }) => d.kind === 'qemu'));
    const images = await h.app.inject({ method: 'GET', url: '/v1/images', headers: auth });
    assert.equal(images.statusCode, 200);
    assert.ok(Array.isArray(images.json().images));
    const metrics = await h.app.inject({ method: 'GET', url: '/metrics', headers: auth });
    assert.match(metrics.body, /^hangar_vms\{state="stopped"\} 1$/m);
    assert.match(metrics.body, /^hangar_ip_pool_free 5$/m);
    assert.match(metrics.body, /^hangar_errors_total\{code="UNAUTHORIZED"\} \d+$/m);
    assert.match(metrics.body, /^hangar_vm_boot_seconds_bucket\{le="\+Inf"\} 0$/m);
    assert.match(metrics.body, /^# TYPE hangar_proxy_bytes_total counter$/m);
    assert.match(metrics.body, /^# TYPE process_cpu_seconds_total counter$/m);
    assert.match(metrics.body, /^# TYPE nodejs_eventloop_lag_seconds gauge$/m);
    assert.equal(metrics.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
  });

  test('the OpenAPI document validates and lists every registered route', async () => {
    const doc = (await h.app.inject({ method: 'GET', url: '/openapi.json', headers: auth })).json();
    const v = new Validator();
    const res = await v.validate(doc);
    assert.deepEqual(res, { valid: true }, JSON.stringify(res.errors));
    const listed = new Set(Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`)));
    for (const r of routeList()) assert.ok(listed.has(`${r.method} ${openApiPath(r.url)}`), `${r.method} ${r.url} is in /openapi.json`);
    // And nothing the router serves is missing: compare with what Fastify registered.
    const served = (h.app as unknown as { servedRoutes: { method: string; url: string }[] }).servedRoutes;
    assert.ok(served.length >= routeList().length);
    for (const r of served) assert.ok(listed.has(`${r.method} ${openApiPath(r.url)}`), `served ${r.method} ${r.url} is in /openapi.json`);
  });

  test('secrets are redacted from logged URLs', () => {
    assert.equal(redactUrl('/view/vm-a?token=abc.def&x=1'), '/view/vm-a?token=[REDACTED]&x=1');
    assert.equal(redactUrl('/v1/vms'), '/v1/vms');
  });
});

describe('controller API (listening server)', () => {
  let h: ApiHarness;
  let base: string;
  before(async () => {
    h = await createApiHarness();
    base = await h.app.listen({ host: '127.0.0.1', port: 0 });
  });
  after(async () => { await h.close(); });

  test('auth and errors through a real socket', async () => {
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    assert.equal((await fetch(`${base}/v1/vms`)).status, 401);
    const ok = await fetch(`${base}/v1/vms`, { headers: auth });
    assert.equal(ok.status, 200);
    const bad = await fetch(`${base}/v1/vms`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ bogus: 1 }) });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { error: { code: string } }).error.code, 'UNKNOWN_FIELD');
  });

  test('lifecycle events stream as SSE and resume after Last-Event-ID', async () => {
    const first = h.store.appendEvent('vm-x', 'test.one', { n: 1 });
    const ctl = new AbortController();
    const res = await fetch(`${base}/v1/events?since=${first.seq - 1}`, { headers: auth, signal: ctl.signal });
    assert.equal(res.headers.get('content-type'), 'text/event-stream');
    const reader = res.body!.getReader();
    let text = '';
    setTimeout(() => h.store.appendEvent('vm-x', 'test.two', { n: 2 }), 50);
    while (!text.includes('test.two')) text += new TextDecoder().decode((await reader.read()).value);
    ctl.abort();
    assert.match(text, new RegExp(`id: ${first.seq}\\nevent: test.one\\n`));
    assert.match(text, /event: test\.two\ndata: .*"n":2/);
  });
});

describe('router errors in the API envelope', () => {
  let api: FakeApi;
  before(async () => { api = await createFakeApi(); });
  after(async () => { await api.close(); });

  const envelope = (body: string): { code: string; message: string; details: Record<string, unknown> } => {
    const b = JSON.parse(body) as { error: { code: string; message: string; details: Record<string, unknown> } };
    assert.deepEqual(Object.keys(b), ['error']);
    assert.equal(typeof b.error.message, 'string');
    assert.equal(typeof b.error.details, 'object');
    return b.error;
  };

  test('the router takes ids exactly as long as the id schema allows; one more is 414 PARAM_TOO_LONG', async () => {
    assert.equal((idParams.properties.id as { maxLength?: number }).maxLength, ID_MAX_LENGTH);
    const atLimit = await api.app.inject({ method: 'GET', url: `/v1/vms/missing${'x'.repeat(ID_MAX_LENGTH - 7)}`, headers: fakeAuth });
    assert.equal(atLimit.statusCode, 404, 'an id at the limit passes router and schema, and is looked up');
    assert.equal(envelope(atLimit.body).code, 'VM_NOT_FOUND');
    for (const [method, url] of [['GET', '/v1/vms/:id'], ['POST', '/v1/vms/:id/stop'], ['DELETE', '/v1/snapshots/:id'], ['GET', '/view/:id']] as const) {
      const before = api.calls.length;
      const res = await api.app.inject({ method, url: url.replace(':id', 'x'.repeat(ID_MAX_LENGTH + 1)), headers: fakeAuth });
      assert.equal(res.statusCode, 414, url);
      const e = envelope(res.body);
      assert.equal(e.code, 'PARAM_TOO_LONG');
      assert.deepEqual(e.details, { field: '', in: 'params', reason: 'range', expected: 'string', min: 1, max: ID_MAX_LENGTH });
      assert.deepEqual(api.calls.slice(before), [], 'nothing behind the router ran');
    }
    assert.equal(ERRORS.PARAM_TOO_LONG.http, 414);
    assert.equal(exitCodeOf('PARAM_TOO_LONG'), 2, 'bad input for the CLI');
  });

  test('bad URL encoding is 400 BAD_URL; both are counted as errors and carry a request id', async () => {
    const res = await api.app.inject({ method: 'GET', url: '/v1/vms/%E0%A4%A', headers: fakeAuth });
    assert.equal(res.statusCode, 400);
    assert.equal(envelope(res.body).code, 'BAD_URL');
    assert.ok(res.headers['x-request-id']);
    assert.equal(exitCodeOf('BAD_URL'), 2);
    const metrics = await api.app.inject({ method: 'GET', url: '/metrics', headers: fakeAuth });
    assert.match(metrics.body, /^hangar_errors_total\{code="BAD_URL"\} 1$/m);
  });

  test('bad JSON, an empty JSON body and a non-JSON body are 400 INVALID_ARGUMENT in the envelope', async () => {
    for (const [payload, type] of [['{nope', 'application/json'], ['', 'application/json'], ['vcpus=2', 'application/x-www-form-urlencoded'], ['x', 'text/plain']]) {
      const res = await api.app.inject({ method: 'POST', url: '/v1/vms', headers: { ...fakeAuth, 'content-type': type! }, payload });
      assert.equal(res.statusCode, 400, `${type} ${payload}`);
      const e = envelope(res.body);
      assert.equal(e.code, 'INVALID_ARGUMENT');
      assert.equal(e.details.in, 'body');
    }
    assert.deepEqual(api.mutations(), []);
  });
});
