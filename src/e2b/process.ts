// envd's connect-rpc `process` service over the guest agent (src/agent/port.ts): Start (a streamed command: start
// {pid}, data stdout/stderr/pty, end {exitCode, status, error}; keepalives when the client asks), Connect (attach to
// a running one), List, SendInput / StreamInput / CloseStdin, SendSignal, Update (PTY resize). Every command runs as
// an agent background process, so it outlives its stream (the SDK's disconnect() and connect() rely on it); a
// slow reader stops the agent's reads (flow control end to end).
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from '@connectrpc/connect';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { ExecHandle, ExecRequest } from '../agent/port.js';
import { Signal, type Process, type ProcessEventSchema, type ProcessSelector } from './gen/process/process_pb.js';
import { callOf, rpc, toConnectError, type ProcEntry, type SandboxCall } from './context.js';
import { desktopCommand, runDesktop, type DesktopPort } from './desktop.js';

type EventInit = MessageInitShape<typeof ProcessEventSchema>;

/** The end event for an exit status, as envd words it. Pure. */
export function endEvent(s: { code: number | null; signal: string | null; timedOut: boolean }): EventInit {
  const status = s.code !== null ? `exit status ${s.code}` : `signal: ${(s.signal ?? 'killed').toLowerCase()}`;
  const exitCode = s.code ?? -1;
  return { event: { case: 'end', value: { exitCode, exited: s.code !== null, status, ...(exitCode !== 0 ? { error: status } : {}) } } };
}

/** The keepalive interval a client asked for (Keepalive-Ping-Interval, seconds), in ms; 0: none. Pure. */
export function keepaliveMs(header: string | null): number {
  const n = Number(header);
  return Number.isFinite(n) && n > 0 ? Math.min(n, 3600) * 1000 : 0;
}

/** The events of a running process: data as produced (pausing its output while unread), then its end. */
export async function* processEvents(h: ExecHandle, pty: boolean, keepMs: number, signal: AbortSignal): AsyncGenerator<EventInit> {
  const queue: { which: 'stdout' | 'stderr'; data: Buffer }[] = [];
  let open = 2;
  let wake: (() => void) | null = null;
  const poke = (): void => { const w = wake; wake = null; w?.(); };
  for (const which of ['stdout', 'stderr'] as const) {
    const r = h[which];
    r.on('data', (data: Buffer) => {
      queue.push({ which, data });
      if (queue.length >= 16) { h.stdout.pause(); h.stderr.pause(); }
      poke();
    });
    let done = false;
    const end = (): void => { if (!done) { done = true; open--; poke(); } };
    r.once('end', end); r.once('error', end); r.once('close', end);
  }
  signal.addEventListener('abort', poke, { once: true });
  let finished = false;
  try {
    while ((open > 0 || queue.length > 0) && !signal.aborted) {
      const item = queue.shift();
      if (!item) {
        let timer: NodeJS.Timeout | undefined;
        const idle = await new Promise<boolean>((res) => {
          wake = () => res(false);
          if (keepMs) timer = setTimeout(() => res(true), keepMs);
        });
        clearTimeout(timer);
        wake = null;
        if (idle) yield { event: { case: 'keepalive', value: {} } };
        continue;
      }
      if (queue.length < 4) { h.stdout.resume(); h.stderr.resume(); }
      const output = pty ? { case: 'pty' as const, value: item.data } : item.which === 'stdout' ? { case: 'stdout' as const, value: item.data } : { case: 'stderr' as const, value: item.data };
      yield { event: { case: 'data', value: { output } } };
    }
    if (signal.aborted) return;
    const status = await h.exit;
    finished = true;
    yield endEvent(status);
  } finally {
    // The client went away (or the stream failed): the process goes on (it is a background one).
    if (!finished) h.detach();
  }
}

function selectorOf(call: SandboxCall, sel: ProcessSelector | undefined): ProcEntry {
  const s = sel?.selector;
  const e = s?.case === 'pid' ? call.procs.get(s.value) : s?.case === 'tag' ? call.procs.byTag(s.value) : undefined;
  if (!e) throw new ConnectError(`process ${s?.case === 'pid' ? s.value : s?.case === 'tag' ? JSON.stringify(s.value) : '?'} not found`, Code.NotFound);
  return e;
}

const liveHandle = (e: ProcEntry): ExecHandle => {
  if (!e.handle) throw new ConnectError(`process ${e.pid} is not attached to this controller`, Code.FailedPrecondition);
  return e.handle;
};

async function writeStdin(e: ProcEntry, data: Uint8Array): Promise<void> {
  const stdin = liveHandle(e).stdin;
  if (!stdin) throw new ConnectError(`process ${e.pid} was started without stdin`, Code.FailedPrecondition);
  await new Promise<void>((res, rej) => stdin.write(Buffer.from(data), (err) => (err ? rej(err) : res())));
}

/** Streams one process's events to the client, keeping its table entry while it runs. */
async function* streamProcess(call: SandboxCall, e: ProcEntry, h: ExecHandle, ctx: HandlerContext): AsyncGenerator<{ event: EventInit }> {
  e.handle = h;
  call.procs.add(e);
  let ended = false;
  try {
    yield { event: { event: { case: 'start', value: { pid: h.pid } } } };
    for await (const ev of processEvents(h, e.pty, keepaliveMs(ctx.requestHeader.get('keepalive-ping-interval')), ctx.signal)) {
      if (ev.event?.case === 'end') ended = true;
      yield { event: ev };
    }
  } finally {
    if (ended) call.procs.remove(e.pid);
    else if (e.handle === h) e.handle = null;
  }
}

