// Golden snapshot → three clones running at once, real QEMU (TCG) in namespaces this test creates: each clone has
// its own namespace and host-visible address, the same guest address inside, answers RFB through the manager's
// dial, and had its clock resynchronised after the restore. Everything is gone afterwards.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { vmView } from '../../src/api/core-routes.js';
import { isHangarError } from '../../src/errors.js';
import { listCloneNetns } from '../../src/net/clone.js';
import { listHangarTaps, listNetns } from '../../src/net/host.js';
import { RESUMED_MARKER } from '../../src/vmm/qemu/agent.js';
import { SNAPSHOT_DISK } from '../../src/snapshot/manifest.js';
import type { VmNet } from '../../src/vm/manager.js';
import { normalizeCreate } from '../../src/vm/input.js';
import { run } from '../../src/util/exec.js';
import { waitForMarker } from '../../src/vmm/console.js';
import { skipUnlessRoot, pidAlive } from '../support/env.js';
import { tcpBanner } from '../support/net.js';
import { imageSkipReason, type TestController } from '../support/controller.js';
import { snapshotTestController } from './cleanup.js';

const skip = skipUnlessRoot() || (await imageSkipReason()) || false;

async function readBannerVia(t: TestController, vmId: string): Promise<string> {
  const s = await t.manager.dialVm(vmId, 5900, { timeoutMs: 10_000 });
  try {
    return await new Promise<string>((resolve, reject) => {
      s.once('data', (d: Buffer) => resolve(d.toString('latin1')));
      s.once('error', reject);
      setTimeout(() => reject(new Error('no banner')), 10_000);
    });
  } finally {
    s.destroy();
  }
}

