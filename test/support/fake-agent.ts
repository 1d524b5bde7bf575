// A FAKE guest agent for unit tests: an AgentPort (src/agent/port.ts) whose sessions run the requested commands on
// the HOST (child_process, argument arrays) and whose files live under a temp directory, one per VM
// (ROOT/<vmId>/…; guest paths are confined there). Faithful enough for the routes, WebSockets, CLI and streaming:
// stdout/stderr as produced, exit codes and signals, stdin, timeouts, background processes that can be listed,
// waited for, attached to (their kept output replayed), signalled and killed; streaming reads and atomic writes.
// Not faithful: `user` is recorded but not switched to, and a PTY is pipes with stderr merged into stdout (the
// real PTY is covered by test/agent/surface.int.test.ts). `spawn: false` answers every exec with exit 0 and no
// output without running anything (the API fuzz test).
import { spawn, type ChildProcess } from 'node:child_process';
import { createReadStream, createWriteStream, watch as fsWatch } from 'node:fs';
import { chmod, chown, lstat, mkdir, readdir, readlink, rename, rm, stat } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname, join, normalize } from 'node:path';
import { PassThrough, Readable, type Duplex, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HangarError } from '../../src/errors.js';
import type {
  AgentPort, AgentSession, AgentStatus, DirEntry, ExecHandle, ExecRequest, ExitStatus, FileStat, GuestInfo, ProcInfo, WatchEvent, Watcher,
} from '../../src/agent/port.js';

const KEEP_BYTES = 64 * 1024;

export interface FakeAgentOptions {
  /** Where each VM's files live (ROOT/<vmId>). */
  root: string;
  /** false: exec runs nothing and exits 0 at once. */
  spawn?: boolean;
  /** VMs whose agent does not answer (session() fails with AGENT_UNAVAILABLE). */
  unavailable?: Set<string>;
  /** What info() answers, per VM (default: a healthy guest). */
  info?: (vmId: string) => GuestInfo;
}

export interface FakeAgentPort extends AgentPort {
  /** Every exec request, in order, with its VM. */
  readonly execs: { vmId: string; req: ExecRequest }[];
  /** Every resize and signal a handle or session received. */
  readonly controls: { vmId: string; op: 'resize' | 'signal'; proc: string; args: unknown[] }[];
  /** The host directory holding a VM's guest files. */
  rootOf(vmId: string): string;
  /** Kills every process still running. */
  close(): void;
}

export const HEALTHY_INFO: GuestInfo = {
  hostname: 'fake-guest', uptimeMs: 1000, bootId: 'fake-boot',
  ifaces: [{ name: 'lo', up: true, addrs: ['127.0.0.1/8'] }, { name: 'eth0', up: true, addrs: ['10.0.0.2/24'] }],
  routes: ['default via 10.0.0.1 dev eth0', '10.0.0.0/24 dev eth0 proto kernel scope link src 10.0.0.2'],
  listening: [{ proto: 'tcp', addr: '0.0.0.0', port: 5900 }],
  failed: [],
};

const sigName = (s: string | null): string | null => (s ? s.replace(/^SIG/, '') : null);
const nodeSignal = (s: string): NodeJS.Signals => (`SIG${s.replace(/^SIG/, '').toUpperCase()}`) as NodeJS.Signals;

/** errno → the port's error codes, as the real client maps the guest's ERR frames. */
function guestError(e: unknown, path: string): HangarError {
  const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
  const msg = `${path}: ${code}`;
  if (code === 'ENOENT') return new HangarError('GUEST_PATH_NOT_FOUND', msg, { path, errno: code });
  if (code === 'EEXIST' || code === 'ENOTEMPTY') return new HangarError('GUEST_PATH_EXISTS', msg, { path, errno: code });
  if (code === 'EACCES' || code === 'EPERM') return new HangarError('GUEST_PERMISSION_DENIED', msg, { path, errno: code });
  return new HangarError('GUEST_OP_FAILED', msg, { path, errno: code, guestCode: code });
}

