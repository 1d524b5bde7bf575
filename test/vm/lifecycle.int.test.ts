// Real boots under TCG inside namespaces this test creates: concurrency, distinct identities, reachability,
// restart adoption, crash detection, bad input, and zero leaks after destroy.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { isHangarError } from '../../src/errors.js';
import { listHangarTaps } from '../../src/net/host.js';
import { normalizeCreate } from '../../src/vm/input.js';
import { run } from '../../src/util/exec.js';
import { skipUnlessRoot, pidAlive } from '../support/env.js';
import { tcpBanner } from '../support/net.js';
import { createTestController, imageSkipReason, type TestController } from '../support/controller.js';

const skip = skipUnlessRoot() || (await imageSkipReason()) || false;

async function ping(ns: string, ip: string): Promise<boolean> {
  const r = await run('ping', ['-c', '1', '-W', '2', ip], { netns: ns, allowFailure: true, timeoutMs: 10_000 });
  return r.code === 0;
}

describe('VM lifecycle on QEMU (TCG) in a test network', { skip, concurrency: false }, () => {
  let t: TestController;
  before(async () => { t = await createTestController({ net: { cidr: '10.213.0.0/28' } }); });
  after(async () => { await t?.destroy(); });

  test('three VMs created concurrently are all ready, distinct, reachable; destroy leaves nothing', async () => {
    const created = await Promise.all([0, 1, 2].map(() => t.manager.create(normalizeCreate({ profile: 'desktop' }))));
    const ready = await Promise.all(created.map((c) => c.ready));
    assert.deepEqual(ready.map((v) => v.state), ['ready', 'ready', 'ready']);
    const nets = ready.map((v) => v.net as { ip: string; mac: string; tap: string });
    for (const k of ['ip', 'mac', 'tap'] as const) assert.equal(new Set(nets.map((n) => n[k])).size, 3, `distinct ${k}`);
    for (const n of nets) {
      assert.ok(await ping(t.net.hostNetns, n.ip), `ICMP to ${n.ip} from the host side`);
      assert.match(await tcpBanner(t.net.hostNetns, n.ip, 5900), /^RFB 003\.00\d/);
    }
    const pids = ready.map((v) => v.pid!);
    assert.ok(pids.every(pidAlive));

    await Promise.all(ready.map((v) => t.manager.destroy(v.id)));
    assert.deepEqual(t.store.listVms(), [], 'no rows');
    assert.deepEqual(t.store.allocations(), [], 'no allocations');
    assert.deepEqual(await listHangarTaps(t.net.cfg), [], 'no TAPs');
    assert.ok(pids.every((p) => !pidAlive(p)), 'no VMM processes');
    assert.deepEqual(readdirSync(join(t.stateDir, 'vms')), [], 'no run directories');
  });

  test('a controller restart adopts running VMs: none lost, none double-allocated', async () => {
    const a = await (await t.manager.create(normalizeCreate({ name: 'adopt-a' }))).ready;
    const b = await (await t.manager.create(normalizeCreate({ name: 'adopt-b' }))).ready;
    await t.manager.detachAll(); // the old controller goes away; its VMs keep running
    assert.ok(pidAlive(a.pid!) && pidAlive(b.pid!));
    const m2 = t.restart();
    const report = await m2.reconcile();
    assert.deepEqual(report.adopted.sort(), [a.id, b.id].sort());
    assert.deepEqual(report.failed, []);
    assert.deepEqual(report.orphanTaps, []);
    assert.deepEqual(m2.list().map((v) => v.state), ['ready', 'ready']);
    // The adopted VMs are really controlled: pause/resume through the new controller.
    assert.equal((await m2.action(a.id, 'pause')).state, 'paused');
    assert.equal((await m2.action(a.id, 'resume')).state, 'ready');
    // A new VM gets a fresh identity, not one the adopted VMs hold.
    const c = await (await m2.create(normalizeCreate({ name: 'adopt-c' }))).ready;
    const ips = m2.list().map((v) => (v.net as { ip: string }).ip);
    assert.equal(new Set(ips).size, 3);
    await m2.destroy(c.id);
    t.manager = m2;
  });

  test('a VMM that dies is detected within 2 s and the VM is failed with how it ended', async () => {
    const vm = t.manager.list().find((v) => v.name === 'adopt-a')!;
    const killedAt = Date.now();
    process.kill(vm.pid!, 'SIGKILL');
    while (t.manager.get(vm.id).state !== 'failed' && Date.now() - killedAt < 5000) await new Promise((r) => setTimeout(r, 50));
    const failed = t.manager.get(vm.id);
    assert.equal(failed.state, 'failed');
    assert.ok(Date.now() - killedAt < 2000, `detected in ${Date.now() - killedAt} ms`);
    assert.equal(failed.lastError?.code, 'VMM_CRASHED');
    const tap = (failed.net as { tap: string }).tap;
    assert.ok(!(await listHangarTaps(t.net.cfg)).some((x) => x.name === tap), 'the TAP of the dead VM is removed');
    await t.manager.destroy(vm.id);
  });

  test('bad input changes nothing: unknown image, absurd sizes, shell metacharacters, a taken name', async () => {
    const before = { rows: t.store.listVms().length, allocs: t.store.allocations().length, taps: (await listHangarTaps(t.net.cfg)).length };
    await assert.rejects(t.manager.create(normalizeCreate({ image: 'no-such-image' })), (e: unknown) => isHangarError(e, 'IMAGE_NOT_FOUND'));
    assert.throws(() => normalizeCreate({ vcpus: 4096 }), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT'));
    assert.throws(() => normalizeCreate({ memMiB: 1 << 30 }), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT'));
    assert.throws(() => normalizeCreate({ name: 'x; rm -rf /' }), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT'));
    await assert.rejects(t.manager.create(normalizeCreate({ name: 'adopt-b' })), (e: unknown) => isHangarError(e, 'VM_NAME_TAKEN'));
    const after = { rows: t.store.listVms().length, allocs: t.store.allocations().length, taps: (await listHangarTaps(t.net.cfg)).length };
    assert.deepEqual(after, before);
  });
});

test('an exhausted pool is refused with NET_POOL_EXHAUSTED and leaves nothing', { skip }, async () => {
  const t = await createTestController({ net: { cidr: '10.214.0.0/30' } }); // one guest address
  try {
    const first = await t.manager.create(normalizeCreate({ name: 'only' }));
    await assert.rejects(t.manager.create(normalizeCreate({ name: 'second' })), (e: unknown) => isHangarError(e, 'NET_POOL_EXHAUSTED'));
    assert.equal(t.store.getVm('second'), null);
    assert.equal(t.store.allocations().length, 3, 'only the first VM holds ip, mac and tap');
    await first.ready;
    await t.manager.destroy(first.vm.id);
    assert.ok(!existsSync(join(t.stateDir, 'vms', first.vm.id)));
  } finally {
    await t.destroy();
  }
});

test('a guest that never becomes ready is failed with its console tail; its VMM and TAP are gone', { skip }, async () => {
  // init=/bin/sh: the kernel boots, a shell waits on the console, the desktop never starts, READY never comes.
  const t = await createTestController({
    net: { cidr: '10.221.0.0/29' },
    manager: { readyTimeoutMs: 15_000, specOverride: (spec) => ({ ...spec, bootArgs: spec.bootArgs.replace(/init=\S+/, 'init=/bin/sh') }) },
  });
  try {
    const { vm, ready } = await t.manager.create(normalizeCreate({ name: 'never-ready' }));
    await assert.rejects(ready, (e: unknown) => isHangarError(e, 'VM_BOOT_TIMEOUT'));
    const failed = t.manager.get(vm.id);
    assert.equal(failed.state, 'failed');
    assert.equal(failed.lastError?.code, 'VM_BOOT_TIMEOUT');
    const tail = String((failed.lastError?.details as { consoleTail?: string }).consoleTail);
    assert.match(tail, /Run \/bin\/sh as init process|Linux version/, 'the console tail is attached as evidence');
    assert.equal(failed.pid, null);
    assert.deepEqual(await listHangarTaps(t.net.cfg), [], 'the TAP of the failed VM is removed');
    assert.equal((await run('pgrep', ['-f', `hangar-${vm.id}`], { allowFailure: true })).stdout.trim(), '', 'no VMM process');
    await t.manager.destroy(vm.id);
    assert.deepEqual(t.store.allocations(), []);
  } finally {
    await t.destroy();
  }
});
