// The walls and the door seen from inside REAL guests (QEMU under TCG, the real controller, probes through the
// guest agent's exec): ONE booted VM (A) for the whole file and, in the last test, ONE clone of it (B, in its own
// clone namespace); policies change at runtime (PATCH /v1/vms/:id/network) between tests. The "internet" is the test
// world (test/support/world.ts) joined to this test's VM namespace as the uplink; nothing leaves namespaces this
// file creates. Guest tools: bash (/dev/tcp, /dev/udp), getent, timeout, busybox ping; no curl (and the image's
// busybox wget crashes), so HTTP goes over bash's /dev/tcp (test/support/probes.ts).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolvePaths } from '../../../src/config.js';
import { applyVmRules } from '../../../src/net/egress/nft.js';
import { normalisePolicy, type NetworkPolicyInput } from '../../../src/net/egress/policy.js';
import { NftSession } from '../../../src/net/egress/session.js';
import { run } from '../../../src/util/exec.js';
import { collect } from '../../support/agent-binary.js';
import { agentImageReason, imageSkipReason } from '../../support/controller.js';
import { skipUnlessRoot } from '../../support/env.js';
import { startLiveController, type LiveController } from '../../support/live-controller.js';
import { httpGet, pingable, resolve, tcpOpen, udpSend } from '../../support/probes.js';
import { createFakeGuest, createWorld, UPLINK, WORLD, type FakeGuest, type Runner, type World } from '../../support/world.js';

process.env.HANGAR_IMAGES_DIR ??= resolvePaths().imagesDir;
const skip = skipUnlessRoot() || (await imageSkipReason()) || (await agentImageReason()) || false;
const hp = WORLD.httpProxy;
const PROXY = `http://${hp.user}:${hp.pass}@${hp.address}:${hp.port}`;

