// `hangar vm exec|shell|ps|kill`: commands inside a VM through its guest agent (the exec WebSocket and the /procs
// routes). exec streams stdout and stderr as produced, forwards stdin when it is not a terminal (or with -i), and
// exits with the command's exit code (128 + n for a signal n); shell is a PTY in raw mode that follows the window's
// size and gives the terminal back as it was.
import { HangarError } from '../errors.js';
import { clientFromEnv } from './client.js';
import { jsonOption, need, table, type CliIO, type Command, type ParsedArgs } from './command.js';
import { exitCodeFor, runExecSocket } from './exec-socket.js';
import { resolveVm, VM_ARG } from './resolve.js';

/** --env K=V (repeated) → an environment object; a word without '=' or with a bad name is refused. Pure. */
export function envFrom(values: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const kv of values) {
    const eq = kv.indexOf('=');
    const k = eq < 0 ? '' : kv.slice(0, eq);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new HangarError('INVALID_ARGUMENT', `--env takes NAME=VALUE (got ${JSON.stringify(kv)})`, { field: '--env', flag: '--env' });
    env[k] = kv.slice(eq + 1);
  }
  return env;
}

/** The start message of `hangar vm exec` from its options and command words. Pure. */
export function execStart(values: ParsedArgs['values'], words: readonly string[], forwardStdin: boolean): Record<string, unknown> {
  if (words.length === 0) throw new HangarError('INVALID_ARGUMENT', 'missing the command to run: hangar vm exec ID [--] CMD…', { field: 'CMD', reason: 'required' });
  const start: Record<string, unknown> = values.shell === true ? { cmd: words.join(' ') } : { argv: [...words] };
  const env = envFrom((values.env as string[] | undefined) ?? []);
  if (Object.keys(env).length) start.env = env;
  if (typeof values.cwd === 'string') start.cwd = values.cwd;
  if (typeof values.user === 'string') start.user = /^\d+$/.test(values.user) ? Number(values.user) : values.user;
  if (typeof values.timeout === 'string') {
    const s = Number(values.timeout);
    if (!Number.isInteger(s) || s < 1) throw new HangarError('INVALID_ARGUMENT', `--timeout must be an integer of at least 1 (got ${JSON.stringify(values.timeout)})`, { field: '--timeout', flag: '--timeout' });
    start.timeoutMs = s * 1000;
  }
  start.stdin = forwardStdin;
  return start;
}

const text = (w: (s: string) => void): ((b: Buffer) => void) => {
  const d = new TextDecoder();
  return (b) => w(d.decode(b, { stream: true }));
};

/** Signals Ctrl-C and friends go to the guest process instead of ending the CLI. */
function forwardSignals(send: (m: object) => void): () => void {
  const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((s) => {
    const h = (): void => send({ type: 'signal', signal: s.slice(3) });
    process.on(s, h);
    return () => process.off(s, h);
  });
  return () => handlers.forEach((off) => off());
}

