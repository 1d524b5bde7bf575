import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dropPrivileges, type VmmUser } from '../../src/vmm/confine.js';

const user: VmmUser = { name: 'hangar-vmm', uid: 999, gid: 995, kvmGid: 107 };

test('setpriv drops to the VMM user for good: uid and gid, no groups, no new privileges, no capabilities', () => {
  const [cmd, args] = dropPrivileges('/usr/bin/setpriv', user, false, '/usr/bin/qemu-system-x86_64', ['-name', 'hangar-x']);
  assert.equal(cmd, '/usr/bin/setpriv');
  assert.deepEqual(args, ['--reuid', '999', '--regid', '995', '--clear-groups', '--no-new-privs', '--inh-caps=-all', '--bounding-set=-all', '/usr/bin/qemu-system-x86_64', '-name', 'hangar-x']);
});

test('with KVM the kvm group stays, and only it', () => {
  const [, args] = dropPrivileges('/usr/bin/setpriv', user, true, '/q', []);
  assert.deepEqual(args.slice(4, 6), ['--groups', '107']);
  assert.ok(!args.includes('--clear-groups'));
  const [, noKvmGroup] = dropPrivileges('/usr/bin/setpriv', { ...user, kvmGid: null }, true, '/q', []);
  assert.ok(noKvmGroup.includes('--clear-groups'));
});
