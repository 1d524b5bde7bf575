// The tenant's quota of concurrent viewers (src/desktop/deps.ts ViewerRegistry): counted over all of the tenant's
// VMs, refused with QUOTA_EXCEEDED naming the limit, freed when a viewer leaves; other tenants are not affected.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ViewerRegistry } from '../../src/desktop/deps.js';
import { isHangarError } from '../../src/errors.js';

test('viewers: a tenant quota over all its VMs, QUOTA_EXCEEDED past it, a slot back when one leaves', () => {
  const reg = new ViewerRegistry();
  const acme = { id: 'acme', maxViewers: 2 };
  const a = reg.reserve('vm-1', 4, acme);
  reg.reserve('vm-2', 4, acme);
  assert.throws(() => reg.reserve('vm-3', 4, acme), (e: unknown) => isHangarError(e, 'QUOTA_EXCEEDED') && e.details.limit === 'viewers' && e.details.used === 2 && e.details.max === 2);
  assert.equal(reg.count('vm-3'), 0, 'a refused viewer takes no slot');
  reg.reserve('vm-9', 4, { id: 'bravo', maxViewers: 1 });
  a();
  a(); // idempotent
  assert.equal(reg.tenantCount('acme'), 1);
  reg.reserve('vm-3', 4, acme);
  assert.equal(reg.tenantCount('acme'), 2);
  reg.reserve('vm-4', 4, { id: 'free', maxViewers: null });
  assert.throws(() => reg.reserve('vm-1', 0), (e: unknown) => isHangarError(e, 'VIEWER_LIMIT'), 'the per-VM limit still applies');
});
