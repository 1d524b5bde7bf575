// The claim plan (src/pool/claim.ts): its steps in order, each claimed VM its own machine-id and hostname, and a
// failure after the take destroys the half-claimed VM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { claimSteps, hostnameOf, type ClaimCtx, type ClaimPorts } from '../../src/pool/claim.js';
import { runSteps } from '../../src/util/steps.js';
import { randomBytes } from 'node:crypto';

function ports(calls: string[], fail?: string): ClaimPorts {
  const note = (s: string): void => {
    calls.push(s);
    if (fail && s.startsWith(fail)) throw new Error(`${fail} failed`);
  };
  return {
    take: (id, tenant, name) => note(`take ${id} ${tenant} ${name}`),
    resume: async (id) => note(`resume ${id}`),
    resync: async (id, host) => { note(`resync ${id} ${host}`); return true; },
    writeMachineId: async (id, mid) => note(`machine-id ${id} ${mid.length}`),
    setExpiry: (id, at) => note(`expiry ${id} ${at}`),
    discard: async (id) => note(`discard ${id}`),
    random: (n) => randomBytes(n),
    now: () => Date.parse('2026-12-01T00:00:00Z'),
  };
}

test('a claim: take → resume → resync (hostname from the name) → machine-id → expiry', async () => {
  const calls: string[] = [];
  const ctx: ClaimCtx = {};
  await runSteps(claimSteps({ vmId: 'vm-1', tenant: 'acme', name: 'My_Desk', ttlSeconds: 60 }, ports(calls)), ctx);
  assert.deepEqual(calls, ['take vm-1 acme My_Desk', 'resume vm-1', 'resync vm-1 my-desk', 'machine-id vm-1 32', 'expiry vm-1 2026-12-01T00:01:00.000Z']);
  assert.match(ctx.machineId!, /^[0-9a-f]{32}$/);
  assert.equal(ctx.synced, true);
});

test('two claims get different machine-ids', async () => {
  const a: ClaimCtx = {};
  const b: ClaimCtx = {};
  await runSteps(claimSteps({ vmId: 'vm-1', tenant: 't', name: 'a' }, ports([])), a);
  await runSteps(claimSteps({ vmId: 'vm-2', tenant: 't', name: 'b' }, ports([])), b);
  assert.notEqual(a.machineId, b.machineId);
});

test('a failure after the take destroys the VM; a failed take touches nothing', async () => {
  const calls: string[] = [];
  await assert.rejects(runSteps(claimSteps({ vmId: 'vm-1', tenant: 't', name: 'a' }, ports(calls, 'resync')), {}));
  assert.deepEqual(calls, ['take vm-1 t a', 'resume vm-1', 'resync vm-1 a', 'discard vm-1']);
  const none: string[] = [];
  await assert.rejects(runSteps(claimSteps({ vmId: 'vm-1', tenant: 't', name: 'a' }, ports(none, 'take')), {}));
  assert.deepEqual(none, ['take vm-1 t a']);
});

test('hostnames from VM names', () => {
  assert.equal(hostnameOf('desk.1_A'), 'desk-1-a');
  assert.equal(hostnameOf('x'.repeat(80)).length, 63);
  assert.throws(() => hostnameOf('...'));
});
