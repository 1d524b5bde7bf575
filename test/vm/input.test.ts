import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalizeCreate } from '../../src/vm/input.js';
import { isHangarError } from '../../src/errors.js';

test('defaults are filled once at the edge', () => {
  assert.deepEqual(normalizeCreate({}), { image: 'desktop', profile: 'desktop', vcpus: 1, memMiB: 512, name: null, ttlSeconds: null, vmm: null, fromSnapshot: null, given: { vcpus: false, memMiB: false, profile: false } });
  assert.deepEqual(normalizeCreate({ vcpus: 2, profile: 'browser' }).given, { vcpus: true, memMiB: false, profile: true });
  assert.equal(normalizeCreate({ profile: 'browser' }).memMiB, 1024);
});

test('absurd sizes, shell metacharacters and unknown enums are refused with INVALID_ARGUMENT', () => {
  const bad = [
    { vcpus: 0 }, { vcpus: 999 }, { vcpus: 1.5 }, { memMiB: 1 }, { memMiB: 10_000_000 }, { ttlSeconds: 1 },
    { name: 'a;rm -rf /' }, { name: '$(reboot)' }, { name: 'UPPER' }, { name: '-lead' }, { name: 'x'.repeat(64) },
    { image: '../etc/passwd' }, { image: 'a b' }, { profile: 'server' }, { vmm: 'xen' }, { fromSnapshot: 'a/b' },
  ];
  for (const input of bad) {
    assert.throws(() => normalizeCreate(input as never), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT'), JSON.stringify(input));
  }
});
