// Tenant quotas under concurrency, through the API (a FAKE driver whose VMM never starts and a FAKE network, so
// nothing boots): 20 concurrent creates against a quota of 3 VMs give exactly 3 VMs, the rest QUOTA_EXCEEDED naming
// the limit, and nothing leaks — no extra rows, addresses, TAP attaches, VMM starts or run directories; the same for
// vCPU and memory quotas; another tenant is not affected.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ImageInfo } from '../../src/image/store.js';
import { normaliseNetConfig } from '../../src/net/config.js';
import { VmManager } from '../../src/vm/manager.js';
import type { VmmDriver } from '../../src/vmm/driver.js';
import { createApiHarness, type ApiHarness } from '../support/api.js';
import { fakeNetwork, type FakeNetwork } from '../support/fake-network.js';

interface Rig { h: ApiHarness; net: FakeNetwork; starts: string[] }

async function rig(): Promise<Rig> {
  const starts: string[] = [];
  const net = fakeNetwork();
  const image = { id: 'desktop-0000', profile: 'desktop', kernelPath: '/k', rootfsPath: '/r', sizes: { vmlinux: 1, rootfs: 1024 * 1024 * 1024 } } as ImageInfo;
  // A FAKE driver that is available and whose VMM never starts: each boot fails after its record exists.
  const driver: VmmDriver = {
    kind: 'qemu', stateFiles: [], probe: async () => ({ kind: 'qemu', available: true, reason: 'FAKE' }),
    start: async (spec) => { starts.push(spec.id); throw new Error('FAKE: no VMM'); }, adopt: async () => null, restoreRefusal: async () => null,
    restore: async () => { throw new Error('FAKE'); },
  };
  const h = await createApiHarness({
    manager: (store, stateDir, metrics) => new VmManager({
      store, stateDir, defaultVmm: 'qemu', maxVms: 64, network: net, metrics,
      disks: { exists: async () => true, copy: async () => () => {} },
      net: normaliseNetConfig({ mode: 'netns', netns: 'hgt-unused', bridge: 'hgbr0', cidr: '10.215.0.0/26', hostNetns: 'hgt-unused-host' }),
      drivers: { qemu: driver },
      // Each resolve yields to the event loop, as the real image store does.
      images: { resolve: () => new Promise((r) => setTimeout(() => r(image), 1)), list: () => Promise.resolve([image]) },
    }),
  });
  return { h, net, starts };
}

async function storm(r: Rig, headers: { authorization: string }, body: object, n = 20): Promise<{ ok: number; refused: { limit: string; used: number; max: number }[]; other: string[] }> {
  const answers = await Promise.all(Array.from({ length: n }, () => r.h.app.inject({ method: 'POST', url: '/v1/vms', headers, payload: body })));
  const refused = answers.filter((a) => a.statusCode === 403 && a.json().error.code === 'QUOTA_EXCEEDED').map((a) => a.json().error.details as { limit: string; used: number; max: number });
  return { ok: answers.filter((a) => a.statusCode === 202).length, refused, other: answers.filter((a) => a.statusCode !== 202 && a.statusCode !== 403).map((a) => a.body) };
}

/** Waits for the background boots (they fail: no VMM) to settle. */
async function settle(r: Rig): Promise<void> {
  for (let i = 0; i < 200 && r.h.store.listVms().some((v) => v.state === 'creating' || v.state === 'booting'); i++) await new Promise((res) => setTimeout(res, 10));
}

function assertNoLeak(r: Rig, tenant: string, expected: number): void {
  const vms = r.h.store.listVms(tenant);
  assert.equal(vms.length, expected, 'exactly the allowed VMs exist');
  const mine = new Set(vms.map((v) => v.id));
  const all = new Set(r.h.store.listVms().map((v) => v.id));
  assert.ok(r.h.store.allocations().every((a) => all.has(a.vmId)), 'no allocation without its VM');
  assert.equal(r.h.store.allocations('ip').filter((a) => mine.has(a.vmId)).length, expected, 'one address per VM, none for a refused create');
  assert.ok(r.starts.filter((id) => !all.has(id)).length === 0, 'no VMM started for a refused create');
  const attaches = r.net.log.filter((l) => l === 'net attach').length;
  assert.ok(attaches <= all.size, `no TAP attached for a refused create (${attaches} attaches, ${all.size} VMs)`);
  const dir = join(r.h.stateDir, 'vms');
  const dirs = existsSync(dir) ? readdirSync(dir) : [];
  assert.ok(dirs.every((d) => all.has(d)), `no run directory of a refused create: ${dirs.join(' ')}`);
}

test('20 concurrent creates against a quota of 3 VMs: exactly 3, the rest QUOTA_EXCEEDED naming the limit, nothing leaked', async () => {
  const r = await rig();
  try {
    r.h.store.tenancy.createTenant('acme', { vms: 3 });
    const { headers } = r.h.key('acme', 'write');
    const res = await storm(r, headers, {});
    assert.deepEqual(res.other, []);
    assert.equal(res.ok, 3);
    assert.equal(res.refused.length, 17);
    assert.ok(res.refused.every((d) => d.limit === 'vms' && d.used === 3 && d.max === 3), JSON.stringify(res.refused[0]));
    await settle(r);
    assertNoLeak(r, 'acme', 3);
    // Another tenant is not limited by acme's quota.
    const other = await storm(r, r.h.key('bravo', 'write').headers, {}, 2);
    assert.equal(other.ok, 2);
    await settle(r);
  } finally {
    await r.h.close();
  }
});

test('vCPU and memory quotas hold under concurrency too, and the disk quota counts the image', async () => {
  const r = await rig();
  try {
    r.h.store.tenancy.createTenant('cpu', { vcpus: 6 });
    r.h.store.tenancy.createTenant('mem', { memMiB: 2048 });
    r.h.store.tenancy.createTenant('disk', { diskMiB: 2048 });
    const cpu = await storm(r, r.h.key('cpu', 'write').headers, { vcpus: 2 });
    assert.equal(cpu.ok, 3);
    assert.ok(cpu.refused.length === 17 && cpu.refused.every((d) => d.limit === 'vcpus' && d.max === 6 && d.used === 6));
    const mem = await storm(r, r.h.key('mem', 'write').headers, { memMiB: 1024 });
    assert.equal(mem.ok, 2);
    assert.ok(mem.refused.length === 18 && mem.refused.every((d) => d.limit === 'memMiB' && d.max === 2048));
    const disk = await storm(r, r.h.key('disk', 'write').headers, {}, 5); // a 1 GiB image each
    assert.equal(disk.ok, 2);
    assert.ok(disk.refused.every((d) => d.limit === 'diskMiB' && d.used === 2048));
    await settle(r);
    assertNoLeak(r, 'cpu', 3);
    assertNoLeak(r, 'mem', 2);
    assert.equal(r.h.store.tenancy.usage('cpu').vcpus, 6);
  } finally {
    await r.h.close();
  }
});
