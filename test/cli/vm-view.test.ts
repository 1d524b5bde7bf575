// What vm ls / vm show / snapshot ls print: hibernated VMs say so, the TTL shows as EXPIRES, show has every
// field one per line, and the snapshot columns are named for what they hold.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { snapshotTable } from '../../src/cli/snapshot.js';
import { fmtExpires, vmDetails, vmTable } from '../../src/cli/vm-view.js';
import { fakeApi, fakeSnapshot, fakeVm, hangar, ok } from './fake-api.js';

const now = Date.parse('2026-01-01T01:00:00.000Z');

test('vm ls: STATE hibernated for a saved VM, EXPIRES relative to now or -', () => {
  const out = vmTable([
    fakeVm(),
    fakeVm({ id: 'vm-2', name: 'bob', state: 'stopped', hibernated: true, expiresAt: '2026-01-01T01:14:00.000Z', ttlSeconds: 3600 }),
    fakeVm({ id: 'vm-3', name: 'carol', state: 'stopped', hibernated: false, expiresAt: '2026-01-01T00:59:00.000Z' }),
  ], now);
  const [head, a, b, c] = out.trimEnd().split('\n');
  assert.deepEqual(head!.split(/\s{2,}/), ['ID', 'NAME', 'STATE', 'IP', 'VMM', 'CPU', 'MEM', 'BOOT', 'AGE', 'EXPIRES']);
  assert.deepEqual(a!.split(/\s+/), ['vm-1a2b3c4d', 'alice', 'ready', '10.242.0.2', 'qemu', '1', '512M', '4.2s', '60m', '-']);
  assert.deepEqual(b!.split(/\s+/).slice(1, 3), ['bob', 'hibernated']);
  assert.match(b!, /in 14m$/);
  assert.match(c!, /carol +stopped .* expired$/);
  assert.equal(fmtExpires('2026-01-01T04:00:00.000Z', now), 'in 3h');
  assert.equal(fmtExpires('2026-01-03T01:00:00.000Z', now), 'in 2d');
  assert.equal(fmtExpires('2026-01-01T01:00:30.000Z', now), 'in 30s');
});

test('vm show: every field a user asks about, one per line', () => {
  const v = fakeVm({
    ttlSeconds: 3600, expiresAt: '2026-01-01T01:14:00.000Z', hibernated: false,
    clone: { snapshot: 'snap-0123abcd', guestIp: '172.16.0.2', netns: 'hgc-1a2b3c4d' },
    lastError: { code: 'VMM_CRASHED', message: 'the VMM exited unexpectedly (SIGKILL, by signal)' },
  });
  const lines = vmDetails(v, now).trimEnd().split('\n');
  const fields = Object.fromEntries(lines.map((l) => { const i = l.indexOf(':'); return [l.slice(0, i), l.slice(i + 1).trim()]; }));
  assert.deepEqual(Object.keys(fields), ['id', 'name', 'state', 'image', 'profile', 'vmm', 'vCPUs', 'memory', 'IP', 'MAC', 'TAP', 'gateway', 'TTL', 'expires', 'clone of', 'last error', 'boot time', 'pid', 'created', 'updated']);
  assert.equal(fields.memory, '512 MiB');
  assert.equal(fields.TTL, '3600s (60m)');
  assert.equal(fields.expires, '2026-01-01T01:14:00.000Z (in 14m)');
  assert.equal(fields['clone of'], 'snap-0123abcd (guest IP 172.16.0.2, netns hgc-1a2b3c4d)');
  assert.equal(fields['last error'], 'VMM_CRASHED: the VMM exited unexpectedly (SIGKILL, by signal)');
  assert.equal(fields['boot time'], '4.2s');
  assert.equal(fields.created, '2026-01-01T00:00:00.000Z (60m ago)');
  assert.equal(vmDetails(fakeVm({ state: 'stopped', hibernated: true }), now).split('\n')[2], 'state:      hibernated');
  assert.match(vmDetails(fakeVm({ network: null, ttlSeconds: null }), now), /\nIP: +-\n.*\nTTL: +none\nexpires: +-\n/s);
});

test('vm show --json is the API view unchanged; vm ls --json the list', async () => {
  const v = fakeVm({ clone: null, hibernated: true, state: 'stopped' });
  const api = await fakeApi(() => ok({ vms: [v] }));
  try {
    assert.deepEqual(JSON.parse((await hangar(['vm', 'show', 'alice', '--json'], api.env)).out), v);
    assert.deepEqual(JSON.parse((await hangar(['vm', 'ls', '--json'], api.env)).out), [v]);
    assert.match((await hangar(['vm', 'ls'], api.env)).out, /alice +hibernated/);
  } finally {
    await api.close();
  }
});

test('snapshot ls: the sizes are under SAVED MEM and DISK, not a STATE column', () => {
  const out = snapshotTable([fakeSnapshot()], now);
  const [head, row] = out.trimEnd().split('\n');
  assert.deepEqual(head!.split(/\s{2,}/), ['ID', 'SOURCE', 'IMAGE', 'VMM', 'CPU', 'MEM', 'GUEST IP', 'SAVED MEM', 'DISK', 'AGE']);
  assert.doesNotMatch(head!, /STATE/);
  assert.deepEqual(row!.split(/\s{2,}/), ['snap-0123abcd', 'vm alice', 'desktop-0123abcd', 'qemu 7.2', '1', '512M', '10.242.0.2', '95M', '2048M', '60m']);
});
