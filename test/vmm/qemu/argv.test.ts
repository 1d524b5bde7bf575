import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isHangarError } from '../../../src/errors.js';
import { buildQemuArgv, escapeOptionValue, QEMU_SANDBOX, qmpSocketArg } from '../../../src/vmm/qemu/argv.js';
import type { MachineSpec } from '../../../src/vmm/types.js';

const spec: MachineSpec = {
  id: 'desk-1',
  kernelPath: '/var/cache/hangar/images/abc/vmlinux',
  rootfsPath: '/var/lib/hangar/vms/desk-1/rootfs.ext4',
  bootArgs: 'console=ttyS0 reboot=k panic=1 pci=off root=/dev/vda rw init=/sbin/hangar-init ip=10.77.0.3::10.77.0.1:255.255.255.0::eth0:off',
  vcpus: 2,
  memMiB: 1024,
  net: { tap: 'hgtap0', mac: '02:48:0A:4D:00:03' },
  consoleLogPath: '/var/lib/hangar/vms/desk-1/console.log',
  runDir: '/var/lib/hangar/vms/desk-1',
};
const qmpSocket = '/var/lib/hangar/vms/desk-1/qmp.sock';

test('golden: TCG with network', () => {
  assert.deepEqual(buildQemuArgv(spec, { accel: 'tcg', qmpSocket }), [
    '-name', 'hangar-desk-1',
    '-M', 'microvm,acpi=off,x-option-roms=off,rtc=on',
    '-accel', 'tcg,tb-size=128',
    '-m', '1024M',
    '-smp', '2',
    '-nodefaults', '-no-user-config', '-display', 'none',
    '-no-reboot',
    '-chardev', 'file,id=con0,path=/var/lib/hangar/vms/desk-1/console.log,append=on',
    '-serial', 'chardev:con0',
    '-device', 'i8042',
    '-kernel', '/var/cache/hangar/images/abc/vmlinux',
    '-append', spec.bootArgs,
    '-drive', 'id=root,file=/var/lib/hangar/vms/desk-1/rootfs.ext4,format=raw,if=none',
    '-device', 'virtio-blk-device,drive=root',
    '-netdev', 'tap,id=n0,ifname=hgtap0,script=no,downscript=no',
    '-device', 'virtio-net-device,netdev=n0,mac=02:48:0a:4d:00:03',
    '-chardev', 'socket,id=qmp,path=/var/lib/hangar/vms/desk-1/qmp.sock,server=on,wait=off',
    '-mon', 'chardev=qmp,mode=control',
  ]);
});

test('golden: KVM uses -cpu host; no network; pidfile and incoming appended', () => {
  const argv = buildQemuArgv({ ...spec, net: undefined }, { accel: 'kvm', qmpSocket, pidFile: '/run/x/q,1.pid', incoming: 'exec:cat /snap/mem' });
  assert.deepEqual(argv.slice(4, 8), ['-accel', 'kvm', '-cpu', 'host']);
  assert.ok(!argv.includes('-netdev'));
  assert.deepEqual(argv.slice(-4), ['-pidfile', '/run/x/q,1.pid', '-incoming', 'exec:cat /snap/mem']);
});

test('commas in paths inside option strings are doubled; literal options are left alone', () => {
  const argv = buildQemuArgv({
    ...spec,
    kernelPath: '/k/vm,linux',
    rootfsPath: '/d/root,fs=x,format=qcow2',
    consoleLogPath: '/d/con,sole.log',
    bootArgs: 'console=ttyS0,115200 root=/dev/vda',
  }, { accel: 'tcg', qmpSocket: '/d/q,mp.sock' });
  const after = (flag: string, nth = 0): string => argv[argv.flatMap((a, i) => (a === flag ? [i] : []))[nth]! + 1]!;
  assert.equal(after('-drive'), 'id=root,file=/d/root,,fs=x,,format=qcow2,format=raw,if=none');
  assert.equal(after('-chardev'), 'file,id=con0,path=/d/con,,sole.log,append=on');
  assert.equal(after('-chardev', 1), 'socket,id=qmp,path=/d/q,,mp.sock,server=on,wait=off');
  assert.equal(after('-kernel'), '/k/vm,linux'); // -kernel is literal in QEMU: escaping would break it
  assert.equal(after('-append'), 'console=ttyS0,115200 root=/dev/vda');
  assert.equal(escapeOptionValue('a,,b'), 'a,,,,b');
  assert.equal(qmpSocketArg('/d/q,mp.sock'), 'path=/d/q,,mp.sock,');
});

