// Naming VMs and snapshots: exact id > exact name > unique id prefix, resolved client-side for every vm and
// snapshot command; ambiguous prefixes list the candidates, no match is the kind's NOT_FOUND (both exit 2).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pickRef } from '../../src/cli/resolve.js';
import { isHangarError } from '../../src/errors.js';
import { fakeApi, fakeSnapshot, fakeVm, hangar, ok, type FakeApi } from './fake-api.js';

const vms = [
  { id: 'vm-1a2b3c4d', name: 'alice' },
  { id: 'vm-1a2b9999', name: 'bob' },
  { id: 'vm-77770000', name: 'vm-1a2b3c4d0' },
  { id: 'vm-aaaa0000', name: 'vm-1a' },
];

test('exact id, then exact name, then a unique id prefix (with or without vm-)', () => {
  assert.equal(pickRef('vm-1a2b3c4d', vms, 'vm').name, 'alice');
  assert.equal(pickRef('bob', vms, 'vm').id, 'vm-1a2b9999');
  assert.equal(pickRef('vm-1a', vms, 'vm').id, 'vm-aaaa0000', 'a name beats an id prefix');
  assert.equal(pickRef('vm-1a2b3', vms, 'vm').id, 'vm-1a2b3c4d');
  assert.equal(pickRef('1a2b3', vms, 'vm').id, 'vm-1a2b3c4d', 'the hex part alone');
  assert.equal(pickRef('7777', vms, 'vm').id, 'vm-77770000');
  assert.equal(pickRef('snap-01', [{ id: 'snap-0123abcd' }], 'snapshot').id, 'snap-0123abcd');
});

test('an ambiguous prefix lists the candidates; no match is VM_NOT_FOUND / SNAPSHOT_NOT_FOUND', () => {
  assert.throws(() => pickRef('1a2b', vms, 'vm'), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT')
    && e.message === "'1a2b' matches 2 VMs: vm-1a2b3c4d (alice), vm-1a2b9999 (bob); give more of the id"
    && JSON.stringify(e.details.candidates) === '["vm-1a2b3c4d","vm-1a2b9999"]');
  assert.throws(() => pickRef('zz', vms, 'vm'), (e: unknown) => isHangarError(e, 'VM_NOT_FOUND') && /no VM 'zz'.*hangar vm ls/.test(e.message));
  assert.throws(() => pickRef('', vms, 'vm'), (e: unknown) => isHangarError(e, 'VM_NOT_FOUND'));
  assert.throws(() => pickRef('snap-9', [{ id: 'snap-0123abcd' }], 'snapshot'), (e: unknown) => isHangarError(e, 'SNAPSHOT_NOT_FOUND'));
});

async function withApi(fn: (api: FakeApi) => Promise<void>): Promise<void> {
  const api = await fakeApi((r) => {
    if (r.path === '/v1/vms' && r.method === 'GET') return ok({ vms: [fakeVm(), fakeVm({ id: 'vm-1a2b9999', name: 'bob' }), fakeVm({ id: 'vm-ffff0000', name: 'carol' })] });
    if (r.path === '/v1/snapshots' && r.method === 'GET') return ok({ snapshots: [fakeSnapshot('snap-0123abcd'), fakeSnapshot('snap-0199aaaa')] });
    if (r.path.endsWith('/network')) return ok({ vm: 'vm-ffff0000', egress: { mode: 'none', allow: [], deny: [], proxy: null }, group: null, limits: {}, default: true });
    if (r.path.startsWith('/v1/vms/') && r.method === 'GET') return ok(fakeVm());
    if (r.path === '/v1/vms' && r.method === 'POST') return ok(fakeVm({ state: 'creating' }), 202);
    if (r.method === 'DELETE') return { status: 204 };
    if (r.path.endsWith('/viewer')) return ok({ url: '/viewer/x', expiresAt: 'soon' });
    if (r.path === '/v1/doctor') return ok({ ok: true, vm: null, findings: [], checks: [], mostLikelyCause: null, startedAt: 'now', durationMs: 1 });
    if (r.path === '/v1/snapshots' && r.method === 'POST') return ok(fakeSnapshot(), 201);
    if (r.path.endsWith('/console')) return { status: 200, body: 'console text' };
    if (r.path === '/v1/events') return (res) => { res.writeHead(200, { 'content-type': 'text/event-stream' }); res.end(); };
    return ok(fakeVm({ id: 'vm-ffff0000', name: 'carol' }));
  });
  try {
    await fn(api);
  } finally {
    await api.close();
  }
}

