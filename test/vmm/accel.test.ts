import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isHangarError } from '../../src/errors.js';
import { chooseAccel, decideAccel } from '../../src/vmm/accel.js';

test('a usable /dev/kvm on an ordinary host means KVM', () => {
  const c = decideAccel({ kvmDevice: 'ok', pvmHost: false });
  assert.equal(c.accel, 'kvm');
  assert.equal(c.warning, undefined);
});

test('a PVM host means TCG, and says why with the evidence', () => {
  const c = decideAccel({ kvmDevice: 'ok', pvmHost: true });
  assert.equal(c.accel, 'tcg');
  assert.match(c.reason, /PVM host .*triple-fault/);
  assert.ok(c.evidence.some((e) => e.includes('/sys/module/kvm_pvm exists')));
});

test('no or unusable /dev/kvm means TCG', () => {
  assert.match(decideAccel({ kvmDevice: 'absent', pvmHost: false }).reason, /does not exist/);
  const u = decideAccel({ kvmDevice: 'unusable', kvmError: 'EACCES', pvmHost: false });
  assert.equal(u.accel, 'tcg');
  assert.match(u.reason, /EACCES/);
});

test('HANGAR_ACCEL overrides: tcg always; kvm on PVM with a warning; kvm without a device refused; junk refused', () => {
  assert.equal(decideAccel({ kvmDevice: 'ok', pvmHost: false, override: 'tcg' }).accel, 'tcg');
  const forced = decideAccel({ kvmDevice: 'ok', pvmHost: true, override: 'kvm' });
  assert.equal(forced.accel, 'kvm');
  assert.match(forced.warning ?? '', /PVM/);
  assert.equal(forced.reason, forced.warning);
  assert.throws(() => decideAccel({ kvmDevice: 'absent', pvmHost: false, override: 'kvm' }), (e: unknown) => isHangarError(e, 'ACCEL_UNAVAILABLE'));
  assert.throws(() => decideAccel({ kvmDevice: 'ok', pvmHost: false, override: 'hvf' }), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT'));
  assert.equal(decideAccel({ kvmDevice: 'ok', pvmHost: false, override: '' }).accel, 'kvm');
});

test('the prober reads the device and the module directory it is pointed at', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hangar-accel-'));
  try {
    const dev = join(dir, 'kvm');
    await writeFile(dev, '');
    const pvm = join(dir, 'kvm_pvm');
    assert.equal((await chooseAccel({ devKvm: dev, pvmModule: pvm, env: {} })).accel, 'kvm');
    await mkdir(pvm);
    assert.equal((await chooseAccel({ devKvm: dev, pvmModule: pvm, env: {} })).accel, 'tcg');
    assert.equal((await chooseAccel({ devKvm: join(dir, 'none'), pvmModule: join(dir, 'none'), env: {} })).accel, 'tcg');
    assert.equal((await chooseAccel({ devKvm: dev, pvmModule: join(dir, 'none'), env: { HANGAR_ACCEL: 'tcg' } })).accel, 'tcg');
    assert.equal((await chooseAccel({ devKvm: dev, pvmModule: join(dir, 'none'), env: { HANGAR_ACCEL: 'tcg' }, override: 'kvm' })).accel, 'kvm');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
