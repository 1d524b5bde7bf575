// The door: Hangar's DNS at the gateway under each VM's policy, allowlisted names opening exactly their addresses,
// the transparent relay through upstream proxies (HTTP CONNECT, SOCKS5) and bandwidth limits, all with FAKE
// GUESTS on Hangar's bridge and the test world as the uplink. Everything lives in namespaces this file creates.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEgress, type Egress, type VmEgressTarget } from '../../../src/net/egress/egress.js';
import { normalisePolicy, type NetworkPolicy, type NetworkPolicyInput } from '../../../src/net/egress/policy.js';
import { which } from '../../../src/util/exec.js';
import { skipUnlessRoot } from '../../support/env.js';
import { createTestNetwork, type TestNetwork } from '../../support/net.js';
import { createFakeGuest, createWorld, UPLINK, WORLD, type FakeGuest, type World } from '../../support/world.js';
import { httpGet, resolve, tcpOpen } from '../../support/probes.js';

const skip = skipUnlessRoot() || (!(await which('nft')) ? 'nft is needed' : false) || (!(await which('curl')) ? 'curl is needed' : false) || (!(await which('perl')) ? 'perl is needed' : false);

let net: TestNetwork;
let world: World;
let egress: Egress;
let g: FakeGuest;
let dir: string;
let current: NetworkPolicy;
const IP = '10.213.0.2';
const target = (): VmEgressTarget => ({ ip: IP, ifname: g.ifname, index: 900, mac: g.mac });

async function policy(p: NetworkPolicyInput): Promise<number> {
  const next = normalisePolicy(p);
  const t0 = performance.now();
  await egress.change(target(), current, next);
  current = next;
  return performance.now() - t0;
}

before(async () => {
  if (skip) return;
  net = await createTestNetwork({ overrides: { egress: { uplink: UPLINK, resolvers: [WORLD.dns] } } });
  world = await createWorld(net.cfg);
  dir = mkdtempSync(join(tmpdir(), 'hangar-door-'));
  egress = await createEgress(net.cfg, { stateDir: dir });
  g = await createFakeGuest(net.cfg, IP);
  current = normalisePolicy({ egress: { mode: 'allowlist', allow: ['allowed.test'] } });
  await egress.attach(target(), current);
});

