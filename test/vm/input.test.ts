// normalizeCreate checks input against the create-VM schema the API validates with (built from the limits), with
// the same error details, and fills the defaults inside the configured ranges.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Compile } from 'typebox/compile';
import { createVmSchema, DEFAULT_LIMITS, normalizeCreate, type VmLimits } from '../../src/vm/input.js';
import { isHangarError } from '../../src/errors.js';

const details = (fn: () => unknown): Record<string, unknown> => {
  try {
    fn();
  } catch (e) {
    assert.ok(isHangarError(e), String(e));
    return { code: e.code, ...e.details };
  }
  throw new Error('did not throw');
};

test('defaults are filled once at the edge', () => {
  assert.deepEqual(normalizeCreate({}), { image: 'desktop', profile: 'desktop', vcpus: 1, memMiB: 512, name: null, ttlSeconds: null, vmm: null, fromSnapshot: null, network: null, given: { vcpus: false, memMiB: false, profile: false } });
  assert.deepEqual(normalizeCreate({ vcpus: 2, profile: 'browser' }).given, { vcpus: true, memMiB: false, profile: true });
  assert.equal(normalizeCreate({ profile: 'browser' }).memMiB, 1024);
});

test('volumes and idle settings: given ones are carried, checked; bad ones refused', () => {
  const r = normalizeCreate({ volumes: [{ name: 'data', path: '/home/hangar/data' }, { name: 'profile', path: '/home/hangar/.config/chromium', readOnly: true }], idleTimeoutS: 0, idleAction: 'pause' });
  assert.deepEqual(r.volumes, [{ name: 'data', path: '/home/hangar/data', readOnly: false }, { name: 'profile', path: '/home/hangar/.config/chromium', readOnly: true }]);
  assert.deepEqual(r.idle, { timeoutS: 0, action: 'pause' });
  const bad = [
    { volumes: [{ name: 'a', path: 'relative' }] }, { volumes: [{ name: 'a', path: '/x/../etc' }] }, { volumes: [{ name: 'a', path: '/proc/x' }] },
    { volumes: [{ name: 'a', path: '/' }] }, { volumes: [{ name: 'a', path: '/x;reboot' }] }, { volumes: [{ name: 'a', path: '/a' }, { name: 'a', path: '/b' }] },
    { volumes: [{ name: 'a', path: '/a' }, { name: 'b', path: '/a' }] }, { volumes: [{ name: 'a', path: '/a' }, { name: 'b', path: '/b' }, { name: 'c', path: '/c' }] },
    { idleTimeoutS: -1 }, { idleAction: 'sleep' }, { volumes: [{ name: 'a', path: '/a', extra: 1 }] },
  ];
  for (const input of bad) {
    assert.throws(() => normalizeCreate(input as never), (e: unknown) => isHangarError(e) && ['INVALID_ARGUMENT', 'UNKNOWN_FIELD'].includes(e.code), JSON.stringify(input));
  }
});

