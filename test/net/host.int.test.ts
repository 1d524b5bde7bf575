// The host network executor with real iproute2, entirely inside namespaces this test creates: a fake host
// (hgt-host-*) stands in for the root namespace, which is checked to be untouched at the end.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { isHangarError } from '../../src/errors.js';
import { normaliseNetConfig } from '../../src/net/config.js';
import { attachVm, detachVm, listHangarTaps, listNetns, removeHostNetwork, setupHostNetwork } from '../../src/net/host.js';
import { allocationOf, planVmNetwork, type NetAllocation } from '../../src/net/plan.js';
import { run, which } from '../../src/util/exec.js';
import { skipUnlessRoot } from '../support/env.js';
import { createTestNetwork, withTestNetwork, type TestNetwork } from '../support/net.js';

const skip = skipUnlessRoot() || (!(await which('ip')) ? 'iproute2 (ip) is needed' : false) || (!(await which('ping')) ? 'ping (iputils-ping, see scripts/install-deps.sh) is needed' : false);

interface Link { ifname: string; master?: string; flags: string[]; linkinfo?: { info_kind?: string }; addr_info?: { family: string; local: string; prefixlen: number }[] }

async function links(ns: string): Promise<Map<string, Link>> {
  const r = await run('ip', ['-n', ns, '-d', '-j', 'addr', 'show']);
  return new Map((JSON.parse(r.stdout) as Link[]).map((l) => [l.ifname, l]));
}
const addrs = (l: Link | undefined): string[] => (l?.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`);

async function rootSnapshot(): Promise<string> {
  const parts = await Promise.all([
    run('ip', ['-br', 'link']), run('ip', ['-br', 'addr']), run('ip', ['route']), run('sysctl', ['-n', 'net.ipv4.ip_forward']),
  ]);
  return parts.map((p) => p.stdout).join('\n--\n');
}

const mine = new Set<string>();
function track(net: TestNetwork): TestNetwork {
  mine.add(net.hostNetns);
  if (net.vmNetns) mine.add(net.vmNetns);
  return net;
}

let rootBefore = '';
before(async () => { if (!skip) rootBefore = await rootSnapshot(); });
after(async () => {
  if (skip) return;
  assert.equal(await rootSnapshot(), rootBefore, 'the root namespace network is unchanged');
  // Only this file's namespaces: other test files may be using test networks at the same time.
  const all = await listNetns();
  assert.deepEqual([...mine].filter((n) => all.includes(n)), [], 'no test namespace left');
});

test('netns mode: namespace, bridge, veth, route and forwarding are created, work, and are undone', { skip }, () =>
  withTestNetwork(async (net) => {
    track(net);
    const cfg = net.cfg;
    const ns = cfg.netns!;
    const hl = cfg.hostLink!;
    const undo = await setupHostNetwork(cfg);
    assert.ok((await listNetns()).includes(ns));
    const vm = await links(ns);
    assert.equal(vm.get(cfg.bridge)?.linkinfo?.info_kind, 'bridge');
    assert.deepEqual(addrs(vm.get(cfg.bridge)), [`${cfg.gateway}/${cfg.prefix}`]);
    assert.deepEqual(addrs(vm.get(hl.nsIfname)), [`${hl.nsAddress}/${hl.prefix}`]);
    const host = await links(net.hostNetns);
    assert.deepEqual(addrs(host.get(hl.hostIfname)), [`${hl.hostAddress}/${hl.prefix}`]);
    const route = await run('ip', ['-n', net.hostNetns, 'route', 'show', cfg.cidr]);
    assert.match(route.stdout, new RegExp(`via ${hl.nsAddress.replace(/\./g, '\\.')} dev ${hl.hostIfname}`));
    assert.equal((await run('sysctl', ['-n', 'net.ipv4.ip_forward'], { netns: ns })).stdout.trim(), '1', 'forwarding on inside the VM namespace');
    assert.equal((await run('sysctl', ['-n', 'net.ipv4.ip_forward'], { netns: net.hostNetns })).stdout.trim(), '0', 'and not on the host side');

    // Setting up again adopts what exists: its undo removes nothing.
    const again = await setupHostNetwork(cfg);
    await again();
    assert.ok((await listNetns()).includes(ns));
    assert.ok((await links(ns)).has(cfg.bridge));

    // A stand-in guest (a veth into the bridge from a third namespace) proves the host path through the
    // namespace: the fake host reaches an address on the VM subnet that is not the namespace's own.
    const guestNs = `${net.hostNetns.replace('host', 'gst')}`;
    mine.add(guestNs);
    await run('ip', ['netns', 'add', guestNs]);
    try {
      await run('ip', ['-n', ns, 'link', 'add', 'hgtest-br', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', guestNs]);
      await run('ip', ['-n', ns, 'link', 'set', 'hgtest-br', 'master', cfg.bridge, 'up']);
      const guestIp = planVmNetwork(cfg, [], 'stand-in').ip;
      await run('ip', ['-n', guestNs, 'addr', 'add', `${guestIp}/${cfg.prefix}`, 'dev', 'eth0']);
      await run('ip', ['-n', guestNs, 'link', 'set', 'eth0', 'up']);
      await run('ip', ['-n', guestNs, 'route', 'add', 'default', 'via', cfg.gateway]);
      const ping = await run('ping', ['-c', '1', '-W', '2', guestIp], { netns: net.hostNetns, allowFailure: true });
      assert.equal(ping.code, 0, `fake host → stand-in guest: ${ping.stdout}${ping.stderr}`);
    } finally {
      await run('ip', ['netns', 'del', guestNs], { allowFailure: true });
    }

    await undo();
    assert.ok(!(await listNetns()).includes(ns), 'VM namespace removed');
    assert.ok(!(await links(net.hostNetns)).has(hl.hostIfname), 'host veth end removed');
    assert.equal((await run('ip', ['-n', net.hostNetns, 'route', 'show', cfg.cidr])).stdout.trim(), '', 'route removed');
  }, { setup: false }));

test('TAPs: attach creates, enslaves and raises them in the VM namespace; list finds them; undo and detach remove them', { skip }, () =>
  withTestNetwork(async (net) => {
    track(net);
    const cfg = net.cfg;
    const allocs: NetAllocation[] = [];
    const undos = [];
    for (const id of ['alpha', 'beta', 'gamma']) {
      const plan = planVmNetwork(cfg, allocs, id);
      allocs.push(allocationOf(plan));
      undos.push(await attachVm(cfg, plan));
    }
    const taps = await listHangarTaps(cfg);
    assert.deepEqual(taps, allocs.map((a) => ({ name: a.tap, index: a.index, master: cfg.bridge, up: true })));
    assert.ok(!(await links(net.hostNetns)).has(allocs[0]!.tap), 'TAPs are not on the host side');

    await assert.rejects(attachVm(cfg, { tap: allocs[1]!.tap }), (e: unknown) => isHangarError(e, 'NET_SETUP_FAILED') && /already exists/.test(e.message));
    await undos[1]!();
    await detachVm(cfg, allocs[2]!.tap);
    await detachVm(cfg, allocs[2]!.tap); // idempotent
    assert.deepEqual((await listHangarTaps(cfg)).map((t) => t.name), [allocs[0]!.tap]);
  }));

test('a failure midway rolls back what was created and leaves what existed before', { skip }, () =>
  withTestNetwork(async (net) => {
    track(net);
    const cfg = net.cfg;
    // Something not ours already holds the host veth name: the veth step fails after namespace and bridge exist.
    await run('ip', ['-n', net.hostNetns, 'link', 'add', cfg.hostLink!.hostIfname, 'type', 'bridge']);
    await assert.rejects(setupHostNetwork(cfg), (e: unknown) => {
      assert.ok(isHangarError(e, 'NET_SETUP_FAILED'), String(e));
      assert.match(e.message, /half a veth pair/);
      return true;
    });
    assert.ok(!(await listNetns()).includes(cfg.netns!), 'the VM namespace created by the failed run is gone');
    assert.equal((await links(net.hostNetns)).get(cfg.hostLink!.hostIfname)?.linkinfo?.info_kind, 'bridge', 'the pre-existing link is untouched');

    // A host namespace that does not exist fails before anything is created.
    const ghost = normaliseNetConfig({ mode: 'netns', netns: `${cfg.netns}-x`, bridge: 'hgbr0', cidr: cfg.cidr, hostNetns: 'hgt-nonexistent' });
    await assert.rejects(setupHostNetwork(ghost), /does not exist/);
    assert.ok(!(await listNetns()).includes(ghost.netns!));

    // attach without the bridge says so.
    await assert.rejects(attachVm(cfg, { tap: 'hgtap0' }), /bridge hgbr0 .*does not exist|Cannot open network namespace/);
  }, { setup: false }));

test('bridge mode puts bridge and TAPs on the host side; removeHostNetwork cleans up without the undo', { skip }, () =>
  withTestNetwork(async (net) => {
    track(net);
    const cfg = net.cfg;
    assert.equal(cfg.mode, 'bridge');
    await setupHostNetwork(cfg); // undo deliberately dropped: a controller restart loses it
    const plan = planVmNetwork(cfg, [], 'solo');
    await attachVm(cfg, plan);
    const host = await links(net.hostNetns);
    assert.deepEqual(addrs(host.get(cfg.bridge)), [`${cfg.gateway}/${cfg.prefix}`]);
    assert.equal(host.get(plan.tap)?.master, cfg.bridge);
    const ping = await run('ping', ['-c', '1', '-W', '2', cfg.gateway], { netns: net.hostNetns, allowFailure: true });
    assert.equal(ping.code, 0);
    await removeHostNetwork(cfg);
    const left = await links(net.hostNetns);
    assert.ok(!left.has(cfg.bridge) && !left.has(plan.tap));
    await removeHostNetwork(cfg); // idempotent
  }, { mode: 'bridge', setup: false }));

test('withTestNetwork destroys its namespaces even when the test body throws', { skip }, async () => {
  let seen: TestNetwork | undefined;
  await assert.rejects(withTestNetwork(async (net) => {
    seen = track(net);
    assert.ok((await listNetns()).includes(net.vmNetns!));
    await attachVm(net.cfg, { tap: 'hgtap0' });
    throw new Error('boom');
  }), /boom/);
  const all = await listNetns();
  assert.ok(!all.includes(seen!.hostNetns) && !all.includes(seen!.vmNetns!));
  const net = track(await createTestNetwork());
  await net.destroy();
  await net.destroy();
});
