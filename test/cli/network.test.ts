// `hangar vm network` and the policy in `hangar vm show` (src/cli/network.ts) against a fake API: the PATCH body
// the flags make, show without flags, wrong flags refused with INVALID_ARGUMENT (exit 2) before any request, and a
// proxy's credentials never printed (text, --json, errors).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { policyBody, redactProxy, type NetworkPolicyView } from '../../src/cli/network.js';
import { isHangarError } from '../../src/errors.js';
import { fail, fakeApi, fakeVm, hangar, ok, type FakeRequest } from './fake-api.js';

const view = (over: Partial<NetworkPolicyView['egress']> = {}, rest: Partial<NetworkPolicyView> = {}): NetworkPolicyView => ({
  vm: 'vm-1a2b3c4d', egress: { mode: 'allowlist', allow: ['github.com', '*.npmjs.org'], deny: [], proxy: 'http://alice:***@proxy.example:3128', ...over },
  group: null, limits: { bandwidthMbit: 50, connections: null }, default: false, ...rest,
});

function handler(policy: NetworkPolicyView) {
  return (r: FakeRequest) => {
    if (r.path === '/v1/vms') return ok({ vms: [fakeVm()] });
    if (r.path === '/v1/vms/vm-1a2b3c4d') return ok(fakeVm());
    if (r.path === '/v1/vms/vm-1a2b3c4d/network') return ok(policy);
    return fail('NOT_FOUND');
  };
}

test('flags → PATCH body: only what is given; none empties a list or lifts a limit; comma lists', () => {
  assert.deepEqual(policyBody({}), {});
  assert.deepEqual(policyBody({ egress: 'allowlist', allow: ['github.com', '*.npmjs.org,10.0.0.0/8'] }), { egress: { mode: 'allowlist', allow: ['github.com', '*.npmjs.org', '10.0.0.0/8'] } });
  assert.deepEqual(policyBody({ deny: ['none'], proxy: 'none', bandwidth: 'none', connections: '20', group: 'none' }), {
    egress: { deny: [], proxy: null }, group: null, limits: { bandwidthMbit: null, connections: 20 },
  });
  assert.deepEqual(policyBody({ proxy: 'socks5://u:p@10.1.2.3:1080', group: 'team-1', bandwidth: '50' }), { egress: { proxy: 'socks5://u:p@10.1.2.3:1080' }, group: 'team-1', limits: { bandwidthMbit: 50 } });
});

