// Supervision of a VMM process (any VMM: QEMU, Firecracker, or a test's `sleep`). The process runs detached in
// its own process group with stdout/stderr in a log file, so it outlives the controller and is adopted at the
// next start. Hangar records how it ended; a pid read back from a pidfile is only trusted (and only ever
// signalled) after /proc/PID shows our binary with the VM's own markers, so a recycled pid is never killed.
import { spawn } from 'node:child_process';
import { open, readFile, readlink, realpath, rename, rm, writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { HangarError } from '../errors.js';
import { describe, withNetns } from '../util/exec.js';
import { waitAtMost } from '../util/timeout.js';
import type { ProcessExit } from './types.js';

export type ExitCause = ProcessExit['by'];

export interface SpawnSpec {
  /** The binary (absolute path preferred: it is what adopt compares against). */
  command: string;
  args: readonly string[];
  /** stdout and stderr are appended here. */
  logPath: string;
  pidFile: string;
  /** Run inside this network namespace (`ip netns exec` execs the binary: the pid stays the VMM's). */
  netns?: string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

/** How to recognise our process in /proc. */
export interface ProcessIdentity {
  binary: string;
  /** Each must occur in some argv element (e.g. the VM's control socket path). */
  markers: readonly string[];
}

export interface TerminateOptions {
  /** Time between SIGTERM and SIGKILL. */
  graceMs?: number;
  /** Time to wait after SIGKILL. */
  killWaitMs?: number;
}

/** Liveness poll for processes that are not our children; keeps crash detection well under 2 s. */
export const ADOPTED_POLL_MS = 500;

// ---- pure helpers

export interface ProcStat {
  state: string;
  ppid: number;
  pgrp: number;
  /** Clock ticks since boot. */
  starttime: number;
}

/** Parses /proc/PID/stat (the comm field may hold spaces and parentheses, so split after its last ')'). */
export function parseProcStat(text: string): ProcStat | null {
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  const f = text.slice(close + 2).trim().split(/\s+/);
  // f[0] is field 3 (state); starttime is field 22.
  if (f.length < 20) return null;
  return { state: f[0]!, ppid: Number(f[1]), pgrp: Number(f[2]), starttime: Number(f[19]) };
}

export function parseCmdline(raw: Buffer | string): string[] {
  const parts = raw.toString().split('\0');
  if (parts.at(-1) === '') parts.pop();
  return parts;
}

/**
 * Is a process with this argv (and /proc/PID/exe target) the one we started? The binary must match (by exe, or
 * by argv[0] when exe is unreadable) and every marker must occur in an argument.
 */
export function matchIdentity(argv: readonly string[], exe: string | null, binaryReal: string, id: ProcessIdentity): { ok: boolean; reason: string } {
  if (argv.length === 0) return { ok: false, reason: 'no command line (kernel thread or zombie)' };
  const exeClean = exe?.replace(/ \(deleted\)$/, '') ?? null; // the binary may have been upgraded under a running VM
  const binOk = exeClean !== null
    ? exeClean === binaryReal || exeClean === id.binary
    : argv[0] === id.binary || basename(argv[0]!) === basename(id.binary);
  if (!binOk) return { ok: false, reason: `runs ${exeClean ?? argv[0]}, not ${id.binary}` };
  const missing = id.markers.filter((m) => !argv.some((a) => a.includes(m)));
  if (missing.length) return { ok: false, reason: `command line lacks ${missing.map((m) => JSON.stringify(m)).join(', ')}` };
  return { ok: true, reason: 'binary and markers match' };
}

// ---- /proc probes

export interface ProcInfo {
  argv: string[];
  exe: string | null;
  stat: ProcStat | null;
}

export async function readProc(pid: number): Promise<ProcInfo | null> {
  try {
    const [cmd, stat] = await Promise.all([readFile(`/proc/${pid}/cmdline`), readFile(`/proc/${pid}/stat`, 'utf8')]);
    let exe: string | null = null;
    try { exe = await readlink(`/proc/${pid}/exe`); } catch { /* not permitted or gone */ }
    return { argv: parseCmdline(cmd), exe, stat: parseProcStat(stat) };
  } catch {
    return null;
  }
}

async function realBinary(binary: string): Promise<string> {
  try { return await realpath(binary); } catch { return binary; }
}

/** Does the pid currently run our process? (false when gone, a zombie, or something else). */
export async function verifyProcess(pid: number, id: ProcessIdentity): Promise<{ ok: boolean; reason: string }> {
  const info = await readProc(pid);
  if (!info) return { ok: false, reason: `no process ${pid}` };
  if (info.stat?.state === 'Z') return { ok: false, reason: `process ${pid} is a zombie` };
  return matchIdentity(info.argv, info.exe, await realBinary(id.binary), id);
}

export async function readPidFile(path: string): Promise<number | null> {
  let text: string;
  try { text = await readFile(path, 'utf8'); } catch { return null; }
  const m = /^\s*(\d+)\s*$/.exec(text);
  const pid = m ? Number(m[1]) : NaN;
  return Number.isSafeInteger(pid) && pid > 1 ? pid : null;
}

async function writePidFile(path: string, pid: number): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, `${pid}\n`, { mode: 0o644 });
  await rename(tmp, path);
}

