// The single-user path across an upgrade: a state directory from before tenants (schema 3, a VM, a token file's
// token) opens at schema 5, the token is the default tenant's admin key (as the controller's start-up step makes
// it), and the VM is the default tenant's; a default-tenant VM stays invisible to another tenant's key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agents } from '../../src/agent/agents.js';
import { buildServer } from '../../src/api/server.js';
import { HangarMetrics } from '../../src/metrics.js';
import { migrate } from '../../src/store/db.js';
import { MIGRATIONS } from '../../src/store/migrations.js';
import { Store } from '../../src/store/store.js';
import { hashKey, newApiKey, newKeyId } from '../../src/tenancy/keys.js';
import { offlineManager } from '../support/api.js';

test('an upgraded state directory: the old token is the admin key, old VMs are the default tenant\'s', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-upgrade-'));
  const path = join(dir, 'state.db');
  const old = new Database(path);
  migrate(old, MIGRATIONS.filter((m) => m.version <= 3));
  old.prepare(`INSERT INTO vms (id, name, state, image_id, profile, vmm, vcpus, mem_mib, created_at, updated_at, run_dir, spec)
    VALUES ('vm-0ld00000', 'legacy', 'stopped', 'img', 'desktop', 'qemu', 1, 512, 't', 't', '/run', '{}')`).run();
  old.close();
  const token = 'L'.repeat(43); // a token file of an older Hangar: not in the hgk_ format, still 256 bits
  const store = new Store(path);
  try {
    store.tenancy.syncTokenFileKey(hashKey(token), newKeyId()); // what startController's 'API token' step does
    const metrics = new HangarMetrics({ defaultMetrics: false });
    const manager = offlineManager(store, dir, metrics);
    const app = await buildServer({ vms: manager, snapshots: manager.snapshots, events: store, metrics, token, tenancy: store.tenancy, agents: new Agents({ channel: () => null }) });
    const list = await app.inject({ method: 'GET', url: '/v1/vms', headers: { authorization: `Bearer ${token}` } });
    assert.equal(list.statusCode, 200, list.body);
    assert.deepEqual(list.json<{ vms: { id: string; tenant: string }[] }>().vms.map((v) => [v.id, v.tenant]), [['vm-0ld00000', 'default']]);
    assert.equal((await app.inject({ method: 'GET', url: '/v1/tenants', headers: { authorization: `Bearer ${token}` } })).statusCode, 200, 'it is an admin key');
    store.tenancy.createTenant('acme');
    const k = newApiKey();
    store.tenancy.createKey({ id: k.id, tenant: 'acme', scope: 'write', hash: k.hash });
    const theirs = await app.inject({ method: 'GET', url: '/v1/vms/legacy', headers: { authorization: `Bearer ${k.secret}` } });
    assert.equal(theirs.statusCode, 404);
    await app.close();
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
