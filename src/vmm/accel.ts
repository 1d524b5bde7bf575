// Which accelerator a VMM should use. KVM only where it really works: /dev/kvm must exist and open read-write,
// and the host must not be a PVM host (kvm_pvm loaded: ordinary guest kernels triple-fault under it). Otherwise
// TCG, which is slow but correct. decideAccel is pure; probeAccelFacts is the thin prober.
import { constants } from 'node:fs';
import { access, open } from 'node:fs/promises';
import { HangarError } from '../errors.js';

export type Accel = 'kvm' | 'tcg';

export interface AccelFacts {
  /** 'ok': /dev/kvm opens read-write; 'absent': no such device; 'unusable': exists but cannot be opened. */
  kvmDevice: 'ok' | 'absent' | 'unusable';
  /** Why /dev/kvm could not be opened (errno text), when unusable. */
  kvmError?: string;
  /** /sys/module/kvm_pvm exists. */
  pvmHost: boolean;
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

export const DEV_KVM = '/dev/kvm';
export const PVM_MODULE = '/sys/module/kvm_pvm';

export function decideAccel(f: AccelFacts): AccelChoice {
  const evidence = [
    f.kvmDevice === 'ok' ? `${DEV_KVM} opens read-write`
      : f.kvmDevice === 'absent' ? `${DEV_KVM} does not exist`
        : `${DEV_KVM} exists but cannot be opened${f.kvmError ? ` (${f.kvmError})` : ''}`,
    f.pvmHost ? `${PVM_MODULE} exists (PVM host)` : `${PVM_MODULE} absent`,
  ];
  const pvmWhy = 'this is a PVM host (kvm_pvm loaded): ordinary guest kernels triple-fault under its KVM';

  if (f.override !== undefined && f.override !== '') {
    evidence.push(`HANGAR_ACCEL=${f.override}`);
    if (f.override === 'tcg') return { accel: 'tcg', reason: 'TCG forced by HANGAR_ACCEL=tcg', evidence };
    if (f.override !== 'kvm') {
      throw new HangarError('INVALID_ARGUMENT', `HANGAR_ACCEL must be kvm or tcg (got ${JSON.stringify(f.override)})`, { field: 'HANGAR_ACCEL' });
    }
    if (f.kvmDevice !== 'ok') {
      throw new HangarError('ACCEL_UNAVAILABLE', `HANGAR_ACCEL=kvm but ${evidence[0]}`, { evidence });
    }
    if (f.pvmHost) {
      const warning = `KVM forced by HANGAR_ACCEL=kvm although ${pvmWhy}; expect the guest to reset at boot`;
      return { accel: 'kvm', reason: warning, evidence, warning };
    }
    return { accel: 'kvm', reason: 'KVM forced by HANGAR_ACCEL=kvm', evidence };
  }

  if (f.kvmDevice !== 'ok') return { accel: 'tcg', reason: `TCG (software emulation): ${evidence[0]}`, evidence };
  if (f.pvmHost) return { accel: 'tcg', reason: `TCG (software emulation): ${pvmWhy}`, evidence };
  return { accel: 'kvm', reason: 'KVM: /dev/kvm is usable and this is not a PVM host', evidence };
}

export interface AccelProbeOptions {
  env?: NodeJS.ProcessEnv;
  /** An explicit choice that wins over the environment. */
  override?: string;
  devKvm?: string;
  pvmModule?: string;
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
  const override = opts.override ?? (opts.env ?? process.env).HANGAR_ACCEL;
  if (override !== undefined) facts.override = override;
  return facts;
}

export async function chooseAccel(opts: AccelProbeOptions = {}): Promise<AccelChoice> {
  return decideAccel(await probeAccelFacts(opts));
}