test('absurd sizes, shell metacharacters and unknown enums are refused with INVALID_ARGUMENT', () => {
  const bad = [
    { vcpus: 0 }, { vcpus: 999 }, { vcpus: 1.5 }, { memMiB: 1 }, { memMiB: 10_000_000 }, { ttlSeconds: 1 },
    { name: 'a;rm -rf /' }, { name: '$(reboot)' }, { name: 'UPPER' }, { name: '-lead' }, { name: 'x'.repeat(64) },
    { image: '../etc/passwd' }, { image: 'a b' }, { profile: 'server' }, { vmm: 'xen' }, { fromSnapshot: 'a/b' },
    { network: { egress: { mode: 'everything' } } }, { network: { group: 'Bad Group' } }, { network: { limits: { bandwidthMbit: 0 } } },
  ];
  for (const input of bad) {
    assert.throws(() => normalizeCreate(input as never), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT'), JSON.stringify(input));
  }
});

test('no coercion here either: "2" is not 2, 123 is not "123"', () => {
  assert.deepEqual(details(() => normalizeCreate({ vcpus: '2' } as never)), { code: 'INVALID_ARGUMENT', field: 'vcpus', reason: 'type', expected: 'integer', min: 1, max: 8, got: '2' });
  assert.deepEqual(details(() => normalizeCreate({ name: 123 } as never)), { code: 'INVALID_ARGUMENT', field: 'name', reason: 'type', expected: 'string', got: 123 });
  assert.deepEqual(details(() => normalizeCreate(null as never)), { code: 'INVALID_ARGUMENT', field: '', reason: 'type', expected: 'object', got: null });
});

test('the same details the API gives: range with min/max, enum with allowed, unknown fields first', () => {
  assert.deepEqual(details(() => normalizeCreate({ memMiB: 64 })), { code: 'INVALID_ARGUMENT', field: 'memMiB', reason: 'range', expected: 'integer', min: 128, max: 16384, got: 64 });
  assert.deepEqual(details(() => normalizeCreate({ profile: 'server' } as never)), { code: 'INVALID_ARGUMENT', field: 'profile', reason: 'enum', allowed: ['desktop', 'browser'], got: 'server' });
  assert.deepEqual(details(() => normalizeCreate({ vcpus: 'x', sudo: 1 } as never)), {
    code: 'UNKNOWN_FIELD', field: 'sudo', reason: 'unknown', allowed: Object.keys(createVmSchema().properties), got: 1,
  });
  assert.equal(details(() => normalizeCreate({ image: 'UP' })).reason, 'format');
});

test('limits decide both the schema and normalizeCreate; defaults stay inside configured ranges', () => {
  const limits: VmLimits = { vcpus: { min: 2, max: 16 }, memMiB: { min: 1024, max: 4096 }, ttlSeconds: { min: 1, max: 10 }, name: { maxLength: 8 } };
  assert.equal(normalizeCreate({ vcpus: 16 }, limits).vcpus, 16);
  assert.throws(() => normalizeCreate({ vcpus: 16 }), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT'), 'the default limits stop at 8');
  assert.deepEqual({ vcpus: normalizeCreate({}, limits).vcpus, memMiB: normalizeCreate({}, limits).memMiB }, { vcpus: 2, memMiB: 1024 });
  assert.equal(normalizeCreate({ ttlSeconds: 1 }, limits).ttlSeconds, 1);
  assert.throws(() => normalizeCreate({ name: 'ninechars' }, limits), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT'));
  const s = (JSON.parse(JSON.stringify(createVmSchema(limits))) as { properties: Record<string, { minimum?: number; maximum?: number; maxLength?: number }> }).properties;
  assert.deepEqual([s.vcpus?.minimum, s.vcpus?.maximum, s.memMiB?.minimum, s.memMiB?.maximum, s.name?.maxLength], [2, 16, 1024, 4096, 8]);
});

test('the schema accepts exactly what normalizeCreate accepts (one definition)', () => {
  const check = Compile(createVmSchema(DEFAULT_LIMITS));
  const inputs: unknown[] = [{}, { vcpus: 8 }, { vcpus: 9 }, { memMiB: 128 }, { memMiB: 127 }, { ttlSeconds: 604800 }, { ttlSeconds: 604801 }, { name: 'ok-1' }, { name: 'Bad' }, { vmm: 'firecracker' }, { x: 1 }];
  for (const input of inputs) {
    let ok = true;
    try { normalizeCreate(input as never); } catch { ok = false; }
    assert.equal(ok, check.Check(input), JSON.stringify(input));
  }
});

test('names shaped like ids (vm-/snap- and 8 hex digits) are refused: lookups take an id or a name', () => {
  for (const name of ['vm-00000000', 'vm-deadbeef', 'snap-0a1b2c3d']) {
    const d = details(() => normalizeCreate({ name }));
    assert.equal(d.code, 'INVALID_ARGUMENT', name);
    assert.equal(d.field, 'name', name);
    assert.equal(d.reason, 'format', name);
  }
  for (const name of ['vm-0000000', 'vm-000000000', 'vm-desk', 'snap-0a1b2c3g', 'my-vm-00000000', 'vm00000000']) {
    assert.equal(normalizeCreate({ name }).name, name, name);
  }
});
