// The QEMU device set snapshots rely on: the agent channel (virtio-serial port named for the guest agent, its
// socket validated like QMP's) and virtio-rng, only when asked, and counted in the command-line budget.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isHangarError } from '../../src/errors.js';
import { AGENT_PORT_NAME, buildQemuArgv } from '../../src/vmm/qemu/argv.js';
import type { MachineSpec } from '../../src/vmm/types.js';

const spec: MachineSpec = {
  id: 'snap-1', kernelPath: '/k/vmlinux', rootfsPath: '/r/snap-1/rootfs.ext4', bootArgs: 'console=ttyS0',
  vcpus: 1, memMiB: 512, net: { tap: 'hgtap0', mac: '02:48:0a:00:00:02' }, consoleLogPath: '/r/snap-1/console.log', runDir: '/r/snap-1',
};
const base = { accel: 'tcg' as const, qmpSocket: '/r/snap-1/qmp.sock' };

test('agent channel and rng are added only on request, before QMP, pidfile and incoming', () => {
  const plain = buildQemuArgv(spec, base);
  assert.ok(!plain.some((a) => a.includes('virtio-serial') || a.includes('virtio-rng')));
  const argv = buildQemuArgv(spec, { ...base, agentSocket: '/r/snap-1/agent.sock', rng: true, pidFile: '/r/snap-1/q.pid', incoming: 'unix:/r/snap-1/in.sock' });
  const at = (x: string): number => argv.indexOf(x);
  assert.ok(argv.includes('socket,id=agent,path=/r/snap-1/agent.sock,server=on,wait=off'));
  assert.ok(argv.includes('virtio-serial-device,id=vser0'));
  assert.ok(argv.includes(`virtserialport,bus=vser0.0,chardev=agent,name=${AGENT_PORT_NAME}`));
  assert.ok(argv.includes('virtio-rng-device'));
  assert.ok(at('virtio-rng-device') < at('-mon'));
  assert.deepEqual(argv.slice(-4), ['-pidfile', '/r/snap-1/q.pid', '-incoming', 'unix:/r/snap-1/in.sock']);
});

test('the agent socket is validated like the QMP socket; the extra devices count against the command line', () => {
  assert.throws(() => buildQemuArgv(spec, { ...base, agentSocket: 'relative.sock' }), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT'));
  assert.throws(() => buildQemuArgv(spec, { ...base, agentSocket: `/${'a'.repeat(120)}` }), /at most 107 bytes/);
  const long = { ...spec, bootArgs: 'x'.repeat(1700) }; // fits with 2 devices and the 2 volume slots (2048 - 256), not with 6 (2048 - 384)
  assert.doesNotThrow(() => buildQemuArgv(long, base));
  assert.throws(() => buildQemuArgv(long, { ...base, agentSocket: '/r/a.sock', rng: true }), (e: unknown) => isHangarError(e, 'BOOT_ARGS_INVALID'));
});
