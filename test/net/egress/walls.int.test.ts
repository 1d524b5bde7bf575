// Isolation and egress with FAKE GUESTS (namespaces attached to Hangar's bridge exactly as TAPs are) and a test
// world as the uplink; everything lives in namespaces this file creates. Real nft, real bridge isolation.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { applyVmRules, readCounters } from '../../../src/net/egress/nft.js';
import { spoofedCounter } from '../../../src/net/egress/plan.js';
import { NftSession } from '../../../src/net/egress/session.js';
import { normalisePolicy, type NetworkPolicyInput } from '../../../src/net/egress/policy.js';
import { which } from '../../../src/util/exec.js';
import { skipUnlessRoot } from '../../support/env.js';
import { createTestNetwork, type TestNetwork } from '../../support/net.js';
import { createFakeGuest, createWorld, UPLINK, WORLD, type FakeGuest, type Runner, type World } from '../../support/world.js';
import { httpGet, pingable, tcpOpen } from '../../support/probes.js';
import { run } from '../../../src/util/exec.js';

const skip = skipUnlessRoot() || (!(await which('nft')) ? 'nft is needed' : false) || (!(await which('curl')) ? 'curl is needed' : false);

let net: TestNetwork;
let world: World;
let a: FakeGuest;
let b: FakeGuest;
let vnc: ChildProcess | undefined;
let host: Runner;
let session: NftSession;
const A = '10.213.0.2';
const B = '10.213.0.3';

async function policy(ip: string, p: NetworkPolicyInput): Promise<number> {
  const t0 = performance.now();
  const g = ip === A ? a : b;
  await applyVmRules(net.cfg, { ip, policy: normalisePolicy(p), flushDns: true, port: { kind: 'tap', ifname: g.ifname, mac: g.mac } }, session.apply);
  return performance.now() - t0;
}

before(async () => {
  if (skip) return;
  net = await createTestNetwork({ overrides: { egress: { uplink: UPLINK } } });
  world = await createWorld(net.cfg);
  session = new NftSession(net.cfg.netns);
  a = await createFakeGuest(net.cfg, A);
  b = await createFakeGuest(net.cfg, B);
  // B plays a VM's desktop: an RFB-like banner on 5900.
  vnc = spawn('ip', ['netns', 'exec', b.netns, process.execPath, '-e', "require('net').createServer((s) => { s.on('error', () => undefined); s.end('RFB 003.008\\n'); }).listen(5900)"], { stdio: 'ignore' });
  host = async (argv, timeoutMs = 10_000) => {
    const r = await run('ip', ['netns', 'exec', net.hostNetns, ...argv], { allowFailure: true, timeoutMs });
    return { code: r.code, stdout: r.stdout, stderr: r.stderr };
  };
  await policy(A, { egress: { mode: 'internet' } });
  await policy(B, { egress: { mode: 'none' } });
  await new Promise((r) => setTimeout(r, 300));
});

after(async () => {
  if (skip) return;
  vnc?.kill('SIGKILL');
  session?.close();
  await a?.destroy();
  await b?.destroy();
  await world?.destroy();
  await net?.destroy();
});

test('a guest reaches neither another VM\'s 5900 nor its ICMP; the host still reaches that desktop', { skip }, async () => {
  assert.equal(await tcpOpen(host, B, 5900), true, 'the host side reaches the desktop');
  assert.equal(await tcpOpen(a.run, B, 5900), false, 'guest A must not reach B:5900');
  assert.equal(await pingable(a.run, B), false, 'guest A must not ping B');
  assert.equal(await pingable(b.run, A), false);
});

test('a guest reaches none of the host\'s addresses, the gateway only for DNS, nor link-local', { skip }, async () => {
  const hl = net.cfg.hostLink!;
  for (const addr of [hl.hostAddress, hl.nsAddress, net.cfg.gateway, WORLD.uplinkAddress, '169.254.169.254']) {
    assert.equal(await tcpOpen(a.run, addr, 22, 1), false, `${addr}:22`);
    assert.equal(await pingable(a.run, addr), false, `ping ${addr}`);
  }
});

test('internet reaches the world (masqueraded out of the uplink); none reaches nothing', { skip }, async () => {
  const r = await httpGet(a.run, `http://${WORLD.web}/`);
  assert.equal(r.ok, true, 'internet mode reaches the world');
  assert.equal((JSON.parse(r.body) as { peer: string }).peer, WORLD.uplinkAddress);
  assert.equal((await httpGet(b.run, `http://${WORLD.web}/`, { timeoutS: 1 })).ok, false, 'none reaches nothing');
});

test('a runtime change flips reachability within 100 ms', { skip }, async () => {
  const ms = await policy(B, { egress: { mode: 'internet' } });
  const t0 = performance.now();
  assert.equal(await tcpOpen(b.run, WORLD.web, 80), true);
  const total = ms + (performance.now() - t0);
  assert.ok(ms < 100, `rules applied in ${ms.toFixed(1)} ms`);
  console.log(`# policy change applied in ${ms.toFixed(1)} ms; first connection done ${total.toFixed(1)} ms after the change began`);
  await policy(B, { egress: { mode: 'none' } });
  assert.equal(await tcpOpen(b.run, WORLD.web, 80, 1), false);
});

