// Can Firecracker run here? Facts are gathered by thin readers; the verdict is a pure function of them, so every
// reason can be tested without the binary. KVM facts are the ones the QEMU driver reads (src/vmm/accel.ts), judged
// by the same judgeKvm; whether KVM really runs a VM is asked of QEMU when it is installed (Firecracker has no
// dry run). probe() never throws.
import { access, constants } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { run, which } from '../../util/exec.js';
import { judgeKvm, probeAccelFacts, qemuKvmCheck, type AccelFacts, type KvmCheck } from '../accel.js';
import type { DriverProbe } from '../driver.js';
import { apiVersionFor, parseVersion } from './version.js';

export interface HostFacts {
  /** Resolved binary, or null with where we looked. */
  binary: string | null;
  binarySource: string;
  /** `firecracker --version` stdout+stderr, or the failure text. */
  versionOutput: string | null;
  versionError?: string;
  /** /dev/kvm (exists, opens), kvm_pvm, and whether KVM really ran a VM: the facts the accelerator choice reads. */
  kvm: AccelFacts;
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

/** "Does KVM really work", asked of QEMU from PATH when it is installed; null (trust the open) without it. */
async function defaultKvmCheck(env: NodeJS.ProcessEnv): Promise<(() => Promise<KvmCheck>) | null> {
  const qemu = await which('qemu-system-x86_64');
  return qemu ? () => qemuKvmCheck(qemu, { env }) : null;
}

export async function gatherFacts(opts: {
  binary?: string; env?: NodeJS.ProcessEnv; jailer?: boolean; jailerBinary?: string;
  /** Overrides the KVM check (null: none); devKvm/pvmModule point the readers elsewhere (tests). */
  kvmCheck?: (() => Promise<KvmCheck>) | null; devKvm?: string; pvmModule?: string;
} = {}): Promise<HostFacts> {
  const env = opts.env ?? process.env;
  const bin = opts.binary ? { binary: opts.binary, source: 'driver option' } : await resolveBinary('FIRECRACKER_BIN', 'firecracker', env);
  const kvmCheck = opts.kvmCheck === undefined ? await defaultKvmCheck(env) : opts.kvmCheck;
  // Firecracker has no accelerator override: HANGAR_ACCEL is QEMU's, so it is not read here.
  const kvm = await probeAccelFacts({
    env: {}, ...(kvmCheck ? { kvmCheck } : {}),
    ...(opts.devKvm ? { devKvm: opts.devKvm } : {}), ...(opts.pvmModule ? { pvmModule: opts.pvmModule } : {}),
  });
  const facts: HostFacts = { binary: bin.binary, binarySource: bin.source, versionOutput: null, kvm };
  if (bin.binary) {
    try {
      const r = await run(bin.binary, ['--version'], { env, timeoutMs: 5000, allowFailure: true, maxBuffer: 64 * 1024 });
      if (r.code === 0) facts.versionOutput = `${r.stdout}\n${r.stderr}`;
      else facts.versionError = `exit ${r.code ?? r.signal}: ${(r.stderr || r.stdout).trim().split('\n').pop() ?? ''}`;
    } catch (e) {
      facts.versionError = e instanceof Error ? e.message : String(e);
    }
  }
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
  const kvm = judgeKvm(f.kvm);
  if (kvm.problem === 'pvm') {
    return {
      ...found, available: false, accel: 'kvm',
      reason: 'KVM here is PVM (/dev/kvm opens and /sys/module/kvm_pvm exists): ordinary guest kernels triple-fault under it and Firecracker has no TCG fallback',
    };
  }
  if (!kvm.usable) return { ...found, available: false, reason: `Firecracker needs KVM: ${kvm.why}` };
  return { ...found, available: true, accel: 'kvm', reason: `Firecracker ${version} (API ${api}) from ${f.binarySource}; ${kvm.why}` };
}
