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
