// The one way Hangar runs host commands: argument arrays, never shell strings. Output is captured with a cap,
// a timeout kills the whole process group, and a failure is a HangarError that says what ran.
import { spawn } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { HangarError } from '../errors.js';

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  input?: string | Buffer;
  timeoutMs?: number;
  /** Run inside this network namespace (via `ip netns exec`). */
  netns?: string;
  /** Do not throw on a non-zero exit; the caller inspects `code`. */
  allowFailure?: boolean;
  /** Called with each chunk of stdout/stderr as it arrives (progress). */
  onOutput?: (chunk: string, stream: 'stdout' | 'stderr') => void;
  /** Maximum bytes kept of each stream (the tail is kept). */
  maxBuffer?: number;
  /** Aborting kills the whole process group (an interrupted image build must not leave make/debootstrap behind). */
  signal?: AbortSignal;
}

export interface RunResult {
  command: string[];
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  durationMs: number;
  timedOut: boolean;
}

const DEFAULT_MAX = 8 * 1024 * 1024;

export function withNetns(netns: string | undefined, cmd: string, args: readonly string[]): [string, string[]] {
  return netns ? ['ip', ['netns', 'exec', netns, cmd, ...args]] : [cmd, [...args]];
}

export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const [file, argv] = withNetns(opts.netns, cmd, args);
  const started = Date.now();
  const max = opts.maxBuffer ?? DEFAULT_MAX;
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true, // own process group, so a timeout kills the whole tree
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outLen = 0;
    let errLen = 0;
    let timedOut = false;
    const keep = (arr: Buffer[], chunk: Buffer, len: number): number => {
      arr.push(chunk);
      len += chunk.length;
      while (len > max && arr.length > 1) len -= arr.shift()!.length;
      return len;
    };
    child.stdout.on('data', (c: Buffer) => { outLen = keep(out, c, outLen); opts.onOutput?.(c.toString(), 'stdout'); });
    child.stderr.on('data', (c: Buffer) => { errLen = keep(err, c, errLen); opts.onOutput?.(c.toString(), 'stderr'); });
    const timer = opts.timeoutMs
      ? setTimeout(() => {
          timedOut = true;
          killGroup(child.pid, 'SIGTERM');
          setTimeout(() => killGroup(child.pid, 'SIGKILL'), 2000).unref();
        }, opts.timeoutMs)
      : undefined;
    const onAbort = (): void => {
      killGroup(child.pid, 'SIGTERM');
      setTimeout(() => killGroup(child.pid, 'SIGKILL'), 2000).unref();
    };
    if (opts.signal?.aborted) onAbort();
    else opts.signal?.addEventListener('abort', onAbort, { once: true });
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (timer) clearTimeout(timer);
      const code = e.code === 'ENOENT' ? 'MISSING_HOST_TOOLS' : 'COMMAND_FAILED';
      reject(new HangarError(code, `cannot run ${file}: ${e.message}`, { command: [file, ...argv], tools: [file] }, { cause: e }));
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      const result: RunResult = {
        command: [file, ...argv],
        code,
        signal,
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
        durationMs: Date.now() - started,
        timedOut,
      };
      if (timedOut && !opts.allowFailure) {
        reject(new HangarError('COMMAND_TIMEOUT', `${describe(result.command)} did not finish within ${opts.timeoutMs} ms`, { command: result.command }));
      } else if (code !== 0 && !opts.allowFailure) {
        const tail = result.stderr.trim().split('\n').slice(-5).join('\n');
        reject(new HangarError('COMMAND_FAILED', `${describe(result.command)} failed (${signal ?? `exit ${code}`}): ${tail}`, {
          command: result.command, code, signal, stderr: result.stderr.slice(-4000),
        }));
      } else {
        resolve(result);
      }
    });
    if (opts.input !== undefined) child.stdin.end(opts.input);
    else child.stdin.end();
  });
}

export function killGroup(pid: number | undefined, signal: NodeJS.Signals): boolean {
  if (!pid) return false;
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    try { process.kill(pid, signal); return true; } catch { return false; }
  }
}

/** A readable rendering of an argv for messages and logs (never executed). */
export function describe(command: readonly string[]): string {
  return command.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
}

/** Finds an executable on PATH (plus the sbin directories, which root's tools live in). */
export async function which(tool: string): Promise<string | null> {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const p = join(dir, tool);
    try {
      await access(p, constants.X_OK);
      return p;
    } catch { /* next */ }
  }
  return null;
}

/** Fails with MISSING_HOST_TOOLS naming every tool that is absent. */
export async function requireTools(tools: readonly string[], hint?: string): Promise<void> {
  const missing: string[] = [];
  for (const t of tools) if (!(await which(t))) missing.push(t);
  if (missing.length) {
    throw new HangarError('MISSING_HOST_TOOLS', `missing host tools: ${missing.join(', ')}${hint ? ` (${hint})` : ''}`, { tools: missing });
  }
}