test('every vm command takes a unique id prefix and sends the full id', () => withApi(async (api) => {
  const cases: [string[], string, string][] = [
    [['vm', 'show', 'ffff'], 'GET', '/v1/vms/vm-ffff0000/network'],
    [['vm', 'network', 'ffff', '--egress', 'none'], 'PATCH', '/v1/vms/vm-ffff0000/network'],
    [['vm', 'rm', 'ffff'], 'DELETE', '/v1/vms/vm-ffff0000'],
    [['vm', 'stop', 'vm-ff'], 'POST', '/v1/vms/vm-ffff0000/stop'],
    [['vm', 'pause', 'ffff'], 'POST', '/v1/vms/vm-ffff0000/pause'],
    [['vm', 'start', 'ffff', '--no-wait'], 'POST', '/v1/vms/vm-ffff0000/start'],
    [['vm', 'resume', 'ffff', '--no-wait'], 'POST', '/v1/vms/vm-ffff0000/resume'],
    [['vm', 'hibernate', 'ffff'], 'POST', '/v1/vms/vm-ffff0000/hibernate'],
    [['vm', 'open', 'ffff'], 'POST', '/v1/vms/vm-ffff0000/viewer'],
    [['vm', 'console', 'ffff'], 'GET', '/v1/vms/vm-ffff0000/console'],
    [['doctor', '--vm', 'ffff'], 'GET', '/v1/doctor'],
    [['snapshot', 'create', '--vm', 'ffff'], 'POST', '/v1/snapshots'],
    [['events', '--vm', 'ffff'], 'GET', '/v1/events'],
    [['snapshot', 'rm', 'snap-019'], 'DELETE', '/v1/snapshots/snap-0199aaaa'],
    [['snapshot', 'show', '0199'], 'GET', '/v1/snapshots'],
    [['vm', 'create', '--from-snapshot', '0199', '--no-wait'], 'POST', '/v1/vms'],
  ];
  for (const [argv, method, path] of cases) {
    api.requests.length = 0;
    const r = await hangar(argv, api.env);
    assert.equal(r.code, 0, `${argv.join(' ')}: ${r.err}`);
    const last = api.requests.at(-1)!;
    assert.deepEqual([last.method, last.path], [method, path], argv.join(' '));
    if (argv[0] === 'doctor' || argv[0] === 'events') assert.equal(last.query.get('vm'), 'vm-ffff0000');
    if (argv[1] === 'create' && argv[0] === 'snapshot') assert.deepEqual(last.body, { vm: 'vm-ffff0000' });
    if (argv[1] === 'create' && argv[0] === 'vm') assert.deepEqual(last.body, { fromSnapshot: 'snap-0199aaaa' });
  }
  assert.match((await hangar(['vm', 'show', 'ffff'], api.env)).out, /^id: +vm-ffff0000\nname: +carol\n/);
  assert.match((await hangar(['snapshot', 'show', '0199'], api.env)).out, /^id: +snap-0199aaaa\n/);
}));

test('through the CLI: an ambiguous prefix and an unknown VM are exit 2, and nothing is acted on', () => withApi(async (api) => {
  const amb = await hangar(['vm', 'rm', '1a2b'], api.env);
  assert.equal(amb.code, 2);
  assert.match(amb.err, /INVALID_ARGUMENT: '1a2b' matches 2 VMs: vm-1a2b3c4d \(alice\), vm-1a2b9999 \(bob\)/);
  const none = await hangar(['vm', 'stop', 'dave', '--json'], api.env);
  assert.equal(none.code, 2);
  assert.equal(JSON.parse(none.out).error.code, 'VM_NOT_FOUND');
  const snap = await hangar(['snapshot', 'rm', 'snap-01'], api.env);
  assert.equal(snap.code, 2);
  assert.match(snap.err, /'snap-01' matches 2 snapshots/);
  assert.ok(api.requests.every((r) => r.method === 'GET'), 'only lists were sent');
}));
