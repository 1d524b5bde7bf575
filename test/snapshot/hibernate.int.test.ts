// Hibernation on QEMU (TCG) in a test network: text typed into the guest's xterm over RFB (through the manager's
// dial) before hibernation — a file written to disk and to tmpfs, and a command line typed but not yet entered —
// is all still there after the VM was saved to disk, its VMM stopped, and restored: pressing Return afterwards
// runs the line typed before. The idle policy, viewer holds and cleanup on destroy are checked on the way.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { vmView } from '../../src/api/core-routes.js';
import { idler } from '../../src/api/workers.js';
import { isHangarError } from '../../src/errors.js';
import { listHangarTaps } from '../../src/net/host.js';
import { RESUMED_MARKER } from '../../src/vmm/qemu/agent.js';
import type { Hibernation } from '../../src/vm/manager.js';
import { normalizeCreate } from '../../src/vm/input.js';
import { logSize, waitForMarker } from '../../src/vmm/console.js';
import { skipUnlessRoot, pidAlive } from '../support/env.js';
import { imageSkipReason } from '../support/controller.js';
import { snapshotTestController } from './cleanup.js';
import { REPORT_MARKER } from './guest-image.js';
import { rfbConnect, type RfbSession } from './rfb-client.js';

const skip = skipUnlessRoot() || (await imageSkipReason()) || false;