describe('golden snapshot and clones on QEMU (TCG)', { skip, concurrency: false }, () => {
  const ctx = snapshotTestController('10.218.0.0/28');

  test('three clones of one snapshot run at once: own namespace and address each, same guest inside, RFB through the manager', async () => {
    const t0 = Date.now();
    const snap = await ctx.t.manager.snapshots.create({ image: 'desktop' });
    const m = snap.manifest;
    assert.equal(m.vmm.kind, 'qemu');
    assert.equal(m.machine.guestAgent, true, 'the device set with the agent channel is recorded');
    assert.match(m.vmm.version, /^\d+\.\d+\.\d+$/);
    assert.equal(m.source.kind, 'image');
    // The guest RAM is a file beside the device state (saved with x-ignore-shared; clones map it privately).
    assert.ok(m.files['memory.ram']!.size > 10 * 1024 * 1024, 'the guest memory file is there');
    assert.ok(m.files['state.bin']!.size > 0, 'the device state is there');
    assert.equal(m.files[SNAPSHOT_DISK]!.size, ctx.img.image.sizes.rootfs, 'the disk was captured whole');
    assert.match(m.files['state.bin']!.sha256, /^[0-9a-f]{64}$/);
    assert.equal(m.image.rootfsSha256, ctx.img.image.manifest.files['rootfs.ext4']!.sha256);
    assert.equal(ctx.t.manager.list().length, 0, 'the VM booted for the snapshot is gone');
    assert.deepEqual((await ctx.t.manager.snapshots.list()).map((s) => s.manifest.id), [m.id]);
    const guestIp = m.guestNet.ip;

    const created = await Promise.all([0, 1, 2].map((i) => ctx.t.manager.create(normalizeCreate({ fromSnapshot: m.id, name: `clone-${i}` }))));
    const ready = await Promise.all(created.map((c) => c.ready));
    const restoredAt = Date.now();
    assert.deepEqual(ready.map((v) => v.state), ['ready', 'ready', 'ready']);
    const nets = ready.map((v) => v.net as unknown as VmNet);
    // As the host sees them: three addresses, three namespaces, three veths. (The VM booted for the snapshot is gone,
    // so its address is free again and one clone may get it from the pool: it is still that clone's alone.)
    assert.equal(new Set(nets.map((n) => n.ip)).size, 3, 'distinct host-visible addresses');
    assert.equal(new Set(nets.map((n) => n.clone!.netns)).size, 3, 'distinct namespaces');
    assert.equal(new Set(nets.map((n) => n.tap)).size, 3, 'distinct VM-side veths');
    // Inside: the same guest address and gateway in each namespace.
    for (const n of nets) {
      assert.equal(n.clone!.guest.ip, guestIp);
      const addr = await run('ip', ['-n', n.clone!.netns, '-4', '-o', 'addr', 'show', 'dev', n.clone!.guest.tap], { timeoutMs: 10_000 });
      assert.match(addr.stdout, new RegExp(`inet ${m.guestNet.gateway.replace(/\./g, '\\.')}/`));
      const ping = await run('ping', ['-c', '1', '-W', '3', guestIp], { netns: n.clone!.netns, allowFailure: true, timeoutMs: 10_000 });
      assert.equal(ping.code, 0, `the guest answers at ${guestIp} inside ${n.clone!.netns}`);
    }
    // Reachable as the controller reaches them (its dial), and from the host side at each unique address.
    for (const v of ready) assert.match(await readBannerVia(ctx.t, v.id), /^RFB 003\.00\d/);
    for (const n of nets) assert.match(await tcpBanner(ctx.t.net.hostNetns, n.ip, 5900), /^RFB 003\.00\d/);
    // The API view shows each clone at its own address, with its snapshot and namespace.
    const views = ready.map((v) => vmView(ctx.t.manager.get(v.id)));
    assert.deepEqual(views.map((v) => v.network!.ip).sort(), nets.map((n) => n.ip).sort());
    assert.ok(views.every((v) => v.clone?.snapshot === m.id && v.clone.guestIp === guestIp && !v.hibernated));
    // The guest agent set each clone's clock to the host's after the restore (the snapshot's clock was older).
    for (const v of ready) {
      const hit = await waitForMarker(join(v.runDir, 'console.log'), RESUMED_MARKER, { timeoutMs: 20_000 });
      const guestNow = Number(hit.line.split(' ')[1]) * 1000;
      assert.ok(Math.abs(guestNow - restoredAt) < 15_000, `guest clock ${new Date(guestNow).toISOString()} vs host ${new Date(restoredAt).toISOString()}`);
      assert.ok(guestNow > Date.parse(m.created), 'the clock moved past the snapshot instant');
      assert.equal(hit.line.split(' ')[2], v.name, 'each clone has its own hostname, not its snapshot source\'s');
    }
    const pids = ready.map((v) => v.pid!);
    assert.ok(pids.every(pidAlive));
    process.stderr.write(`# snapshot+3 clones in ${Date.now() - t0} ms; clone ready in ${ready.map((v) => v.bootMs).join(', ')} ms\n`);

    // Cleanup leaves nothing: namespaces, veths, processes, run directories.
    await Promise.all(ready.map((v) => ctx.t.manager.destroy(v.id)));
    assert.ok(pids.every((p) => !pidAlive(p)), 'no VMM processes');
    assert.deepEqual(await listCloneNetns(ctx.t.net.cfg), [], 'no clone namespaces');
    const vmSide = await run('ip', ['-n', ctx.t.net.vmNetns!, '-br', 'link'], { timeoutMs: 10_000 });
    for (const n of nets) assert.ok(!vmSide.stdout.includes(n.tap), `veth ${n.tap} removed`);
    assert.deepEqual(await listHangarTaps(ctx.t.net.cfg), []);
    assert.deepEqual(ctx.t.store.allocations(), []);
    assert.deepEqual(readdirSync(join(ctx.t.stateDir, 'vms')), []);

    await ctx.t.manager.snapshots.remove(m.id);
    assert.ok(!existsSync(snap.dir));
    await assert.rejects(ctx.t.manager.snapshots.get(m.id), (e: unknown) => isHangarError(e, 'SNAPSHOT_NOT_FOUND'));
    assert.ok(!(await listNetns()).some((n) => n.startsWith(`${ctx.t.net.vmNetns}-c`)));
  });

  test('a snapshot of a running VM leaves it running; bad snapshot references change nothing', async () => {
    const vm = await (await ctx.t.manager.create(normalizeCreate({ name: 'source' }))).ready;
    const snap = await ctx.t.manager.snapshots.create({ vm: vm.id });
    assert.equal(snap.manifest.source.kind, 'vm');
    assert.equal(snap.manifest.guestNet.ip, (vm.net as unknown as VmNet).ip);
    const after = ctx.t.manager.get(vm.id);
    assert.equal(after.state, 'ready');
    assert.equal(after.pid, vm.pid);
    assert.match(await readBannerVia(ctx.t, vm.id), /^RFB/);
    const before = { rows: ctx.t.store.listVms().length, allocs: ctx.t.store.allocations().length };
    await assert.rejects(ctx.t.manager.create(normalizeCreate({ fromSnapshot: 'snap-00000000' })), (e: unknown) => isHangarError(e, 'SNAPSHOT_NOT_FOUND'));
    await assert.rejects(ctx.t.manager.create(normalizeCreate({ fromSnapshot: snap.manifest.id, vmm: 'firecracker' })), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT'));
    assert.deepEqual({ rows: ctx.t.store.listVms().length, allocs: ctx.t.store.allocations().length }, before);
    await ctx.t.manager.destroy(vm.id);
    await ctx.t.manager.snapshots.remove(snap.manifest.id);
  });
});
