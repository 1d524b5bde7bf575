// vm create / start / resume wait until the VM is ready: through the controller's ?wait=true, or by polling a
// controller that refuses or ignores it; exit 1 with the VM's last error and console when it does not become
// ready; starting a running VM is no error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { VmInfo } from '../../src/cli/vm-view.js';
import { fail, fakeApi, fakeVm, hangar, ok, type Answer, type FakeApi, type FakeRequest } from './fake-api.js';

const stopped = fakeVm({ state: 'stopped', pid: null, bootMs: null });
const failedVm = fakeVm({
  state: 'failed', pid: null,
  lastError: { code: 'VM_BOOT_TIMEOUT', message: 'the guest did not print READY within 180000 ms', details: { consoleTail: 'Booting Linux\nKernel panic - not syncing: VFS: Unable to mount root fs\n' } },
});

/**
 * A controller whose lifecycle POST answers `post` and whose GET /v1/vms/:id answers the states of `gets` in
 * turn (the last one repeats). The list always has the VM as it was before.
 */
async function scripted(before: VmInfo, post: (r: FakeRequest) => Answer, gets: VmInfo[]): Promise<FakeApi> {
  let i = 0;
  return fakeApi((r) => {
    if (r.method === 'GET' && r.path === '/v1/vms') return ok({ vms: [before] });
    if (r.method === 'GET' && r.path === `/v1/vms/${before.id}`) return ok(gets[Math.min(i++, gets.length - 1)]);
    if (r.method === 'POST') return post(r);
    return fail('NOT_FOUND');
  });
}

const posts = (api: FakeApi): string[] => api.requests.filter((r) => r.method === 'POST').map((r) => r.path + (r.query.size ? `?${r.query}` : ''));
const gets = (api: FakeApi): number => api.requests.filter((r) => r.method === 'GET' && r.path !== '/v1/vms').length;

async function run(api: FakeApi, argv: string[]): Promise<Awaited<ReturnType<typeof hangar>>> {
  try {
    return await hangar(argv, api.env);
  } finally {
    await api.close();
  }
}

test('vm start waits through the controller (?wait=true&timeoutMs): 200 with the ready VM is exit 0', async () => {
  const api = await scripted(stopped, () => ok(fakeVm()), [fakeVm()]);
  const r = await run(api, ['vm', 'start', 'alice']);
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(posts(api), ['/v1/vms/vm-1a2b3c4d/start?wait=true&timeoutMs=240000']);
  assert.match(r.out, /vm-1a2b3c4d +alice +ready/);
  assert.equal(gets(api), 0, 'nothing to poll');
});

test('vm start: the boot error envelope is exit 1 with the VM\'s last error, console tail and next steps', async () => {
  const api = await scripted(stopped, () => fail('VM_BOOT_TIMEOUT', 'not ready within 180000 ms', { consoleTail: 'x' }), [failedVm]);
  const r = await run(api, ['vm', 'start', 'alice']);
  assert.equal(r.code, 1);
  assert.match(r.err, /hangar: vm-1a2b3c4d \(alice\) did not become ready: VM_BOOT_TIMEOUT: the guest did not print READY within 180000 ms\n/);
  assert.match(r.err, /console \(last lines\):\n {2}\| Booting Linux\n {2}\| Kernel panic - not syncing: VFS: Unable to mount root fs\n/);
  assert.match(r.err, /next: hangar doctor --vm vm-1a2b3c4d/);
  const j = await run(await scripted(stopped, () => fail('VMM_CRASHED', 'gone'), [failedVm]), ['vm', 'start', 'alice', '--json']);
  assert.equal(j.code, 1);
  assert.equal((JSON.parse(j.out) as VmInfo).lastError?.code, 'VM_BOOT_TIMEOUT', '--json: the VM view with its last error');
});

test('vm start on a controller that refuses the query (400): plain start, then polling every 250 ms until ready', async () => {
  const api = await scripted(stopped, (r) => (r.query.has('wait') ? fail('UNKNOWN_FIELD', "unknown field 'wait' in querystring", { field: 'wait' }) : ok(stopped)),
    [fakeVm({ state: 'booting' }), fakeVm({ state: 'booting' }), fakeVm({ state: 'ready' })]);
  const t0 = Date.now();
  const r = await run(api, ['vm', 'start', 'alice']);
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(posts(api), ['/v1/vms/vm-1a2b3c4d/start?wait=true&timeoutMs=240000', '/v1/vms/vm-1a2b3c4d/start']);
  assert.equal(gets(api), 3);
  assert.ok(Date.now() - t0 >= 3 * 250 - 50, 'polled at 250 ms');
  assert.match(r.err, /\] vm-1a2b3c4d stopped\n.*\] vm-1a2b3c4d booting\n.*\] vm-1a2b3c4d ready\n/s, 'each state once, on stderr');
  assert.match(r.out, /ready/);
});

test('vm start on a controller that ignores the query: polling until failed is exit 1', async () => {
  const api = await scripted(stopped, () => ok(fakeVm({ state: 'booting' })), [fakeVm({ state: 'booting' }), failedVm]);
  const r = await run(api, ['vm', 'start', 'alice', '--quiet']);
  assert.equal(r.code, 1);
  assert.doesNotMatch(r.err, /\] vm-1a2b3c4d booting/, '--quiet: no progress');
  assert.match(r.err, /did not become ready: VM_BOOT_TIMEOUT/);
});