export const commands: Command[] = [
  {
    path: ['vm', 'exec'], summary: 'Run a command in a VM: its output streamed as produced, its exit code passed through',
    usage: 'ID [--env K=V]… [--cwd DIR] [--user USER] [--timeout SECONDS] [-i] [--shell] [--] CMD…',
    args: [VM_ARG, { name: 'CMD', description: 'the command and its arguments (options of hangar come before it; -- ends them)', optional: true, rest: true }],
    details: 'Runs through the guest agent (no guest network needed). stdin is forwarded when it is not a terminal, or with -i. '
      + 'The exit code is the command\'s; a command killed by signal N exits 128+N. Ctrl-C is passed to the command.',
    options: {
      env: { type: 'string', arg: 'K=V', repeat: true, description: 'an environment variable for the command (repeatable)' },
      cwd: { type: 'string', arg: 'DIR', description: 'working directory in the guest' },
      user: { type: 'string', arg: 'USER', description: 'user name or uid (default the desktop user)' },
      timeout: { type: 'string', arg: 'SECONDS', int: true, description: 'kill the command after this long (TERM, then KILL)' },
      interactive: { type: 'boolean', short: 'i', description: 'forward stdin even when it is a terminal' },
      shell: { type: 'boolean', description: 'run the words as one shell command line (/bin/sh -c) instead of an argv' },
    },
    examples: ['hangar vm exec alice -- uname -a', 'hangar vm exec alice --env LANG=C.UTF-8 --cwd /tmp ls -la', 'hangar vm exec alice -i cat < notes.txt', "hangar vm exec alice --shell 'ps aux | grep Xvfb'"],
    run: async ({ values, positionals }, io) => {
      const stdin = io.stdin ?? null;
      const forward = values.interactive === true || (stdin !== null && !stdin.isTTY);
      const start = execStart(values, positionals.slice(1), forward);
      const api = clientFromEnv(io.env);
      const vm = await resolveVm(api, need(positionals, 'ID'));
      let off = (): void => undefined;
      try {
        const status = await runExecSocket({
          api, vmId: vm.id, start, stdin: forward ? stdin : null,
          stdout: io.stdout ?? text(io.out), stderr: io.stderr ?? text(io.err),
          onStarted: (send) => { off = forwardSignals(send); },
        });
        if (status.timedOut) io.err(`hangar: the command timed out (${start.timeoutMs as number / 1000} s)\n`);
        return exitCodeFor(status);
      } finally {
        off();
      }
    },
  },
  {
    path: ['vm', 'shell'], summary: 'An interactive shell in a VM (a PTY; the terminal is restored when it ends)',
    usage: 'ID [--user USER] [--cwd DIR]', args: [VM_ARG],
    details: 'Raw-mode terminal over the exec WebSocket: keys go to the guest as typed (Ctrl-C included), the PTY follows '
      + 'the window size. Exit the shell (exit, Ctrl-D) to leave. The exit code is the shell\'s.',
    options: {
      user: { type: 'string', arg: 'USER', description: 'user name or uid (default the desktop user)' },
      cwd: { type: 'string', arg: 'DIR', description: 'start in this directory' },
    },
    examples: ['hangar vm shell alice', 'hangar vm shell alice --user root'],
    run: async ({ values, positionals }, io) => {
      const api = clientFromEnv(io.env);
      const vm = await resolveVm(api, need(positionals, 'ID'));
      const out = io.stdout as (NodeJS.WritableStream & { columns?: number; rows?: number; isTTY?: boolean }) | undefined;
      const size = (): { cols: number; rows: number } => ({ cols: out?.columns || 80, rows: out?.rows || 24 });
      const start: Record<string, unknown> = { cmd: 'if [ -x /bin/bash ]; then exec /bin/bash -l; else exec /bin/sh -l; fi', pty: size(), stdin: true };
      if (typeof values.user === 'string') start.user = /^\d+$/.test(values.user) ? Number(values.user) : values.user;
      if (typeof values.cwd === 'string') start.cwd = values.cwd;
      const stdin = io.stdin ?? null;
      const raw = !!stdin?.isTTY && typeof stdin.setRawMode === 'function';
      let onWinch: (() => void) | null = null;
      if (raw) stdin!.setRawMode!(true);
      try {
        const status = await runExecSocket({
          api, vmId: vm.id, start, stdin, stdout: out ?? text(io.out), stderr: io.stderr ?? text(io.err),
          onStarted: (send) => {
            onWinch = () => send({ type: 'resize', ...size() });
            process.on('SIGWINCH', onWinch);
          },
        });
        return exitCodeFor(status);
      } finally {
        if (onWinch) process.off('SIGWINCH', onWinch);
        if (raw) stdin!.setRawMode!(false);
        stdin?.pause();
      }
    },
  },
  {
    path: ['vm', 'ps'], summary: "The guest agent's processes in a VM (background ones stay listed after they end)",
    usage: 'ID [--json]', args: [VM_ARG], options: jsonOption,
    examples: ['hangar vm ps alice', 'hangar vm ps alice --json'],
    run: async ({ values, positionals }, io) => {
      const api = clientFromEnv(io.env);
      const vm = await resolveVm(api, need(positionals, 'ID'));
      const { procs } = await api.request<{ procs: { proc: string; pid: number; argv: string[]; tag?: string; background: boolean; running: boolean; exit?: { code: number | null; signal: string | null } }[] }>('GET', `/v1/vms/${encodeURIComponent(vm.id)}/procs`);
      if (values.json) { io.out(JSON.stringify(procs) + '\n'); return 0; }
      if (!procs.length) { io.out('no processes started through the agent\n'); return 0; }
      io.out(table(['PROC', 'PID', 'STATE', 'KIND', 'TAG', 'COMMAND'], procs.map((p) => [
        p.proc, p.pid, p.running ? 'running' : p.exit?.signal ? `killed (${p.exit.signal})` : `exited (${p.exit?.code ?? '?'})`,
        p.background ? 'background' : 'foreground', p.tag ?? '-', p.argv.join(' ').slice(0, 80),
      ])));
      return 0;
    },
  },
  {
    path: ['vm', 'kill'], summary: 'Kill a process in a VM (or send it --signal)', usage: 'ID PROC [--signal SIG] [--json]',
    args: [VM_ARG, { name: 'PROC', description: "the agent's process id (hangar vm ps lists them)" }],
    options: { signal: { type: 'string', arg: 'SIG', description: 'send this signal (TERM, INT, HUP, …) instead of KILL' }, ...jsonOption },
    examples: ['hangar vm kill alice p3', 'hangar vm kill alice p3 --signal TERM'],
    run: async ({ values, positionals }, io: CliIO) => {
      const api = clientFromEnv(io.env);
      const vm = await resolveVm(api, need(positionals, 'ID'));
      const proc = positionals[1]!;
      const base = `/v1/vms/${encodeURIComponent(vm.id)}/procs/${encodeURIComponent(proc)}`;
      const signal = typeof values.signal === 'string' ? values.signal.toUpperCase().replace(/^SIG/, '') : 'KILL';
      if (signal === 'KILL') await api.request('DELETE', base);
      else await api.request('POST', `${base}/signal`, { signal });
      io.out(values.json ? JSON.stringify({ vm: vm.id, proc, signal }) + '\n' : `sent ${signal} to ${proc} in ${vm.name || vm.id}\n`);
      return 0;
    },
  },
];
