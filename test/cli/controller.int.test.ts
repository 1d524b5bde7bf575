// `hangar up` (background daemon) and `hangar down --purge` as a user runs them, with a config that keeps every
// namespace test-named: the daemon answers, a VM boots, and purge leaves no VM, process or namespace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listNetns } from '../../src/net/host.js';
import { run } from '../../src/util/exec.js';
import { imageSkipReason } from '../support/controller.js';
import { ROOT, skipUnlessRoot } from '../support/env.js';

const skip = skipUnlessRoot() || (await imageSkipReason()) || false;
const HANGAR = join(ROOT, 'bin', 'hangar.js');

test('hangar up starts a daemon; down --purge removes VMs, the controller and its namespaces', { skip }, async () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'hangar-up-'));
  const id = randomBytes(3).toString('hex');
  const netns = `hgt-upv-${id}`;
  const hostNetns = `hgt-uph-${id}`;
  writeFileSync(join(stateDir, 'config.json'), JSON.stringify({ listen: { port: 0 }, net: { netns, hostNetns, cidr: '10.222.0.0/29' } }));
  const env = { ...process.env, HANGAR_STATE_DIR: stateDir };
  const hangar = (args: string[]): ReturnType<typeof run> => run(process.execPath, [HANGAR, ...args], { env, allowFailure: true, timeoutMs: 300_000 });
  try {
    const up = await hangar(['up', '--json']);
    assert.equal(up.code, 0, up.stderr);
    const { url, pid } = JSON.parse(up.stdout) as { url: string; pid: number };
    assert.equal((await fetch(`${url}/healthz`)).status, 200);
    assert.equal(JSON.parse((await hangar(['up', '--json'])).stdout).already, true, 'a second up finds the running one');
    assert.deepEqual((await listNetns()).filter((n) => n.endsWith(id)).sort(), [hostNetns, netns].sort());
    const vm = await hangar(['vm', 'create', '--name', 'up-e2e', '--json']);
    assert.equal(vm.code, 0, vm.stderr);
    const qemuPid = (JSON.parse(vm.stdout) as { pid: number }).pid;

    const down = await hangar(['down', '--purge', '--json']);
    assert.equal(down.code, 0, down.stderr);
    assert.deepEqual(JSON.parse(down.stdout), { stopped: true, pid, destroyed: [JSON.parse(vm.stdout).id], purged: true });
    assert.throws(() => process.kill(pid, 0), 'the controller is gone');
    assert.throws(() => process.kill(qemuPid, 0), 'the VM is gone');
    assert.deepEqual((await listNetns()).filter((n) => n.endsWith(id)), [], 'its namespaces are gone');
  } finally {
    await hangar(['down', '--purge']);
    for (const ns of [netns, hostNetns]) await run('ip', ['netns', 'del', ns], { allowFailure: true });
    rmSync(stateDir, { recursive: true, force: true });
  }
});
