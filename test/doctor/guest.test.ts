// The doctor's view from inside the guest (src/doctor/guest.ts): each judgement from the agent's info, the agent
// that does not answer or broke the protocol, and the probe over a FAKE agent port.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { GuestInfo } from '../../src/agent/port.js';
import { judgeGuest, probeGuest, type GuestFacts } from '../../src/doctor/guest.js';
import { createFakeAgent, HEALTHY_INFO } from '../support/fake-agent.js';

const want = { address: '10.0.0.2', gateway: '10.0.0.1', booting: false };
const facts = (edit: (i: GuestInfo) => GuestInfo = (i) => i): GuestFacts => ({ status: { state: 'ready', session: 's', since: 0 }, info: edit(structuredClone(HEALTHY_INFO)) });
const codes = (f: GuestFacts, w = want): string[] => judgeGuest(f, w).findings.map((x) => `${x.code}:${x.severity}`);

test('a healthy guest: no finding, and the saw line says what was seen', () => {
  const v = judgeGuest(facts(), want);
  assert.deepEqual(v.findings, []);
  assert.match(v.saw, /eth0: UP 10\.0\.0\.2\/24; default via 10\.0\.0\.1 dev eth0; :5900 listening; 0 failed/);
});

test('eth0 down inside the guest', () => {
  const f = facts((i) => ({ ...i, ifaces: i.ifaces.map((x) => (x.name === 'eth0' ? { ...x, up: false } : x)) }));
  assert.deepEqual(codes(f), ['DOC_GUEST_ETH0_DOWN:error']);
  assert.match(judgeGuest(f, want).findings[0]!.evidence[1]!.text, /eth0: DOWN/);
});

test('no eth0 at all; eth0 with another address', () => {
  assert.deepEqual(codes(facts((i) => ({ ...i, ifaces: i.ifaces.filter((x) => x.name !== 'eth0') }))), ['DOC_GUEST_NO_ETH0:error']);
  assert.deepEqual(codes(facts((i) => ({ ...i, ifaces: [{ name: 'eth0', up: true, addrs: ['192.168.1.50/24'] }] }))), ['DOC_GUEST_ETH0_ADDRESS:error']);
});

test('no default route via the gateway', () => {
  assert.deepEqual(codes(facts((i) => ({ ...i, routes: ['10.0.0.0/24 dev eth0 proto kernel scope link src 10.0.0.2'] }))), ['DOC_GUEST_NO_ROUTE:error']);
});

test('the VNC server is not listening (a warning while booting); a failed desktop process says why', () => {
  const quiet = facts((i) => ({ ...i, listening: [{ proto: 'tcp', addr: '127.0.0.1', port: 22 }] }));
  assert.deepEqual(codes(quiet), ['DOC_GUEST_VNC_NOT_LISTENING:error']);
  assert.deepEqual(codes(quiet, { ...want, booting: true }), ['DOC_GUEST_VNC_NOT_LISTENING:warning']);
  const died = facts((i) => ({ ...i, listening: [], failed: [{ name: 'x11vnc', pid: 321, exit: 'exit 1' }] }));
  assert.deepEqual(codes(died), ['DOC_GUEST_VNC_NOT_LISTENING:error', 'DOC_GUEST_PROCESS_FAILED:error']);
  assert.match(judgeGuest(died, want).findings[0]!.message, /x11vnc failed/);
  assert.deepEqual(codes(facts((i) => ({ ...i, failed: [{ name: 'cron', exit: 'signal SEGV' }] }))), ['DOC_GUEST_PROCESS_FAILED:warning']);
});

test('an agent that does not answer, or broke the protocol, is reported; no agent support is skipped', () => {
  assert.deepEqual(codes({ status: { state: 'connecting' }, info: null, error: { code: 'AGENT_UNAVAILABLE', message: 'no answer' } }), ['DOC_AGENT_UNAVAILABLE:warning']);
  assert.deepEqual(codes({ status: { state: 'connecting' }, info: null, error: { code: 'AGENT_TIMEOUT', message: 'x' } }, { ...want, booting: true }), ['DOC_AGENT_UNAVAILABLE:info']);
  assert.deepEqual(codes({ status: { state: 'failed', code: 'AGENT_FAILED', message: 'oversized frame', since: 1 }, info: null, error: { code: 'AGENT_FAILED', message: 'x' } }), ['DOC_AGENT_FAILED:warning']);
  assert.equal(judgeGuest(null, want).skipped, 'no agent');
});

test('probeGuest asks the agent and never throws', async () => {
  const root = mkdtempSync(join(tmpdir(), 'hangar-guest-'));
  try {
    const agents = createFakeAgent({ root, unavailable: new Set(['vm-down']) });
    const ok = await probeGuest(agents, 'vm-a');
    assert.deepEqual(ok.value.info, HEALTHY_INFO);
    const down = await probeGuest(agents, 'vm-down');
    assert.equal(down.value.info, null);
    assert.equal(down.value.error?.code, 'AGENT_UNAVAILABLE');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
