// The claim plan (src/pool/claim.ts): its steps in order (take → resume → identity → expiry), the identity sent
// without waiting for the guest's answer, and a failure after the take destroys the half-claimed VM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { claimSteps, hostnameOf, type ClaimCtx, type ClaimPorts } from '../../src/pool/claim.js';
import { runSteps } from '../../src/util/steps.js';

function ports(calls: string[], opts: { fail?: string; answer?: Promise<boolean> } = {}): ClaimPorts {
  const note = (s: string): void => {
    calls.push(s);
    if (opts.fail && s.startsWith(opts.fail)) throw new Error(`${opts.fail} failed`);
  };
  return {
    take: (id, tenant, name) => note(`take ${id} ${tenant} ${name}`),
    resume: async (id) => note(`resume ${id}`),
    resync: (id, host) => { note(`resync ${id} ${host}`); return opts.answer ?? Promise.resolve(true); },
    freshSession: (id) => note(`fresh session ${id}`),
    setExpiry: (id, at) => note(`expiry ${id} ${at}`),
    attachVolume: async (id, m, tenant) => note(`volume ${id} ${m.name} ${m.path} ${tenant}`),
    discard: async (id) => note(`discard ${id}`),
    now: () => Date.parse('2026-12-01T00:00:00Z'),
  };
}

test('a claim: take → resume → identity (hostname from the name, a fresh agent session) → expiry', async () => {
  const calls: string[] = [];
  const ctx: ClaimCtx = {};
  await runSteps(claimSteps({ vmId: 'vm-1', tenant: 'acme', name: 'My_Desk', ttlSeconds: 60 }, ports(calls)), ctx);
  assert.deepEqual(calls, ['take vm-1 acme My_Desk', 'resume vm-1', 'fresh session vm-1', 'resync vm-1 my-desk', 'expiry vm-1 2026-12-01T00:01:00.000Z']);
  assert.deepEqual(await ctx.identity, { synced: true, ms: 0 });
  const none: string[] = [];
  await runSteps(claimSteps({ vmId: 'vm-2', tenant: 't', name: 'b' }, ports(none)), {});
  assert.ok(!none.some((c) => c.startsWith('expiry')), 'no TTL: no expiry write');
});

test('the claim does not wait for the guest to apply its identity; a failed answer settles as not synced', async () => {
  let answer!: (v: boolean) => void;
  const pending = new Promise<boolean>((r) => { answer = r; });
  const ctx: ClaimCtx = {};
  await runSteps(claimSteps({ vmId: 'vm-1', tenant: 't', name: 'a' }, ports([], { answer: pending })), ctx);
  let settled = false;
  void ctx.identity!.then(() => { settled = true; });
  await new Promise((r) => setImmediate(r));
  assert.equal(settled, false);
  answer(true);
  assert.equal((await ctx.identity!).synced, true);
  const failed: ClaimCtx = {};
  await runSteps(claimSteps({ vmId: 'vm-1', tenant: 't', name: 'a' }, ports([], { answer: Promise.reject(new Error('no agent')) })), failed);
  assert.equal((await failed.identity!).synced, false);
});

test('a failure after the take destroys the VM; a failed take touches nothing', async () => {
  const calls: string[] = [];
  await assert.rejects(runSteps(claimSteps({ vmId: 'vm-1', tenant: 't', name: 'a' }, ports(calls, { fail: 'resume' })), {}));
  assert.deepEqual(calls, ['take vm-1 t a', 'resume vm-1', 'discard vm-1']);
  const none: string[] = [];
  await assert.rejects(runSteps(claimSteps({ vmId: 'vm-1', tenant: 't', name: 'a' }, ports(none, { fail: 'take' })), {}));
  assert.deepEqual(none, ['take vm-1 t a']);
});

test('volumes asked for at claim are attached after resume, in order; a failed attach destroys the claimed VM', async () => {
  const calls: string[] = [];
  const volumes = [{ name: 'data', path: '/home/hangar/data' }, { name: 'prof', path: '/home/hangar/.config/chromium' }];
  await runSteps(claimSteps({ vmId: 'vm-1', tenant: 'acme', name: 'a', volumes }, ports(calls)), {});
  assert.deepEqual(calls.filter((c) => !c.startsWith('resync') && !c.startsWith('fresh')), ['take vm-1 acme a', 'resume vm-1', 'volume vm-1 data /home/hangar/data acme', 'volume vm-1 prof /home/hangar/.config/chromium acme']);
  const failed: string[] = [];
  await assert.rejects(runSteps(claimSteps({ vmId: 'vm-1', tenant: 'acme', name: 'a', volumes }, ports(failed, { fail: 'volume vm-1 data' })), {}));
  assert.equal(failed.at(-1), 'discard vm-1', 'the half-claimed VM (and so its volumes) released');
});

test('hostnames from VM names', () => {
  assert.equal(hostnameOf('desk.1_A'), 'desk-1-a');
  assert.equal(hostnameOf('x'.repeat(80)).length, 63);
  assert.throws(() => hostnameOf('...'));
});
