// QMP against a real QEMU started paused (-S): no guest kernel needed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isHangarError } from '../../../src/errors.js';
import { which } from '../../../src/util/exec.js';
import { escapeOptionValue } from '../../../src/vmm/qemu/argv.js';
import { connectQmpWhenReady, type QmpEvent } from '../../../src/vmm/qemu/qmp.js';
import { SupervisedProcess } from '../../../src/vmm/supervisor.js';

const QEMU = await which('qemu-system-x86_64');
const skip = QEMU ? false : 'qemu-system-x86_64 is not installed (scripts/install-deps.sh installs qemu-system-x86)';

test('real QEMU: negotiate, query-status, stop/cont with events, unknown command, quit', { skip }, async () => {
  // A comma in the directory proves the ",," escaping reaches a real QEMU intact.
  const dir = await mkdtemp(join(tmpdir(), 'hangar-qmp,int-'));
  const sock = join(dir, 'qmp.sock');
  const proc = await SupervisedProcess.spawn({
    command: QEMU!,
    args: ['-M', 'microvm', '-accel', 'tcg', '-nodefaults', '-no-user-config', '-display', 'none', '-S',
      '-chardev', `socket,id=qmp,path=${escapeOptionValue(sock)},server=on,wait=off`, '-mon', 'chardev=qmp,mode=control'],
    logPath: join(dir, 'vmm.log'),
    pidFile: join(dir, 'qemu.pid'),
  });
  try {
    const qmp = await connectQmpWhenReady(sock, { timeoutMs: 15_000 });
    assert.match(qmp.version, /^\d+\.\d+\.\d+$/);
    assert.deepEqual(await qmp.queryStatus(), { status: 'prelaunch', running: false, singlestep: false });

    const events: QmpEvent[] = [];
    qmp.onEvent((e) => events.push(e));
    const resumed = qmp.waitForEvent('RESUME', { timeoutMs: 5000 });
    await qmp.cont();
    await resumed;
    assert.equal((await qmp.queryStatus()).status, 'running');

    const stopped = qmp.waitForEvent('STOP', { timeoutMs: 5000 });
    await qmp.stop();
    await stopped;
    assert.deepEqual(await qmp.queryStatus(), { status: 'paused', running: false, singlestep: false });
    await qmp.cont();
    assert.equal((await qmp.queryStatus()).running, true);

    await assert.rejects(qmp.execute('no-such-command'), (e: unknown) => isHangarError(e, 'QMP_ERROR') && e.details.class === 'CommandNotFound');
    await assert.rejects(qmp.execute('query-status', { bogus: 1 }), (e: unknown) => isHangarError(e, 'QMP_ERROR') && e.details.class === 'GenericError');

    const shutdown = qmp.waitForEvent('SHUTDOWN', { timeoutMs: 5000 }).catch(() => null);
    await qmp.quit();
    const exit = await proc.waitExit(5000);
    assert.ok(exit, 'QEMU exited after quit');
    assert.equal(exit.code, 0);
    const ev = await shutdown;
    if (ev) assert.equal(ev.data?.guest, false); // host-initiated
    assert.deepEqual(events.map((e) => e.event).filter((n) => n === 'STOP' || n === 'RESUME'), ['RESUME', 'STOP', 'RESUME']);
  } finally {
    if (proc.alive) await proc.terminate({ graceMs: 1000 });
    await rm(dir, { recursive: true, force: true });
  }
});
