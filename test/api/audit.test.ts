// The audit log through the API: an entry for each mutating call (the key's id, route, action, resource, status and
// code, refused calls included), never the key itself (the database file's bytes do not contain any secret);
// GET /v1/audit is admin-only and filters by tenant, key, resource and time; the table refuses UPDATE and DELETE.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AuditEntry } from '../../src/store/tenancy.js';
import { auth, createApiHarness, TEST_TOKEN, type ApiHarness } from '../support/api.js';

let h: ApiHarness;
before(async () => { h = await createApiHarness({ withDesktop: true }); });
after(async () => { await h.close(); });

const audit = async (query = ''): Promise<AuditEntry[]> => {
  const r = await h.app.inject({ method: 'GET', url: `/v1/audit${query}`, headers: auth });
  assert.equal(r.statusCode, 200, r.body);
  return r.json<{ entries: AuditEntry[] }>().entries;
};

test('each mutating call leaves an entry with the key id; GETs leave none; refused calls are recorded with their code', async () => {
  const k = h.key('acme', 'write');
  h.insertVm('vm-a1a1a1a1', 'ready', 'acme');
  const before = (await audit()).length;
  await h.app.inject({ method: 'GET', url: '/v1/vms', headers: k.headers });
  const calls: [string, string, object | undefined, number][] = [
    ['POST', '/v1/vms/vm-a1a1a1a1/viewer', {}, 200],
    ['POST', '/v1/vms/vm-a1a1a1a1/viewer/revoke', undefined, 200],
    ['POST', '/v1/vms/vm-00000000/stop', undefined, 404],
    ['POST', '/v1/tenants', { id: 'nope' }, 403],
    ['DELETE', '/v1/vms/vm-a1a1a1a1', undefined, 204],
  ];
  for (const [method, url, payload, status] of calls) {
    const r = await h.app.inject({ method: method as 'POST', url, headers: k.headers, ...(payload ? { payload } : {}) });
    assert.equal(r.statusCode, status, `${method} ${url}: ${r.body}`);
  }
  const entries = (await audit()).slice(before);
  assert.equal(entries.length, calls.length, JSON.stringify(entries));
  assert.ok(entries.every((e) => e.keyId === k.id && e.tenant === 'acme'));
  assert.deepEqual(entries.map((e) => [e.method, e.route, e.action, e.resource, e.status, e.code]), [
    ['POST', '/v1/vms/:id/viewer', 'vms.viewer', 'vm-a1a1a1a1', 200, null],
    ['POST', '/v1/vms/:id/viewer/revoke', 'vms.viewer.revoke', 'vm-a1a1a1a1', 200, null],
    ['POST', '/v1/vms/:id/stop', 'vms.stop', 'vm-00000000', 404, 'VM_NOT_FOUND'],
    ['POST', '/v1/tenants', 'tenants.create', null, 403, 'FORBIDDEN'],
    ['DELETE', '/v1/vms/:id', 'vms.delete', 'vm-a1a1a1a1', 204, null],
  ]);
});

test('keys and tenants made through the API are audited by id; no secret is anywhere in the database files', async () => {
  const t = await h.app.inject({ method: 'POST', url: '/v1/tenants', headers: auth, payload: { id: 'globex', quotas: { vms: 2 } } });
  assert.equal(t.statusCode, 201, t.body);
  const made = await h.app.inject({ method: 'POST', url: '/v1/keys', headers: auth, payload: { tenant: 'globex', scope: 'write', name: 'ci', expiresInSeconds: 3600 } });
  assert.equal(made.statusCode, 201, made.body);
  const key = made.json<{ id: string; secret: string; expiresAt: string }>();
  assert.match(key.secret, /^hgk_[A-Za-z0-9_-]{43}$/);
  assert.ok(Date.parse(key.expiresAt) > Date.now());
  // The new key works, and its calls are audited under its id.
  const used = await h.app.inject({ method: 'POST', url: '/v1/vms/vm-00000000/start', headers: { authorization: `Bearer ${key.secret}` } });
  assert.equal(used.statusCode, 404);
  const mine = await audit(`?key=${key.id}`);
  assert.equal(mine.length, 1);
  assert.equal(mine[0]!.tenant, 'globex');
  const created = await audit('?resource=' + key.id);
  assert.equal(created[0]!.action, 'keys.create');
  // Listing never shows a secret.
  const listed = await h.app.inject({ method: 'GET', url: '/v1/keys?tenant=globex', headers: auth });
  assert.ok(!listed.body.includes(key.secret) && listed.body.includes(key.id));
  // The bytes of state.db and its WAL hold neither the new key nor the admin token.
  const files = readdirSync(h.stateDir).filter((f) => f.startsWith('state.db'));
  assert.ok(files.length >= 1);
  for (const f of files) {
    const bytes = readFileSync(join(h.stateDir, f));
    for (const secret of [key.secret, key.secret.slice(4), TEST_TOKEN]) assert.equal(bytes.indexOf(Buffer.from(secret)), -1, `${f} holds a secret`);
  }
});

test('GET /v1/audit is admin-only and filters', async () => {
  const k = h.key('acme', 'write');
  assert.equal((await h.app.inject({ method: 'GET', url: '/v1/audit', headers: k.headers })).statusCode, 403);
  assert.ok((await audit('?tenant=acme')).every((e) => e.tenant === 'acme'));
  assert.equal((await audit('?limit=1')).length, 1);
  assert.deepEqual(await audit(`?since=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`), []);
  assert.equal((await h.app.inject({ method: 'GET', url: '/v1/audit?since=yesterday', headers: auth })).statusCode, 400);
});
