import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { COMMANDS } from '../../src/cli/main.js';
import { ROOT } from '../support/env.js';

function unit(): Map<string, string[]> {
  const kv = new Map<string, string[]>();
  for (const line of readFileSync(join(ROOT, 'deploy', 'hangar.service'), 'utf8').split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (m) kv.set(m[1]!, [...(kv.get(m[1]!) ?? []), m[2]!]);
  }
  return kv;
}

test('the systemd unit keeps VMs running when the controller stops', () => {
  const u = unit();
  assert.deepEqual(u.get('KillMode'), ['process'], 'only the controller is signalled; VMMs in the cgroup survive');
  assert.deepEqual(u.get('KillSignal'), ['SIGTERM'], 'SIGTERM is the graceful shutdown the controller handles');
});

test('the unit starts a command the CLI really has, in the foreground', () => {
  const exec = unit().get('ExecStart')![0]!.split(/\s+/);
  const args = exec.slice(exec.findIndex((a) => a.endsWith('bin/hangar.js')) + 1);
  assert.equal(args[0], 'up');
  const up = COMMANDS.find((c) => c.path.join(' ') === 'up')!;
  for (const flag of args.slice(1)) assert.ok(flag.replace(/^--/, '') in up.options, `${flag} is an option of 'hangar up'`);
  assert.ok(args.includes('--foreground'));
});

test('the unit is hardened without a mount namespace of its own: no new privileges, a capability set, limits', () => {
  const u = unit();
  const one = (k: string): string => { const v = u.get(k); assert.equal(v?.length, 1, `${k} is set once`); return v![0]!; };
  // Any of these makes the unit's root mount a slave: the network namespaces bind-mounted under /run/netns would
  // not outlive a restart of the unit, and adopted VMs would lose their network. A device allow-list would shut out
  // /dev/net/tun and /dev/kvm.
  for (const k of ['ProtectSystem', 'ProtectHome', 'PrivateTmp', 'ReadWritePaths', 'ProtectKernelModules', 'ProtectKernelLogs', 'ProtectClock', 'PrivateDevices', 'DeviceAllow', 'TemporaryFileSystem', 'BindPaths']) {
    assert.equal(u.get(k), undefined, `${k} is not set`);
  }
  assert.equal(one('NoNewPrivileges'), 'yes', 'compatible: setpriv only drops privileges');
  assert.equal(one('UMask'), '0077');
  assert.ok(Number(one('LimitNOFILE')) >= 4096);
  assert.ok(Number(one('TasksMax')) >= 4096);
  assert.match(one('MemoryMax'), /^(infinity|\d+[KMGT%]?)$/, 'a memory limit option, documented in the unit');
  assert.equal(one('Delegate'), 'yes', 'Hangar makes its VM cgroups inside the unit');
  assert.equal(one('StateDirectoryMode'), '0711', 'the VMM user passes through to its run directory');
  const caps = one('CapabilityBoundingSet').split(/\s+/);
  for (const c of ['CAP_NET_ADMIN', 'CAP_SYS_ADMIN', 'CAP_SETUID', 'CAP_SETGID', 'CAP_SETPCAP', 'CAP_CHOWN', 'CAP_KILL', 'CAP_SYS_PTRACE']) assert.ok(caps.includes(c), `${c} is kept`);
});