/** Pids of natively answered commands (src/e2b/desktop.ts): above any guest pid. */
let nativePid = 4_000_000;

/** @e2b/desktop's commands answered by Hangar (no guest process): start, stdout, end. */
async function* nativeRun(call: SandboxCall, desktop: DesktopPort, cmd: NonNullable<ReturnType<typeof desktopCommand>>): AsyncGenerator<{ event: EventInit }> {
  const pid = nativePid++;
  yield { event: { event: { case: 'start', value: { pid } } } };
  let r: { stdout: string; code: number };
  try {
    r = await runDesktop(cmd, call.vmId, desktop, call.session, call.user);
  } catch (e) {
    const err = toConnectError(e);
    yield { event: { event: { case: 'data', value: { output: { case: 'stderr', value: Buffer.from(err.rawMessage + '\n') } } } } };
    yield { event: endEvent({ code: 1, signal: null, timedOut: false }) };
    return;
  }
  if (r.stdout) yield { event: { event: { case: 'data', value: { output: { case: 'stdout', value: Buffer.from(r.stdout) } } } } };
  yield { event: endEvent({ code: r.code, signal: null, timedOut: false }) };
}

/** A `/bin/bash -l -c CMD` start's CMD (how the SDK runs every command), else null. Pure. */
export const shellCommand = (cmd: string, args: readonly string[]): string | null =>
  cmd === '/bin/bash' && args.length === 3 && args[0] === '-l' && args[1] === '-c' ? args[2]! : null;

export function processService(o: { desktop?: DesktopPort } = {}): ServiceImpl<typeof Process> {
  return {
    async *start(req, ctx) {
      const call = callOf(ctx);
      const cfg = req.process;
      if (!cfg?.cmd) throw new ConnectError('process.cmd is required', Code.InvalidArgument);
      const shell = shellCommand(cfg.cmd, cfg.args);
      const native = o.desktop && shell !== null && !req.pty ? desktopCommand(shell) : null;
      if (native && o.desktop) {
        yield* nativeRun(call, o.desktop, native);
        return;
      }
      const pty = req.pty?.size ? { cols: req.pty.size.cols || 80, rows: req.pty.size.rows || 24 } : undefined;
      const exec: ExecRequest = {
        argv: [cfg.cmd, ...cfg.args],
        env: { ...call.fields.envs, ...cfg.envs },
        ...(cfg.cwd ? { cwd: cfg.cwd } : {}),
        ...(call.user ? { user: call.user } : {}),
        ...(req.stdin || pty ? { stdin: true } : {}),
        ...(pty ? { pty } : {}),
        ...(req.tag ? { tag: req.tag } : {}),
        background: true,
      };
      let h: ExecHandle;
      try {
        h = await (await call.session()).exec(exec);
      } catch (e) {
        throw toConnectError(e);
      }
      yield* streamProcess(call, { proc: h.proc, pid: h.pid, cmd: cfg.cmd, args: cfg.args, envs: cfg.envs, ...(cfg.cwd ? { cwd: cfg.cwd } : {}), ...(req.tag ? { tag: req.tag } : {}), pty: !!pty, handle: h }, h, ctx);
    },
    async *connect(req, ctx) {
      const call = callOf(ctx);
      const e = selectorOf(call, req.process);
      let h: ExecHandle;
      try {
        h = await (await call.session()).attach(e.proc);
      } catch (err) {
        throw toConnectError(err);
      }
      yield* streamProcess(call, e, h, ctx);
    },
    list: (_req, ctx) => rpc(async () => {
      const call = callOf(ctx);
      const running = new Set((await (await call.session()).ps()).filter((p) => p.running).map((p) => p.proc));
      return {
        processes: call.procs.all().filter((e) => running.has(e.proc)).map((e) => ({
          pid: e.pid, ...(e.tag ? { tag: e.tag } : {}), config: { cmd: e.cmd, args: e.args, envs: e.envs, ...(e.cwd ? { cwd: e.cwd } : {}) },
        })),
      };
    }),
    sendInput: (req, ctx) => rpc(async () => {
      const e = selectorOf(callOf(ctx), req.process);
      const input = req.input?.input;
      if (input?.case === 'stdin' || input?.case === 'pty') await writeStdin(e, input.value);
      return {};
    }),
    async streamInput(reqs, ctx) {
      const call = callOf(ctx);
      let e: ProcEntry | undefined;
      for await (const m of reqs) {
        if (m.event.case === 'start') e = selectorOf(call, m.event.value.process);
        else if (m.event.case === 'data') {
          if (!e) throw new ConnectError('stream input: data before start', Code.InvalidArgument);
          const input = m.event.value.input?.input;
          if (input?.case === 'stdin' || input?.case === 'pty') await rpc(() => writeStdin(e!, input.value));
        }
      }
      return {};
    },
    closeStdin: (req, ctx) => rpc(async () => {
      const e = selectorOf(callOf(ctx), req.process);
      liveHandle(e).stdin?.end();
      return {};
    }),
    sendSignal: (req, ctx) => rpc(async () => {
      const call = callOf(ctx);
      const e = selectorOf(call, req.process);
      const sig = req.signal === Signal.SIGTERM ? 'TERM' : 'KILL';
      await (await call.session()).signal(e.proc, sig);
      return {};
    }),
    update: (req, ctx) => rpc(async () => {
      const e = selectorOf(callOf(ctx), req.process);
      const size = req.pty?.size;
      if (size) await liveHandle(e).resize(size.cols, size.rows);
      return {};
    }),
  };
}
