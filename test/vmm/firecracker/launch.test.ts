import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isHangarError } from '../../../src/errors.js';
import { withNetns } from '../../../src/util/exec.js';
import { firecrackerArgv, isOurVmm, jailerArgv, planLaunch } from '../../../src/vmm/firecracker/launch.js';
import type { MachineSpec } from '../../../src/vmm/types.js';

const spec: MachineSpec = {
  id: 'vm-7', kernelPath: '/img/vmlinux', rootfsPath: '/var/lib/hangar/vms/vm-7/rootfs.ext4', bootArgs: 'console=ttyS0',
  vcpus: 1, memMiB: 256, consoleLogPath: '/var/lib/hangar/vms/vm-7/console.log', runDir: '/var/lib/hangar/vms/vm-7',
};
const jailer = { binary: '/usr/bin/jailer', uid: 123, gid: 100, chrootBaseDir: '/srv/jailer' };

test('firecracker argv', () => {
  assert.deepEqual(firecrackerArgv('/usr/bin/firecracker', '/r/fc.sock', 'vm-7'), ['/usr/bin/firecracker', '--api-sock', '/r/fc.sock', '--id', 'vm-7']);
});

test('direct launch: socket, pidfile and log under runDir, console to consoleLogPath', () => {
  const p = planLaunch(spec, { binary: '/usr/bin/firecracker' });
  assert.equal(p.command, '/usr/bin/firecracker');
  assert.deepEqual(p.args, ['--api-sock', '/var/lib/hangar/vms/vm-7/firecracker.sock', '--id', 'vm-7']);
  assert.deepEqual(p.identity, { binary: '/usr/bin/firecracker', markers: ['/var/lib/hangar/vms/vm-7/firecracker.sock'] });
  assert.equal(p.pidfile, '/var/lib/hangar/vms/vm-7/firecracker.pid');
  assert.equal(p.consoleLogPath, spec.consoleLogPath);
  assert.deepEqual(p.vmmPaths, { kernelPath: '/img/vmlinux', rootfsPath: spec.rootfsPath, logPath: '/var/lib/hangar/vms/vm-7/firecracker.log', vsockPath: '/var/lib/hangar/vms/vm-7/vsock.sock' });
  assert.equal(p.vsockSocket, '/var/lib/hangar/vms/vm-7/vsock.sock');
  assert.equal(p.jail, undefined);
});

test('netns launch runs firecracker through ip netns exec', () => {
  const p = planLaunch({ ...spec, netns: 'hangar-ns1' }, { binary: '/usr/bin/firecracker' });
  assert.equal(p.netns, 'hangar-ns1');
  const [file, args] = withNetns(p.netns, p.command, p.args); // what the supervisor spawns
  assert.deepEqual([file, ...args].slice(0, 5), ['ip', 'netns', 'exec', 'hangar-ns1', '/usr/bin/firecracker']);
  assert.ok(isOurVmm(p, spec, ['/usr/bin/firecracker', '--api-sock', p.apiSocket, '--id', 'vm-7']), 'ip netns exec execs firecracker: same pid, firecracker argv');
  assert.throws(() => planLaunch({ ...spec, netns: '../etc' }, { binary: '/usr/bin/firecracker' }), (e) => isHangarError(e, 'INVALID_ARGUMENT'));
});

test('jailer argv, including --netns with the namespace handle path', () => {
  assert.deepEqual(
    jailerArgv({ ...jailer, id: 'vm-7', execFile: '/usr/bin/firecracker', netns: 'ns1' }, ['--api-sock', '/firecracker.sock']),
    ['/usr/bin/jailer', '--id', 'vm-7', '--exec-file', '/usr/bin/firecracker', '--uid', '123', '--gid', '100', '--chroot-base-dir', '/srv/jailer',
      '--netns', '/var/run/netns/ns1', '--', '--api-sock', '/firecracker.sock'],
  );
  assert.throws(() => jailerArgv({ ...jailer, id: 'vm-7', execFile: '/usr/bin/fc' }, []), /contains "firecracker"/);
  assert.throws(() => jailerArgv({ ...jailer, id: 'vm_7', execFile: '/usr/bin/firecracker' }, []), /jailer id/);
  assert.throws(() => jailerArgv({ ...jailer, uid: -1, id: 'vm-7', execFile: '/usr/bin/firecracker' }, []), /uid/);
});

test('jailed launch: API paths are inside the chroot, files staged there', () => {
  const p = planLaunch({ ...spec, netns: 'ns1' }, { binary: '/usr/bin/firecracker', jailer });
  assert.equal(p.command, '/usr/bin/jailer');
  assert.ok(p.args.includes('--netns') && p.netns === undefined, 'the jailer joins the namespace itself, no ip netns exec');
  assert.deepEqual(p.identity, { binary: '/firecracker', markers: ['/firecracker.sock', '--id=vm-7'] });
  assert.equal(p.jail?.chrootDir, '/srv/jailer/firecracker/vm-7/root');
  assert.equal(p.apiSocket, '/srv/jailer/firecracker/vm-7/root/firecracker.sock');
  assert.deepEqual(p.vmmPaths, { kernelPath: '/vmlinux', rootfsPath: '/rootfs.ext4', logPath: '/firecracker.log', vsockPath: '/vsock.sock' });
  assert.ok(p.vsockSocket.endsWith('/root/vsock.sock'), 'the host reaches the socket inside the chroot');
  assert.deepEqual(p.jail?.files.map((f) => [f.to, f.how]), [
    ['/srv/jailer/firecracker/vm-7/root/vmlinux', 'copy'],
    ['/srv/jailer/firecracker/vm-7/root/rootfs.ext4', 'link'],
    ['/srv/jailer/firecracker/vm-7/root/firecracker.log', 'create'],
  ]);
  assert.equal(p.pidfile, '/var/lib/hangar/vms/vm-7/firecracker.pid');
  // What the jailer execs: ./firecracker --id=vm-7 --start-time-us=… --api-sock /firecracker.sock
  assert.ok(isOurVmm(p, spec, ['/firecracker', '--id=vm-7', '--start-time-us=1', '--api-sock', '/firecracker.sock']));
  assert.ok(!isOurVmm(p, spec, ['/firecracker', '--id=vm-8', '--api-sock', '/firecracker.sock']));
});

test('a socket path longer than sun_path allows is refused before anything runs', () => {
  const deep = `/tmp/${'d'.repeat(100)}`;
  assert.throws(() => planLaunch({ ...spec, runDir: deep }, { binary: '/usr/bin/firecracker' }), /at most 107/);
  assert.throws(() => planLaunch({ ...spec, kernelPath: 'relative' }, { binary: '/usr/bin/firecracker' }), (e) => isHangarError(e, 'INVALID_ARGUMENT'));
});

test('adopt refuses a recycled pid running something else', () => {
  const p = planLaunch(spec, { binary: '/usr/bin/firecracker' });
  assert.ok(!isOurVmm(p, spec, ['/usr/bin/sleep', '100']));
  assert.ok(!isOurVmm(p, spec, ['/usr/bin/firecracker', '--api-sock', '/other/firecracker.sock']));
});
