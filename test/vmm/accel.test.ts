// The accelerator choice over every kind of host, as fixtures: the tests' own table (test/support/hostfacts.ts)
// says what each kind must give; decideAccel, the fact gatherer and the "does KVM really work" check are held to it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isHangarError } from '../../src/errors.js';
import {
  chooseAccel, decideAccel, interpretKvmCheck, judgeKvm, KVM_CHECK_ARGS, qemuKvmCheck, type AccelFacts, type KvmCheck,
} from '../../src/vmm/accel.js';
import { which } from '../../src/util/exec.js';
import { concreteFacts, describeHost, expectationFor, HOST_TABLE, observeHost, type ObservedHost } from '../support/hostfacts.js';

const QEMU = await which('qemu-system-x86_64');

/** A row's facts as the product's AccelFacts. */
function fixture(h: Omit<ObservedHost, 'openError'>): AccelFacts {
  const f: AccelFacts = { kvmDevice: !h.devKvm ? 'absent' : h.opens ? 'ok' : 'unusable', pvmHost: h.kvmPvm };
  if (h.devKvm && !h.opens) f.kvmError = 'EACCES';
  if (h.kvmRuns !== null) {
    f.kvmWorks = h.kvmRuns;
    f.kvmCheckDetail = h.kvmRuns ? 'QEMU created a VM with -accel kvm' : 'QEMU -accel kvm: failed to initialize kvm: Operation not supported';
  }
  return f;
}

test('the table covers the host kinds: none, unopenable, PVM, usable KVM, kvm_pvm without the device (and broken KVM)', () => {
  const kinds = HOST_TABLE.map((r) => r.kind);
  for (const k of ['no /dev/kvm', '/dev/kvm present but not openable', 'PVM host (/dev/kvm + kvm_pvm)', 'usable KVM', 'kvm_pvm loaded without /dev/kvm', '/dev/kvm opens but KVM does not work']) {
    assert.ok(kinds.includes(k), k);
  }
});

for (const row of HOST_TABLE) {
  test(`decideAccel on a host with ${row.kind}: ${row.qemu.accel}, and the reason says why`, () => {
    for (const facts of concreteFacts(row)) {
      const c = decideAccel(fixture(facts));
      const what = JSON.stringify(facts);
      assert.equal(c.accel, row.qemu.accel, what);
      assert.match(c.reason, row.qemu.reason, what);
      if (row.qemu.notReason) assert.doesNotMatch(c.reason, row.qemu.notReason, what);
      assert.equal(c.warning, undefined, what);
      assert.equal(judgeKvm(fixture(facts)).usable, row.qemu.accel === 'kvm', what);
    }
  });
}

test('kvm_pvm loaded without /dev/kvm: the device is the reason; the evidence says the module is not in effect', () => {
  const c = decideAccel({ kvmDevice: 'absent', pvmHost: true });
  assert.equal(c.accel, 'tcg');
  assert.match(c.reason, /^TCG \(software emulation\): \/dev\/kvm does not exist/);
  assert.deepEqual(c.evidence, ['/dev/kvm does not exist', '/sys/module/kvm_pvm exists (kvm_pvm loaded, but /dev/kvm is not usable, so it is not in effect)']);
  const pvm = decideAccel({ kvmDevice: 'ok', pvmHost: true });
  assert.ok(pvm.evidence.includes('/sys/module/kvm_pvm exists (PVM host)'));
});

test('evidence names the KVM check when it ran, and an unopenable device its errno', () => {
  assert.ok(decideAccel({ kvmDevice: 'ok', pvmHost: false, kvmWorks: true, kvmCheckDetail: 'QEMU created a VM with -accel kvm' }).evidence
    .includes('KVM works: QEMU created a VM with -accel kvm'));
  assert.ok(decideAccel({ kvmDevice: 'ok', pvmHost: false, kvmCheckDetail: 'QEMU did not quit within 10 ms' }).evidence
    .includes('KVM check inconclusive: QEMU did not quit within 10 ms'));
  assert.match(decideAccel({ kvmDevice: 'unusable', kvmError: 'EACCES', pvmHost: false }).reason, /cannot be opened read-write \(EACCES\)/);
  assert.match(decideAccel({ kvmDevice: 'ok', pvmHost: false, kvmWorks: false, kvmCheckDetail: 'QEMU -accel kvm: boom' }).reason, /KVM does not work \(QEMU -accel kvm: boom\)/);
});