interface Proc {
  proc: string;
  pid: number;
  argv: string[];
  tag?: string;
  background: boolean;
  startedAt: number;
  child: ChildProcess | null;
  kept: Buffer[];
  keptBytes: number;
  /** The handles receiving its output now. */
  sinks: Set<{ stdout: PassThrough; stderr: PassThrough }>;
  exit: Promise<ExitStatus>;
  status?: ExitStatus;
  timedOut: boolean;
}

export function createFakeAgent(opts: FakeAgentOptions): FakeAgentPort {
  const procs = new Map<string, Proc & { vmId: string }>();
  const execs: FakeAgentPort['execs'] = [];
  const controls: FakeAgentPort['controls'] = [];
  let next = 1;
  let sessions = 0;
  // Any id becomes one directory name below the root (never a path out of it).
  const rootOf = (vmId: string): string => join(opts.root, vmId.replace(/[^A-Za-z0-9_-]/g, '_') || '_');

  const sessionFor = async (vmId: string): Promise<AgentSession> => {
    const root = rootOf(vmId);
    await mkdir(root, { recursive: true });
    const host = (p: string): string => {
      if (typeof p !== 'string' || !p.startsWith('/')) throw new HangarError('GUEST_OP_FAILED', `not an absolute path: ${String(p)}`, { path: p, errno: 'EINVAL' });
      return join(root, normalize(p)); // normalize('/../x') is '/x': confined to the root
    };
    const toStat = async (p: string): Promise<FileStat> => {
      const st = await lstat(host(p)).catch((e: unknown) => { throw guestError(e, p); });
      const type = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'other';
      const out: FileStat = { type, size: st.size, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtimeMs: Math.round(st.mtimeMs) };
      if (type === 'symlink') out.target = await readlink(host(p));
      return out;
    };
    const guarded = async <T>(p: string, fn: () => Promise<T>): Promise<T> => {
      try { return await fn(); } catch (e) { throw e instanceof HangarError ? e : guestError(e, p); }
    };

    const handleFor = (pr: Proc & { vmId: string }, withStdin: Writable | null, replay: boolean): ExecHandle => {
      const sink = { stdout: new PassThrough(), stderr: new PassThrough() };
      if (replay) for (const b of pr.kept) sink.stdout.write(b);
      if (pr.status) { sink.stdout.end(); sink.stderr.end(); } else pr.sinks.add(sink);
      let detached = false;
      return {
        proc: pr.proc, pid: pr.pid, stdout: sink.stdout, stderr: sink.stderr, stdin: withStdin,
        exit: pr.exit.then((s) => (detached ? new Promise<ExitStatus>(() => undefined) : s)),
        signal: async (s) => { controls.push({ vmId, op: 'signal', proc: pr.proc, args: [s] }); pr.child?.kill(nodeSignal(s)); },
        resize: async (cols, rows) => { controls.push({ vmId, op: 'resize', proc: pr.proc, args: [cols, rows] }); },
        detach: () => {
          detached = true;
          pr.sinks.delete(sink);
          sink.stdout.end();
          sink.stderr.end();
          if (!pr.background && !pr.status) pr.child?.kill('SIGKILL');
        },
      };
    };

    const exec = async (req: ExecRequest, o: { signal?: AbortSignal } = {}): Promise<ExecHandle> => {
      execs.push({ vmId, req });
      if (!req.argv === !req.cmd) throw new HangarError('GUEST_OP_FAILED', 'exactly one of argv and cmd', { guestCode: 'BAD_REQUEST' });
      const argv = req.argv ?? ['/bin/sh', '-c', req.cmd!];
      const proc = `p${next++}`;
      let resolveExit!: (s: ExitStatus) => void;
      const exit = new Promise<ExitStatus>((r) => { resolveExit = r; });
      const pr: Proc & { vmId: string } = {
        vmId, proc, pid: 0, argv, ...(req.tag ? { tag: req.tag } : {}), background: !!req.background, startedAt: Date.now(), child: null,
        kept: [], keptBytes: 0, sinks: new Set(), exit, timedOut: false,
      };
      const finish = (s: ExitStatus): void => {
        pr.status = s;
        for (const k of pr.sinks) { k.stdout.end(); k.stderr.end(); }
        pr.sinks.clear();
        resolveExit(s);
      };
      if (opts.spawn === false) {
        procs.set(proc, pr);
        const h = handleFor(pr, req.stdin || req.pty ? new PassThrough() : null, false);
        setImmediate(() => finish({ code: 0, signal: null, timedOut: false }));
        return h;
      }
      const cwd = req.cwd ? host(req.cwd) : root;
      await stat(cwd).catch((e: unknown) => { throw guestError(e, req.cwd ?? '/'); });
      const merged = !!req.pty;
      const child = spawn(argv[0]!, argv.slice(1), {
        cwd, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: root, ...req.env },
        stdio: [req.stdin || req.pty ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      });
      const started = await new Promise<boolean>((r) => { child.once('spawn', () => r(true)); child.once('error', () => r(false)); });
      if (!started) throw new HangarError('GUEST_OP_FAILED', `cannot run ${argv[0]}: not found`, { guestCode: 'ENOENT', errno: 'ENOENT' });
      pr.child = child;
      pr.pid = child.pid ?? 0;
      procs.set(proc, pr);
      const feed = (which: 'stdout' | 'stderr') => (b: Buffer): void => {
        pr.kept.push(b);
        pr.keptBytes += b.length;
        while (pr.keptBytes > KEEP_BYTES && pr.kept.length > 1) pr.keptBytes -= pr.kept.shift()!.length;
        for (const k of pr.sinks) {
          // Flow control end to end: a slow reader pauses the process's pipe.
          if (!k[merged ? 'stdout' : which].write(b)) {
            const src = which === 'stdout' ? child.stdout! : child.stderr!;
            src.pause();
            k[merged ? 'stdout' : which].once('drain', () => src.resume());
          }
        }
      };
      child.stdout!.on('data', feed('stdout'));
      child.stderr!.on('data', feed('stderr'));
      let timer: NodeJS.Timeout | undefined;
      if (req.timeoutMs) {
        timer = setTimeout(() => {
          pr.timedOut = true;
          child.kill('SIGTERM');
          setTimeout(() => child.kill('SIGKILL'), 2000).unref();
        }, req.timeoutMs);
      }
      child.on('close', (code, signal) => { clearTimeout(timer); finish({ code, signal: sigName(signal), timedOut: pr.timedOut }); });
      const h = handleFor(pr, child.stdin ?? null, false);
      o.signal?.addEventListener('abort', () => h.detach(), { once: true });
      return h;
    };

    const find = (proc: string): Proc & { vmId: string } => {
      const p = procs.get(proc);
      if (!p || p.vmId !== vmId) throw new HangarError('PROC_NOT_FOUND', `no process ${proc}`, { proc });
      return p;
    };

    const session: AgentSession = {
      session: `fake-${++sessions}`,
      hostname: 'fake-guest',
      exec,
      attach: async (proc) => handleFor(find(proc), null, true),
      ps: async (): Promise<ProcInfo[]> => [...procs.values()].filter((p) => p.vmId === vmId).map((p) => ({
        proc: p.proc, pid: p.pid, argv: p.argv, ...(p.tag ? { tag: p.tag } : {}), background: p.background, running: !p.status, ...(p.status ? { exit: p.status } : {}), startedAt: p.startedAt,
      })),
      signal: async (proc, s) => { const p = find(proc); controls.push({ vmId, op: 'signal', proc, args: [s] }); p.child?.kill(nodeSignal(s)); },
      wait: async (proc) => find(proc).exit,
      stat: toStat,
      list: async (p) => guarded(p, async () => {
        const names = (await readdir(host(p))).sort();
        return Promise.all(names.map(async (name): Promise<DirEntry> => {
          const path = p.endsWith('/') ? `${p}${name}` : `${p}/${name}`;
          return { name, path, ...(await toStat(path)) };
        }));
      }),
      mkdir: async (p, o = {}) => guarded(p, async () => { await mkdir(host(p), { recursive: !!o.parents, ...(o.mode !== undefined ? { mode: o.mode } : {}) }); }),
      rm: async (p, o = {}) => guarded(p, async () => { await lstat(host(p)); await rm(host(p), { recursive: !!o.recursive }); }),
      mv: async (from, to) => guarded(from, () => rename(host(from), host(to))),
      chmod: async (p, mode) => guarded(p, () => chmod(host(p), mode)),
      chown: async (p, uid, gid) => guarded(p, () => chown(host(p), uid, gid)),
      readFile: async (p, o = {}) => {
        const st = await toStat(p);
        if (st.type !== 'file') throw new HangarError('GUEST_OP_FAILED', `${p}: EISDIR`, { path: p, errno: 'EISDIR' });
        const start = o.offset ?? 0;
        const size = Math.max(0, Math.min(st.size - start, o.length ?? Infinity));
        const stream = size === 0 ? Readable.from([]) : createReadStream(host(p), { start, end: start + size - 1, highWaterMark: 256 * 1024 });
        o.signal?.addEventListener('abort', () => stream.destroy(), { once: true });
        return { size, stream };
      },
      writeFile: async (p, source, o = {}) => {
        const dest = host(p);
        await stat(dirname(dest)).catch((e: unknown) => { throw guestError(e, dirname(p)); });
        const tmp = o.append ? dest : `${dest}.hangar-tmp-${process.pid}-${next++}`;
        let size = 0;
        const count = async function* (src: AsyncIterable<Buffer>): AsyncIterable<Buffer> { for await (const b of src) { size += b.length; yield b; } };
        try {
          await pipeline(source as AsyncIterable<Buffer>, count, createWriteStream(tmp, { flags: o.append ? 'a' : 'w', ...(o.mode !== undefined ? { mode: o.mode } : {}) }), ...(o.signal ? [{ signal: o.signal }] as const : []));
          if (o.mode !== undefined) await chmod(tmp, o.mode);
          if (!o.append) await rename(tmp, dest);
        } catch (e) {
          if (!o.append) await rm(tmp, { force: true });
          throw e instanceof HangarError ? e : (e as NodeJS.ErrnoException).code?.startsWith('E') ? guestError(e, p) : e;
        }
        return { size };
      },
      watch: async (p) => {
        const dir = host(p);
        await stat(dir).catch((e: unknown) => { throw guestError(e, p); });
        const queue: WatchEvent[] = [];
        let wake: (() => void) | null = null;
        let closed = false;
        const w = fsWatch(dir, (type, name) => {
          queue.push({ type: type === 'rename' ? 'create' : 'write', path: `${p.replace(/\/$/, '')}/${String(name ?? '')}` });
          wake?.();
        });
        const watcher: Watcher = {
          close: () => { closed = true; w.close(); wake?.(); },
          [Symbol.asyncIterator]: async function* () {
            while (!closed) {
              if (queue.length) { yield queue.shift()!; continue; }
              await new Promise<void>((r) => { wake = r; });
              wake = null;
            }
          },
        };
        return watcher;
      },
      connectTcp: (port, h = '127.0.0.1') => new Promise<Duplex>((resolve, reject) => {
        const s = connect(port, h, () => resolve(s));
        s.once('error', (e) => reject(new HangarError('GUEST_OP_FAILED', `connect ${h}:${port}: ${(e as NodeJS.ErrnoException).code}`, { errno: (e as NodeJS.ErrnoException).code })));
      }),
      info: async () => (opts.info ? opts.info(vmId) : HEALTHY_INFO),
      ping: async () => 0,
    };
    return session;
  };

  return {
    execs, controls, rootOf,
    session: async (vmId) => {
      if (opts.unavailable?.has(vmId)) throw new HangarError('AGENT_UNAVAILABLE', `the agent of ${vmId} does not answer (fake)`, { vmId });
      return sessionFor(vmId);
    },
    status: (vmId): AgentStatus => (opts.unavailable?.has(vmId) ? { state: 'connecting' } : { state: 'ready', session: 'fake', since: 0 }),
    close: () => { for (const p of procs.values()) if (!p.status) p.child?.kill('SIGKILL'); },
  };
}
