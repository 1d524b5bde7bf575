// Can Firecracker run here? Facts are gathered by thin readers; the verdict is a pure function of them, so every
// reason can be tested without the binary. probe() never throws.
import { access, constants } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { run, which } from '../../util/exec.js';
import type { DriverProbe } from '../driver.js';
import { apiVersionFor, parseVersion } from './version.js';

export interface HostFacts {
  /** Resolved binary, or null with where we looked. */
  binary: string | null;
  binarySource: string;
  /** `firecracker --version` stdout+stderr, or the failure text. */
  versionOutput: string | null;
  versionError?: string;
  /** /dev/kvm opened read-write. */
  kvmUsable: boolean;
  kvmError?: string;
  /** /sys/module/kvm_pvm exists: a PVM host, where ordinary guest kernels triple-fault. */
  pvmHost: boolean;
  /** Jailer mode only. */
  jailer?: { binary: string | null; source: string };
}

/** FIRECRACKER_BIN (must be an executable path), else `firecracker` on PATH. */
export async function resolveBinary(envVar: string, tool: string, env: NodeJS.ProcessEnv = process.env): Promise<{ binary: string | null; source: string }> {
  const fromEnv = env[envVar];
  if (fromEnv) {
    if (!isAbsolute(fromEnv)) return { binary: null, source: `${envVar}=${fromEnv} is not an absolute path` };
    try {
      await access(fromEnv, constants.X_OK);
      return { binary: fromEnv, source: `${envVar}` };
    } catch {
      return { binary: null, source: `${envVar}=${fromEnv} is not an executable file` };
    }
  }
  const found = await which(tool);
  return found ? { binary: found, source: 'PATH' } : { binary: null, source: `${envVar} not set and no ${tool} on PATH` };
}

export async function gatherFacts(opts: { binary?: string; env?: NodeJS.ProcessEnv; jailer?: boolean; jailerBinary?: string } = {}): Promise<HostFacts> {
  const env = opts.env ?? process.env;
  const bin = opts.binary ? { binary: opts.binary, source: 'driver option' } : await resolveBinary('FIRECRACKER_BIN', 'firecracker', env);
  const facts: HostFacts = { binary: bin.binary, binarySource: bin.source, versionOutput: null, kvmUsable: false, pvmHost: false };
  if (bin.binary) {
    try {
      const r = await run(bin.binary, ['--version'], { env, timeoutMs: 5000, allowFailure: true, maxBuffer: 64 * 1024 });
      if (r.code === 0) facts.versionOutput = `${r.stdout}\n${r.stderr}`;
      else facts.versionError = `exit ${r.code ?? r.signal}: ${(r.stderr || r.stdout).trim().split('\n').pop() ?? ''}`;
    } catch (e) {
      facts.versionError = e instanceof Error ? e.message : String(e);
    }
  }
  try {
    await access('/dev/kvm', constants.R_OK | constants.W_OK);
    facts.kvmUsable = true;
  } catch (e) {
    facts.kvmError = (e as NodeJS.ErrnoException).code ?? String(e);
  }
  try {
    await access('/sys/module/kvm_pvm');
    facts.pvmHost = true;
  } catch { /* not a PVM host */ }
  if (opts.jailer) {
    facts.jailer = opts.jailerBinary ? { binary: opts.jailerBinary, source: 'driver option' } : await resolveBinary('JAILER_BIN', 'jailer', env);
  }
  return facts;
}

/** The verdict. Pure. */
export function probeVerdict(f: HostFacts): DriverProbe {
  const base = { kind: 'firecracker' as const };
  if (!f.binary) return { ...base, available: false, reason: `no Firecracker binary: ${f.binarySource}` };
  if (f.versionOutput === null) return { ...base, available: false, binary: f.binary, reason: `${f.binary} --version failed: ${f.versionError ?? 'no output'}` };
  const v = parseVersion(f.versionOutput);
  if (!v) return { ...base, available: false, binary: f.binary, reason: `cannot read a version from \`${f.binary} --version\`` };
  const version = v.join('.');
  let api: string;
  try {
    api = apiVersionFor(version);
  } catch (e) {
    return { ...base, available: false, binary: f.binary, version, reason: (e as Error).message };
  }
  const found = { ...base, binary: f.binary, version };
  if (f.jailer && !f.jailer.binary) return { ...found, available: false, reason: `jailer mode, but no jailer binary: ${f.jailer.source}` };
  if (!f.kvmUsable) return { ...found, available: false, reason: `Firecracker needs KVM and /dev/kvm is not usable (${f.kvmError ?? 'unknown'})` };
  if (f.pvmHost) {
    return {
      ...found, available: false, accel: 'kvm',
      reason: 'KVM here is PVM (/sys/module/kvm_pvm exists): ordinary guest kernels triple-fault under it and Firecracker has no TCG fallback',
    };
  }
  return { ...found, available: true, accel: 'kvm', reason: `Firecracker ${version} (API ${api}) from ${f.binarySource}; /dev/kvm usable` };
}
