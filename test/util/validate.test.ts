// The shared validators (src/util/validate.ts): one rule each for names, paths, MACs, interface names and integers,
// with the details every validation error carries; both VMM drivers' request builders refuse the same values with
// the same error, because they use these and no copies of their own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isHangarError } from '../../src/errors.js';
import { absPath, cleanAbsPath, gotValue, oneOf, validInt, validInterfaceName, validMac, validName } from '../../src/util/validate.js';
import { machineConfigRequest, networkInterfaceRequest, rootDriveRequest } from '../../src/vmm/firecracker/requests.js';
import { buildQemuArgv } from '../../src/vmm/qemu/argv.js';
import type { MachineSpec } from '../../src/vmm/types.js';

const err = (fn: () => unknown): { code: string; message: string; details: Record<string, unknown> } => {
  try {
    fn();
  } catch (e) {
    assert.ok(isHangarError(e), String(e));
    return { code: e.code, message: e.message, details: { ...e.details } };
  }
  throw new Error('did not throw');
};

test('MACs: six hex octets, unicast, lower-cased', () => {
  assert.equal(validMac('02:48:0A:F2:00:02'), '02:48:0a:f2:00:02');
  for (const bad of ['02:00:00:00:00', '02:00:00:00:00:01,romfile=/x', '01:00:5e:00:00:01', '0200.0000.0001', 2, null]) {
    const e = err(() => validMac(bad, 'net.mac'));
    assert.equal(e.code, 'INVALID_ARGUMENT');
    assert.deepEqual({ field: e.details.field, reason: e.details.reason }, { field: 'net.mac', reason: 'format' }, String(bad));
  }
  assert.match(err(() => validMac('03:00:00:00:00:01')).message, /multicast/);
});

test('interface names: 1–15 characters [A-Za-z0-9_.-], starting with a letter or digit', () => {
  for (const ok of ['hgtap0', 'a', 'tap_1.2-x', 'x'.repeat(15)]) assert.equal(validInterfaceName(ok), ok);
  for (const bad of ['', 'x'.repeat(16), 'tap0,script=/x', 'tap 0', '-tap', 'tap/0', 5]) assert.equal(err(() => validInterfaceName(bad)).details.field, 'net.tap', String(bad));
});

test('paths for another process: absolute, no control characters; absPath normalises, cleanAbsPath keeps them as given', () => {
  assert.equal(cleanAbsPath('/run/x/q,1.pid', 'p'), '/run/x/q,1.pid');
  assert.equal(cleanAbsPath('/a//b/../c', 'p'), '/a//b/../c');
  assert.equal(absPath('/a//b/../c', 'p'), '/a/c');
  for (const bad of ['relative', '', '/a\nb', '/a\0b', '/a\tb', '/a\x7fb', `/${'x'.repeat(4096)}`, 7]) {
    assert.deepEqual({ field: err(() => cleanAbsPath(bad, 'kernelPath')).details.field, abs: err(() => absPath(bad, 'kernelPath')).details.reason }, { field: 'kernelPath', abs: 'format' }, JSON.stringify(bad));
  }
});

test('names, integers and choices carry the details the API gives (field, reason, min/max/allowed, got)', () => {
  assert.equal(validName('desk-1'), 'desk-1');
  assert.deepEqual(err(() => validName('x'.repeat(64))).details.reason, 'range');
  assert.deepEqual(err(() => validName('Bad')).details, { field: 'name', reason: 'format', pattern: '^[a-z0-9][a-z0-9-]*$', got: 'Bad' });
  assert.deepEqual(err(() => validInt(9, 'vcpus', 1, 8)), { code: 'INVALID_ARGUMENT', message: 'vcpus must be an integer from 1 to 8 (got 9)', details: { field: 'vcpus', reason: 'range', expected: 'integer', min: 1, max: 8, got: 9 } });
  assert.equal(err(() => validInt(1.5, 'vcpus', 1, 8)).details.reason, 'type');
  assert.equal(validInt('7070', 'port', 0, 65535), 7070, 'flags and config values may be digit strings');
  assert.deepEqual(err(() => oneOf('xen', 'vmm', ['qemu', 'firecracker'])).details, { field: 'vmm', reason: 'enum', allowed: ['qemu', 'firecracker'], got: 'xen' });
});

test('the offending value is reported cut to 64 characters', () => {
  assert.equal(gotValue('y'.repeat(100)), 'y'.repeat(64));
  assert.deepEqual(gotValue(['a']), ['a']);
  assert.equal((gotValue(Array.from({ length: 50 }, (_, i) => i)) as string).length, 64);
  assert.equal(gotValue(Number.NaN), 'NaN');
});

test('both drivers refuse the same bad MAC, TAP, path and vCPU count with the same error', () => {
  const spec: MachineSpec = {
    id: 'desk-1', kernelPath: '/k/vmlinux', rootfsPath: '/d/rootfs.ext4', bootArgs: 'console=ttyS0', vcpus: 2, memMiB: 1024,
    net: { tap: 'hgtap0', mac: '02:48:0a:4d:00:03' }, consoleLogPath: '/d/console.log', runDir: '/d',
  };
  const qemu = (s: Partial<MachineSpec>) => () => buildQemuArgv({ ...spec, ...s }, { accel: 'tcg', qmpSocket: '/d/qmp.sock' });
  const pairs: [() => unknown, () => unknown][] = [
    [qemu({ net: { tap: 'hgtap0', mac: '01:00:5e:00:00:01' } }), () => networkInterfaceRequest({ tap: 'hgtap0', mac: '01:00:5e:00:00:01' }, '1.9.1')],
    [qemu({ net: { tap: 'tap0,script=/x', mac: '02:00:00:00:00:01' } }), () => networkInterfaceRequest({ tap: 'tap0,script=/x', mac: '02:00:00:00:00:01' }, '1.9.1')],
    [qemu({ rootfsPath: 'relative.ext4' }), () => rootDriveRequest('relative.ext4')],
    [qemu({ vcpus: 0 }), () => machineConfigRequest({ vcpus: 0, memMiB: 1024 })],
  ];
  for (const [a, b] of pairs) {
    const ea = err(a);
    const eb = err(b);
    assert.equal(ea.code, 'INVALID_ARGUMENT');
    if (ea.details.field === 'vcpus') {
      // Same rule and wording; each driver's own maximum (QEMU 64, Firecracker 32).
      assert.deepEqual({ ...ea.details, max: 0 }, { ...eb.details, max: 0 });
      assert.deepEqual([ea.details.max, eb.details.max], [64, 32]);
    } else {
      assert.deepEqual(ea, eb);
    }
  }
});
