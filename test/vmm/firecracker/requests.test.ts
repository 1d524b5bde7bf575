import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isHangarError } from '../../../src/errors.js';
import { toHttpRequest } from '../../../src/vmm/firecracker/actions.js';
import type { FirecrackerAction } from '../../../src/vmm/firecracker/actions.js';
import {
  bootSequence, bootSourceRequest, guestMac, machineConfigRequest, networkInterfaceRequest,
  rootDriveRequest, snapshotCreateRequest, snapshotLoadRequest,
} from '../../../src/vmm/firecracker/requests.js';
import { apiVersionFor, hasField, parseVersion } from '../../../src/vmm/firecracker/version.js';

const bodyOf = (a: FirecrackerAction): Record<string, unknown> => toHttpRequest(a).body as Record<string, unknown>;

const code = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    assert.ok(isHangarError(e), String(e));
    return e.code;
  }
  assert.fail('expected a throw');
};

test('versions map to the newest verified definition not newer than them', () => {
  assert.deepEqual(parseVersion('Firecracker v1.13.1\n'), [1, 13, 1]);
  assert.equal(apiVersionFor('1.9.1'), '1.9.1');
  assert.equal(apiVersionFor('v1.12.0'), '1.9.1');
  assert.equal(apiVersionFor('1.13.1'), '1.13.1');
  assert.equal(apiVersionFor('1.15.0-dev'), '1.13.1');
  assert.equal(apiVersionFor('1.16.1'), '1.16.1');
  assert.equal(apiVersionFor('2.0.0'), '1.16.1');
  assert.equal(code(() => apiVersionFor('1.8.0')), 'VMM_NOT_AVAILABLE');
  assert.equal(code(() => apiVersionFor('nonsense')), 'VMM_NOT_AVAILABLE');
});

test('machine-config validation: vCPU range, SMT parity, huge-page memory', () => {
  assert.deepEqual(machineConfigRequest({ vcpus: 2, memMiB: 512 }), {
    kind: 'put-machine-config', body: { vcpu_count: 2, mem_size_mib: 512, smt: false, track_dirty_pages: false },
  });
  assert.equal(code(() => machineConfigRequest({ vcpus: 0, memMiB: 512 })), 'INVALID_ARGUMENT');
  assert.equal(code(() => machineConfigRequest({ vcpus: 33, memMiB: 512 })), 'INVALID_ARGUMENT');
  assert.equal(code(() => machineConfigRequest({ vcpus: 1.5, memMiB: 512 })), 'INVALID_ARGUMENT');
  assert.equal(code(() => machineConfigRequest({ vcpus: 3, memMiB: 512, smt: true })), 'INVALID_ARGUMENT');
  assert.equal(code(() => machineConfigRequest({ vcpus: 2, memMiB: 513, hugePages2M: true })), 'INVALID_ARGUMENT');
  assert.equal(code(() => machineConfigRequest({ vcpus: 2, memMiB: 0 })), 'INVALID_ARGUMENT');
});

test('boot-source: absolute kernel path, one-line boot args that leave room for Firecracker', () => {
  assert.equal(code(() => bootSourceRequest('vmlinux', 'console=ttyS0')), 'INVALID_ARGUMENT');
  assert.equal(code(() => bootSourceRequest('/k', 'a\nb')), 'BOOT_ARGS_INVALID');
  assert.equal(code(() => bootSourceRequest('/k', 'x'.repeat(2048))), 'BOOT_ARGS_INVALID');
  assert.deepEqual(bootSourceRequest('/k/../k/vmlinux', 'console=ttyS0').kind, 'put-boot-source');
});