test('HANGAR_ACCEL overrides: tcg always; kvm on PVM with a warning; kvm where KVM cannot work refused; junk refused', () => {
  assert.equal(decideAccel({ kvmDevice: 'ok', pvmHost: false, override: 'tcg' }).accel, 'tcg');
  const forced = decideAccel({ kvmDevice: 'ok', pvmHost: true, override: 'kvm' });
  assert.equal(forced.accel, 'kvm');
  assert.match(forced.warning ?? '', /PVM/);
  assert.equal(forced.reason, forced.warning);
  const refused = (f: AccelFacts, why: RegExp): void => assert.throws(() => decideAccel({ ...f, override: 'kvm' }),
    (e: unknown) => isHangarError(e, 'ACCEL_UNAVAILABLE') && why.test(e.message));
  refused({ kvmDevice: 'absent', pvmHost: false }, /HANGAR_ACCEL=kvm but \/dev\/kvm does not exist/);
  refused({ kvmDevice: 'absent', pvmHost: true }, /HANGAR_ACCEL=kvm but \/dev\/kvm does not exist/);
  refused({ kvmDevice: 'unusable', kvmError: 'EACCES', pvmHost: false }, /cannot be opened/);
  refused({ kvmDevice: 'ok', pvmHost: false, kvmWorks: false }, /KVM does not work/);
  assert.throws(() => decideAccel({ kvmDevice: 'ok', pvmHost: false, override: 'hvf' }), (e: unknown) => isHangarError(e, 'INVALID_ARGUMENT'));
  assert.equal(decideAccel({ kvmDevice: 'ok', pvmHost: false, override: '' }).accel, 'kvm');
});

