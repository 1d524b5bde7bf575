// AgentSession (port.ts) over one Session: exec handles with flow-controlled stdout/stderr Readables and a stdin
// Writable, attach/ps/wait/signal, file ops, streamed reads and writes (never buffered whole), watch, tcp, info.
import { Duplex, Readable, Writable } from 'node:stream';
import { HangarError } from '../errors.js';
import type { AgentSession, DirEntry, ExecHandle, ExecRequest, ExitStatus, FileStat, GuestInfo, ProcInfo, WatchEvent, Watcher } from './port.js';
import type { HostStream, Session } from './session.js';

/** Consumption of a Readable fed from a stream: bytes pushed minus bytes still buffered, reported as they grow. */
class Consumption {
  private pushed = 0;
  private reported = 0;
  constructor(private readonly s: HostStream, private readonly r: Readable) {}
  pushedBytes(n: number): void { this.pushed += n; }
  check(): void {
    const consumed = this.pushed - this.r.readableLength;
    if (consumed > this.reported) { this.s.consume(consumed - this.reported); this.reported = consumed; }
  }
}

/** A Readable fed by a stream's DATA (or STDERR): the window is granted as the consumer reads. */
class GuestReadable extends Readable {
  private readonly use: Consumption;
  constructor(s: HostStream) { super({ highWaterMark: 64 * 1024 }); this.use = new Consumption(s, this); }
  feed(b: Buffer): void {
    this.use.pushedBytes(b.length);
    this.push(b);
    this.use.check();
  }
  override _read(): void { this.use.check(); }
}

function stdinWritable(s: HostStream): Writable {
  return new Writable({
    highWaterMark: 64 * 1024,
    write: (chunk: Buffer, _enc, cb) => { s.write(chunk).then(() => cb(), (e: Error) => cb(e)); },
    final: (cb) => { s.eof(); cb(); },
  });
}

function exitOf(e: Record<string, unknown>): ExitStatus {
  return { code: typeof e.code === 'number' ? e.code : null, signal: typeof e.signal === 'string' ? e.signal : null, timedOut: e.timedOut === true };
}

const str = (v: unknown, d = ''): string => (typeof v === 'string' ? v : d);
const num = (v: unknown, d = 0): number => (typeof v === 'number' && Number.isFinite(v) ? v : d);

function statOf(r: Record<string, unknown>): FileStat {
  const type = r.type === 'file' || r.type === 'dir' || r.type === 'symlink' ? r.type : 'other';
  return { type, size: num(r.size), mode: num(r.mode), uid: num(r.uid), gid: num(r.gid), mtimeMs: num(r.mtimeMs), ...(typeof r.target === 'string' ? { target: r.target } : {}) };
}

export class AgentClient implements AgentSession {
  constructor(readonly s: Session) {}

  get session(): string { return this.s.id; }
  get hostname(): string { return this.s.hello?.hostname ?? ''; }

  private async call(args: Record<string, unknown>): Promise<Record<string, unknown>> {
    return (await this.s.request(args)).result;
  }

  private handle(stream: HostStream, proc: string, pid: number, withStdin: boolean, background: boolean): ExecHandle {
    const stdout = new GuestReadable(stream);
    const stderr = new GuestReadable(stream);
    let detached = false;
    let settle!: { resolve: (x: ExitStatus) => void; reject: (e: Error) => void };
    const exit = new Promise<ExitStatus>((resolve, reject) => { settle = { resolve, reject }; });
    exit.catch(() => undefined); // a caller that never awaits it must not crash the process
    const end = (): void => { stdout.push(null); stderr.push(null); };
    stream.listen({
      data: (b, isErr) => (isErr ? stderr : stdout).feed(b),
      event: (e) => {
        if (e.type !== 'exit') return;
        this.s.finish(stream, false);
        end();
        settle.resolve(exitOf(e));
      },
      error: (e) => { if (detached) return; stdout.destroy(e); stderr.destroy(e); settle.reject(e); },
    });
    const stdin = withStdin ? stdinWritable(stream) : null;
    stdin?.on('error', () => undefined);
    return {
      proc, pid, stdout, stderr, stdin, exit,
      signal: async (signal) => { await this.signal(proc, signal); },
      resize: async (cols, rows) => { await this.call({ op: 'resize', proc, cols, rows }); },
      detach: () => {
        if (detached) return;
        detached = true;
        void background;
        stream.cancel();
        end();
      },
    };
  }

