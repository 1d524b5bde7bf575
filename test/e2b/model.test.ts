// The pure E2B ↔ Hangar mappings: templates, network options → egress policy, timeouts, states, the list's
// metadata/state queries and paging, and the X-API-KEY → bearer mapping.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { VmRecord } from '../../src/domain/vm.js';
import type { HangarError } from '../../src/errors.js';
import { e2bAuthorization } from '../../src/e2b/auth.js';
import { createInputOf, listPage, networkPolicyOf, parseMetadataQuery, parseStateQuery, sandboxState, timeoutSeconds, type E2bFields } from '../../src/e2b/model.js';

const code = (f: () => unknown): string => { try { f(); return 'ok'; } catch (e) { return (e as HangarError).code; } };

test('templates: base is the default profile, desktop/browser are profiles, a known snapshot id is a clone', () => {
  const snaps = (t: string) => t === 'snap-0123abcd';
  assert.deepEqual(createInputOf({}, snaps), {});
  assert.deepEqual(createInputOf({ templateID: 'base' }, snaps), {});
  assert.deepEqual(createInputOf({ templateID: 'browser' }, snaps), { profile: 'browser' });
  assert.deepEqual(createInputOf({ templateID: 'snap-0123abcd' }, snaps), { fromSnapshot: 'snap-0123abcd' });
  assert.equal(code(() => createInputOf({ templateID: 'snap-99999999' }, snaps)), 'SNAPSHOT_NOT_FOUND');
  assert.equal(code(() => createInputOf({ templateID: 'code-interpreter-v1' }, snaps)), 'INVALID_ARGUMENT');
});

test('network options become the egress policy', () => {
  assert.equal(networkPolicyOf({}), undefined);
  assert.deepEqual(networkPolicyOf({ allow_internet_access: false }), { egress: { mode: 'none' } });
  assert.deepEqual(networkPolicyOf({ network: { denyOut: ['0.0.0.0/0'], allowOut: ['1.1.1.1', 'example.com'] } }), { egress: { mode: 'allowlist', allow: ['1.1.1.1', 'example.com'] } });
  assert.deepEqual(networkPolicyOf({ allow_internet_access: false, network: { allowOut: ['10.1.0.0/16'] } }), { egress: { mode: 'allowlist', allow: ['10.1.0.0/16'] } });
  assert.deepEqual(networkPolicyOf({ network: { denyOut: ['8.8.8.8'] } }), { egress: { mode: 'internet', deny: ['8.8.8.8'] } });
  assert.deepEqual(networkPolicyOf({ network: { denyOut: ['0.0.0.0/0'] } }), { egress: { mode: 'none' } });
  assert.deepEqual(createInputOf({ templateID: 'desktop', allow_internet_access: false }, () => false), { network: { egress: { mode: 'none' } }, profile: 'desktop' });
});

test('timeouts: default 300 s, at least 1 s, clamped to 24 h', () => {
  assert.equal(timeoutSeconds(undefined), 300);
  assert.equal(timeoutSeconds(60), 60);
  assert.equal(timeoutSeconds(10 * 86_400), 86_400);
  assert.equal(code(() => timeoutSeconds(0)), 'INVALID_ARGUMENT');
});

test('a hibernated or paused VM is a paused sandbox', () => {
  assert.equal(sandboxState({ state: 'ready', hibernation: null }), 'running');
  assert.equal(sandboxState({ state: 'paused', hibernation: null }), 'paused');
  assert.equal(sandboxState({ state: 'stopped', hibernation: {} as NonNullable<VmRecord['hibernation']> }), 'paused');
});

test('the list: metadata pairs as the SDK encodes them, states, paging by token', () => {
  // The SDK: URLSearchParams of encodeURIComponent'd keys and values.
  const sent = new URLSearchParams({ [encodeURIComponent('a b')]: encodeURIComponent('x&y'), team: 'blue' }).toString();
  assert.deepEqual(parseMetadataQuery(sent), [['a b', 'x&y'], ['team', 'blue']]);
  assert.deepEqual(parseStateQuery(undefined), ['running', 'paused']);
  assert.deepEqual(parseStateQuery('paused'), ['paused']);
  assert.equal(code(() => parseStateQuery('running,gone')), 'INVALID_ARGUMENT');
  const item = (id: string, at: string, metadata: Record<string, string>, state = 'ready') => ({
    vm: { id, state, hibernation: null } as VmRecord,
    fields: { metadata, startedAt: at } as E2bFields,
  });
  const items = [item('vm-3', '2026-01-03', { t: 'x' }), item('vm-1', '2026-01-01', { t: 'x' }), item('vm-2', '2026-01-02', { t: 'y' }, 'paused')];
  const all = listPage(items, { metadata: [], states: ['running', 'paused'] });
  assert.deepEqual(all.page.map((i) => i.vm.id), ['vm-1', 'vm-2', 'vm-3']);
  assert.equal(all.nextToken, null);
  assert.deepEqual(listPage(items, { metadata: [['t', 'x']], states: ['running', 'paused'] }).page.map((i) => i.vm.id), ['vm-1', 'vm-3']);
  assert.deepEqual(listPage(items, { metadata: [], states: ['paused'] }).page.map((i) => i.vm.id), ['vm-2']);
  const p1 = listPage(items, { metadata: [], states: ['running', 'paused'], limit: 2 });
  assert.deepEqual(p1.page.map((i) => i.vm.id), ['vm-1', 'vm-2']);
  const p2 = listPage(items, { metadata: [], states: ['running', 'paused'], limit: 2, nextToken: p1.nextToken! });
  assert.deepEqual(p2.page.map((i) => i.vm.id), ['vm-3']);
  assert.equal(p2.nextToken, null);
});

test('X-API-KEY is the bearer under /e2b/ only, and never over an Authorization header', () => {
  assert.equal(e2bAuthorization('/e2b/v2/sandboxes', { 'x-api-key': 'hgk_k' }), 'Bearer hgk_k');
  assert.equal(e2bAuthorization('/v1/vms', { 'x-api-key': 'hgk_k' }), undefined);
  assert.equal(e2bAuthorization('/e2b/v2/sandboxes', { 'x-api-key': 'hgk_k', authorization: 'Bearer other' }), undefined);
  assert.equal(e2bAuthorization('/e2b/v2/sandboxes', {}), undefined);
});
