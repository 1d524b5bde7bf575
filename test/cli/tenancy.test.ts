// `hangar tenant|key|audit` (src/cli/tenancy.ts) against a fake API: what each command asks the controller, the key
// printed once (stdout) with its id on stderr, quotas from flags ('none' lifts one), durations for --expires/--since.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { quotasFrom } from '../../src/cli/tenancy.js';
import { isHangarError } from '../../src/errors.js';
import { fakeApi, hangar, ok } from './fake-api.js';

const tenant = { id: 'acme', createdAt: 't', quotas: { vms: 3, vcpus: null, memMiB: null, diskMiB: null, viewers: null }, usage: { vms: 1, vcpus: 1, memMiB: 512, diskMiB: 0 } };
const key = { id: 'key-0123abcd', tenant: 'acme', scope: 'write', name: 'ci', source: 'api', createdAt: 't', expiresAt: '2027-01-01T00:00:00.000Z', revokedAt: null };

test('quotas from flags: numbers, none lifts one, anything else is refused', () => {
  assert.deepEqual(quotasFrom({ 'max-vms': '3', 'max-mem': 'none' }), { vms: 3, memMiB: null });
  assert.throws(() => quotasFrom({ 'max-vcpus': '-1' }), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT'));
});

test('key create: the body the API gets, the secret alone on stdout, the id on stderr', async () => {
  const api = await fakeApi((r) => (r.path === '/v1/keys' ? ok({ ...key, secret: 'hgk_SECRET' }, 201) : ok({})));
  try {
    const r = await hangar(['key', 'create', '--tenant', 'acme', '--scope', 'write', '--expires', '30d', '--name', 'ci'], api.env);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, 'hgk_SECRET\n');
    assert.match(r.err, /key key-0123abcd for tenant acme \(scope write, expires/);
    assert.deepEqual(api.requests[0]!.body, { tenant: 'acme', scope: 'write', name: 'ci', expiresInSeconds: 30 * 86400 });
    const missing = await hangar(['key', 'create', '--tenant', 'acme'], api.env);
    assert.equal(missing.code, 2);
  } finally {
    await api.close();
  }
});

test('tenant create/ls/set/rm, key ls/rm, audit: the requests and tables', async () => {
  const api = await fakeApi((r) => {
    if (r.path === '/v1/tenants' && r.method === 'GET') return ok({ tenants: [tenant] });
    if (r.path.startsWith('/v1/tenants')) return r.method === 'DELETE' ? { status: 204 } : ok(tenant, r.method === 'POST' ? 201 : 200);
    if (r.path === '/v1/keys') return ok({ keys: [key] });
    if (r.path.startsWith('/v1/keys/')) return ok({ ...key, revokedAt: 't' });
    return ok({ entries: [{ seq: 1, at: 't', keyId: 'key-0123abcd', tenant: 'acme', method: 'POST', route: '/v1/vms', action: 'vms.create', resource: 'vm-1', status: 403, code: 'QUOTA_EXCEEDED', requestId: 'r' }] });
  });
  try {
    const c = await hangar(['tenant', 'create', 'acme', '--max-vms', '3'], api.env);
    assert.equal(c.code, 0, c.err);
    assert.match(c.out, /acme\s+1\/3\s+1\/-/);
    assert.deepEqual(api.requests.at(-1)!.body, { id: 'acme', quotas: { vms: 3 } });
    assert.equal((await hangar(['tenant', 'set', 'acme', '--max-vms', 'none'], api.env)).code, 0);
    assert.deepEqual([api.requests.at(-1)!.method, api.requests.at(-1)!.path, api.requests.at(-1)!.body], ['PATCH', '/v1/tenants/acme', { quotas: { vms: null } }]);
    assert.equal((await hangar(['tenant', 'set', 'acme'], api.env)).code, 2, 'nothing to set');
    assert.match((await hangar(['tenant', 'ls'], api.env)).out, /^TENANT\s+VMS/);
    assert.equal((await hangar(['tenant', 'rm', 'acme'], api.env)).out, 'tenant acme removed\n');
    assert.match((await hangar(['key', 'ls', '--tenant', 'acme'], api.env)).out, /key-0123abcd\s+acme\s+write\s+ci/);
    assert.equal(api.requests.at(-1)!.query.get('tenant'), 'acme');
    assert.equal((await hangar(['key', 'rm', 'key-0123abcd'], api.env)).out, 'key key-0123abcd revoked\n');
    const a = await hangar(['audit', '--since', '1h', '--tenant', 'acme'], api.env);
    assert.match(a.out, /vms\.create\s+vm-1\s+403 QUOTA_EXCEEDED/);
    const since = Date.parse(api.requests.at(-1)!.query.get('since')!);
    assert.ok(Math.abs(Date.now() - 3600_000 - since) < 60_000);
  } finally {
    await api.close();
  }
});