  async exec(req: ExecRequest, opts: { signal?: AbortSignal } = {}): Promise<ExecHandle> {
    if (!req.argv === !req.cmd) throw new HangarError('INVALID_ARGUMENT', 'exec takes exactly one of argv and cmd', { field: 'argv' });
    const { result, stream } = await this.s.request({ op: 'exec', ...req }, { keep: true });
    const h = this.handle(stream, str(result.proc), num(result.pid), !!(req.stdin || req.pty), !!req.background);
    if (opts.signal) {
      if (opts.signal.aborted) h.detach();
      else opts.signal.addEventListener('abort', () => h.detach(), { once: true });
    }
    return h;
  }

  async attach(proc: string): Promise<ExecHandle> {
    const { result, stream } = await this.s.request({ op: 'attach', proc }, { keep: true });
    return this.handle(stream, proc, num(result.pid), false, true);
  }

  async ps(): Promise<ProcInfo[]> {
    const r = await this.call({ op: 'ps' });
    const procs = Array.isArray(r.procs) ? (r.procs as Record<string, unknown>[]) : [];
    return procs.map((p) => ({
      proc: str(p.proc), pid: num(p.pid), argv: Array.isArray(p.argv) ? p.argv.map((a) => String(a)) : [],
      ...(typeof p.tag === 'string' ? { tag: p.tag } : {}),
      background: p.background === true, running: p.running === true, startedAt: num(p.startedAt),
      ...(p.exit && typeof p.exit === 'object' ? { exit: exitOf(p.exit as Record<string, unknown>) } : {}),
    }));
  }

  async signal(proc: string, signal: string): Promise<void> { await this.call({ op: 'signal', proc, signal }); }

  async wait(proc: string): Promise<ExitStatus> {
    const { stream } = await this.s.request({ op: 'wait', proc }, { keep: true });
    return new Promise((resolve, reject) => {
      stream.listen({ event: (e) => { if (e.type === 'exit') { this.s.finish(stream, false); resolve(exitOf(e)); } }, error: reject });
    });
  }

  async stat(path: string): Promise<FileStat> { return statOf(await this.call({ op: 'stat', path })); }

  async list(path: string, opts: { depth?: number } = {}): Promise<DirEntry[]> {
    const r = await this.call({ op: 'list', path, ...(opts.depth ? { depth: opts.depth } : {}) });
    const entries = Array.isArray(r.entries) ? (r.entries as Record<string, unknown>[]) : [];
    return entries.map((e) => ({ name: str(e.name), path: str(e.path), ...statOf(e) }));
  }

  async mkdir(path: string, opts: { parents?: boolean; mode?: number } = {}): Promise<void> { await this.call({ op: 'mkdir', path, ...opts }); }
  async rm(path: string, opts: { recursive?: boolean } = {}): Promise<void> { await this.call({ op: 'rm', path, ...opts }); }
  async mv(from: string, to: string): Promise<void> { await this.call({ op: 'mv', from, to }); }
  async chmod(path: string, mode: number): Promise<void> { await this.call({ op: 'chmod', path, mode }); }
  async chown(path: string, uid: number, gid: number): Promise<void> { await this.call({ op: 'chown', path, uid, gid }); }

  async readFile(path: string, opts: { offset?: number; length?: number; signal?: AbortSignal } = {}): Promise<{ size: number; stream: Readable }> {
    const { result, stream } = await this.s.request({ op: 'read', path, ...(opts.offset ? { offset: opts.offset } : {}), ...(opts.length !== undefined ? { length: opts.length } : {}) }, { keep: true });
    const out = new GuestReadable(stream);
    stream.listen({ data: (b) => out.feed(b), eof: () => { this.s.finish(stream, false); out.push(null); }, error: (e) => out.destroy(e) });
    out.on('close', () => { if (!stream.closed) stream.cancel(); });
    opts.signal?.addEventListener('abort', () => out.destroy(new HangarError('CANCELLED', 'read cancelled', {})), { once: true });
    return { size: num(result.size, -1), stream: out };
  }

