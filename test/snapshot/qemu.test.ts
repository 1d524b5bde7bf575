// The migration transport's one rule before QEMU sees a path (src/snapshot/qemu.ts): plain absolute socket paths.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isHangarError } from '../../src/errors.js';
import { safeSocketPath } from '../../src/snapshot/qemu.js';

test('QEMU is only ever handed plain absolute socket paths', () => {
  assert.equal(safeSocketPath('/var/lib/hangar/vms/vm-1/migrate-in.sock'), '/var/lib/hangar/vms/vm-1/migrate-in.sock');
  for (const bad of ['relative.sock', '/a b/c.sock', '/a;rm -rf /', '/a,server=on', '/x/../y.sock', `/${'a'.repeat(110)}`, '/a\nb', '/$(id)']) {
    assert.throws(() => safeSocketPath(bad), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT'), bad);
  }
});