test('a group lets its VMs reach each other (through the gateway, still filtered); leaving it closes the wall again', { skip }, async () => {
  await policy(A, { egress: { mode: 'internet' }, group: 'team1' });
  await policy(B, { egress: { mode: 'none' }, group: 'team1' });
  assert.equal(await tcpOpen(a.run, B, 5900), true, 'same group: A reaches B');
  await policy(A, { egress: { mode: 'internet' }, group: null });
  assert.equal(await tcpOpen(a.run, B, 5900, 1), false, 'A left the group');
  await policy(B, { egress: { mode: 'none' }, group: null });
});

test('a CIDR allow opens exactly that range; a deny CIDR wins over internet', { skip }, async () => {
  await policy(B, { egress: { mode: 'allowlist', allow: [`${WORLD.web}/32`] } });
  assert.equal(await tcpOpen(b.run, WORLD.web, 80), true);
  assert.equal(await tcpOpen(b.run, WORLD.other, 80, 1), false);
  await policy(A, { egress: { mode: 'internet', deny: [WORLD.other] } });
  assert.equal(await tcpOpen(a.run, WORLD.other, 80, 1), false);
  assert.equal(await tcpOpen(a.run, WORLD.web, 80), true);
  await policy(A, { egress: { mode: 'internet' } });
  await policy(B, { egress: { mode: 'none' } });
});

/** One UDP datagram from a fake guest, sent FROM a chosen source address (which the guest must hold). */
async function sendFrom(g: FakeGuest, source: string, payload: string): Promise<void> {
  const js = `const s=require('dgram').createSocket('udp4');s.bind(0,${JSON.stringify(source)},()=>s.send(${JSON.stringify(payload)},9,${JSON.stringify(WORLD.web)},()=>s.close()))`;
  await g.run([process.execPath, '-e', js]);
}

test('a guest cannot take another VM\'s address (and its policy): the port\'s rule drops and counts it, the rightful owner still gets out', { skip }, async () => {
  // B (egress none) claims A's address (egress internet) with its own MAC. Without the bridge port rule, B's
  // datagram would pass A's chain and reach the world; the control from A itself must arrive.
  const tag = Date.now();
  const before = (await readCounters(net.cfg, 'bridge')).get(spoofedCounter(B))?.packets ?? 0;
  await sendFrom(a, A, `control-${tag}`);
  await run('ip', ['-n', b.netns, 'addr', 'add', `${A}/32`, 'dev', 'eth0'], { timeoutMs: 5000 });
  try {
    await sendFrom(b, A, `spoofed-${tag}`);
    const r = await b.run(['curl', '-sS', '-m', '1', '--interface', A, `http://${WORLD.web}/`]);
    assert.notEqual(r.code, 0, 'B must not reach the world as A');
  } finally {
    await run('ip', ['-n', b.netns, 'addr', 'del', `${A}/32`, 'dev', 'eth0'], { timeoutMs: 5000 });
  }
  await new Promise((r) => setTimeout(r, 200));
  const got = await world.datagrams();
  assert.ok(got.includes(`control-${tag}`), 'A\'s own datagram arrives (control)');
  assert.ok(!got.includes(`spoofed-${tag}`), 'B\'s datagram with A\'s address must not arrive');
  const after = (await readCounters(net.cfg, 'bridge')).get(spoofedCounter(B))?.packets ?? 0;
  assert.ok(after > before, `B's port rule counted the spoofed frames (${before} → ${after})`);
  assert.equal((await httpGet(a.run, `http://${WORLD.web}/`)).ok, true, 'A still gets out');
});

test('a spoofed source address no VM holds gets nowhere, and is counted', { skip }, async () => {
  const tag = Date.now();
  const before = (await readCounters(net.cfg, 'bridge')).get(spoofedCounter(B))?.packets ?? 0;
  await sendFrom(b, B, `own-${tag}`);
  await run('ip', ['-n', b.netns, 'addr', 'add', '10.213.0.99/24', 'dev', 'eth0'], { timeoutMs: 5000 });
  try {
    await sendFrom(b, '10.213.0.99', `stray-${tag}`);
  } finally {
    await run('ip', ['-n', b.netns, 'addr', 'del', '10.213.0.99/24', 'dev', 'eth0'], { timeoutMs: 5000 });
  }
  await new Promise((r) => setTimeout(r, 200));
  const got = await world.datagrams();
  assert.ok(!got.includes(`stray-${tag}`), 'a datagram from an address no VM holds must not arrive');
  assert.ok(!got.includes(`own-${tag}`), 'and B (egress none) sends nothing with its own address either');
  const after = (await readCounters(net.cfg, 'bridge')).get(spoofedCounter(B))?.packets ?? 0;
  assert.ok(after > before, 'counted by B\'s port rule');
});