test('wrong flags: INVALID_ARGUMENT naming the flag; a bad proxy URL is echoed redacted', () => {
  const refused = (values: Record<string, string | string[]>, flag: string): void => {
    assert.throws(() => policyBody(values), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT') && e.details.flag === flag && e.message.startsWith(flag), flag);
  };
  refused({ egress: 'everything' }, '--egress');
  refused({ bandwidth: '0' }, '--bandwidth');
  refused({ bandwidth: 'fast' }, '--bandwidth');
  refused({ connections: '-3' }, '--connections');
  refused({ group: 'Team 1' }, '--group');
  refused({ allow: ['none', 'github.com'] }, '--allow');
  refused({ deny: [''] }, '--deny');
  refused({ proxy: 'ftp://u:p@h:21' }, '--proxy');
  try {
    policyBody({ proxy: 'https://bob:hunter2@proxy:3128' });
    assert.fail('https is refused');
  } catch (e) {
    assert.ok(isHangarError(e, 'INVALID_ARGUMENT'));
    assert.ok(!e.message.includes('hunter2'), e.message);
    assert.match(e.message, /bob:\*\*\*@proxy/);
  }
});

test('redactProxy hides the password (and a lone user) in any text', () => {
  assert.equal(redactProxy('http://alice:s3cret@p:3128'), 'http://alice:***@p:3128');
  assert.equal(redactProxy('via socks5://bob:x%40y@10.0.0.1:1080 failed'), 'via socks5://bob:***@10.0.0.1:1080 failed');
  assert.equal(redactProxy('http://token@p:1'), 'http://token:***@p:1');
  assert.equal(redactProxy('http://p:3128'), 'http://p:3128');
});

test('vm network ID: shows the policy; with flags it PATCHes the VM and shows the result; --json redacted', async () => {
  const api = await fakeApi(handler(view()));
  try {
    const shown = await hangar(['vm', 'network', 'alice'], api.env);
    assert.equal(shown.code, 0, shown.err);
    assert.match(shown.out, /^egress: +allowlist$/m);
    assert.match(shown.out, /^allow: +github\.com, \*\.npmjs\.org$/m);
    assert.match(shown.out, /^proxy: +http:\/\/alice:\*\*\*@proxy\.example:3128$/m);
    assert.match(shown.out, /^bandwidth: +50 Mbit\/s$/m);
    assert.match(shown.out, /^connections: +none$/m);
    assert.ok(!api.requests.some((r) => r.method === 'PATCH'), 'no flags, no change');

    const changed = await hangar(['vm', 'network', 'alice', '--egress', 'internet', '--proxy', 'http://alice:s3cret@proxy.example:3128', '--json'], api.env);
    assert.equal(changed.code, 0, changed.err);
    const patch = api.requests.find((r) => r.method === 'PATCH')!;
    assert.equal(patch.path, '/v1/vms/vm-1a2b3c4d/network');
    assert.deepEqual(patch.body, { egress: { mode: 'internet', proxy: 'http://alice:s3cret@proxy.example:3128' } });
    assert.ok(!changed.out.includes('s3cret') && !changed.err.includes('s3cret'), 'the password is never printed');
    assert.equal((JSON.parse(changed.out) as NetworkPolicyView).egress.proxy, 'http://alice:***@proxy.example:3128');
  } finally {
    await api.close();
  }
});

test('vm network: a wrong flag exits 2 before any request; the server\'s refusal is reworded for the flag and redacted', async () => {
  const api = await fakeApi((r) => (r.method === 'PATCH'
    ? fail('INVALID_ARGUMENT', 'egress.proxy must name a host and a port: http://alice:s3cret@:3128', { field: 'egress.proxy' })
    : handler(view())(r)));
  try {
    const wrong = await hangar(['vm', 'network', 'alice', '--egress', 'open'], api.env);
    assert.equal(wrong.code, 2);
    assert.match(wrong.err, /INVALID_ARGUMENT: --egress must be one of none, internet, allowlist/);
    assert.equal(api.requests.length, 0, 'refused before any request');
    const server = await hangar(['vm', 'network', 'alice', '--proxy', 'http://alice:s3cret@h:3128'], api.env);
    assert.equal(server.code, 2);
    assert.match(server.err, /--proxy: egress\.proxy must name a host/);
    assert.ok(!server.err.includes('s3cret'), server.err);
    const help = await hangar(['vm', 'network', '--help'], api.env);
    assert.equal(help.code, 0);
    assert.match(help.out, /--egress MODE/);
    assert.match(help.out, /--proxy URL/);
  } finally {
    await api.close();
  }
});

test('vm show prints the network policy (proxy redacted); --json stays the API\'s VM view', async () => {
  const api = await fakeApi(handler(view({ mode: 'internet', allow: [], proxy: 'socks5://bob:leak@10.0.0.9:1080' }, { group: 'team1' })));
  try {
    const r = await hangar(['vm', 'show', 'alice'], api.env);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^name: +alice$/m);
    assert.match(r.out, /^network egress: +internet$/m);
    assert.match(r.out, /^network group: +team1$/m);
    assert.match(r.out, /^network proxy: +socks5:\/\/bob:\*\*\*@10\.0\.0\.9:1080$/m);
    assert.ok(!r.out.includes('leak'));
    const j = await hangar(['vm', 'show', 'alice', '--json'], api.env);
    assert.deepEqual(JSON.parse(j.out), fakeVm());
  } finally {
    await api.close();
  }
});