test('vm start of a running VM is no error (old controller: VM_INVALID_STATE; new one: 200)', async () => {
  const old = await scripted(fakeVm(), () => fail('VM_INVALID_STATE', 'VM vm-1a2b3c4d is ready: start is not allowed in state ready', { state: 'ready' }), [fakeVm()]);
  const r = await run(old, ['vm', 'start', 'alice']);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /vm-1a2b3c4d \(alice\) is already running/);
  const now = await run(await scripted(fakeVm(), () => ok(fakeVm()), [fakeVm()]), ['vm', 'start', 'alice']);
  assert.equal(now.code, 0);
});

test('vm start of a VM that is still booting waits for it', async () => {
  const api = await scripted(fakeVm({ state: 'booting' }), () => fail('VM_INVALID_STATE', 'booting', { state: 'booting' }), [fakeVm({ state: 'booting' }), fakeVm({ state: 'booting' }), fakeVm()]);
  const r = await run(api, ['vm', 'start', 'alice', '--quiet']);
  assert.equal(r.code, 0, r.err);
});

test('vm start --no-wait: one plain POST, exit 0 while the VM boots', async () => {
  const api = await scripted(stopped, () => ok(fakeVm({ state: 'booting' })), [fakeVm({ state: 'booting' })]);
  const r = await run(api, ['vm', 'start', 'alice', '--no-wait', '--json']);
  assert.equal(r.code, 0);
  assert.deepEqual(posts(api), ['/v1/vms/vm-1a2b3c4d/start']);
  assert.equal((JSON.parse(r.out) as VmInfo).state, 'booting');
  assert.equal(gets(api), 0);
});

test('vm start --timeout: a VM still booting when the time is up is exit 1, saying so', async () => {
  const api = await scripted(stopped, () => ok(fakeVm({ state: 'booting' })), [fakeVm({ state: 'booting' })]);
  const r = await run(api, ['vm', 'start', 'alice', '--timeout', '1', '--quiet']);
  assert.equal(r.code, 1);
  assert.match(r.err, /hangar: not ready within 1s \(still booting\); it may still come up: hangar vm show vm-1a2b3c4d\n/);
  const bad = await hangar(['vm', 'start', 'alice', '--timeout', '0']);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /--timeout must be an integer of at least 1 \(got "0"\)/);
});

test('a hibernated VM: start waits through the restore; a restore that fails while stopped is exit 1', async () => {
  const hib = fakeVm({ state: 'stopped', hibernated: true, pid: null });
  const good = await scripted(hib, () => ok(hib), [hib, fakeVm({ state: 'booting' }), fakeVm()]);
  const r = await run(good, ['vm', 'start', 'alice']);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /vm-1a2b3c4d hibernated\n.*vm-1a2b3c4d booting\n.*vm-1a2b3c4d ready\n/s);
  const broken = { ...hib, lastError: { code: 'SNAPSHOT_FAILED', message: 'disk.ext4 is gone: the saved state cannot be restored without its disk' } };
  const bad = await run(await scripted(hib, () => ok(hib), [hib, broken]), ['vm', 'start', 'alice', '--quiet']);
  assert.equal(bad.code, 1);
  assert.match(bad.err, /did not become ready: SNAPSHOT_FAILED: disk\.ext4 is gone/);
});

test('vm resume: a paused VM is ready at once; a running one is no error; a stopped one is exit 2 pointing to start', async () => {
  const paused = fakeVm({ state: 'paused' });
  const api = await scripted(paused, () => ok(fakeVm()), [fakeVm()]);
  assert.equal((await run(api, ['vm', 'resume', 'alice'])).code, 0);
  assert.deepEqual(posts(api), ['/v1/vms/vm-1a2b3c4d/resume?wait=true&timeoutMs=240000']);
  const running = await run(await scripted(fakeVm(), () => fail('VM_INVALID_STATE', 'ready', { state: 'ready' }), [fakeVm()]), ['vm', 'resume', 'alice']);
  assert.equal(running.code, 0);
  const st = await run(await scripted(stopped, () => fail('VM_INVALID_STATE', 'VM vm-1a2b3c4d is stopped: resume is not allowed in state stopped', { state: 'stopped' }), [stopped]), ['vm', 'resume', 'alice']);
  assert.equal(st.code, 2);
  assert.match(st.err, /VM_INVALID_STATE: .*\n {2}it is stopped: hangar vm start vm-1a2b3c4d\n/);
});

test('vm create waits by polling until ready (exit 0) or failed (exit 1, with the console)', async () => {
  const create = async (states: VmInfo[], argv: string[] = []): Promise<Awaited<ReturnType<typeof hangar>>> => {
    const api = await scripted(fakeVm(), () => ok(fakeVm({ state: 'creating' }), 202), states);
    return run(api, ['vm', 'create', '--name', 'alice', ...argv]);
  };
  const good = await create([fakeVm({ state: 'booting' }), fakeVm()]);
  assert.equal(good.code, 0, good.err);
  assert.match(good.out, /open its desktop: hangar vm open alice/);
  const bad = await create([fakeVm({ state: 'booting' }), failedVm], ['--json']);
  assert.equal(bad.code, 1);
  assert.equal((JSON.parse(bad.out) as VmInfo).state, 'failed');
  assert.match(bad.err, /Kernel panic/);
  const quick = await create([fakeVm({ state: 'booting' })], ['--no-wait']);
  assert.equal(quick.code, 0);
  assert.match(quick.out, /creating/);
});
