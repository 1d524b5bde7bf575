// Bridge mode (the bridge and TAPs in the host's own namespace, no VM namespace): egress policy, Hangar's DNS and
// the upstream proxy work there too, with netd in the host's namespace listening on the gateway address only.
// The "host" is a namespace this file creates (hgt-host-*), the world its uplink, the guest a FAKE GUEST on the
// bridge; nothing touches the real root namespace.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEgress, type Egress, type VmEgressTarget } from '../../../src/net/egress/egress.js';
import { normalisePolicy, type NetworkPolicy, type NetworkPolicyInput } from '../../../src/net/egress/policy.js';
import { run, which } from '../../../src/util/exec.js';
import { skipUnlessRoot } from '../../support/env.js';
import { createTestNetwork, type TestNetwork } from '../../support/net.js';
import { createFakeGuest, createWorld, UPLINK, WORLD, type FakeGuest, type World } from '../../support/world.js';
import { httpGet, resolve, tcpOpen } from '../../support/probes.js';
import { judgeEgress } from '../../../src/doctor/egress.js';

const skip = skipUnlessRoot() || (!(await which('nft')) ? 'nft is needed' : false) || (!(await which('curl')) ? 'curl is needed' : false) || (!(await which('perl')) ? 'perl is needed' : false);

let net: TestNetwork;
let world: World;
let egress: Egress;
let g: FakeGuest;
let dir: string;
let current: NetworkPolicy;
let hostService: ChildProcess | undefined;
const IP = '10.214.0.2';
const target = (): VmEgressTarget => ({ ip: IP, ifname: g.ifname, index: 901, mac: g.mac });

async function policy(p: NetworkPolicyInput): Promise<void> {
  const next = normalisePolicy(p);
  await egress.change(target(), current, next);
  current = next;
}

before(async () => {
  if (skip) return;
  net = await createTestNetwork({ mode: 'bridge', cidr: '10.214.0.0/24', overrides: { egress: { uplink: UPLINK, resolvers: [WORLD.dns] } } });
  world = await createWorld(net.cfg);
  dir = mkdtempSync(join(tmpdir(), 'hangar-bridge-egress-'));
  egress = await createEgress(net.cfg, { stateDir: dir });
  g = await createFakeGuest(net.cfg, IP);
  current = normalisePolicy({ egress: { mode: 'allowlist', allow: ['allowed.test'] } });
  await egress.attach(target(), current);
  // A service of the host itself on its uplink address (what sshd is on a real host).
  hostService = spawn('ip', ['netns', 'exec', net.hostNetns, process.execPath, '-e', `require('net').createServer((s) => { s.on('error', () => undefined); s.end('host\\n'); }).listen(2222, '${WORLD.uplinkAddress}')`], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 300));
});

after(async () => {
  if (skip) return;
  hostService?.kill('SIGKILL');
  await egress?.close();
  await g?.destroy();
  await world?.destroy();
  await net?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});


test('bridge mode: the gateway\'s DNS answers under the VM\'s policy; allowlist reaches allowed.test only', { skip }, async () => {
  assert.equal(net.vmNetns, undefined, 'no VM namespace: the bridge is in the host\'s');
  assert.deepEqual(await resolve(g.run, 'allowed.test'), [WORLD.allowed]);
  assert.equal((await httpGet(g.run, 'http://allowed.test/')).ok, true, 'allowed.test');
  assert.deepEqual(await resolve(g.run, 'other.test'), [], 'other.test refused');
  assert.equal(await tcpOpen(g.run, WORLD.other, 80, 1), false, 'other.test by address');
  assert.equal(await tcpOpen(g.run, WORLD.web, 80, 1), false, 'the world server\'s IP literal');
  const st = await egress.netdStats();
  assert.ok(st && st.dns.refused >= 1, 'netd runs in the host\'s namespace and counts the refusal');
});

test('bridge mode: internet by name, none reaches nothing, the upstream proxy carries TCP', { skip }, async () => {
  await policy({ egress: { mode: 'internet' } });
  const r = await httpGet(g.run, 'http://world.test/');
  assert.equal((JSON.parse(r.body) as { peer: string }).peer, WORLD.uplinkAddress);
  const hp = WORLD.httpProxy;
  await policy({ egress: { mode: 'internet', proxy: `http://${hp.user}:${hp.pass}@${hp.address}:${hp.port}` } });
  const px = await httpGet(g.run, 'http://world.test/');
  assert.equal(px.ok, true, `through the proxy: ${px.body}`);
  assert.equal((JSON.parse(px.body) as { peer: string }).peer, hp.address, 'the world sees the proxy');
  await policy({ egress: { mode: 'none' } });
  assert.deepEqual(await resolve(g.run, 'world.test'), []);
  assert.equal(await tcpOpen(g.run, WORLD.web, 80, 1), false);
});

test('bridge mode: the host\'s own services stay reachable on its uplink; netd\'s DNS does not answer there', { skip }, async () => {
  const fromWorld = async (argv: string[]): Promise<number | null> => (await run('ip', ['netns', 'exec', world.netns, ...argv], { allowFailure: true, timeoutMs: 10_000 })).code;
  assert.equal(await fromWorld(['timeout', '2', 'bash', '--norc', '-c', `exec 3<>/dev/tcp/${WORLD.uplinkAddress}/2222`]), 0, 'Hangar does not wall the host\'s own services');
  await run('ip', ['-n', world.netns, 'route', 'replace', net.cfg.cidr, 'via', WORLD.uplinkAddress], { timeoutMs: 5000 });
  assert.notEqual(await fromWorld(['timeout', '2', 'bash', '--norc', '-c', `exec 3<>/dev/tcp/${net.cfg.gateway}/53`]), 0, 'the gateway\'s DNS is for VMs only');
});

test('bridge mode: forwarding is on for the bridge and the uplink only; when it is off the evidence (and the doctor) names it', { skip }, async () => {
  const sysctl = async (k: string, v?: string): Promise<string> => (await run('sysctl', v === undefined ? ['-n', k] : ['-q', '-w', `${k}=${v}`], { netns: net.hostNetns, timeoutMs: 5000 })).stdout.trim();
  assert.equal(await sysctl(`net/ipv4/conf/${net.cfg.bridge}/forwarding`), '1');
  assert.equal(await sysctl(`net/ipv4/conf/${UPLINK}/forwarding`), '1');
  assert.equal(await sysctl('net/ipv4/ip_forward'), '0', 'the host-wide switch is left alone');
  assert.deepEqual((await egress.evidence(IP)).notForwarding, []);
  await sysctl(`net/ipv4/conf/${net.cfg.bridge}/forwarding`, '0');
  try {
    const ev = await egress.evidence(IP);
    assert.deepEqual(ev.notForwarding, [`net/ipv4/conf/${net.cfg.bridge}/forwarding`]);
    const v = judgeEgress({ ...ev, vm: { id: 'vm-1', ip: IP, policy: normalisePolicy({ egress: { mode: 'internet' } }) } });
    assert.equal(v.findings[0]?.code, 'DOC_EGRESS_NO_UPLINK', JSON.stringify(v.findings));
    assert.match(v.findings[0]!.message, /forwarding is off/);
  } finally {
    await sysctl(`net/ipv4/conf/${net.cfg.bridge}/forwarding`, '1');
  }
});
