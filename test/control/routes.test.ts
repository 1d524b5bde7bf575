// POST /v1/vms/:id/computer: who may do what. The bearer may do everything; a viewer token only for its own VM,
// a view-only one only look (screenshot, cursor, size, clipboard), a CDP token nothing here; a VM that is not ready
// is refused. Every refusal comes before the VM is dialled (the dial counter stays at zero).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { HangarError } from '../../src/errors.js';
import { ComputerService } from '../../src/control/computer.js';
import { controlRoutes, type ControlDeps } from '../../src/control/routes.js';
import { newViewerSecret, signViewerToken, type TokenScope } from '../../src/desktop/token.js';
import { auth, createApiHarness, type ApiHarness } from '../support/api.js';

describe('computer route: credentials and scopes', () => {
  let h: ApiHarness;
  let dials = 0;
  const secret = newViewerSecret();
  before(async () => {
    const computer = new ComputerService({ dial: async () => { dials++; throw new HangarError('VM_UNREACHABLE', 'fake: no desktop'); } });
    const deps: ControlDeps = {
      lookup: (id) => {
        const vm = h.store.getVm(id);
        const nonce = h.store.viewerNonce(id);
        return vm && nonce ? { state: vm.state, profile: vm.profile, viewerNonce: nonce } : null;
      },
      secret, computer, agents: null,
    };
    h = await createApiHarness({ extraRoutes: (c) => controlRoutes(c, deps) });
    h.insertVm('vm-aaaaaaaa', 'ready');
    h.insertVm('vm-bbbbbbbb', 'ready');
    h.insertVm('vm-cccccccc', 'stopped');
  });
  after(async () => { await h.close(); });

  const token = (id: string, scope: TokenScope): string => signViewerToken(secret, id, h.store.viewerNonce(id)!, Date.now() + 60_000, undefined, scope);
  const post = async (id: string, body: object, opts: { token?: string; bearer?: boolean } = {}): Promise<{ status: number; code: string | undefined }> => {
    const res = await h.app.inject({ method: 'POST', url: `/v1/vms/${id}/computer${opts.token ? `?token=${opts.token}` : ''}`, headers: opts.bearer ? auth : {}, payload: body });
    return { status: res.statusCode, code: (res.json() as { error?: { code: string } }).error?.code };
  };
  const click = { action: 'left_click', coordinate: [1, 1] };

  test('no credentials: UNAUTHORIZED, nothing dialled', async () => {
    assert.deepEqual(await post('vm-aaaaaaaa', click), { status: 401, code: 'UNAUTHORIZED' });
    assert.equal(dials, 0);
  });

  test("another VM's token: VIEWER_TOKEN_INVALID, nothing dialled", async () => {
    assert.deepEqual(await post('vm-aaaaaaaa', { action: 'screenshot' }, { token: token('vm-bbbbbbbb', 'control') }), { status: 401, code: 'VIEWER_TOKEN_INVALID' });
    assert.equal(dials, 0);
  });

  test('a view-only token sending input: TOKEN_SCOPE, nothing dialled', async () => {
    for (const body of [click, { action: 'type', text: 'x' }, { action: 'key', text: 'Return' }, { action: 'set_clipboard', text: 'x' }, { action: 'scroll', scroll_direction: 'up' }]) {
      assert.deepEqual(await post('vm-aaaaaaaa', body, { token: token('vm-aaaaaaaa', 'view') }), { status: 403, code: 'TOKEN_SCOPE' }, JSON.stringify(body));
    }
    assert.equal(dials, 0);
  });

  test('a CDP token on the desktop: TOKEN_SCOPE, nothing dialled', async () => {
    assert.deepEqual(await post('vm-aaaaaaaa', { action: 'screenshot' }, { token: token('vm-aaaaaaaa', 'cdp') }), { status: 403, code: 'TOKEN_SCOPE' });
    assert.equal(dials, 0);
  });

  test('a VM that is not ready, an unknown VM, a bad action: refused, nothing dialled', async () => {
    assert.deepEqual(await post('vm-cccccccc', click, { bearer: true }), { status: 409, code: 'VM_INVALID_STATE' });
    assert.deepEqual(await post('vm-dddddddd', click, { bearer: true }), { status: 404, code: 'VM_NOT_FOUND' });
    assert.equal((await post('vm-aaaaaaaa', { action: 'fly' }, { bearer: true })).status, 400);
    assert.deepEqual(await post('vm-aaaaaaaa', { action: 'left_click', coordinate: [1] }, { bearer: true }), { status: 400, code: 'INVALID_ARGUMENT' });
    assert.equal(dials, 0);
  });

  test('allowed requests reach the dial: a view-only screenshot, a control token click, the bearer by name', async () => {
    assert.deepEqual(await post('vm-aaaaaaaa', { action: 'screenshot' }, { token: token('vm-aaaaaaaa', 'view') }), { status: 502, code: 'VM_UNREACHABLE' });
    assert.equal(dials, 1);
    assert.deepEqual(await post('vm-aaaaaaaa', click, { token: token('vm-aaaaaaaa', 'control') }), { status: 502, code: 'VM_UNREACHABLE' });
    assert.deepEqual(await post('vm-bbbbbbbb', click, { bearer: true }), { status: 502, code: 'VM_UNREACHABLE' });
    assert.equal(dials, 3);
  });
});
