// The VM service with volumes: a create's volumes are checked before the VM exists, recorded right after it, and
// mounted before `ready` answers; a volume lost in between destroys the new VM; idle settings are recorded; a destroy
// releases the VM's volumes in the guest first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { VmRecord } from '../../src/domain/vm.js';
import { HangarError, isHangarError } from '../../src/errors.js';
import { normalizeCreate } from '../../src/vm/input.js';
import type { VmService } from '../../src/vm/service.js';
import { SessionVms } from '../../src/volume/vms.js';

function fakes(opts: { precheck?: HangarError; reserve?: HangarError } = {}) {
  const calls: string[] = [];
  const inner = {
    create: async () => { calls.push('create'); const vm = { id: 'vm-1' } as VmRecord; return { vm, ready: Promise.resolve(vm) }; },
    destroy: async (id: string) => { calls.push(`destroy ${id}`); },
  } as unknown as VmService;
  const vms = new SessionVms({
    inner,
    volumes: {
      precheck: () => { calls.push('precheck'); if (opts.precheck) throw opts.precheck; },
      reserve: () => { calls.push('reserve'); if (opts.reserve) throw opts.reserve; return []; },
      ensure: async (id) => { calls.push(`ensure ${id}`); },
      release: async (id) => { calls.push(`release ${id}`); },
    },
    setIdle: (id, idle) => { calls.push(`idle ${id} ${JSON.stringify(idle)}`); },
  });
  return { vms, calls };
}

test('create with volumes: precheck, create, reserve; ready waits for the mount; idle settings recorded', async () => {
  const { vms, calls } = fakes();
  const { ready } = await vms.create(normalizeCreate({ volumes: [{ name: 'data', path: '/data' }], idleTimeoutS: 30 }));
  await ready;
  assert.deepEqual(calls, ['precheck', 'create', 'reserve', 'idle vm-1 {"timeoutS":30,"action":null}', 'ensure vm-1']);
});

test('a volume in use is refused before any VM exists; one lost after the create destroys the new VM', async () => {
  const inUse = new HangarError('VOLUME_IN_USE', 'taken');
  const a = fakes({ precheck: inUse });
  await assert.rejects(a.vms.create(normalizeCreate({ volumes: [{ name: 'data', path: '/data' }] })), (e: unknown) => isHangarError(e, 'VOLUME_IN_USE'));
  assert.deepEqual(a.calls, ['precheck']);
  const b = fakes({ reserve: inUse });
  await assert.rejects(b.vms.create(normalizeCreate({ volumes: [{ name: 'data', path: '/data' }] })), (e: unknown) => isHangarError(e, 'VOLUME_IN_USE'));
  assert.deepEqual(b.calls, ['precheck', 'create', 'reserve', 'destroy vm-1']);
});

test('ensures of one VM run one at a time', async () => {
  const { vms, calls } = fakes();
  await Promise.all([vms.ensure('vm-1'), vms.ensure('vm-1')]);
  assert.deepEqual(calls, ['ensure vm-1', 'ensure vm-1']);
});

test("destroy unmounts the VM's volumes in the guest before the VM goes", async () => {
  const { vms, calls } = fakes();
  await vms.destroy('vm-1');
  assert.deepEqual(calls, ['release vm-1', 'destroy vm-1']);
});