  async writeFile(path: string, source: Readable | AsyncIterable<Buffer>, opts: { mode?: number; uid?: number; gid?: number; append?: boolean; signal?: AbortSignal } = {}): Promise<{ size: number }> {
    const { signal, ...rest } = opts;
    const { stream } = await this.s.request({ op: 'write', path, ...rest }, { keep: true });
    const written = new Promise<number>((resolve, reject) => {
      stream.listen({ event: (e) => { if (e.type === 'written') { this.s.finish(stream, false); resolve(num(e.size)); } }, error: reject });
    });
    written.catch(() => undefined);
    try {
      for await (const chunk of source) {
        if (signal?.aborted) throw new HangarError('CANCELLED', 'write cancelled', {});
        const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
        await stream.write(b);
      }
      stream.eof();
    } catch (e) {
      stream.cancel();
      throw e;
    }
    return { size: await written };
  }

  async watch(path: string, opts: { recursive?: boolean } = {}): Promise<Watcher> {
    const { stream } = await this.s.request({ op: 'watch', path, ...opts }, { keep: true });
    const queue: WatchEvent[] = [];
    let wake: (() => void) | null = null;
    let done = false;
    let failure: Error | null = null;
    const kick = (): void => { const w = wake; wake = null; w?.(); };
    const onEvent = (e: Record<string, unknown>): void => {
      const types = ['create', 'write', 'remove', 'rename', 'chmod'];
      if (typeof e.type !== 'string' || !types.includes(e.type) || typeof e.path !== 'string') return;
      if (queue.length >= 1024) queue.shift(); // a consumer that does not read loses the oldest, memory stays bounded
      queue.push({ type: e.type as WatchEvent['type'], path: e.path });
      kick();
    };
    stream.listen({ event: onEvent, error: (e) => { failure = e; done = true; kick(); } });
    const close = (): void => { if (!done) { done = true; stream.cancel(); kick(); } };
    return {
      close,
      [Symbol.asyncIterator]: async function* () {
        try {
          for (;;) {
            while (queue.length) yield queue.shift()!;
            if (done) { if (failure) throw failure; return; }
            await new Promise<void>((r) => { wake = r; });
          }
        } finally { close(); }
      },
    };
  }

  async connectTcp(port: number, host?: string): Promise<Duplex> {
    const { stream } = await this.s.request({ op: 'tcp', port, ...(host ? { host } : {}) }, { keep: true });
    let use: Consumption | null = null;
    const d = new Duplex({
      highWaterMark: 64 * 1024,
      read: () => use?.check(),
      write: (chunk: Buffer, _enc, cb) => { stream.write(chunk).then(() => cb(), (e: Error) => cb(e)); },
      final: (cb) => { stream.eof(); cb(); },
      destroy: (err, cb) => { if (!stream.closed) stream.cancel(); cb(err); },
    });
    use = new Consumption(stream, d);
    const onData = (b: Buffer): void => {
      use!.pushedBytes(b.length);
      d.push(b);
      use!.check();
    };
    stream.listen({ data: onData, eof: () => d.push(null), error: (e) => d.destroy(e) });
    return d;
  }

  async info(): Promise<GuestInfo> {
    const r = await this.call({ op: 'info' });
    const arr = (v: unknown): Record<string, unknown>[] => (Array.isArray(v) ? (v as Record<string, unknown>[]).filter((x) => x && typeof x === 'object') : []);
    return {
      hostname: str(r.hostname), uptimeMs: num(r.uptimeMs), bootId: str(r.bootId),
      ifaces: arr(r.ifaces).map((i) => ({ name: str(i.name), up: i.up === true, addrs: Array.isArray(i.addrs) ? i.addrs.map(String) : [] })),
      routes: Array.isArray(r.routes) ? r.routes.map(String) : [],
      listening: arr(r.listening).map((l) => ({ proto: str(l.proto), addr: str(l.addr), port: num(l.port), ...(typeof l.pid === 'number' ? { pid: l.pid } : {}) })),
      failed: arr(r.failed).map((f) => ({ name: str(f.name), ...(typeof f.pid === 'number' ? { pid: f.pid } : {}), ...(typeof f.exit === 'string' ? { exit: f.exit } : {}) })),
    };
  }

  ping(): Promise<number> { return this.s.ping(); }

  close(): void { this.s.close(new HangarError('AGENT_UNAVAILABLE', 'the session was closed by the host', {})); }
}