/** Removes the pidfile only if it still names this pid (a newer VMM may own it). */
async function removePidFile(path: string, pid: number): Promise<void> {
  if ((await readPidFile(path)) === pid) await rm(path, { force: true });
}

// ---- the supervised process

export class SupervisedProcess {
  /** Set once the process has ended. */
  exit: ProcessExit | null = null;
  /** Signals Hangar sent, in order (evidence for how a stop went). */
  readonly signalsSent: NodeJS.Signals[] = [];
  readonly exited: Promise<ProcessExit>;
  private resolveExit!: (e: ProcessExit) => void;
  private cause: ExitCause | null = null;
  private poll: NodeJS.Timeout | null = null;
  private unrefChild: (() => void) | null = null;

  private constructor(
    readonly pid: number,
    /** true when found through a pidfile rather than spawned by this controller. */
    readonly adopted: boolean,
    readonly pidFile: string,
    private readonly identity: ProcessIdentity | null,
    /** Process group to signal (the pid itself when it leads its own group). */
    private readonly pgid: number | null,
  ) {
    this.exited = new Promise((r) => { this.resolveExit = r; });
  }

  /** Tells the supervisor who causes the exit that is about to happen (e.g. the guest asked to shut down). */
  noteCause(by: ExitCause): void {
    if (this.cause !== 'hangar') this.cause = by;
  }

  get alive(): boolean {
    return this.exit === null;
  }

  /** Stops watching without touching the process: it keeps running and can be adopted later. */
  release(): void {
    if (this.poll) clearInterval(this.poll);
    this.poll = null;
    this.unrefChild?.();
  }

  /** SIGTERM to the process group, SIGKILL after graceMs; resolves with the recorded exit. */
  async terminate(opts: TerminateOptions = {}): Promise<ProcessExit> {
    if (this.exit) return this.exit;
    this.cause = 'hangar';
    if (await this.signal('SIGTERM')) {
      const e = await this.waitExit(opts.graceMs ?? 5000);
      if (e) return e;
      if (await this.signal('SIGKILL')) {
        const k = await this.waitExit(opts.killWaitMs ?? 5000);
        if (k) return k;
        throw new HangarError('INTERNAL', `process ${this.pid} did not exit after SIGKILL (stuck in the kernel?)`, { pid: this.pid });
      }
    }
    // Not signalled: already gone, or the pid no longer names our process.
    return (await this.waitExit(opts.killWaitMs ?? 5000)) ?? this.record(null, null);
  }

  /** Resolves with the exit if it happens within ms, else null. */
  async waitExit(ms: number): Promise<ProcessExit | null> {
    if (this.exit) return this.exit;
    return waitAtMost(this.exited, ms, null);
  }

