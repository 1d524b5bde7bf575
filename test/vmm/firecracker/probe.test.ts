// Firecracker's probe: the verdict over every host kind (fixtures, held to the tests' own table in
// test/support/hostfacts.ts), the gatherer over fixture paths, and the probe on this host — whatever kind it is —
// with a FAKE Firecracker, checked against the table row for what this test observes of the host itself.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { which } from '../../../src/util/exec.js';
import type { AccelFacts } from '../../../src/vmm/accel.js';
import { FirecrackerDriver } from '../../../src/vmm/firecracker/driver.js';
import { gatherFacts, probeVerdict } from '../../../src/vmm/firecracker/probe.js';
import type { HostFacts } from '../../../src/vmm/firecracker/probe.js';
import { writeFakeFirecrackerBin } from '../../support/fake-firecracker.js';
import { concreteFacts, describeHost, expectationFor, HOST_TABLE, observeHost } from '../../support/hostfacts.js';

const dir = mkdtempSync(join(tmpdir(), 'hangar-fc-probe-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const usableKvm: AccelFacts = { kvmDevice: 'ok', pvmHost: false };
const good: HostFacts = {
  binary: '/usr/local/bin/firecracker', binarySource: 'PATH', versionOutput: 'Firecracker v1.13.1\n\n', kvm: usableKvm,
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
    [{ kvm: { kvmDevice: 'absent', pvmHost: false } }, /needs KVM: \/dev\/kvm does not exist/],
    [{ kvm: { kvmDevice: 'unusable', kvmError: 'EACCES', pvmHost: false } }, /needs KVM: \/dev\/kvm exists but cannot be opened read-write \(EACCES\)/],
    [{ kvm: { kvmDevice: 'ok', pvmHost: true } }, /kvm_pvm/],
    [{ jailer: { binary: null, source: 'JAILER_BIN not set and no jailer on PATH' } }, /no jailer binary/],
  ];
  for (const [change, reason] of cases) {
    const v = probeVerdict({ ...good, ...change });
    assert.equal(v.available, false, JSON.stringify(change));
    assert.match(v.reason, reason);
  }
});

for (const row of HOST_TABLE) {
  test(`verdict on a host with ${row.kind}: ${row.firecracker.available ? 'available' : 'unavailable'}, with the reason`, () => {
    for (const h of concreteFacts(row)) {
      const kvm: AccelFacts = { kvmDevice: !h.devKvm ? 'absent' : h.opens ? 'ok' : 'unusable', pvmHost: h.kvmPvm };
      if (h.devKvm && !h.opens) kvm.kvmError = 'EACCES';
      if (h.kvmRuns !== null) kvm.kvmWorks = h.kvmRuns;
      const v = probeVerdict({ ...good, kvm });
      assert.equal(v.available, row.firecracker.available, JSON.stringify(h));
      assert.match(v.reason, row.firecracker.reason, JSON.stringify(h));
      if (row.firecracker.available) assert.equal(v.accel, 'kvm');
    }
  });
}

test('gatherFacts reads /dev/kvm and kvm_pvm where pointed, asks the KVM check only where the device opens, ignores HANGAR_ACCEL', async () => {
  const dev = join(dir, 'kvm');
  writeFileSync(dev, '');
  const pvm = join(dir, 'kvm_pvm');
  mkdirSync(pvm);
  const env = { PATH: '/nonexistent', HANGAR_ACCEL: 'tcg' };
  let asked = 0;
  const kvmCheck = async (): Promise<{ works: boolean; detail: string }> => { asked++; return { works: false, detail: 'QEMU -accel kvm: nope' }; };
  const f = await gatherFacts({ binary: '/nonexistent/firecracker', env, kvmCheck, devKvm: dev, pvmModule: pvm });
  assert.deepEqual(f.kvm, { kvmDevice: 'ok', pvmHost: true, kvmWorks: false, kvmCheckDetail: 'QEMU -accel kvm: nope' });
  assert.equal(asked, 1);
  const absent = await gatherFacts({ binary: '/nonexistent/firecracker', env, kvmCheck, devKvm: join(dir, 'none'), pvmModule: pvm });
  assert.deepEqual(absent.kvm, { kvmDevice: 'absent', pvmHost: true });
  assert.equal(asked, 1);
  assert.match(probeVerdict({ ...good, kvm: absent.kvm }).reason, /needs KVM: \/dev\/kvm does not exist/);
});

test('probe never throws, even when gathering facts fails', async () => {
  const d = new FirecrackerDriver({ facts: () => Promise.reject(new Error('EIO')) });
  const p = await d.probe();
  assert.equal(p.available, false);
  assert.match(p.reason, /probe failed: EIO/);
});

test('probe on this host: finds FIRECRACKER_BIN (a FAKE Firecracker), reads its version, and judges KVM as the table says', async (t) => {
  const host = observeHost({ qemu: await which('qemu-system-x86_64') });
  const want = expectationFor(host).firecracker;
  t.diagnostic(`this host: ${describeHost(host)}`);
  const bin = writeFakeFirecrackerBin(dir);
  const p = await new FirecrackerDriver({ env: { ...process.env, FIRECRACKER_BIN: bin, FAKE_FIRECRACKER_VERSION: '1.9.1' } }).probe();
  assert.equal(p.binary, bin);
  assert.equal(p.version, '1.9.1');
  assert.equal(p.available, want.available, p.reason);
  assert.match(p.reason, want.reason);
  const missing = await new FirecrackerDriver({ env: { PATH: dir + '-none' } }).probe();
  assert.equal(missing.available, false);
  assert.match(missing.reason, /FIRECRACKER_BIN not set and no firecracker on PATH/);
  writeFileSync(join(dir, 'not-exec'), '');
  const notExec = await new FirecrackerDriver({ env: { FIRECRACKER_BIN: join(dir, 'not-exec') } }).probe();
  assert.match(notExec.reason, /is not an executable file/);
});
