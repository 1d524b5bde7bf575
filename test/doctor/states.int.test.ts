// The doctor never cries wolf on a healthy VM, whatever it went through: ONE real VM (QEMU, TCG, in namespaces this
// test creates) is taken through its states in sequence — ready, paused, hibernated, resumed from hibernation — and
// a snapshot of it is cloned: the clone ready, then stopped by its user. runDoctor must find no error in any of
// them. Then the snapshot's directory is deleted from disk: a second clone still runs (a warning names the file),
// and once hibernated and started again it cannot come back: the doctor's first finding names the missing kernel
// file with its path. Only VmManager's public methods and the doctor's entry point are used.
import { after, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { runDoctor } from '../../src/doctor/doctor.js';
import type { DoctorReport } from '../../src/doctor/model.js';
import { listNetns } from '../../src/net/host.js';
import { RESUMED_MARKER } from '../../src/guest-protocol.js';
import type { VmRecord } from '../../src/store/store.js';
import { normalizeCreate } from '../../src/vm/input.js';
import { waitForMarker } from '../../src/vmm/console.js';
import { imageSkipReason } from '../support/controller.js';
import { pidAlive, skipUnlessRoot } from '../support/env.js';
import { snapshotTestController } from '../snapshot/cleanup.js';

const skip = skipUnlessRoot() || (await imageSkipReason()) || false;

const summary = (r: DoctorReport): string =>
  r.findings.map((f) => `${f.code}:${f.severity}${f.causedBy ? `<${f.causedBy.join('|')}` : ''}`).join(' ') || '(no findings)';
const top = (r: DoctorReport): string => `top: ${JSON.stringify(r.findings[0] ? { code: r.findings[0].code, message: r.findings[0].message, evidence: r.findings[0].evidence.slice(0, 4) } : null)}`;

function assertNoError(r: DoctorReport, why: string): void {
  assert.equal(r.ok, true, `${why}: ${summary(r)}; ${top(r)}`);
  assert.equal(r.mostLikelyCause, null, `${why}: ${summary(r)}; ${top(r)}`);
  assert.ok(!r.checks.some((c) => c.status === 'error'), `${why}: ${r.checks.filter((c) => c.status === 'error').map((c) => `${c.id}: ${c.saw}`).join('; ')}`);
}

describe('doctor on one VM through its states and provenances (QEMU, TCG)', { skip, concurrency: false }, () => {
  const ctx = snapshotTestController('10.223.0.0/28');
  const pids = new Set<number>();
  const timings: string[] = [];
  let source: VmRecord;
  let snapDir: string;
  let snapId: string;
  let cloneA: VmRecord;

  async function doctor(c: TestContext, id: string, what: string): Promise<DoctorReport> {
    const r = await runDoctor({ manager: ctx.t.manager }, { vm: id });
    timings.push(`${what} ${r.durationMs} ms`);
    c.diagnostic(`${what}: doctor ${r.durationMs} ms, ${r.checks.length} checks; ${summary(r)}`);
    return r;
  }
  const remember = (vm: VmRecord): VmRecord => { if (vm.pid) pids.add(vm.pid); return vm; };

  after(async () => {
    // snapshotTestController's own after() (registered first) destroyed the VMs and the test network.
    process.stderr.write(`# doctor run times: ${timings.join(', ')}\n`);
    if (!ctx.t) return;
    assert.deepEqual([...pids].filter(pidAlive), [], 'no QEMU left');
    const left = (await listNetns()).filter((n) => n === ctx.t.net.hostNetns || (ctx.t.net.vmNetns && n.startsWith(ctx.t.net.vmNetns)));
    assert.deepEqual(left, [], 'no namespace left');
  });

  test('cold-booted and ready: no error, in under 5 s', async (c) => {
    source = remember(await (await ctx.t.manager.create(normalizeCreate({ name: 'states' }))).ready);
    const r = await doctor(c, source.id, 'cold ready');
    assertNoError(r, 'ready');
    assert.ok(r.durationMs < 5000, `doctor took ${r.durationMs} ms`);
    for (const id of ['vm.tap', 'vm.neighbour', 'vm.icmp', 'vm.vnc', 'vm.console', 'vm.files']) {
      assert.notEqual(r.checks.find((x) => x.id === id)?.status, 'skipped', `${id} ran on a ready VM`);
    }
  });

  test('paused: no error', async (c) => {
    await ctx.t.manager.action(source.id, 'pause');
    try {
      assertNoError(await doctor(c, source.id, 'paused'), 'paused');
    } finally {
      await ctx.t.manager.action(source.id, 'resume');
    }
  });

  test('hibernated (stopped with its saved state), then resumed from it: no error either time', async (c) => {
    const hib = await ctx.t.manager.hibernate(source.id);
    assert.equal(hib.state, 'stopped');
    assert.ok(hib.hibernation);
    const asleep = await doctor(c, source.id, 'hibernated');
    assertNoError(asleep, 'hibernated');
    assert.equal(asleep.vm?.hibernated, true);
    assert.match(asleep.checks.find((x) => x.id === 'vm.files')!.saw, /saved state .*hibernation\/state\.bin: \d+ bytes/);
    const back = remember(await ctx.t.manager.action(source.id, 'resume'));
    assert.equal(back.state, 'ready');
    await waitForMarker(ctx.t.manager.consolePath(source.id), RESUMED_MARKER, { timeoutMs: 20_000 });
    const r = await doctor(c, source.id, 'hibernated and resumed');
    assertNoError(r, 'hibernated and resumed');
    assert.ok(r.findings.some((f) => f.code === 'CON_RESTORED' && f.severity === 'info'), summary(r));
    assert.ok(r.findings.some((f) => f.code === 'CON_READY'), 'the boot before the restore is still read');
  });

  test('a clone of a snapshot of it, ready: no error (its guest keeps the source\'s address, by design)', async (c) => {
    const snap = await ctx.t.manager.snapshots.create({ vm: source.id });
    snapDir = snap.dir;
    snapId = snap.manifest.id;
    cloneA = remember(await (await ctx.t.manager.create(normalizeCreate({ name: 'states-clone-a', fromSnapshot: snapId }))).ready);
    await waitForMarker(ctx.t.manager.consolePath(cloneA.id), RESUMED_MARKER, { timeoutMs: 20_000 });
    const r = await doctor(c, cloneA.id, 'clone ready');
    assertNoError(r, 'clone ready');
    assert.equal(r.vm?.snapshotId, snapId);
    // Judged as a clone: its own namespace, and reached at its own address through it.
    for (const id of ['vm.tap', 'vm.icmp', 'vm.vnc']) assert.equal(r.checks.find((x) => x.id === id)?.status, 'ok', `${id}: ${r.checks.find((x) => x.id === id)?.saw}`);
    assert.match(r.checks.find((x) => x.id === 'vm.bootargs')!.saw, /clone: the guest keeps/);
    assertNoError(await doctor(c, source.id, 'source after the snapshot'), 'the snapshot\'s source VM');
  });

  test('the clone stopped by its user: no error', async (c) => {
    const stopped = await ctx.t.manager.action(cloneA.id, 'stop');
    assert.equal(stopped.state, 'stopped');
    assertNoError(await doctor(c, cloneA.id, 'clone stopped'), 'clone stopped by its user');
  });

  test('the snapshot\'s files deleted from disk: a running clone gets a warning; hibernated and started, the missing kernel file is the first finding', async (c) => {
    const b = remember(await (await ctx.t.manager.create(normalizeCreate({ name: 'states-clone-b', fromSnapshot: snapId }))).ready);
    await rm(snapDir, { recursive: true, force: true });
    assert.ok(!existsSync(snapDir));
    const kernel = join(snapDir, 'vmlinux');

    const running = await doctor(c, b.id, 'clone running, snapshot deleted');
    assert.equal(running.ok, true, `it still runs: ${summary(running)}`);
    assert.equal(running.findings[0]?.code, 'DOC_VM_FILE_MISSING', summary(running));
    assert.equal(running.findings[0]!.severity, 'warning');
    assert.ok(running.findings[0]!.message.includes(kernel), running.findings[0]!.message);
    // A stopped clone starts cold from its image: the snapshot is not needed.
    assertNoError(await doctor(c, cloneA.id, 'stopped clone, snapshot deleted'), 'a stopped clone without its snapshot');

    await ctx.t.manager.hibernate(b.id);
    const asleep = await doctor(c, b.id, 'clone hibernated, snapshot deleted');
    assert.equal(asleep.mostLikelyCause?.code, 'DOC_VM_FILE_MISSING', `${summary(asleep)}; ${top(asleep)}`);
    assert.equal(asleep.findings[0]?.severity, 'error');
    assert.ok(asleep.findings[0]!.message.includes(kernel), asleep.findings[0]!.message);

    await ctx.t.manager.action(b.id, 'start'); // restores in the background, and fails: QEMU cannot open the kernel
    const deadline = Date.now() + 120_000;
    while (ctx.t.manager.get(b.id).state !== 'failed' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
    const failed = ctx.t.manager.get(b.id);
    assert.equal(failed.state, 'failed', `state ${failed.state}`);
    c.diagnostic(`lastError ${failed.lastError?.code}: ${failed.lastError?.message}`);
    const r = await doctor(c, b.id, 'clone failed to restore, snapshot deleted');
    assert.equal(r.ok, false);
    assert.equal(r.findings[0]?.code, 'DOC_VM_FILE_MISSING', `${summary(r)}; ${top(r)}`);
    assert.equal(r.mostLikelyCause?.code, 'DOC_VM_FILE_MISSING');
    assert.ok(r.findings[0]!.message.includes(kernel), r.findings[0]!.message);
    assert.ok(r.findings[0]!.evidence.some((e) => e.text.startsWith(`kernel ${kernel}:`)), JSON.stringify(r.findings[0]!.evidence));
    assert.ok(!r.findings.some((f) => f.code === 'DOC_BOOTARGS_IP' || f.code === 'CON_NO_KERNEL_OUTPUT'), summary(r));
    const vmFailed = r.findings.find((f) => f.code === 'DOC_VM_FAILED');
    if (vmFailed) assert.deepEqual(vmFailed.causedBy, ['DOC_VM_FILE_MISSING']);
  });
});