test('injection through values that cannot be escaped is refused', () => {
  const bad: [Partial<MachineSpec>, string][] = [
    [{ net: { tap: 'tap0,script=/tmp/evil', mac: '02:00:00:00:00:01' } }, 'net.tap'],
    [{ net: { tap: 'hgtap0', mac: '02:00:00:00:00:01,romfile=/x' } }, 'net.mac'],
    [{ net: { tap: 'hgtap0', mac: '01:00:5e:00:00:01' } }, 'net.mac'],
    [{ id: 'x,guest=y' }, 'id'],
    [{ rootfsPath: 'relative/root.ext4' }, 'rootfsPath'],
    [{ consoleLogPath: '/d/con\nsole' }, 'consoleLogPath'],
    [{ kernelPath: '/k/vm\0linux' }, 'kernelPath'],
    [{ vcpus: 0 }, 'vcpus'],
    [{ memMiB: 1.5 }, 'memMiB'],
  ];
  for (const [patch, field] of bad) {
    assert.throws(() => buildQemuArgv({ ...spec, ...patch }, { accel: 'tcg', qmpSocket }), (e: unknown) => {
      assert.ok(isHangarError(e, 'INVALID_ARGUMENT'), `${field}: ${String(e)}`);
      assert.equal(e.details.field, field);
      return true;
    });
  }
  assert.throws(() => buildQemuArgv({ ...spec, bootArgs: 'a\nb' }, { accel: 'tcg', qmpSocket }), (e: unknown) => isHangarError(e, 'BOOT_ARGS_INVALID'));
  assert.throws(() => buildQemuArgv({ ...spec, bootArgs: 'x'.repeat(2000) }, { accel: 'tcg', qmpSocket }), (e: unknown) => isHangarError(e, 'BOOT_ARGS_INVALID'));
  assert.throws(() => buildQemuArgv(spec, { accel: 'tcg', qmpSocket: `/${'d'.repeat(110)}/qmp.sock` }), /at most 107 bytes/);
  assert.throws(() => buildQemuArgv(spec, { accel: 'hvf' as 'tcg', qmpSocket }), /accel/);
  assert.throws(() => buildQemuArgv(spec, { accel: 'tcg', qmpSocket, incoming: 'file:/x' }), /incoming/);
});

test('confined: the seccomp sandbox denies everything QEMU 7.2 can deny, and -S holds the CPUs for the cgroup move', () => {
  const argv = buildQemuArgv(spec, { accel: 'tcg', qmpSocket, sandbox: true, paused: true });
  const i = argv.indexOf('-sandbox');
  assert.equal(argv[i + 1], 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny');
  assert.equal(QEMU_SANDBOX, argv[i + 1]);
  assert.ok(argv.includes('-S'));
  assert.ok(!argv.includes('-runas'), 'setpriv drops to the user: -runas needs setuid, which elevateprivileges=deny kills (SIGSYS)');
  const plain = buildQemuArgv(spec, { accel: 'tcg', qmpSocket });
  assert.ok(!plain.includes('-sandbox') && !plain.includes('-S'));
});

test("hangar-agent's port: a second virtserialport org.hangar.guest on the agent's virtio-serial device, its own socket", () => {
  const argv = buildQemuArgv(spec, { accel: 'tcg', qmpSocket, agentSocket: '/r/agent.sock', guestSocket: '/r/guest.sock', rng: true });
  const i = argv.indexOf('socket,id=guest,path=/r/guest.sock,server=on,wait=off');
  assert.ok(i > 0 && argv[i - 1] === '-chardev');
  assert.ok(argv.includes('virtserialport,bus=vser0.0,chardev=guest,name=org.hangar.guest'));
  assert.ok(argv.includes('virtserialport,bus=vser0.0,chardev=agent,name=org.hangar.agent'), 'the resume channel is untouched');
  assert.equal(argv.filter((a) => a.startsWith('virtio-serial-device')).length, 1);
  assert.throws(() => buildQemuArgv(spec, { accel: 'tcg', qmpSocket, guestSocket: '/r/guest.sock' }), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT'));
});
