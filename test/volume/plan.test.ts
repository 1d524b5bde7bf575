import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isHangarError } from '../../src/errors.js';
import { VOLUME_SLOTS, validGuestPath, validMounts, validSize, validVolumeName } from '../../src/volume/input.js';
import { CDP_CLOSE_SCRIPT, guestArgv, planCopy, planCreate, planGrow, planSwapIn, planSwapOut, slotSerial } from '../../src/volume/plan.js';
import { QEMU_VOLUME_SLOTS } from '../../src/vmm/qemu/argv.js';

test('a new volume: a sparse file of the size limit, then ext4 owned by the desktop user, all argv', () => {
  assert.deepEqual(planCreate('/s/vol-1.ext4', 'a-very-long-volume-name', 64), [
    { cmd: 'truncate', args: ['-s', '64M', '/s/vol-1.ext4'] },
    { cmd: 'mkfs.ext4', args: ['-q', '-F', '-m', '0', '-L', 'a-very-long-volu', '-E', 'root_owner=1000:1000,lazy_itable_init=1,lazy_journal_init=1', '/s/vol-1.ext4'] },
  ]);
});

test('growth: offline checks and resizes on the host; online only grows the file (the guest resizes)', () => {
  assert.deepEqual(planGrow('/f', 128, false).map((s) => s.cmd), ['truncate', 'e2fsck', 'resize2fs']);
  assert.deepEqual(planGrow('/f', 128, true), [{ cmd: 'truncate', args: ['-s', '128M', '/f'] }]);
  assert.deepEqual(planCopy('/a', '/b'), [{ cmd: 'cp', args: ['--reflink=auto', '--sparse=always', '/a', '/b'] }]);
});

test('the slot swap: add the file node, reopen the raw node onto it, resize so the guest sees it, drop the old node; back without a resize', () => {
  const steps = planSwapIn(1, '/s/v.ext4', 64 * 1024 * 1024, 'vol1-ab', 'vol1-null');
  assert.deepEqual(steps.map((s) => s.execute), ['blockdev-add', 'blockdev-reopen', 'block_resize', 'blockdev-del']);
  assert.deepEqual(steps[1]!.arguments, { options: [{ driver: 'raw', 'node-name': 'vol1', file: 'vol1-ab' }] });
  assert.deepEqual(steps[2]!.arguments, { 'node-name': 'vol1', size: 64 * 1024 * 1024 });
  assert.deepEqual(steps[3]!.arguments, { 'node-name': 'vol1-null' });
  const out = planSwapOut(1, 'vol1-cd', 'vol1-ab');
  assert.deepEqual(out[0]!.arguments, { driver: 'null-co', 'node-name': 'vol1-cd', size: 0 });
  assert.deepEqual(out.map((s) => s.execute), ['blockdev-add', 'blockdev-reopen', 'blockdev-del'], 'null-co cannot be resized (measured): no block_resize');
  assert.equal(QEMU_VOLUME_SLOTS, VOLUME_SLOTS, 'the API offers the slots QEMU has');
});

test('the guest script gets its values as positional arguments, never spliced into its text', () => {
  const argv = guestArgv(0, '/home/hangar/my data', true, 'mount');
  assert.equal(argv[0], '/bin/sh');
  assert.ok(!argv[2]!.includes('/home/hangar'));
  assert.deepEqual(argv.slice(3), ['hangar-volume', slotSerial(0), '/home/hangar/my data', 'ro', 'mount', CDP_CLOSE_SCRIPT]);
});

test('validation: names, sizes and guest paths', () => {
  const bad = (f: () => unknown) => assert.throws(f, (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT'));
  assert.equal(validVolumeName('data-1'), 'data-1');
  for (const n of ['', 'UP', '-x', 'a b', 'a/b', '$(x)', 'vol-0123abcd', 'x'.repeat(64), 7]) bad(() => validVolumeName(n));
  assert.equal(validSize(16), 16);
  for (const s of [15, 0, -1, 1.5, '64', 2 * 1024 * 1024]) bad(() => validSize(s));
  assert.equal(validGuestPath('/home/hangar/.config/chromium'), '/home/hangar/.config/chromium');
  for (const p of ['/', 'rel', '/a/../b', '/a/./b', '/a/', '//a', '/proc', '/sys/x', '/etc/shadow', '/usr/lib', '/a b', '/a;b', '/a\nb', `/${'x'.repeat(300)}`]) bad(() => validGuestPath(p));
  assert.deepEqual(validMounts(undefined), []);
  bad(() => validMounts([{ name: 'a', path: '/a' }, { name: 'a', path: '/b' }]));
  bad(() => validMounts([{ name: 'a', path: '/a' }, { name: 'b', path: '/a' }]));
});