describe('hibernation on QEMU (TCG)', { skip, concurrency: false }, () => {
  const ctx = snapshotTestController('10.219.0.0/29');

  /** A viewer session on the VM's xterm (twm focuses the window under the pointer). */
  async function viewer(vmId: string): Promise<RfbSession> {
    const rfb = await rfbConnect(await ctx.t.manager.dialVm(vmId, 5900, { timeoutMs: 10_000 }));
    rfb.pointer(300, 200);
    await new Promise((r) => setTimeout(r, 300));
    return rfb;
  }

  /** Waits for the reporter hook to print ~/report-NAME on the console (from `offset` on). */
  async function report(consolePath: string, name: string, offset: number): Promise<string> {
    const hit = await waitForMarker(consolePath, `${REPORT_MARKER} report-${name} `, { timeoutMs: 60_000, fromOffset: offset });
    return hit.line.slice(hit.line.indexOf(`report-${name} `) + `report-${name} `.length).trim();
  }

  test('hibernate → resume keeps the desktop: a file written and a line typed before are there after', async () => {
    const vm = await (await ctx.t.manager.create(normalizeCreate({ name: 'sleepy' }))).ready;
    const con = join(vm.runDir, 'console.log');
    const mark = `m${Date.now().toString(36)}`;

    // Before: write a file on disk and one in tmpfs (RAM), prove the typing works, then type a line without Return.
    let rfb = await viewer(vm.id);
    let from = await logSize(con);
    await rfb.type(`echo ${mark}-disk > ~/disk-marker; echo ${mark}-ram > /tmp/ram-marker; echo typed-ok > ~/report-before\n`);
    assert.equal(await report(con, 'before', from), 'typed-ok', 'the xterm takes what is typed over RFB');
    await rfb.type(`echo ${mark}-line > ~/report-typed`); // no Return: it waits in the xterm's command line
    await new Promise((r) => setTimeout(r, 1500));
    rfb.close();

    // Hibernate: state on disk, VMM gone, TAP gone, addresses kept.
    const pid = vm.pid!;
    const tap = (vm.net as { tap: string }).tap;
    const ip = (vm.net as { ip: string }).ip;
    const hib = await ctx.t.manager.hibernate(vm.id);
    assert.equal(hib.state, 'stopped');
    const h = hib.hibernation as unknown as Hibernation;
    assert.ok(h && existsSync(join(h.dir, 'state.bin')), 'the saved state is on disk');
    assert.ok(h.files['state.bin']!.size > 10 * 1024 * 1024);
    assert.equal(vmView(hib).hibernated, true);
    assert.ok(!pidAlive(pid), 'the VMM has stopped');
    assert.ok(!(await listHangarTaps(ctx.t.net.cfg)).some((x) => x.name === tap), 'its TAP is removed');
    assert.equal((hib.net as { ip: string }).ip, ip, 'it keeps its address');
    await assert.rejects(ctx.t.manager.dialVm(vm.id, 5900), (e: unknown) => isHangarError(e, 'VM_INVALID_STATE'));
    await assert.rejects(ctx.t.manager.action(vm.id, 'pause'), (e: unknown) => isHangarError(e, 'VM_INVALID_STATE'));

    // Resume (what POST /v1/vms/:id/resume does), then the line typed before runs when Return is pressed.
    const t0 = Date.now();
    const back = await ctx.t.manager.ensureRunning(vm.id);
    const resumeMs = Date.now() - t0;
    assert.equal(back.state, 'ready');
    assert.equal(back.hibernation, null);
    assert.ok(!existsSync(h.dir), 'the saved state is deleted once the guest runs on');
    assert.notEqual(back.pid, pid);
    await waitForMarker(con, RESUMED_MARKER, { timeoutMs: 20_000 });
    rfb = await viewer(vm.id);
    from = await logSize(con);
    await rfb.type('\n');
    assert.equal(await report(con, 'typed', from), `${mark}-line`, 'the line typed before hibernation');
    from = await logSize(con);
    await rfb.type(`cat ~/disk-marker /tmp/ram-marker | tr '\\n' ' ' > ~/report-files\n`);
    assert.equal(await report(con, 'files', from), `${mark}-disk ${mark}-ram`, 'the files written before hibernation');
    rfb.close();
    process.stderr.write(`# hibernate save ${h.saveMs} ms (${h.files['state.bin']!.size} bytes); resume to ready ${resumeMs} ms\n`);

    // Destroy removes the VM and whatever it kept.
    await ctx.t.manager.destroy(vm.id);
    assert.ok(!existsSync(vm.runDir));
  });

  test('idle policy: idle ready VMs hibernate, one with a viewer does not; resume through the action', async () => {
    const a = await (await ctx.t.manager.create(normalizeCreate({ name: 'idle-a' }))).ready;
    const b = await (await ctx.t.manager.create(normalizeCreate({ name: 'busy-b' }))).ready;
    const release = ctx.t.manager.hold(b.id);
    const later = Date.now() + 3_600_000;
    assert.deepEqual(ctx.t.manager.idleVms(60, later).map((v) => v.id), [a.id], 'a viewer keeps b awake');
    assert.deepEqual(ctx.t.manager.idleVms(3600, Date.now()).map((v) => v.id), [], 'nobody is idle for an hour yet');
    const loop = idler(ctx.t.manager, ctx.t.store, { defaultS: 60, defaultAction: 'hibernate', own: () => new Map() }, 60_000, () => later);
    await loop.tick();
    assert.equal(ctx.t.manager.get(a.id).state, 'stopped');
    assert.ok(ctx.t.manager.get(a.id).hibernation);
    assert.equal(ctx.t.manager.get(b.id).state, 'ready');
    release();
    assert.ok(ctx.t.store.events({ vmId: a.id }).some((e) => e.type === 'vm.state' && e.data.hibernated === true));
    const resumed = await ctx.t.manager.action(a.id, 'resume');
    assert.equal(resumed.state, 'ready');
    assert.match(await new Promise<string>((resolve, reject) => {
      void ctx.t.manager.dialVm(a.id, 5900).then((s) => {
        s.once('data', (d: Buffer) => { resolve(d.toString('latin1')); s.destroy(); });
        s.once('error', reject);
      }, reject);
    }), /^RFB/);
    // A hibernated VM that is destroyed takes its saved state with it.
    const again = await ctx.t.manager.hibernate(a.id);
    const dir = (again.hibernation as unknown as Hibernation).dir;
    assert.ok(existsSync(dir));
    await ctx.t.manager.destroy(a.id);
    assert.ok(!existsSync(dir));
    await ctx.t.manager.destroy(b.id);
  });
});