  /** Sends a signal to the process group; for an adopted process only after re-checking it is ours. */
  async signal(sig: NodeJS.Signals): Promise<boolean> {
    if (this.exit) return false;
    if (this.adopted && this.identity) {
      const v = await verifyProcess(this.pid, this.identity);
      if (!v.ok) {
        this.record(null, null);
        return false;
      }
    }
    this.signalsSent.push(sig);
    try {
      process.kill(this.pgid !== null ? -this.pgid : this.pid, sig);
      return true;
    } catch {
      try { process.kill(this.pid, sig); return true; } catch { return false; }
    }
  }

  private record(code: number | null, signal: string | null): ProcessExit {
    if (this.exit) return this.exit;
    this.release();
    const by: ExitCause = this.cause ?? 'unknown';
    this.exit = { code, signal, by, at: new Date().toISOString() };
    const exit = this.exit;
    // Resolve only once the pidfile is gone, so whoever awaits the exit sees a consistent run directory.
    void removePidFile(this.pidFile, this.pid).catch(() => undefined).finally(() => this.resolveExit(exit));
    return exit;
  }

  /** Starts the process detached, in its own group, output appended to the log; writes the pidfile. */
  static async spawn(spec: SpawnSpec): Promise<SupervisedProcess> {
    const [file, argv] = withNetns(spec.netns, spec.command, spec.args);
    const log = await open(spec.logPath, 'a', 0o640);
    let child;
    // A short-lived process may exit while we still await below: catch its exit from the very start.
    let early: { code: number | null; signal: string | null } | null = null;
    let onExit = (code: number | null, signal: string | null): void => { early = { code, signal }; };
    try {
      child = spawn(file, argv, { detached: true, stdio: ['ignore', log.fd, log.fd], cwd: spec.cwd, env: spec.env ?? process.env });
      child.once('exit', (code, signal) => onExit(code, signal));
      await new Promise<void>((resolve, reject) => {
        child!.once('spawn', resolve);
        child!.once('error', reject);
      });
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new HangarError('VMM_START_FAILED', `cannot start ${describe([file, ...argv]).slice(0, 300)}: ${err.message}`, {
        command: [file, ...argv], errno: err.code ?? null,
      }, { cause: e });
    } finally {
      await log.close();
    }
    const pid = child.pid!;
    const proc = new SupervisedProcess(pid, false, spec.pidFile, null, pid);
    proc.unrefChild = () => child.unref();
    // Exits are recorded directly once the pidfile exists, so its removal cannot race its writing.
    const live = (): void => {
      onExit = (code, signal) => { proc.record(code, signal); };
      const done = early as { code: number | null; signal: string | null } | null;
      if (done) proc.record(done.code, done.signal);
    };
    try {
      await writePidFile(spec.pidFile, pid);
    } catch (e) {
      live();
      await proc.terminate({ graceMs: 1000 });
      throw new HangarError('VMM_START_FAILED', `cannot write pidfile ${spec.pidFile}: ${(e as Error).message}`, { pidFile: spec.pidFile }, { cause: e });
    }
    live();
    return proc;
  }

  /**
   * Re-attaches to the process named by a pidfile if, and only if, it still runs `identity`. Null when the
   * pidfile is absent, the process is gone, or the pid now belongs to something else (nothing is signalled).
   */
  static async adopt(pidFile: string, identity: ProcessIdentity): Promise<SupervisedProcess | null> {
    const pid = await readPidFile(pidFile);
    if (pid === null) return null;
    const v = await verifyProcess(pid, identity);
    if (!v.ok) return null;
    const info = await readProc(pid);
    const pgid = info?.stat?.pgrp === pid ? pid : null;
    const proc = new SupervisedProcess(pid, true, pidFile, identity, pgid);
    proc.poll = setInterval(() => {
      void verifyProcess(pid, identity).then((r) => { if (!r.ok) proc.record(null, null); });
    }, ADOPTED_POLL_MS);
    return proc;
  }
}

export const spawnSupervised = SupervisedProcess.spawn;
export const adoptSupervised = SupervisedProcess.adopt;
