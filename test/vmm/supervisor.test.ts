import { test } from 'node:test';
import assert from 'node:assert/strict';
import { matchIdentity, parseCmdline, parseProcStat } from '../../src/vmm/supervisor.js';

test('parseProcStat survives a comm with spaces and parentheses', () => {
  const s = parseProcStat('4242 (qemu (x) y) S 1 4242 4242 0 -1 4194560 1 0 0 0 5 6 0 0 20 0 3 0 987654 1000 100 18446744073709551615');
  assert.deepEqual(s, { state: 'S', ppid: 1, pgrp: 4242, starttime: 987654 });
  assert.equal(parseProcStat('garbage'), null);
});

test('parseCmdline splits on NUL and drops the trailing one', () => {
  assert.deepEqual(parseCmdline(Buffer.from('qemu\0-name\0hangar-a\0')), ['qemu', '-name', 'hangar-a']);
  assert.deepEqual(parseCmdline(''), []);
});

test('matchIdentity: binary by exe (or argv[0]) and every marker must match', () => {
  const id = { binary: '/usr/bin/qemu-system-x86_64', markers: ['path=/run/vm/a/qmp.sock,'] };
  const argv = ['/usr/bin/qemu-system-x86_64', '-chardev', 'socket,id=qmp,path=/run/vm/a/qmp.sock,server=on,wait=off'];
  assert.ok(matchIdentity(argv, '/usr/bin/qemu-system-x86_64', id.binary, id).ok);
  assert.ok(matchIdentity(argv, '/usr/bin/qemu-system-x86_64 (deleted)', id.binary, id).ok, 'binary upgraded under a running VM');
  assert.ok(matchIdentity(argv, null, id.binary, id).ok, 'exe unreadable: argv[0] decides');
  // A recycled pid: another program, or another VM's QEMU.
  assert.match(matchIdentity(['/usr/bin/sleep', '100'], '/usr/bin/sleep', id.binary, id).reason, /runs \/usr\/bin\/sleep/);
  const other = ['/usr/bin/qemu-system-x86_64', '-chardev', 'socket,id=qmp,path=/run/vm/ab/qmp.sock,server=on,wait=off'];
  assert.match(matchIdentity(other, '/usr/bin/qemu-system-x86_64', id.binary, id).reason, /lacks/);
  assert.equal(matchIdentity([], null, id.binary, id).ok, false);
});
