// The CLI's side of the exec WebSocket (GET /v1/vms/:id/exec/ws, protocol in src/api/agent-ws.ts): sends the start
// message, forwards stdin (with backpressure), writes stdout and stderr as they come (pausing the socket while the
// terminal or pipe is full), passes resizes and signals on, and resolves with the exit status. A refusal before the
// upgrade carries the API's error envelope: it becomes the same HangarError an HTTP request would.
import { constants } from 'node:os';
import { WebSocket } from 'ws';
import { HangarError, type ErrorCode } from '../errors.js';
import { errorFromResponse, type ApiClient } from './client.js';

export interface ExitStatus {
  code: number | null;
  signal: string | null;
  timedOut: boolean;
}

/** The exit code a command's status becomes: its own, or 128 + the signal's number (as a shell reports it). Pure. */
export function exitCodeFor(s: ExitStatus): number {
  if (s.code !== null) return s.code;
  const n = s.signal ? (constants.signals as Record<string, number | undefined>)[`SIG${s.signal.replace(/^SIG/, '')}`] : undefined;
  return n !== undefined ? 128 + n : 1;
}

type Out = NodeJS.WritableStream | ((b: Buffer) => void);

export interface ExecSocketOptions {
  api: ApiClient;
  vmId: string;
  /** The start message's fields (argv|cmd, env, cwd, user, timeoutMs, pty, stdin). */
  start: Record<string, unknown>;
  stdin: NodeJS.ReadableStream | null;
  stdout: Out;
  stderr: Out;
  /** Gets a function that sends a control message once the process started (resize on SIGWINCH, signals). */
  onStarted?: (send: (m: object) => void) => void;
}

const HIGH_WATER = 1024 * 1024;

export function runExecSocket(o: ExecSocketOptions): Promise<ExitStatus> {
  const url = `${o.api.url.replace(/^http/, 'ws')}/v1/vms/${encodeURIComponent(o.vmId)}/exec/ws`;
  const ws = new WebSocket(url, { headers: { authorization: o.api.authorization }, perMessageDeflate: false });
  return new Promise<ExitStatus>((resolve, reject) => {
    let exit: ExitStatus | null = null;
    let failure: HangarError | null = null;
    let stdinPaused = false;
    const send = (m: object): void => { if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(m)); };
    const write = (out: Out, b: Buffer): void => {
      if (typeof out === 'function') { out(b); return; }
      if (!out.write(b)) { ws.pause(); out.once('drain', () => ws.resume()); }
    };
    ws.once('unexpected-response', (_req, res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { text += c; });
      res.on('end', () => reject(errorFromResponse(res.statusCode ?? 500, text, `exec in ${o.vmId}`)));
    });
    ws.once('error', (e) => {
      if (!failure) failure = new HangarError('CONTROLLER_UNREACHABLE', `the controller at ${o.api.url} does not answer: ${e.message}`, { url: o.api.url });
    });
    ws.once('open', () => send({ type: 'start', ...o.start }));
    ws.on('message', (data: Buffer, binary: boolean) => {
      if (binary) { write(data[0] === 2 ? o.stderr : o.stdout, data.subarray(1)); return; }
      const m = JSON.parse(data.toString('utf8')) as { type: string; code?: unknown; message?: string; signal?: string | null; timedOut?: boolean };
      if (m.type === 'started') {
        o.onStarted?.(send);
        if (o.stdin) forwardStdin(o.stdin);
      } else if (m.type === 'exit') {
        exit = { code: typeof m.code === 'number' ? m.code : null, signal: m.signal ?? null, timedOut: !!m.timedOut };
      } else if (m.type === 'error') {
        const code = typeof m.code === 'string' ? (m.code as ErrorCode) : 'INTERNAL';
        failure = new HangarError(code, m.message ?? 'the exec failed', {});
      }
    });
    const forwardStdin = (stdin: NodeJS.ReadableStream): void => {
      stdin.on('data', (b: Buffer | string) => {
        if (ws.readyState !== WebSocket.OPEN) return;
        ws.send(typeof b === 'string' ? Buffer.from(b) : b, { binary: true });
        if (!stdinPaused && ws.bufferedAmount > HIGH_WATER) {
          stdinPaused = true;
          stdin.pause();
          const t = setInterval(() => {
            if (ws.bufferedAmount < HIGH_WATER / 2 || ws.readyState !== WebSocket.OPEN) { clearInterval(t); stdinPaused = false; stdin.resume(); }
          }, 20);
        }
      });
      stdin.once('end', () => send({ type: 'eof' }));
      stdin.resume();
    };
    ws.once('close', (code, reason) => {
      o.stdin?.pause();
      if (exit) resolve(exit);
      else reject(failure ?? new HangarError('AGENT_FAILED', `the exec connection closed before the process ended (${code}${reason.length ? ` ${reason.toString()}` : ''})`, { close: code }));
    });
  });
}