test('the gatherer reads each host kind from fixtures (device, module, KVM check) and the choice follows the table', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-accel-'));
  try {
    let n = 0;
    for (const row of HOST_TABLE) {
      for (const facts of concreteFacts(row)) {
        const d = join(dir, String(++n));
        mkdirSync(d);
        const devKvm = join(d, 'kvm');
        // Root opens any file whatever its mode; a directory fails O_RDWR (EISDIR) for everyone.
        if (facts.devKvm) { if (facts.opens) writeFileSync(devKvm, ''); else mkdirSync(devKvm); }
        const pvmModule = join(d, 'kvm_pvm');
        if (facts.kvmPvm) mkdirSync(pvmModule);
        let asked = 0;
        const kvmCheck = async (): Promise<KvmCheck> => {
          asked++;
          return { works: facts.kvmRuns, detail: facts.kvmRuns === false ? 'QEMU -accel kvm: failed to initialize kvm: Operation not supported' : 'fake check' };
        };
        const c = await chooseAccel({ devKvm, pvmModule, env: {}, kvmCheck });
        const what = `${row.kind} ${JSON.stringify(facts)}`;
        assert.equal(c.accel, row.qemu.accel, what);
        assert.match(c.reason, row.qemu.reason, what);
        assert.equal(asked, facts.opens ? 1 : 0, `${what}: the KVM check runs only where the device opens`);
      }
    }
    const dev = join(dir, 'plain');
    writeFileSync(dev, '');
    chmodSync(dev, 0o600);
    const none = join(dir, 'none');
    assert.equal((await chooseAccel({ devKvm: dev, pvmModule: none, env: {} })).accel, 'kvm', 'without a check, opening is trusted');
    assert.equal((await chooseAccel({ devKvm: dev, pvmModule: none, env: { HANGAR_ACCEL: 'tcg' } })).accel, 'tcg');
    assert.equal((await chooseAccel({ devKvm: dev, pvmModule: none, env: { HANGAR_ACCEL: 'tcg' }, override: 'kvm' })).accel, 'kvm');
    const thrown = await chooseAccel({ devKvm: dev, pvmModule: none, env: {}, kvmCheck: () => Promise.reject(new Error('EIO')) });
    assert.equal(thrown.accel, 'kvm', 'a check that fails to run says nothing against KVM');
    assert.ok(thrown.evidence.includes('KVM check inconclusive: the check failed: EIO'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('interpretKvmCheck: QEMU quitting is "works", a complaint about KVM is "broken", anything else says nothing', () => {
  assert.deepEqual(interpretKvmCheck({ code: 0, stderr: '' }), { works: true, detail: 'QEMU created a VM with -accel kvm' });
  // QEMU 7.2's own words where /dev/kvm is missing.
  const missing = interpretKvmCheck({ code: 1, stderr: 'Could not access KVM kernel module: No such file or directory\nqemu-system-x86_64: -accel kvm: failed to initialize kvm: No such file or directory\n' });
  assert.deepEqual(missing, { works: false, detail: 'QEMU -accel kvm: failed to initialize kvm: No such file or directory' });
  assert.equal(interpretKvmCheck({ code: 1, stderr: 'ioctl(KVM_CREATE_VM) failed: 22 Invalid argument\n' }).works, false);
  assert.deepEqual(interpretKvmCheck({ code: null, stderr: '', timedOut: true }, 10_000), { works: null, detail: 'QEMU did not quit within 10000 ms' });
  assert.equal(interpretKvmCheck({ code: 1, stderr: 'qemu-system-x86_64: -machine none: unsupported machine type\n' }).works, null);
  assert.equal(interpretKvmCheck({ code: null, signal: 'SIGSEGV', stderr: '' }).detail, 'QEMU -accel kvm ended with SIGSEGV');
});

test('qemuKvmCheck runs QEMU with no machine and -accel kvm, quits it over QMP, and never throws', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-kvmcheck-'));
  try {
    const fake = (name: string, body: string): string => {
      const p = join(dir, name);
      writeFileSync(p, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
      return p;
    };
    // Works only when called with exactly the check's arguments and told to quit on stdin.
    const ok = fake('qemu-ok', `[ "$*" = "${KVM_CHECK_ARGS.join(' ')}" ] || { echo "bad args: $*" >&2; exit 3; }\ngrep -q '"quit"' || exit 4\nexit 0`);
    assert.deepEqual(await qemuKvmCheck(ok), { works: true, detail: 'QEMU created a VM with -accel kvm' });
    const denied = fake('qemu-denied', 'cat >/dev/null\necho "qemu-system-x86_64: -accel kvm: failed to initialize kvm: Permission denied" >&2\nexit 1');
    assert.deepEqual(await qemuKvmCheck(denied), { works: false, detail: 'QEMU -accel kvm: failed to initialize kvm: Permission denied' });
    const hang = fake('qemu-hang', 'exec sleep 30');
    const slow = await qemuKvmCheck(hang, { timeoutMs: 300 });
    assert.equal(slow.works, null);
    const missing = await qemuKvmCheck(join(dir, 'no-such-qemu'));
    assert.equal(missing.works, null);
    assert.match(missing.detail, /cannot run/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the tests\' own observer reads fixture hosts into the table\'s rows', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-observe-'));
  try {
    const pvm = join(dir, 'kvm_pvm');
    mkdirSync(pvm);
    assert.equal(expectationFor(observeHost({ devKvm: join(dir, 'none'), pvmModule: pvm })).kind, 'kvm_pvm loaded without /dev/kvm');
    assert.equal(expectationFor(observeHost({ devKvm: join(dir, 'none'), pvmModule: join(dir, 'none') })).kind, 'no /dev/kvm');
    const unopenable = join(dir, 'kvm-dir');
    mkdirSync(unopenable);
    assert.equal(expectationFor(observeHost({ devKvm: unopenable, pvmModule: pvm })).kind, '/dev/kvm present but not openable');
    const dev = join(dir, 'kvm');
    writeFileSync(dev, '');
    assert.equal(expectationFor(observeHost({ devKvm: dev, pvmModule: pvm })).kind, 'PVM host (/dev/kvm + kvm_pvm)');
    assert.equal(expectationFor(observeHost({ devKvm: dev, pvmModule: join(dir, 'none') })).kind, 'usable KVM');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('qemuKvmCheck with the real QEMU agrees with what this test observes of the host', { skip: QEMU ? false : 'qemu-system-x86_64 is not installed' }, async (t) => {
  const host = observeHost({ qemu: QEMU });
  t.diagnostic(`this host: ${describeHost(host)}`);
  const c = await qemuKvmCheck(QEMU!);
  if (!host.devKvm) {
    assert.equal(c.works, false, c.detail);
    assert.match(c.detail, /failed to initialize kvm/);
  } else if (host.kvmRuns !== null) {
    assert.equal(c.works, host.kvmRuns, c.detail);
  }
});