after(async () => {
  if (skip) return;
  await egress?.close();
  await g?.destroy();
  await world?.destroy();
  await net?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('allowlist: the allowed name resolves and is reachable; another name is REFUSED; a literal IP not resolved through an allowed name is refused', { skip }, async () => {
  assert.deepEqual(await resolve(g.run, 'allowed.test'), [WORLD.allowed]);
  const ok = await httpGet(g.run, 'http://allowed.test/');
  assert.equal(ok.ok, true, 'allowed.test reachable');
  const https = await httpGet(g.run, 'https://allowed.test/', { caCert: world.caCert });
  assert.equal(https.ok, true, 'HTTPS to allowed.test with the test CA');
  assert.deepEqual(await resolve(g.run, 'other.test'), [], 'other.test refused');
  assert.equal((await httpGet(g.run, `http://${WORLD.other}/`, { timeoutS: 1 })).ok, false, 'other.test\'s address by IP');
  assert.equal((await httpGet(g.run, `http://${WORLD.web}/`, { timeoutS: 1 })).ok, false, 'the world server\'s IP literal');
  const st = await egress.netdStats();
  assert.ok(st, 'netd answers');
  assert.ok(st.dns.refused >= 1);
  assert.ok(st.dns.recentDenials.some((d) => d.name === 'other.test' && d.vm === IP && d.reason === 'not-allowed'));
  const c = await egress.counters();
  assert.ok((c.perVm.get(IP)?.denied ?? 0) >= 2, 'blocked connections are counted');
  assert.ok((c.perVm.get(IP)?.bytesOut ?? 0) > 0 && (c.perVm.get(IP)?.bytesIn ?? 0) > 0, 'bytes in and out are counted');
});

test('internet reaches the world server by name; none resolves and reaches nothing; the change takes effect within 100 ms', { skip }, async () => {
  const ms = await policy({ egress: { mode: 'internet' } });
  assert.ok(ms < 100, `change applied in ${ms.toFixed(1)} ms`);
  const r = await httpGet(g.run, 'http://world.test/');
  assert.equal(r.ok, true);
  assert.equal((JSON.parse(r.body) as { peer: string }).peer, WORLD.uplinkAddress);
  const ms2 = await policy({ egress: { mode: 'none' } });
  assert.ok(ms2 < 100, `change applied in ${ms2.toFixed(1)} ms`);
  assert.deepEqual(await resolve(g.run, 'world.test'), []);
  assert.equal(await tcpOpen(g.run, WORLD.web, 80, 1), false);
  console.log(`# policy changes applied in ${ms.toFixed(1)} ms and ${ms2.toFixed(1)} ms`);
});

test('an allowlist that loses a name closes the addresses it had opened', { skip }, async () => {
  await policy({ egress: { mode: 'allowlist', allow: ['allowed.test', 'other.test'] } });
  assert.deepEqual(await resolve(g.run, 'other.test'), [WORLD.other]);
  assert.equal(await tcpOpen(g.run, WORLD.other, 80), true);
  await policy({ egress: { mode: 'allowlist', allow: ['allowed.test'] } });
  assert.equal(await tcpOpen(g.run, WORLD.other, 80, 1), false);
});

test('proxy mode: the world sees the upstream proxy\'s address; the guest has no proxy configured; credentials stay on the host', { skip }, async () => {
  const hp = WORLD.httpProxy;
  await policy({ egress: { mode: 'internet', proxy: `http://${hp.user}:${hp.pass}@${hp.address}:${hp.port}` } });
  const r = await httpGet(g.run, 'http://world.test/');
  assert.equal(r.ok, true, `through the HTTP proxy: ${r.body}`);
  assert.equal((JSON.parse(r.body) as { peer: string }).peer, hp.address);
  const tls = await httpGet(g.run, 'https://world.test/', { caCert: world.caCert });
  assert.equal((JSON.parse(tls.body) as { peer: string }).peer, hp.address, 'TLS goes through the tunnel untouched');
  const env = await g.run(['env']);
  assert.ok(!/proxy/i.test(env.stdout), 'no proxy settings in the guest');
  const sp = WORLD.socksProxy;
  await policy({ egress: { mode: 'internet', proxy: `socks5://${sp.user}:${sp.pass}@${sp.address}:${sp.port}` } });
  const s = await httpGet(g.run, 'http://world.test/');
  assert.equal((JSON.parse(s.body) as { peer: string }).peer, sp.address, 'through SOCKS5');
  await policy({ egress: { mode: 'internet', proxy: `http://${hp.user}:wrong@${hp.address}:${hp.port}` } });
  assert.equal((await httpGet(g.run, 'http://world.test/', { timeoutS: 2 })).ok, false, 'a refusing proxy: no way around it');
  const st = await egress.netdStats();
  assert.match(st?.relay.lastFailure[IP]?.error ?? '', /407/);
  await policy({ egress: { mode: 'allowlist', allow: ['allowed.test'], proxy: `http://${hp.user}:${hp.pass}@${hp.address}:${hp.port}` } });
  assert.equal((await httpGet(g.run, 'http://allowed.test/')).ok, true, 'allowlist through the proxy');
  assert.equal((await httpGet(g.run, `http://${WORLD.web}/`, { timeoutS: 1 })).ok, false, 'the proxy is no way around the allowlist');
  await policy({ egress: { mode: 'internet' } });
});

test('a bandwidth limit holds within 10% in both directions', { skip }, async () => {
  const mbit = 20;
  await policy({ egress: { mode: 'internet' }, limits: { bandwidthMbit: mbit } });
  const want = (mbit * 1e6) / 8;
  const down = await g.run(['curl', '-sS', '-o', '/dev/null', '-w', '%{speed_download}', `http://${WORLD.web}/bytes/${6 * 1024 * 1024}`], 60_000);
  const up = await g.run(['sh', '-c', `head -c ${6 * 1024 * 1024} /dev/zero | curl -sS -o /dev/null -w '%{speed_upload}' -T - http://${WORLD.web}/upload`], 60_000);
  const d = Number(down.stdout);
  const u = Number(up.stdout);
  console.log(`# limit ${mbit} Mbit/s: download ${(d * 8 / 1e6).toFixed(2)} Mbit/s, upload ${(u * 8 / 1e6).toFixed(2)} Mbit/s`);
  assert.ok(Math.abs(d - want) / want <= 0.1, `download ${d} B/s vs ${want}`);
  assert.ok(Math.abs(u - want) / want <= 0.1, `upload ${u} B/s vs ${want}`);
  await policy({ egress: { mode: 'internet' } });
});

test('a connection limit refuses connections past it', { skip }, async () => {
  await policy({ egress: { mode: 'internet' }, limits: { connections: 2 } });
  // Two connections held open, a third refused.
  const held = g.run(['bash', '-c', `(exec 3<>/dev/tcp/${WORLD.web}/80; sleep 3) & (exec 4<>/dev/tcp/${WORLD.web}/80; sleep 3) & sleep 0.5; timeout 1 bash -c 'exec 5<>/dev/tcp/${WORLD.web}/80' && echo third-open || echo third-refused; wait`], 20_000);
  const r = await held;
  assert.match(r.stdout, /third-refused/);
  await policy({ egress: { mode: 'internet' } });
});
