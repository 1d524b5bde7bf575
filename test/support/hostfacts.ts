// The host kinds a test may run on, and what the product must say on each: the tests' OWN table from host facts
// (does /dev/kvm exist, does it open, is kvm_pvm loaded, does KVM really run a VM) to the expected accelerator and a
// reason keyword. It never calls the product's decision: unit tests feed its rows to decideAccel as fixtures, and
// probe tests observe this host with their own readers (observeHost) and look the expectation up here, so they pass
// on every kind of host and still fail if the product's choice or reason goes wrong.
import { spawnSync } from 'node:child_process';
import { closeSync, constants, existsSync, openSync } from 'node:fs';

/** The facts a row is about; 'any' matches both values. kvmRuns null: not checked, or the check could not tell. */
export interface HostFactsRow {
  devKvm: boolean;
  opens: boolean;
  kvmPvm: boolean | 'any';
  kvmRuns: boolean | null | 'any';
}

export interface HostExpectation {
  /** The host kind, as a person would name it. */
  kind: string;
  facts: HostFactsRow;
  qemu: { accel: 'kvm' | 'tcg'; reason: RegExp; notReason?: RegExp };
  firecracker: { available: boolean; reason: RegExp };
}

const NOT_PVM = /PVM host|triple-fault/;

/** First match wins: the order is the order in which a fact rules KVM out. */
export const HOST_TABLE: readonly HostExpectation[] = [
  {
    kind: 'no /dev/kvm', facts: { devKvm: false, opens: false, kvmPvm: false, kvmRuns: null },
    qemu: { accel: 'tcg', reason: /TCG \(software emulation\): \/dev\/kvm does not exist/, notReason: NOT_PVM },
    firecracker: { available: false, reason: /needs KVM: \/dev\/kvm does not exist/ },
  },
  {
    kind: 'kvm_pvm loaded without /dev/kvm', facts: { devKvm: false, opens: false, kvmPvm: true, kvmRuns: null },
    qemu: { accel: 'tcg', reason: /TCG \(software emulation\): \/dev\/kvm does not exist/, notReason: NOT_PVM },
    firecracker: { available: false, reason: /needs KVM: \/dev\/kvm does not exist/ },
  },
  {
    kind: '/dev/kvm present but not openable', facts: { devKvm: true, opens: false, kvmPvm: 'any', kvmRuns: null },
    qemu: { accel: 'tcg', reason: /TCG \(software emulation\): \/dev\/kvm exists but cannot be opened/, notReason: NOT_PVM },
    firecracker: { available: false, reason: /needs KVM: \/dev\/kvm exists but cannot be opened/ },
  },
  {
    kind: '/dev/kvm opens but KVM does not work', facts: { devKvm: true, opens: true, kvmPvm: 'any', kvmRuns: false },
    qemu: { accel: 'tcg', reason: /TCG \(software emulation\): \/dev\/kvm opens but KVM does not work/ },
    firecracker: { available: false, reason: /needs KVM: \/dev\/kvm opens but KVM does not work/ },
  },
  {
    kind: 'PVM host (/dev/kvm + kvm_pvm)', facts: { devKvm: true, opens: true, kvmPvm: true, kvmRuns: 'any' },
    qemu: { accel: 'tcg', reason: /TCG \(software emulation\): this is a PVM host .*triple-fault/ },
    firecracker: { available: false, reason: /PVM .*kvm_pvm.*no TCG fallback/ },
  },
  {
    kind: 'usable KVM', facts: { devKvm: true, opens: true, kvmPvm: false, kvmRuns: 'any' },
    qemu: { accel: 'kvm', reason: /KVM: \/dev\/kvm is usable and this is not a PVM host/ },
    firecracker: { available: true, reason: /\/dev\/kvm is usable and this is not a PVM host/ },
  },
];

export interface ObservedHost {
  devKvm: boolean;
  opens: boolean;
  openError: string | null;
  kvmPvm: boolean;
  kvmRuns: boolean | null;
}

const matches = <T>(want: T | 'any', got: T): boolean => want === 'any' || want === got;

/** The table's row for these facts (every combination has one: the rows above cover them all). */
export function expectationFor(h: Omit<ObservedHost, 'openError'>): HostExpectation {
  const row = HOST_TABLE.find((r) => r.facts.devKvm === h.devKvm && r.facts.opens === h.opens
    && matches(r.facts.kvmPvm, h.kvmPvm) && matches(r.facts.kvmRuns, h.kvmRuns));
  if (!row) throw new Error(`no expectation for host facts ${JSON.stringify(h)}: add a row to HOST_TABLE`);
  return row;
}

/** Every concrete combination of facts a row stands for (its wildcards expanded), for fixture-driven tests. */
export function concreteFacts(r: HostExpectation): Omit<ObservedHost, 'openError'>[] {
  const pvms = r.facts.kvmPvm === 'any' ? [false, true] : [r.facts.kvmPvm];
  const runs = r.facts.kvmRuns === 'any' ? [true, null] : [r.facts.kvmRuns];
  return pvms.flatMap((kvmPvm) => runs.map((kvmRuns) => ({ devKvm: r.facts.devKvm, opens: r.facts.opens, kvmPvm, kvmRuns })));
}

/**
 * Reads this host with the test's own means (synchronous fs calls; QEMU run by hand with -accel kvm only when the
 * device opens and qemu is given).
 */
export function observeHost(opts: { qemu?: string | null; devKvm?: string; pvmModule?: string } = {}): ObservedHost {
  const dev = opts.devKvm ?? '/dev/kvm';
  const h: ObservedHost = { devKvm: existsSync(dev), opens: false, openError: null, kvmPvm: existsSync(opts.pvmModule ?? '/sys/module/kvm_pvm'), kvmRuns: null };
  if (h.devKvm) {
    try {
      closeSync(openSync(dev, constants.O_RDWR));
      h.opens = true;
    } catch (e) {
      h.openError = (e as NodeJS.ErrnoException).code ?? String(e);
    }
  }
  if (h.opens && opts.qemu) {
    const r = spawnSync(opts.qemu, ['-machine', 'none', '-accel', 'kvm', '-display', 'none', '-nodefaults', '-S', '-qmp', 'stdio'], {
      input: '{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n', timeout: 20_000, encoding: 'utf8',
    });
    h.kvmRuns = r.status === 0 ? true : r.status !== null && /kvm/i.test(r.stderr) ? false : null;
  }
  return h;
}

export function describeHost(h: ObservedHost): string {
  const row = expectationFor(h);
  return `${row.kind}: /dev/kvm ${h.devKvm ? (h.opens ? 'opens' : `exists, open fails (${h.openError})`) : 'absent'}, `
    + `kvm_pvm ${h.kvmPvm ? 'loaded' : 'absent'}, KVM run check ${h.kvmRuns === null ? 'not asked or inconclusive' : h.kvmRuns ? 'ran' : 'failed'}`;
}

/** process.env without HANGAR_ACCEL: a probe test is about the host's facts, not the caller's override. */
export function envWithoutAccelOverride(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const { HANGAR_ACCEL: _omit, ...rest } = env;
  return rest;
}
