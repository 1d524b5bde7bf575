// A real boot of the desktop image through QemuDriver, in a test network (netns mode): wait for the guest's
// ready marker, reach it from the VM namespace (ping) and from the fake host through the veth (RFB banner),
// pause/resume over QMP, let the controller "restart" and adopt the VM, stop it, and leave nothing behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GUEST_INIT_PATH, READY_MARKER, VNC_PORT } from '../../../src/guest-protocol.js';
import { attachVm, listHangarTaps, listNetns } from '../../../src/net/host.js';
import { planVmNetwork } from '../../../src/net/plan.js';
import { run, which } from '../../../src/util/exec.js';
import { waitForMarker } from '../../../src/vmm/console.js';
import { QemuDriver, type QemuHandle } from '../../../src/vmm/qemu/driver.js';
import type { MachineSpec } from '../../../src/vmm/types.js';
import { skipUnlessRoot, pidAlive } from '../../support/env.js';
import { tcpBanner, withTestNetwork } from '../../support/net.js';
import { findTestImage } from './test-image.js';
import { VOLUME_SLOTS } from '../../../src/volume/input.js';

const found = await findTestImage();
const skip = skipUnlessRoot()
  || (!(await which('qemu-system-x86_64')) ? 'qemu-system-x86_64 is not installed' : false)
  || (!(await which('ping')) ? 'ping (iputils-ping) is not installed' : false)
  || ('reason' in found ? found.reason : false);

const BOOT_TIMEOUT_MS = 90_000;

test('QemuDriver boots the desktop image: ready, reachable, pause/resume, adopt, stop, nothing left', { skip, timeout: 300_000 }, async (t) => {
  const image = 'image' in found ? found.image : null;
  assert.ok(image);
  const work = await mkdtemp(join(tmpdir(), 'hangar-boot-'));
  let pid = 0;
  let vmNetns = '';
  let tap = '';
  try {
    // The VM writes to its disk: boot a sparse copy, never the published image.
    const rootfs = join(work, 'rootfs.ext4');
    await run('cp', ['--sparse=always', '--reflink=auto', image.rootfs, rootfs], { timeoutMs: 120_000 });

    await withTestNetwork(async (net) => {
      vmNetns = net.vmNetns!;
      const plan = planVmNetwork(net.cfg, [], 'boot');
      tap = plan.tap;
      const undoTap = await attachVm(net.cfg, plan);
      const base = image.cmdline ?? `console=ttyS0 reboot=k panic=1 pci=off root=/dev/vda rw init=${GUEST_INIT_PATH}`;
      const spec: MachineSpec = {
        id: 'boot-test',
        kernelPath: image.kernel,
        rootfsPath: rootfs,
        bootArgs: `${base} ip=${plan.bootIp.address}::${plan.bootIp.gateway}:${plan.bootIp.netmask}::eth0:off`,
        vcpus: 1,
        memMiB: 512,
        net: { tap: plan.tap, mac: plan.mac },
        consoleLogPath: join(work, 'console.log'),
        runDir: join(work, 'run'),
        netns: net.vmNetns!,
      };
      const driver = new QemuDriver();
      const probe = await driver.probe();
      assert.ok(probe.available, probe.reason);
      t.diagnostic(`probe: ${probe.reason}`);

      const t0 = performance.now();
      const handle = (await driver.start(spec)) as QemuHandle;
      pid = handle.pid;
      const hit = await waitForMarker(spec.consoleLogPath, READY_MARKER, { timeoutMs: BOOT_TIMEOUT_MS, exited: handle.exited });
      const readyMs = Math.round(performance.now() - t0);
      t.diagnostic(`start→QMP ${handle.startMs} ms, start→${READY_MARKER} ${readyMs} ms (accel ${handle.accel?.accel})`);

      // QEMU appended the virtio-mmio device descriptions to the command line, as Firecracker does.
      const consoleText = await readFile(spec.consoleLogPath, 'utf8');
      const cmdline = consoleText.split('\n').find((l) => l.includes('Command line:')) ?? '';
      assert.match(cmdline, /virtio_mmio\.device=\S+@0x[0-9a-f]+:\d+/, 'QEMU appends virtio_mmio.device=');
      assert.equal((cmdline.match(/virtio_mmio\.device=/g) ?? []).length, 2 + VOLUME_SLOTS, 'one per device (blk + net + the empty volume slots)');
      assert.ok(hit.line.includes(READY_MARKER));

      const ping = await run('ping', ['-c', '1', '-W', '3', plan.ip], { netns: net.vmNetns, allowFailure: true });
      assert.equal(ping.code, 0, `ping from the VM namespace: ${ping.stdout}${ping.stderr}`);
      const t1 = performance.now();
      const banner = await tcpBanner(net.hostNetns, plan.ip, VNC_PORT, { timeoutMs: 10_000 });
      assert.match(banner, /^RFB 003\.00\d\n/, 'RFB banner from the fake host through the veth');
      t.diagnostic(`RFB banner from the fake host in ${Math.round(performance.now() - t1)} ms: ${JSON.stringify(banner)}`);

      assert.equal(await handle.status(), 'running');
      await handle.pause();
      assert.equal(await handle.status(), 'paused');
      // A paused guest does not even complete the TCP handshake.
      await assert.rejects(tcpBanner(net.hostNetns, plan.ip, VNC_PORT, { timeoutMs: 1500 }));
      await handle.resume();
      assert.equal(await handle.status(), 'running');
      assert.match(await tcpBanner(net.hostNetns, plan.ip, VNC_PORT, { timeoutMs: 10_000 }), /^RFB 003\.00\d/);

      // The controller goes away; a new one adopts the running VM through pidfile + QMP.
      handle.release();
      assert.equal(await driver.adopt({ ...spec, id: 'other-vm', runDir: join(work, 'nope') }), null);
      const adopted = (await driver.adopt(spec)) as QemuHandle | null;
      assert.ok(adopted, 'adopted');
      assert.equal(adopted.pid, pid);
      assert.equal(await adopted.status(), 'running');

      const ts = performance.now();
      const exit = await adopted.stop();
      const stopMs = Math.round(performance.now() - ts);
      t.diagnostic(`stop (Ctrl-Alt-Del) took ${stopMs} ms: ${JSON.stringify(exit)}`);
      assert.equal(exit.by, 'hangar');
      assert.ok(stopMs < 3000, 'a live guest reacts to Ctrl-Alt-Del well within the grace period');
      assert.ok(!pidAlive(pid), 'QEMU is gone');
      assert.equal(await adopted.status(), 'stopped');
      await undoTap();
      assert.deepEqual(await listHangarTaps(net.cfg), [], 'TAP removed');
    });
  } finally {
    if (pid && pidAlive(pid)) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
    await rm(work, { recursive: true, force: true });
  }
  assert.ok(!(await listNetns()).includes(vmNetns), 'namespaces removed');
  // Only this test's QEMU (its argv names the work directory): other jobs on the machine may run VMs too.
  const q = await run('pgrep', ['-f', work], { allowFailure: true });
  assert.equal(q.stdout.trim(), '', 'no QEMU left');
  assert.ok(tap);
});