describe('egress from inside real guests (a VM and its clone)', { skip, concurrency: false }, () => {
  let live: LiveController;
  let world: World;
  let cacheDir = '';
  const vm = { a: { id: '', ip: '' }, b: { id: '', ip: '' } };
  let ga: Runner;
  let gb: Runner;
  let host: Runner;

  const api = async <T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> => {
    const r = await fetch(live.c.url + path, {
      method, headers: { authorization: `Bearer ${live.c.token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}),
    });
    return { status: r.status, body: (r.status === 204 ? null : await r.json()) as T };
  };
  /** The agent-exec runner of test/support/probes.ts: argv in the guest (as root: busybox ping needs it). */
  const agentRunner = (id: string, user: number | string = 0): Runner => async (argv, timeoutMs = 15_000) => {
    const s = await live.c.agents.session(id, { timeoutMs: 60_000 });
    try {
      const h = await s.exec({ argv, user, timeoutMs });
      const [out, err, st] = await Promise.all([collect(h.stdout), collect(h.stderr), h.exit]);
      return { code: st.code, stdout: out.toString(), stderr: err.toString() };
    } catch (e) {
      return { code: 127, stdout: '', stderr: (e as Error).message };
    }
  };
  /** Applies a policy through the API; returns how long the PATCH took (the rules are live when it returns). */
  const policy = async (id: string, p: NetworkPolicyInput): Promise<number> => {
    const t0 = performance.now();
    const r = await api('PATCH', `/v1/vms/${id}/network`, p);
    const ms = performance.now() - t0;
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return ms;
  };

  before(async () => {
    cacheDir = mkdtempSync(join(tmpdir(), 'hangar-netcache-'));
    process.env.HANGAR_CACHE_DIR = cacheDir;
    live = await startLiveController({
      net: { cidr: '10.226.0.0/28', overrides: { egress: { uplink: UPLINK, resolvers: [WORLD.dns] } } },
      config: { hibernateAfterS: 0 },
    });
    world = await createWorld(live.net.cfg);
    host = async (argv, timeoutMs = 10_000) => {
      const r = await run('ip', ['netns', 'exec', live.net.hostNetns, ...argv], { allowFailure: true, timeoutMs });
      return { code: r.code, stdout: r.stdout, stderr: r.stderr };
    };
    const a = await api<{ id: string }>('POST', '/v1/vms?wait=true', { image: 'desktop', name: 'net-a' });
    assert.equal(a.status, 201, JSON.stringify(a.body));
    vm.a = { id: a.body.id, ip: live.c.store.getVm(a.body.id)!.net!.ip };
    ga = agentRunner(vm.a.id);
    await live.c.agents.session(vm.a.id, { timeoutMs: 120_000 });
  });
  after(async () => {
    try {
      await world?.destroy();
      await live?.destroy();
    } finally {
      if (cacheDir) rmSync(cacheDir, { recursive: true, force: true });
    }
  });

  test('the gateway\'s DNS is reachable; the host\'s addresses, the uplink and link-local are not', async () => {
    await policy(vm.a.id, { egress: { mode: 'internet' } });
    const cfg = live.net.cfg;
    assert.deepEqual(await resolve(ga, 'world.test'), [WORLD.web], 'the guest resolves through the gateway (its resolv.conf from ip=)');
    const hl = cfg.hostLink!;
    for (const addr of [hl.hostAddress, hl.nsAddress, cfg.gateway, WORLD.uplinkAddress, '169.254.169.254']) {
      assert.equal(await tcpOpen(ga, addr, 22, 1), false, `${addr}:22`);
      assert.equal(await tcpOpen(ga, addr, 8080, 1), false, `${addr}:8080`);
    }
    assert.equal(await pingable(ga, hl.hostAddress), false, 'ping the host');
  });

  test('internet reaches the world server by name; allowlist reaches allowed.test only; none reaches nothing', async () => {
    await policy(vm.a.id, { egress: { mode: 'internet' } });
    const r = await httpGet(ga, 'http://world.test/');
    assert.equal(r.ok, true, `internet: ${r.body} ${r.stderr}`);
    assert.equal((JSON.parse(r.body) as { peer: string }).peer, WORLD.uplinkAddress, 'masqueraded out of the uplink');

    await policy(vm.a.id, { egress: { mode: 'allowlist', allow: ['allowed.test'] } });
    assert.equal((await httpGet(ga, 'http://allowed.test/')).ok, true, 'allowed.test');
    assert.deepEqual(await resolve(ga, 'other.test'), [], 'other.test is refused by the DNS');
    assert.equal(await tcpOpen(ga, WORLD.other, 80, 1), false, 'other.test by its address');
    assert.equal(await tcpOpen(ga, WORLD.web, 80, 1), false, 'the world server\'s IP literal');

    await policy(vm.a.id, { egress: { mode: 'none' } });
    assert.deepEqual(await resolve(ga, 'allowed.test'), [], 'none: no names');
    assert.equal(await tcpOpen(ga, WORLD.allowed, 80, 1), false, 'none: no addresses');
  });

  test('a runtime PATCH flips reachability within 100 ms (the guest\'s first connection after it)', async () => {
    await policy(vm.a.id, { egress: { mode: 'none' } });
    assert.equal(await tcpOpen(ga, WORLD.web, 80, 1), false);
    // Timed inside the guest: one connection attempt right after the PATCH returned (no retries: a dropped SYN
    // would take the kernel's 1 s retransmission, so a success in well under that was the first SYN).
    // bash's own clock around the connect only (no fork in between: process start-up under TCG costs ~100 ms).
    const probe = ['bash', '-c', `s=$EPOCHREALTIME; exec 3<>/dev/tcp/${WORLD.web}/80 && echo ok $s $EPOCHREALTIME`];
    // Three flips each way; a loaded CI host may stall one PATCH, so the median of three must be within 100 ms.
    const opens: number[] = [];
    const closes: number[] = [];
    for (let i = 0; i < 3; i++) {
      const open = await policy(vm.a.id, { egress: { mode: 'internet' } });
      const r = await ga(probe, 10_000);
      const m = /^ok (\d+\.\d+) (\d+\.\d+)/.exec(r.stdout);
      assert.ok(m, `the first connection after the change must succeed: ${r.stdout}${r.stderr}`);
      const guestMs = (Number(m[2]) - Number(m[1])) * 1000;
      assert.ok(guestMs < 1000, `the first SYN got through (${guestMs.toFixed(1)} ms)`);
      opens.push(open + guestMs);
      const close = await policy(vm.a.id, { egress: { mode: 'none' } });
      const r2 = await ga(['bash', '-c', `timeout 1 bash -c 'exec 3<>/dev/tcp/${WORLD.web}/80' && echo open || echo closed`]);
      assert.match(r2.stdout, /closed/, 'and closed again after the next change');
      closes.push(close);
      console.log(`# flip ${i + 1}: PATCH none→internet ${open.toFixed(1)} ms + the guest's first connection ${guestMs.toFixed(1)} ms (inside the guest) = ${(open + guestMs).toFixed(1)} ms; internet→none ${close.toFixed(1)} ms`);
    }
    const mid = (l: number[]): number => [...l].sort((x, y) => x - y)[1]!;
    assert.ok(mid(opens) < 100, `the flip took ${mid(opens).toFixed(1)} ms (median of 3)`);
    assert.ok(mid(closes) < 100, `the close took ${mid(closes).toFixed(1)} ms (median of 3)`);
  });

  test('proxy mode: the world sees the upstream proxy\'s address; the guest has no proxy configured; non-DNS UDP goes nowhere', async () => {
    await policy(vm.a.id, { egress: { mode: 'internet' } });
    const control = `udp-direct-${Date.now()}`;
    const sent = await ga(['bash', '-c', 'printf %s "$1" > "/dev/udp/$2/443"', 'udp', control, WORLD.web]);
    assert.equal(sent.code, 0, `bash /dev/udp in the guest: ${sent.stderr}`);
    await policy(vm.a.id, { egress: { mode: 'internet', proxy: PROXY } });
    const r = await httpGet(ga, 'http://world.test/');
    assert.equal(r.ok, true, `through the proxy: ${r.body} ${r.stderr}`);
    assert.equal((JSON.parse(r.body) as { peer: string }).peer, hp.address, 'the world sees the proxy');
    const blocked = `udp-proxied-${Date.now()}`;
    await udpSend(ga, WORLD.web, 443, blocked);
    await udpSend(ga, WORLD.web, 9, blocked);
    const env = await agentRunner(vm.a.id, 'hangar')(['bash', '-lc', 'env; cat /etc/environment 2>/dev/null; true']);
    assert.equal(env.code, 0, env.stderr);
    assert.ok(!/proxy/i.test(env.stdout), `no proxy settings in the guest: ${env.stdout.split('\n').filter((l) => /proxy/i.test(l)).join(', ')}`);
    assert.ok(!env.stdout.includes(hp.pass), 'the proxy\'s password is not in the guest');
    await new Promise((res) => setTimeout(res, 300));
    const got = await world.datagrams();
    assert.ok(got.includes(control), 'without a proxy, UDP goes out (control)');
    assert.ok(!got.includes(blocked), 'with a proxy, non-DNS UDP does not bypass it');
    assert.deepEqual(await resolve(ga, 'allowed.test'), [WORLD.allowed], 'DNS still works in proxy mode');
    await policy(vm.a.id, { egress: { mode: 'internet' } });
  });

  test('a bandwidth limit holds within 10% in both directions', async () => {
    const mbit = 8;
    const n = 3 * 1024 * 1024;
    await policy(vm.a.id, { egress: { mode: 'internet' }, limits: { bandwidthMbit: mbit } });
    const want = (mbit * 1e6) / 8;
    // bash's /dev/tcp both ways (the image's busybox wget crashes): the time from connect to the last byte.
    const downScript = `s=$(date +%s%N); exec 3<>/dev/tcp/${WORLD.web}/80 || exit 1; printf 'GET /bytes/${n} HTTP/1.0\r\nHost: world.test\r\n\r\n' >&3; got=$(cat <&3 | wc -c); [ "$got" -ge ${n} ] || exit 3; echo $(( ($(date +%s%N) - s) / 1000 ))`;
    const down = await ga(['bash', '-c', downScript], 60_000);
    const upScript = `s=$(date +%s%N); exec 3<>/dev/tcp/${WORLD.web}/80 || exit 1; printf 'PUT /upload HTTP/1.1\\r\\nHost: world.test\\r\\nContent-Length: ${n}\\r\\nConnection: close\\r\\n\\r\\n' >&3; head -c ${n} /dev/zero >&3; cat <&3 >/dev/null; echo $(( ($(date +%s%N) - s) / 1000 ))`;
    const up = await ga(['bash', '-c', upScript], 60_000);
    await policy(vm.a.id, { egress: { mode: 'internet' } });
    assert.equal(down.code, 0, down.stderr);
    assert.equal(up.code, 0, up.stderr);
    const d = n / (Number(down.stdout.trim()) / 1e6);
    const u = n / (Number(up.stdout.trim()) / 1e6);
    console.log(`# in the guest, limit ${mbit} Mbit/s: download ${(d * 8 / 1e6).toFixed(2)} Mbit/s, upload ${(u * 8 / 1e6).toFixed(2)} Mbit/s`);
    assert.ok(Math.abs(d - want) / want <= 0.1, `download ${(d * 8 / 1e6).toFixed(2)} Mbit/s vs ${mbit}`);
    assert.ok(Math.abs(u - want) / want <= 0.1, `upload ${(u * 8 / 1e6).toFixed(2)} Mbit/s vs ${mbit}`);
  });

  // Last: the clone (made from a snapshot of A) is tested after everything on A (A's agent session does not
  // outlive its clone's creation here).
  test('the proxy is the only path to VNC, on the VM and on its clone (own namespace): no bridge neighbour reaches their 5900 or ICMP, nor they the neighbour\'s; the host does; the clone resolves through the gateway', async () => {
    await policy(vm.a.id, { egress: { mode: 'internet' } });
    const cfg = live.net.cfg;
    const session = new NftSession(cfg.netns);
    let fake: FakeGuest | undefined;
    let desk: ChildProcess | undefined;
    try {
      // Any namespace on the bridge (what a guest is), with internet egress and a desktop of its own.
      fake = await createFakeGuest(cfg, '10.226.0.13');
      await applyVmRules(cfg, { ip: fake.ip, policy: normalisePolicy({ egress: { mode: 'internet' } }), flushDns: true, port: { kind: 'tap', ifname: fake.ifname, mac: fake.mac } }, session.apply);
      desk = spawn('ip', ['netns', 'exec', fake.netns, process.execPath, '-e', "require('net').createServer((s) => { s.on('error', () => undefined); s.end('RFB 003.008\\n'); }).listen(5900)"], { stdio: 'ignore' });
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(await tcpOpen(host, vm.a.ip, 5900), true, 'the host side reaches A\'s desktop');
      assert.equal(await tcpOpen(host, fake.ip, 5900), true, 'the host reaches the neighbour\'s desktop (control)');
      assert.equal(await tcpOpen(fake.run, vm.a.ip, 5900, 1), false, 'a bridge neighbour must not reach A\'s 5900');
      assert.equal(await pingable(fake.run, vm.a.ip), false, 'nor ping A');
      assert.equal(await tcpOpen(ga, fake.ip, 5900, 1), false, 'A must not reach the neighbour\'s 5900');
      assert.equal(await pingable(ga, fake.ip), false, 'nor ping it');

      const snap = await api<{ id: string }>('POST', '/v1/snapshots', { vm: vm.a.id });
      assert.ok(snap.status === 201 || snap.status === 200, JSON.stringify(snap.body));
      const b = await api<{ id: string }>('POST', '/v1/vms?wait=true', { fromSnapshot: snap.body.id, name: 'net-b' });
      assert.equal(b.status, 201, JSON.stringify(b.body));
      vm.b = { id: b.body.id, ip: live.c.store.getVm(b.body.id)!.net!.ip };
      assert.notEqual(vm.b.ip, vm.a.ip, 'the clone has a pool address of its own');
      gb = agentRunner(vm.b.id);
      await live.c.agents.session(vm.b.id, { timeoutMs: 120_000 });
      await policy(vm.b.id, { egress: { mode: 'internet' } });
      assert.equal(await tcpOpen(host, vm.b.ip, 5900), true, 'the host side reaches the clone\'s desktop');
      assert.equal(await tcpOpen(fake.run, vm.b.ip, 5900, 1), false, 'a bridge neighbour must not reach the clone\'s 5900');
      assert.equal(await pingable(fake.run, vm.b.ip), false, 'nor ping the clone');
      assert.equal(await tcpOpen(gb, fake.ip, 5900, 1), false, 'the clone must not reach the neighbour\'s 5900');
      assert.equal(await pingable(gb, fake.ip), false, 'nor ping it');
      const conf = await gb(['sh', '-c', 'cat /etc/resolv.conf; busybox nslookup world.test 2>&1 | head -5']);
      assert.deepEqual(await resolve(gb, 'world.test'), [WORLD.web], `the clone resolves through the gateway (its namespace forwards DNS to netd): ${conf.stdout}`);
    } finally {
      desk?.kill('SIGKILL');
      session.close();
      await fake?.destroy();
    }
  });
});
