// hangar-agent in the image: its C sources (src/image/guest/agent/) are an input of the rootfs key, and the build
// compiles them with the host's gcc into a static binary installed at AGENT_PATH. A compiler error fails the build
// with IMAGE_BUILD_FAILED naming the compiler's first errors.
import { chmod, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { HangarError, isHangarError } from '../errors.js';
import { AGENT_PATH } from '../guest-protocol.js';
import { run } from '../util/exec.js';
import type { NamedContent } from './plan.js';

/** The agent's sources (*.c, *.h) by name, sorted: what the rootfs key covers. */
export async function readAgentSources(dir: string): Promise<NamedContent[]> {
  const names = (await readdir(dir)).filter((n) => n.endsWith('.c') || n.endsWith('.h')).sort();
  if (!names.some((n) => n.endsWith('.c'))) throw new HangarError('IMAGE_BUILD_FAILED', `no hangar-agent sources in ${dir}`, { dir });
  return Promise.all(names.map(async (name) => ({ name, content: await readFile(join(dir, name), 'utf8') })));
}

/** gcc's argv for a static, warning-free build. Pure. */
export function agentGccArgv(sourceDir: string, sources: readonly string[], out: string): string[] {
  return ['-std=gnu11', '-Wall', '-Wextra', '-Werror', '-O2', '-static', '-o', out, ...sources.filter((s) => s.endsWith('.c')).map((s) => join(sourceDir, s)), '-lutil'];
}

/** The compiler's error lines (at most 8), for the build failure's message. Pure. */
export function compilerErrors(stderr: string): string[] {
  return stderr.split('\n').filter((l) => /\b(error|undefined reference)\b/.test(l)).slice(0, 8).map((l) => l.trim());
}

/** Compiles exactly SOURCES (the contents the key covers, written into WORKDIR) into ROOT at AGENT_PATH. */
export async function installAgent(root: string, workDir: string, sources: readonly NamedContent[], o: { signal?: AbortSignal } = {}): Promise<void> {
  const out = join(root, AGENT_PATH.replace(/^\/+/, ''));
  await mkdir(dirname(out), { recursive: true });
  await mkdir(workDir, { recursive: true });
  for (const s of sources) await writeFile(join(workDir, s.name), s.content);
  try {
    await run('gcc', agentGccArgv(workDir, sources.map((s) => s.name), out), { timeoutMs: 5 * 60_000, ...(o.signal ? { signal: o.signal } : {}) });
  } catch (e) {
    const stderr = isHangarError(e) && typeof e.details.stderr === 'string' ? e.details.stderr : e instanceof Error ? e.message : String(e);
    const errs = compilerErrors(stderr);
    throw new HangarError('IMAGE_BUILD_FAILED', `compiling hangar-agent failed: ${errs.join(' | ') || stderr.slice(0, 500)}`, { errors: errs, stderr: stderr.slice(-4000) }, { cause: e });
  }
  await chmod(out, 0o755);
}