test('drive and network interface bodies', () => {
  assert.deepEqual(rootDriveRequest('/v/rootfs.ext4'), {
    kind: 'put-drive', body: { drive_id: 'rootfs', path_on_host: '/v/rootfs.ext4', is_root_device: true, is_read_only: false },
  });
  assert.deepEqual(networkInterfaceRequest({ tap: 'hg-tap0', mac: '02:AA:00:00:00:01' }, '1.9.1'), {
    kind: 'put-network-interface', body: { iface_id: 'eth0', host_dev_name: 'hg-tap0', guest_mac: '02:aa:00:00:00:01' },
  });
  assert.equal(code(() => guestMac('03:00:00:00:00:01')), 'INVALID_ARGUMENT', 'multicast');
  assert.equal(code(() => guestMac('02:00:00:00:00')), 'INVALID_ARGUMENT');
  assert.equal(code(() => networkInterfaceRequest({ tap: 'a-very-long-tap-name', mac: '02:00:00:00:00:01' }, '1.9.1')), 'INVALID_ARGUMENT');
  assert.equal(code(() => networkInterfaceRequest({ tap: 'tap0', mac: '02:00:00:00:00:01' }, '1.13.1', { mtu: 1400 })), 'INVALID_ARGUMENT', 'mtu is 1.16.1+');
  const withMtu = networkInterfaceRequest({ tap: 'tap0', mac: '02:00:00:00:00:01' }, '1.16.1', { mtu: 1400 });
  assert.equal(bodyOf(withMtu).mtu, 1400);
  assert.equal(code(() => networkInterfaceRequest({ tap: 'tap0', mac: '02:00:00:00:00:01' }, '1.16.1', { mtu: 67 })), 'INVALID_ARGUMENT');
});

test('snapshot-load shape follows the target version', () => {
  const input = { snapshotPath: '/s/a.snap', memFilePath: '/s/a.mem', trackDirtyPages: true };
  const old = snapshotLoadRequest(input, '1.9.1');
  assert.deepEqual(old, {
    kind: 'snapshot-load',
    body: { snapshot_path: '/s/a.snap', mem_backend: { backend_type: 'File', backend_path: '/s/a.mem' }, resume_vm: false, enable_diff_snapshots: true },
  });
  for (const v of ['1.13.1', '1.16.1'] as const) {
    const body = bodyOf(snapshotLoadRequest(input, v));
    assert.equal(body.track_dirty_pages, true);
    assert.equal('enable_diff_snapshots' in body, false, 'deprecated name not sent to a version that has the new one');
    assert.equal('mem_file_path' in body, false, 'deprecated mem_file_path never sent');
  }
  assert.equal(code(() => snapshotLoadRequest({ ...input, networkOverrides: [{ tap: 'tap9' }] }, '1.9.1')), 'INVALID_ARGUMENT');
  const ov = bodyOf(snapshotLoadRequest({ ...input, networkOverrides: [{ tap: 'tap9' }] }, '1.13.1'));
  assert.deepEqual(ov.network_overrides, [{ iface_id: 'eth0', host_dev_name: 'tap9' }]);
  assert.equal(code(() => snapshotLoadRequest({ ...input, clockRealtime: true }, '1.13.1')), 'INVALID_ARGUMENT');
  assert.equal(hasField('1.16.1', 'snapshot-load.clock_realtime'), true);
});

test('snapshot-create validates its paths', () => {
  assert.equal(code(() => snapshotCreateRequest({ snapshotPath: '/s/x', memFilePath: '/s/x' })), 'INVALID_ARGUMENT');
  assert.equal(code(() => snapshotCreateRequest({ snapshotPath: 'rel', memFilePath: '/s/x' })), 'INVALID_ARGUMENT');
  assert.equal(code(() => snapshotCreateRequest({ snapshotPath: '/a', memFilePath: '/b', type: 'Incremental' as never })), 'INVALID_ARGUMENT');
});

test('the cold-boot conversation is logger, machine, boot source, rootfs, network, entropy, start', () => {
  const seq = bootSequence(
    { vcpus: 1, memMiB: 256, bootArgs: 'console=ttyS0', net: { tap: 'tap0', mac: '02:00:00:00:00:01' } },
    { kernelPath: '/k', rootfsPath: '/r', logPath: '/l' }, '1.13.1',
  );
  assert.deepEqual(seq.map((a) => a.kind), ['put-logger', 'put-machine-config', 'put-boot-source', 'put-drive', 'put-network-interface', 'put-entropy', 'instance-start']);
  assert.deepEqual(seq.find((a) => a.kind === 'put-entropy'), { kind: 'put-entropy', body: {} }, 'a virtio-rng device, as QEMU guests get');
  const noNet = bootSequence({ vcpus: 1, memMiB: 256, bootArgs: '' }, { kernelPath: '/k', rootfsPath: '/r', logPath: '/l' }, '1.9.1');
  assert.equal(noNet.some((a) => a.kind === 'put-network-interface'), false);
  const noRng = bootSequence({ vcpus: 1, memMiB: 256, bootArgs: '' }, { kernelPath: '/k', rootfsPath: '/r', logPath: '/l' }, '1.9.1', { entropy: false });
  assert.equal(noRng.some((a) => a.kind === 'put-entropy'), false);
});
