// The pure parts of tenancy (src/tenancy/keys.ts): key format and hash, what each scope allows, the quota check,
// durations, audit actions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allows, auditAction, hashKey, looksLikeKey, newApiKey, parseDuration, quotaBreach, NO_QUOTAS, SCOPES } from '../../src/tenancy/keys.js';
import { isHangarError } from '../../src/errors.js';

test('keys: hgk_ and 43 base64url characters, a key-xxxxxxxx id, stored as the sha256 of the key', () => {
  const a = newApiKey();
  const b = newApiKey();
  assert.ok(looksLikeKey(a.secret) && a.secret !== b.secret);
  assert.match(a.id, /^key-[0-9a-f]{8}$/);
  assert.equal(a.hash.length, 32);
  assert.ok(a.hash.equals(hashKey(a.secret)) && !a.hash.equals(hashKey(b.secret)));
  assert.ok(!a.hash.toString('hex').includes(a.secret));
});

test('scopes: admin everything, write the tenant, read looks, viewer only mints viewer tokens', () => {
  const table = Object.fromEntries(SCOPES.map((s) => [s, (['admin', 'write', 'read', 'viewer'] as const).filter((need) => allows(s, need))]));
  assert.deepEqual(table, {
    admin: ['admin', 'write', 'read', 'viewer'],
    write: ['write', 'read', 'viewer'],
    read: ['read'],
    viewer: ['viewer'],
  });
});

test('quotas: the first limit one more VM would pass, with used and max; none when all fit', () => {
  const q = { ...NO_QUOTAS, vms: 3, vcpus: 4, memMiB: 2048 };
  assert.equal(quotaBreach(q, { vms: 2, vcpus: 2, memMiB: 1024, diskMiB: 0 }, { vcpus: 2, memMiB: 1024, diskMiB: 0 }), null);
  assert.deepEqual(quotaBreach(q, { vms: 3, vcpus: 0, memMiB: 0, diskMiB: 0 }, { vcpus: 1, memMiB: 1, diskMiB: 0 }), { limit: 'vms', used: 3, max: 3, adding: 1 });
  assert.deepEqual(quotaBreach(q, { vms: 1, vcpus: 3, memMiB: 0, diskMiB: 0 }, { vcpus: 2, memMiB: 1, diskMiB: 0 }), { limit: 'vcpus', used: 3, max: 4, adding: 2 });
  assert.equal(quotaBreach(NO_QUOTAS, { vms: 1e6, vcpus: 1e6, memMiB: 1e9, diskMiB: 1e9 }, { vcpus: 8, memMiB: 1, diskMiB: 1 }), null);
});

test('durations: 30d, 12h, 90m, 3600s, 3600; anything else INVALID_ARGUMENT', () => {
  assert.deepEqual(['30d', '12h', '90m', '3600s', '3600', '2w'].map((d) => parseDuration(d)), [2592000, 43200, 5400, 3600, 3600, 1209600]);
  for (const bad of ['', '0d', '-1d', '1.5h', '1y', 'd']) assert.throws(() => parseDuration(bad), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT'), bad);
});

test('audit actions from the route', () => {
  assert.deepEqual([
    auditAction('POST', '/v1/vms'), auditAction('POST', '/v1/vms/:id/start'), auditAction('DELETE', '/v1/vms/:id'),
    auditAction('PATCH', '/v1/vms/:id/network'), auditAction('POST', '/v1/keys'), auditAction('DELETE', '/v1/keys/:id'),
  ], ['vms.create', 'vms.start', 'vms.delete', 'vms.network.update', 'keys.create', 'keys.delete']);
});
