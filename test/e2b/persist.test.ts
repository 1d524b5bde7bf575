// The sandboxes' E2B fields in the controller's database (migration 8): written through, loaded back by a new state
// (a controller restart), gone with their VM, never kept for a VM that does not exist.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { E2bRows } from '../../src/e2b/persist.js';
import { E2bState } from '../../src/e2b/state.js';
import { Store } from '../../src/store/store.js';

test('E2B fields survive a restart and go with their VM', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-e2b-db-'));
  try {
    const store = new Store(join(dir, 'state.db'));
    store.insertVm({ id: 'vm-0e2b0001', name: 'one', state: 'creating', imageId: 'img', profile: 'desktop', vmm: 'qemu', vcpus: 1, memMiB: 512, ttlS: null, expiresAt: null, runDir: join(dir, 'vm') });
    const f = { templateId: 'desktop', metadata: { a: 'b' }, envs: { X: '1' }, envdAccessToken: 'tok', startedAt: '2026-01-01T00:00:00.000Z', endAt: 123, autoPause: true };
    const s = new E2bState(new E2bRows(store.database));
    s.set('vm-0e2b0001', f);
    s.update('vm-0e2b0001', { endAt: 456 });
    s.set('vm-0e2b0009', f); // no such VM: kept in memory only
    const again = new E2bState(new E2bRows(store.database));
    assert.deepEqual(again.get('vm-0e2b0001'), { ...f, endAt: 456 });
    assert.equal(again.get('vm-0e2b0009'), undefined);
    assert.ok(again.tokenMatches('vm-0e2b0001', 'tok'));
    store.deleteVm('vm-0e2b0001');
    assert.deepEqual(new E2bRows(store.database).load(), []);
    again.set('vm-0e2b0001', f);
    again.forget('vm-0e2b0001');
    store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
