// Which accelerator a VMM should use, as a pure function of host facts. KVM only where it really works: /dev/kvm
// must exist, open read-write and (when the check is asked for) really run a VM, and the host must not be a PVM host
// (kvm_pvm loaded behind a usable /dev/kvm: ordinary guest kernels triple-fault under it). Otherwise TCG, which is
// slow but correct. judgeKvm and decideAccel are pure; probeAccelFacts gathers the facts; qemuKvmCheck is the
// optional "does KVM really work" executor (QEMU initialises KVM with no machine), read by interpretKvmCheck.
import { constants } from 'node:fs';
import { access, open } from 'node:fs/promises';
import { HangarError } from '../errors.js';
import { run } from '../util/exec.js';

export type Accel = 'kvm' | 'tcg';

/** What a check that really uses KVM found: works true/false, or null when it could not tell. */
export interface KvmCheck {
  works: boolean | null;
  detail: string;
}

export interface AccelFacts {
  /** 'ok': /dev/kvm opens read-write; 'absent': no such device; 'unusable': exists but cannot be opened. */
  kvmDevice: 'ok' | 'absent' | 'unusable';
  /** Why /dev/kvm could not be opened (errno text), when unusable. */
  kvmError?: string;
  /** /sys/module/kvm_pvm exists (the module is loaded). A PVM host only when /dev/kvm is usable too. */
  pvmHost: boolean;
  /** KVM really ran a VM (true), refused to (false); absent when not checked or the check could not tell. */
  kvmWorks?: boolean;
  /** What the check saw, when it ran. */
  kvmCheckDetail?: string;
  /** HANGAR_ACCEL or an explicit option. */
  override?: string;
}

export interface AccelChoice {
  accel: Accel;
  reason: string;
  evidence: string[];
  /** Set when the choice was forced against the evidence. */
  warning?: string;
}

/** Why KVM cannot run an ordinary guest here: the first fact that rules it out, in this order. */
export type KvmProblem = 'absent' | 'unopenable' | 'broken' | 'pvm';

export interface KvmVerdict {
  usable: boolean;
  problem?: KvmProblem;
  /** One clause, true for this host kind: "/dev/kvm does not exist", "this is a PVM host …". */
  why: string;
}

export const DEV_KVM = '/dev/kvm';
export const PVM_MODULE = '/sys/module/kvm_pvm';

const PVM_WHY = 'this is a PVM host (kvm_pvm loaded): ordinary guest kernels triple-fault under its KVM';

/** Can KVM run an ordinary guest kernel on this host? Pure; shared by the QEMU and Firecracker probes. */
export function judgeKvm(f: AccelFacts): KvmVerdict {
  if (f.kvmDevice === 'absent') {
    // kvm_pvm without the device: nothing to open, so nothing of PVM's applies; the device is the reason.
    const note = f.pvmHost ? ' (kvm_pvm is loaded, but without the device there is no KVM to use)' : '';
    return { usable: false, problem: 'absent', why: `${DEV_KVM} does not exist${note}` };
  }
  if (f.kvmDevice === 'unusable') {
    return { usable: false, problem: 'unopenable', why: `${DEV_KVM} exists but cannot be opened read-write${f.kvmError ? ` (${f.kvmError})` : ''}` };
  }
  if (f.kvmWorks === false) {
    return { usable: false, problem: 'broken', why: `${DEV_KVM} opens but KVM does not work${f.kvmCheckDetail ? ` (${f.kvmCheckDetail})` : ''}` };
  }
  if (f.pvmHost) return { usable: false, problem: 'pvm', why: PVM_WHY };
  return { usable: true, why: `${DEV_KVM} is usable and this is not a PVM host` };
}

function evidenceOf(f: AccelFacts): string[] {
  const evidence = [
    f.kvmDevice === 'ok' ? `${DEV_KVM} opens read-write`
      : f.kvmDevice === 'absent' ? `${DEV_KVM} does not exist`
        : `${DEV_KVM} exists but cannot be opened${f.kvmError ? ` (${f.kvmError})` : ''}`,
    !f.pvmHost ? `${PVM_MODULE} absent`
      : f.kvmDevice === 'ok' ? `${PVM_MODULE} exists (PVM host)`
        : `${PVM_MODULE} exists (kvm_pvm loaded, but ${DEV_KVM} is not usable, so it is not in effect)`,
  ];
  if (f.kvmWorks !== undefined || f.kvmCheckDetail !== undefined) {
    const head = f.kvmWorks === true ? 'KVM works' : f.kvmWorks === false ? 'KVM does not work' : 'KVM check inconclusive';
    evidence.push(`${head}${f.kvmCheckDetail ? `: ${f.kvmCheckDetail}` : ''}`);
  }
  return evidence;
}

