// Idleness (src/vm/activity.ts): a VM with a viewer attached is never idle; activity restarts the clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import type { AgentPort, AgentSession } from '../../src/agent/port.js';
import { Activity, activeAgents, countsAsActivity } from '../../src/vm/activity.js';

test('held VMs are never idle; releasing (once) restarts the clock; untouched VMs count from the start', () => {
  let now = 1_000_000;
  const a = new Activity(() => now);
  now += 60_000;
  assert.equal(a.idle('vm-a', 30), true, 'no activity since the controller started');
  const release = a.hold('vm-a');
  now += 3_600_000;
  assert.equal(a.idle('vm-a', 30), false, 'a viewer is attached');
  release();
  release();
  assert.equal(a.held('vm-a'), false, 'a second release changes nothing');
  assert.equal(a.idle('vm-a', 30), false, 'leaving is activity');
  now += 31_000;
  assert.equal(a.idle('vm-a', 30), true);
  a.touch('vm-a');
  assert.equal(a.idle('vm-a', 30), false);
});

test('every access path under /v1/vms/:id counts; a status read and the event stream do not', () => {
  const counts = [
    ['POST', '/v1/vms/:id/exec'], ['GET', '/v1/vms/:id/files/*'], ['PUT', '/v1/vms/:id/files/*'], ['GET', '/v1/vms/:id/screenshot'],
    ['POST', '/v1/vms/:id/computer'], ['POST', '/v1/vms/:id/cdp/token'], ['GET', '/v1/vms/:id/recordings'], ['POST', '/v1/vms/:id/resume'],
    ['PATCH', '/v1/vms/:id/network'], ['POST', '/v1/vms/:id/volumes'], ['PATCH', '/v1/vms/:id/idle'], ['GET', '/v1/vms/:id/viewer'],
  ];
  for (const [m, u] of counts) assert.equal(countsAsActivity(m!, u), true, `${m} ${u}`);
  for (const [m, u] of [['GET', '/v1/vms/:id'], ['GET', '/v1/vms/:id/events'], ['GET', '/v1/vms/:id/idle'], ['GET', '/v1/vms'], ['POST', '/v1/vms'], ['GET', '/v1/volumes']]) {
    assert.equal(countsAsActivity(m!, u), false, `${m} ${u}`);
  }
});

test('agents through activeAgents: each session wakes and touches; exec, TCP streams, reads and watchers hold until they end', async () => {
  const log: string[] = [];
  let holds = 0;
  const exit = (() => { let r!: () => void; const p = new Promise<void>((res) => { r = res; }); return { p, r }; })();
  const tcp = new PassThrough();
  const file = new PassThrough();
  const inner = {
    hostname: 'h',
    exec: async () => ({ proc: 'p1', exit: exit.p.then(() => ({ code: 0, signal: null, timedOut: false })), detach: () => log.push('detach') }),
    connectTcp: async () => tcp,
    readFile: async () => ({ size: 1, stream: file }),
    watch: async () => ({ close: () => log.push('close'), [Symbol.asyncIterator]: async function* () { /* none */ } }),
    ping: async function (this: { hostname: string }) { return this.hostname === 'h' ? 1 : -1; },
  } as unknown as AgentSession;
  const agents: AgentPort = { session: async () => inner, status: () => ({ state: 'absent' }) };
  const a = activeAgents(agents, {
    wake: async (id) => { log.push(`wake ${id}`); },
    touch: (id) => log.push(`touch ${id}`),
    hold: () => { holds++; let done = false; return () => { if (!done) { done = true; holds--; } }; },
  });
  const s = await a.session('vm-a');
  assert.deepEqual(log, ['wake vm-a', 'touch vm-a']);
  assert.equal(await s.ping(), 1, 'other methods keep their own this');
  const h = await s.exec({ argv: ['sleep', '9'] });
  assert.equal(holds, 1, 'a running process holds the VM');
  exit.r();
  await new Promise((r) => setImmediate(r));
  assert.equal(holds, 0, 'released when it ends');
  h.detach();
  assert.equal(holds, 0);
  await s.connectTcp(9222);
  await s.readFile('/x');
  const w = await s.watch('/x');
  assert.equal(holds, 3);
  tcp.destroy();
  file.end();
  file.resume();
  w.close();
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(holds, 0, 'a CDP stream, a read and a watcher release when they close');
});
