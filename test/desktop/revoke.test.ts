// Viewer tokens die with their VM: bound to the VM's viewer nonce (kept with its row), refused once the VM is
// destroyed even when a new VM takes its id or (a legacy row) its id as a name, refused at once after a revoke;
// id-shaped names are refused at create. Through the desktop harness (routes, bridge, a real Store).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { metricValue } from '../../src/metrics.js';
import { fakeRfbServer, RFB_BANNER } from '../support/rfb.js';
import { API_TOKEN, closed, mustOpen, openVnc, startHarness, until, type Harness } from './harness.js';
import { CLOSE } from '../../src/desktop/bridge.js';

async function withHarness(fn: (h: Harness, accepted: () => number) => Promise<void>): Promise<void> {
  const rfb = await fakeRfbServer();
  const h = await startHarness({ rfbPort: rfb.port });
  try {
    await fn(h, () => rfb.accepted());
  } finally {
    await h.close();
    await rfb.close();
  }
}

const post = (h: Harness, path: string, body?: object): Promise<Response> => fetch(`${h.base}${path}`, {
  method: 'POST',
  headers: { authorization: `Bearer ${API_TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
  ...(body ? { body: JSON.stringify(body) } : {}),
});

const refusedAs = (r: Awaited<ReturnType<typeof openVnc>>, status: number, code: string, what: string): void => {
  assert.ok(!('ws' in r), `${what}: must be refused`);
  assert.equal(r.status, status, what);
  assert.equal(r.body.error.code, code, what);
};

test('token replay: a token for a destroyed VM opens nothing, whatever is created after it', async () => {
  await withHarness(async (h, accepted) => {
    const A = 'vm-0a1b2c3d';
    h.addVm(A);
    const { json } = await h.viewer(A);
    const old = json.token;
    h.store.deleteVm(A); // destroy: the row goes, its nonce with it

    // A new VM may not be named like A's id (the old hole: the lookup matched `id OR name`).
    const named = await post(h, '/v1/vms', { name: A });
    assert.equal(named.status, 400);
    const err = ((await named.json()) as { error: { code: string; details: Record<string, unknown> } }).error;
    assert.equal(err.code, 'INVALID_ARGUMENT');
    assert.equal(err.details.field, 'name');
    assert.equal(err.details.reason, 'format');
    assert.equal(h.store.listVms().length, 0, 'nothing was created');
    refusedAs(await openVnc(h.base, A, old), 401, 'VIEWER_TOKEN_INVALID', 'no VM at all');

    // A row named like A's id (one that predates the rule), and a new VM with a new id: neither opens with it.
    h.store.insertVm({
      id: 'vm-99999999', name: A, state: 'ready', imageId: 'img', profile: 'desktop', vmm: 'qemu', vcpus: 1, memMiB: 512,
      ttlS: null, expiresAt: null, runDir: '/nonexistent', spec: null, net: null,
    });
    h.addVm('vm-11111111');
    refusedAs(await openVnc(h.base, A, old), 401, 'VIEWER_TOKEN_INVALID', 'a VM named like the old id');
    const page = await fetch(`${h.base}/view/${A}?token=${old}`);
    assert.equal(page.status, 401, 'the viewer page refuses it too');
    await page.text();
    // Even the same id again: a new VM, a new nonce.
    h.store.deleteVm('vm-99999999');
    h.addVm(A);
    const again = await openVnc(h.base, A, old);
    refusedAs(again, 401, 'VIEWER_TOKEN_INVALID', 'a new VM under the same id');
    if (!('ws' in again)) assert.equal(again.body.error.details.reason, 'invalid');
    assert.equal(h.dials(), 0, 'nothing was dialled');
    assert.equal(accepted(), 0, 'the RFB server saw no connection');

    // A token minted for the new VM works.
    const fresh = (await h.viewer(A)).json.token;
    const { ws, reader } = mustOpen(await openVnc(h.base, A, fresh));
    assert.equal((await reader.read(12)).toString('latin1'), RFB_BANNER);
    ws.close();
    await until(() => h.bridge.viewers(A) === 0);
  });
});

test('revoke: every outstanding token is refused at once, live viewers are closed; a token minted after works', async () => {
  await withHarness(async (h) => {
    h.addVm('vm-a');
    h.addVm('vm-b');
    const t1 = (await h.viewer('vm-a')).json.token;
    const t2 = (await h.viewer('vm-a')).json.token;
    const tb = (await h.viewer('vm-b')).json.token;
    const { ws: live, reader } = mustOpen(await openVnc(h.base, 'vm-a', t1));
    await reader.read(12);
    const ended = closed(live);

    assert.equal((await fetch(`${h.base}/v1/vms/vm-a/viewer/revoke`, { method: 'POST' })).status, 401, 'bearer auth');
    const res = await post(h, '/v1/vms/vm-a/viewer/revoke');
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { id: 'vm-a', revoked: true });
    assert.equal((await ended).code, CLOSE.VM_GONE, 'the open viewer is closed');

    const dials = h.dials();
    for (const t of [t1, t2]) refusedAs(await openVnc(h.base, 'vm-a', t), 401, 'VIEWER_TOKEN_INVALID', 'revoked token');
    const st = await fetch(`${h.base}/v1/vms/vm-a/viewer-status?token=${t2}`);
    assert.equal(st.status, 401);
    await st.text();
    assert.equal((await fetch(`${h.base}/view/vm-a?token=${t2}`)).status, 401);
    assert.equal(h.dials(), dials, 'a revoked token dials nothing');

    // Other VMs are untouched; a new token for vm-a works.
    const { ws: other } = mustOpen(await openVnc(h.base, 'vm-b', tb));
    other.close();
    const t3 = (await h.viewer('vm-a')).json.token;
    const { ws, reader: r3 } = mustOpen(await openVnc(h.base, 'vm-a', t3));
    assert.equal((await r3.read(12)).toString('latin1'), RFB_BANNER);
    ws.close();
    await until(() => h.bridge.viewers('vm-a') === 0 && h.bridge.viewers('vm-b') === 0);

    // By name too (bearer routes resolve names); an unknown VM has a stable code.
    h.store.insertVm({
      id: 'vm-c', name: 'desk', state: 'ready', imageId: 'img', profile: 'desktop', vmm: 'qemu', vcpus: 1, memMiB: 512,
      ttlS: null, expiresAt: null, runDir: '/nonexistent', spec: null, net: null,
    });
    const byName = await post(h, '/v1/vms/desk/viewer/revoke');
    assert.deepEqual(await byName.json(), { id: 'vm-c', revoked: true });
    const unknown = await post(h, '/v1/vms/vm-nope/viewer/revoke');
    assert.equal(unknown.status, 404);
    assert.equal(((await unknown.json()) as { error: { code: string } }).error.code, 'VM_NOT_FOUND');
    assert.ok((await metricValue(h.metrics.errors, { code: 'VIEWER_TOKEN_INVALID' })) >= 2);
  });
});
