import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { FirecrackerDriver } from '../../../src/vmm/firecracker/driver.js';
import { probeVerdict } from '../../../src/vmm/firecracker/probe.js';
import type { HostFacts } from '../../../src/vmm/firecracker/probe.js';
import { writeFakeFirecrackerBin } from '../../support/fake-firecracker.js';

const dir = mkdtempSync(join(tmpdir(), 'hangar-fc-probe-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const good: HostFacts = {
  binary: '/usr/local/bin/firecracker', binarySource: 'PATH', versionOutput: 'Firecracker v1.13.1\n\n', kvmUsable: true, pvmHost: false,
};

test('verdicts: available only with a binary of a verified version and usable, non-PVM KVM', () => {
  const ok = probeVerdict(good);
  assert.equal(ok.available, true);
  assert.equal(ok.version, '1.13.1');
  assert.equal(ok.accel, 'kvm');
  assert.match(ok.reason, /API 1\.13\.1/);
  const cases: [Partial<HostFacts>, RegExp][] = [
    [{ binary: null, binarySource: 'FIRECRACKER_BIN not set and no firecracker on PATH' }, /no Firecracker binary: FIRECRACKER_BIN not set/],
    [{ versionOutput: null, versionError: 'exit 1: boom' }, /--version failed: exit 1: boom/],
    [{ versionOutput: 'hello' }, /cannot read a version/],
    [{ versionOutput: 'Firecracker v1.4.1' }, /older than 1\.9\.1/],
    [{ kvmUsable: false, kvmError: 'ENOENT' }, /needs KVM and \/dev\/kvm is not usable \(ENOENT\)/],
    [{ pvmHost: true }, /kvm_pvm/],
    [{ jailer: { binary: null, source: 'JAILER_BIN not set and no jailer on PATH' } }, /no jailer binary/],
  ];
  for (const [change, reason] of cases) {
    const v = probeVerdict({ ...good, ...change });
    assert.equal(v.available, false, JSON.stringify(change));
    assert.match(v.reason, reason);
  }
});

test('probe never throws, even when gathering facts fails', async () => {
  const d = new FirecrackerDriver({ facts: () => Promise.reject(new Error('EIO')) });
  const p = await d.probe();
  assert.equal(p.available, false);
  assert.match(p.reason, /probe failed: EIO/);
});

test('probe on this host: finds FIRECRACKER_BIN (a FAKE Firecracker) and reads its version', async () => {
  const bin = writeFakeFirecrackerBin(dir);
  const p = await new FirecrackerDriver({ env: { ...process.env, FIRECRACKER_BIN: bin, FAKE_FIRECRACKER_VERSION: '1.9.1' } }).probe();
  assert.equal(p.binary, bin);
  assert.equal(p.version, '1.9.1');
  if (existsSync('/sys/module/kvm_pvm')) {
    assert.equal(p.available, false);
    assert.match(p.reason, /kvm_pvm/);
  }
  const missing = await new FirecrackerDriver({ env: { PATH: dir + '-none' } }).probe();
  assert.equal(missing.available, false);
  assert.match(missing.reason, /FIRECRACKER_BIN not set and no firecracker on PATH/);
  writeFileSync(join(dir, 'not-exec'), '');
  const notExec = await new FirecrackerDriver({ env: { FIRECRACKER_BIN: join(dir, 'not-exec') } }).probe();
  assert.match(notExec.reason, /is not an executable file/);
});
