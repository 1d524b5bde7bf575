// The controller end to end: a real server on a test network, real QEMU boots, the CLI as a separate process.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { run } from '../../src/util/exec.js';
import { listHangarTaps } from '../../src/net/host.js';
import { ROOT, skipUnlessRoot } from '../support/env.js';
import { imageSkipReason } from '../support/controller.js';
import { startLiveController, type LiveController } from '../support/live-controller.js';

const skip = skipUnlessRoot() || (await imageSkipReason()) || false;
const HANGAR = join(ROOT, 'bin', 'hangar.js');

async function cli(live: LiveController, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return run(process.execPath, [HANGAR, ...args], { env: live.env, allowFailure: true, timeoutMs: 300_000 });
}

describe('controller end to end', { skip, concurrency: false }, () => {
  let live: LiveController;
  before(async () => { live = await startLiveController({ net: { cidr: '10.216.0.0/29' } }); }); // 5 guest addresses
  after(async () => { await live?.destroy(); });

  test('the CLI creates a VM, sees it ready, lists it and destroys it', async () => {
    const created = await cli(live, ['vm', 'create', '--name', 'cli-e2e', '--json']);
    assert.equal(created.code, 0, created.stderr);
    const vm = JSON.parse(created.stdout) as { id: string; state: string; network: { ip: string } };
    assert.equal(vm.state, 'ready');
    const ls = await cli(live, ['vm', 'ls', '--json']);
    assert.deepEqual((JSON.parse(ls.stdout) as { name: string; state: string }[]).map((v) => [v.name, v.state]), [['cli-e2e', 'ready']]);
    const table = await cli(live, ['vm', 'ls']);
    assert.match(table.stdout, /^ID\s+NAME\s+STATE/m);
    assert.match(table.stdout, /cli-e2e\s+ready\s+10\.216\.0\./);
    const consoleOut = await cli(live, ['vm', 'console', 'cli-e2e', '--lines', '400']);
    assert.match(consoleOut.stdout, /HANGAR-READY/);
    const rm = await cli(live, ['vm', 'rm', 'cli-e2e']);
    assert.equal(rm.code, 0, rm.stderr);
    assert.equal((await cli(live, ['vm', 'show', vm.id])).code, 2, 'a destroyed VM is not found: exit 2');
    assert.deepEqual(await listHangarTaps(live.net.cfg), []);
  });

  test('CLI exit codes and errors scripts can rely on', async () => {
    const bad = await cli(live, ['vm', 'create', '--name', 'bad;name', '--json']);
    assert.equal(bad.code, 2);
    assert.equal(JSON.parse(bad.stdout).error.code, 'INVALID_ARGUMENT');
    const noAuth = await run(process.execPath, [HANGAR, 'vm', 'ls'], { env: { ...live.env, HANGAR_TOKEN: 'wrong' }, allowFailure: true });
    assert.notEqual(noAuth.code, 0);
    assert.match(noAuth.stderr, /UNAUTHORIZED/);
    const down = await run(process.execPath, [HANGAR, 'vm', 'ls'], { env: { ...live.env, HANGAR_URL: 'http://127.0.0.1:9' }, allowFailure: true });
    assert.equal(down.code, 5);
    assert.match(down.stderr, /CONTROLLER_UNREACHABLE/);
  });

  test('concurrent creates that exhaust the pool: the pool decides, nothing leaks', async () => {
    const base = live.c.url;
    const headers = { authorization: `Bearer ${live.c.token}`, 'content-type': 'application/json' };
    const answers = await Promise.all(Array.from({ length: 8 }, (_, i) =>
      fetch(`${base}/v1/vms`, { method: 'POST', headers, body: JSON.stringify({ name: `burst-${i}` }) }).then(async (r) => ({ status: r.status, body: (await r.json()) as { id?: string; error?: { code: string } } }))));
    const accepted = answers.filter((a) => a.status === 202);
    const refused = answers.filter((a) => a.status !== 202);
    assert.equal(accepted.length, 5);
    assert.equal(refused.length, 3);
    for (const r of refused) {
      assert.equal(r.status, 503);
      assert.equal(r.body.error!.code, 'NET_POOL_EXHAUSTED');
    }
    const ips = live.c.store.allocations('ip').map((a) => a.value);
    assert.equal(new Set(ips).size, 5);
    await Promise.all(accepted.map((a) => fetch(`${base}/v1/vms/${a.body.id}`, { method: 'DELETE', headers: { authorization: headers.authorization } })));
    assert.deepEqual(live.c.store.listVms(), []);
    assert.deepEqual(live.c.store.allocations(), []);
    assert.deepEqual(await listHangarTaps(live.net.cfg), []);
    const metrics = await (await fetch(`${base}/metrics`, { headers })).text();
    assert.match(metrics, /^hangar_errors_total\{code="NET_POOL_EXHAUSTED"\} 3$/m);
  });

  test('a graceful controller restart keeps the VM running and adopts it', async () => {
    const r = await fetch(`${live.c.url}/v1/vms?wait=true`, { method: 'POST', headers: { authorization: `Bearer ${live.c.token}`, 'content-type': 'application/json' }, body: '{"name":"survivor"}' });
    assert.equal(r.status, 201);
    const vm = (await r.json()) as { id: string; pid: number };
    const c2 = await live.restart();
    assert.deepEqual(c2.reconcile.adopted, [vm.id]);
    const again = (await (await fetch(`${c2.url}/v1/vms/${vm.id}`, { headers: { authorization: `Bearer ${c2.token}` } })).json()) as { state: string; pid: number };
    assert.equal(again.state, 'ready');
    assert.equal(again.pid, vm.pid);
    const paused = await fetch(`${c2.url}/v1/vms/${vm.id}/pause`, { method: 'POST', headers: { authorization: `Bearer ${c2.token}` } });
    assert.equal(((await paused.json()) as { state: string }).state, 'paused');
  });
});
