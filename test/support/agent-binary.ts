// The REAL hangar-agent for host-side tests: compiled from src/image/guest/agent/ with the host's gcc into a temp
// directory (once per source hash), started with --listen-unix, and a Session/AgentClient connected to it.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentClient } from '../../src/agent/client.js';
import { Session } from '../../src/agent/session.js';
import { connectUnix } from '../../src/agent/transport.js';
import { ROOT } from './env.js';

export const AGENT_SRC = join(ROOT, 'src/image/guest/agent');

/** The agent binary, or a reason it cannot be built here (a test skips with it). */
export function agentBinary(): { path: string } | { skip: string } {
  if (spawnSync('gcc', ['--version']).status !== 0) return { skip: 'gcc is not installed' };
  const files = readdirSync(AGENT_SRC).filter((f) => f.endsWith('.c') || f.endsWith('.h')).sort();
  const h = createHash('sha256');
  for (const f of files) h.update(f).update(readFileSync(join(AGENT_SRC, f)));
  const dir = join(tmpdir(), `hangar-agent-test-${h.digest('hex').slice(0, 12)}`);
  const out = join(dir, 'hangar-agent');
  if (existsSync(out)) return { path: out };
  mkdirSync(dir, { recursive: true });
  const tmp = `${out}.${process.pid}`;
  const r = spawnSync('gcc', ['-std=gnu11', '-Wall', '-Wextra', '-Werror', '-O2', '-static', '-o', tmp, ...files.filter((f) => f.endsWith('.c')).map((f) => join(AGENT_SRC, f)), '-lutil'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`compiling hangar-agent failed:\n${r.stderr}`);
  spawnSync('mv', [tmp, out]);
  return { path: out };
}

export interface LocalAgent {
  socket: string;
  proc: ChildProcess;
  dir: string;
  open(): Promise<AgentClient>;
  stop(): Promise<void>;
}

export async function startLocalAgent(bin: string, args: string[] = []): Promise<LocalAgent> {
  const dir = mkdtempSync(join(tmpdir(), 'hangar-agent-'));
  const socket = join(dir, 'agent.sock');
  const proc = spawn(bin, ['--listen-unix', socket, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  proc.stderr!.resume();
  for (let i = 0; i < 200 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 10));
  const clients: AgentClient[] = [];
  return {
    socket, proc, dir,
    open: async () => {
      const s = new Session(await connectUnix(socket));
      await s.start(5000);
      const c = new AgentClient(s);
      clients.push(c);
      return c;
    },
    stop: async () => {
      for (const c of clients) c.close();
      const gone = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGKILL');
      await gone;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Everything a Readable yields, as one Buffer (tests with small outputs). */
export async function collect(r: AsyncIterable<unknown>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(Buffer.isBuffer(c) ? c : Buffer.from(String(c)));
  return Buffer.concat(parts);
}