export function decideAccel(f: AccelFacts): AccelChoice {
  const evidence = evidenceOf(f);
  const kvm = judgeKvm(f);

  if (f.override !== undefined && f.override !== '') {
    evidence.push(`HANGAR_ACCEL=${f.override}`);
    if (f.override === 'tcg') return { accel: 'tcg', reason: 'TCG forced by HANGAR_ACCEL=tcg', evidence };
    if (f.override !== 'kvm') {
      throw new HangarError('INVALID_ARGUMENT', `HANGAR_ACCEL must be kvm or tcg (got ${JSON.stringify(f.override)})`, { field: 'HANGAR_ACCEL' });
    }
    if (kvm.problem === 'pvm') {
      const warning = `KVM forced by HANGAR_ACCEL=kvm although ${PVM_WHY}; expect the guest to reset at boot`;
      return { accel: 'kvm', reason: warning, evidence, warning };
    }
    if (!kvm.usable) throw new HangarError('ACCEL_UNAVAILABLE', `HANGAR_ACCEL=kvm but ${kvm.why}`, { evidence });
    return { accel: 'kvm', reason: 'KVM forced by HANGAR_ACCEL=kvm', evidence };
  }

  if (!kvm.usable) return { accel: 'tcg', reason: `TCG (software emulation): ${kvm.why}`, evidence };
  return { accel: 'kvm', reason: `KVM: ${kvm.why}`, evidence };
}

export interface AccelProbeOptions {
  env?: NodeJS.ProcessEnv;
  /** An explicit choice that wins over the environment. */
  override?: string;
  devKvm?: string;
  pvmModule?: string;
  /** Does KVM really work? Asked only when the device opens (e.g. qemuKvmCheck); without it, opening is trusted. */
  kvmCheck?: () => Promise<KvmCheck>;
}

export async function probeAccelFacts(opts: AccelProbeOptions = {}): Promise<AccelFacts> {
  const dev = opts.devKvm ?? DEV_KVM;
  const facts: AccelFacts = { kvmDevice: 'absent', pvmHost: false };
  try {
    const fh = await open(dev, constants.O_RDWR);
    await fh.close();
    facts.kvmDevice = 'ok';
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code !== 'ENOENT') {
      facts.kvmDevice = 'unusable';
      facts.kvmError = err.code ?? err.message;
    }
  }
  try {
    await access(opts.pvmModule ?? PVM_MODULE);
    facts.pvmHost = true;
  } catch { /* absent */ }
  if (facts.kvmDevice === 'ok' && opts.kvmCheck) {
    const c = await opts.kvmCheck().catch((e: unknown): KvmCheck => ({ works: null, detail: `the check failed: ${e instanceof Error ? e.message : String(e)}` }));
    if (c.works !== null) facts.kvmWorks = c.works;
    facts.kvmCheckDetail = c.detail;
  }
  const override = opts.override ?? (opts.env ?? process.env).HANGAR_ACCEL;
  if (override !== undefined) facts.override = override;
  return facts;
}

export async function chooseAccel(opts: AccelProbeOptions = {}): Promise<AccelChoice> {
  return decideAccel(await probeAccelFacts(opts));
}

/** QEMU with no machine and -accel kvm: it opens /dev/kvm and creates a VM (KVM_CREATE_VM), then QMP quits it. */
export const KVM_CHECK_ARGS: readonly string[] = ['-machine', 'none', '-accel', 'kvm', '-nodefaults', '-no-user-config', '-display', 'none', '-S', '-qmp', 'stdio'];
export const KVM_CHECK_INPUT = '{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n';

/** Reads the check's outcome. Pure. */
export function interpretKvmCheck(r: { code: number | null; signal?: string | null; stderr: string; timedOut?: boolean }, timeoutMs = 0): KvmCheck {
  if (r.timedOut) return { works: null, detail: `QEMU did not quit within ${timeoutMs} ms` };
  if (r.code === 0) return { works: true, detail: 'QEMU created a VM with -accel kvm' };
  const lines = r.stderr.trim().split('\n').map((l) => l.trim()).filter(Boolean);
  const said = [...lines].reverse().find((l) => /kvm/i.test(l));
  // Only a complaint about KVM says KVM is broken; another failure (an old QEMU, a signal) says nothing about it.
  if (said) return { works: false, detail: `QEMU -accel kvm: ${said.replace(/^\S*qemu-system-[^:\s]*:\s*/, '').replace(/^-accel kvm:\s*/, '')}` };
  return { works: null, detail: `QEMU -accel kvm ended with ${r.signal ?? `exit ${r.code}`}${lines.length ? `: ${lines.at(-1)}` : ''}` };
}

/** Runs the check with this QEMU binary; never throws. */
export async function qemuKvmCheck(binary: string, opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<KvmCheck> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  try {
    const r = await run(binary, KVM_CHECK_ARGS, { input: KVM_CHECK_INPUT, allowFailure: true, timeoutMs, maxBuffer: 64 * 1024, ...(opts.env ? { env: opts.env } : {}) });
    return interpretKvmCheck(r, timeoutMs);
  } catch (e) {
    return { works: null, detail: `cannot run ${binary}: ${e instanceof Error ? e.message : String(e)}` };
  }
}
