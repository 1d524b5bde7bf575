// The agent's WebSockets, upgraded on the raw Node server beside the VNC bridge:
//   GET /v1/vms/:id/exec/ws              interactive exec (stdin, PTY, signals, attach); Authorization: Bearer …
//   GET /v1/vms/:id/terminal/ws?token=…  the terminal page's PTY: a terminal token (POST /v1/vms/:id/terminal), the
//                                        Origin and Host checked as the viewer's; starts a login shell at once
//                                        (?cols=&rows= its size)
// Every check happens before the upgrade; a refusal is a plain HTTP answer with the API's JSON error body.
//
// Messages, client → server (text, JSON objects):
//   {"type":"start", argv|cmd, env?, cwd?, user?, timeoutMs?, pty?: {cols, rows}, stdin?: bool (default true), tag?}
//   {"type":"attach", "proc": "p1"}   (or {"attach": "p1"})   re-attach to a process: kept output, then live output
//   {"type":"stdin", "data": "text"}  or a binary message: bytes for the process's stdin
//   {"type":"eof"}                    closes the process's stdin
//   {"type":"signal", "signal": "INT"}
//   {"type":"resize", "cols": 120, "rows": 40}
//   {"type":"detach"}                 leave the process running (background ones only; others are killed)
// server → client:
//   {"type":"started", "proc", "pid"} (text), then output as binary messages whose first byte is the stream (1 stdout,
//   2 stderr) followed by its bytes, then {"type":"exit", "code", "signal", "timedOut"} and close 1000.
//   {"type":"error", "code", "message"} and close 1008 (a bad message) or 1011 (the agent failed).
// The first message must be start or attach (exec/ws); stdin sent before "started" is kept (up to 1 MiB) and
// written once the process runs (a terminal's first keys are not lost). Backpressure: while the socket holds more than 1 MiB
// unsent, the process's output is not read (the agent's window closes, the guest process blocks); while the
// process's stdin is full, the socket is not read. Closing the socket detaches (a foreground process is killed).
import type { IncomingMessage, Server } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import type { AgentPort, ExecHandle, ExecRequest } from '../agent/port.js';
import { claimUpgrades } from '../util/upgrades.js';
import { HangarError, toHangarError } from '../errors.js';
import { agentFor, bareSignal, execBody, toExecRequest, type ExecBody } from './agent-common.js';
import { authorizeBearerForVm } from './tenancy.js';
import type { ApiContext } from './routes.js';
import { httpError, redactUrl } from './server.js';

export const EXEC_WS_ROUTE = '/v1/vms/:id/exec/ws';
export const TERMINAL_WS_ROUTE = '/v1/vms/:id/terminal/ws';
const PATH = /^\/v1\/vms\/([^/?#]+)\/(exec|terminal)\/ws$/;
export const STDOUT = 1;
export const STDERR = 2;
const HIGH_WATER = 1024 * 1024;
const MAX_MESSAGE = 1024 * 1024;

export interface AgentSocketsDeps {
  ctx: Pick<ApiContext, 'vms' | 'token' | 'tenancy'>;
  agents: () => AgentPort | undefined;
  /** Admits a terminal page's socket (token, Origin, Host) for a VM id, or throws the refusal. */
  admitTerminal?: (req: IncomingMessage, vmId: string, token: string | undefined) => void;
  /** The shell a terminal runs (default a login shell). */
  terminalArgv?: string[];
  log?: { info(o: object, m: string): void; warn(o: object, m: string): void };
}

export interface AgentSockets {
  /** Live sockets. */
  count(): number;
  close(): Promise<void>;
}

function refuse(socket: Duplex, err: unknown): void {
  const { status, body } = httpError(err);
  if (socket.destroyed) return;
  const json = JSON.stringify(body);
  socket.once('finish', () => socket.destroy());
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\nCache-Control: no-store\r\nContent-Length: ${Buffer.byteLength(json)}\r\n\r\n${json}`);
}

/** The VM id, which socket, and the query of an upgrade URL, or null when the path is not one of these. */
export function parseAgentSocket(url: string | undefined): { vmId: string; kind: 'exec' | 'terminal'; query: URLSearchParams } | null {
  if (!url) return null;
  const q = url.indexOf('?');
  const m = PATH.exec(q < 0 ? url : url.slice(0, q));
  if (!m) return null;
  try {
    return { vmId: decodeURIComponent(m[1]!), kind: m[2] as 'exec' | 'terminal', query: new URLSearchParams(q < 0 ? '' : url.slice(q + 1)) };
  } catch {
    return null;
  }
}

type Msg = Record<string, unknown>;

/** A start message → the exec request (validated like POST /exec's body, plus pty and stdin). Pure. */
export function startRequest(m: Msg): ExecRequest {
  const { type: _t, pty, stdin, ...rest } = m;
  const body = rest as ExecBody;
  if (('argv' in body) === ('cmd' in body)) throw new HangarError('INVALID_ARGUMENT', 'start needs exactly one of argv and cmd', { field: 'argv', reason: 'required' });
  for (const k of Object.keys(body)) if (!(k in execBody.properties)) throw new HangarError('UNKNOWN_FIELD', `start: unknown field ${JSON.stringify(k.slice(0, 32))}`, { field: k, reason: 'unknown' });
  if (body.argv !== undefined && (!Array.isArray(body.argv) || !body.argv.every((a) => typeof a === 'string'))) throw new HangarError('INVALID_ARGUMENT', 'argv must be strings', { field: 'argv', reason: 'type' });
  if (body.cmd !== undefined && typeof body.cmd !== 'string') throw new HangarError('INVALID_ARGUMENT', 'cmd must be a string', { field: 'cmd', reason: 'type' });
  const req = toExecRequest(body);
  if (pty !== undefined) req.pty = size(pty);
  req.stdin = stdin !== false;
  return req;
}

function size(v: unknown): { cols: number; rows: number } {
  const s = v as { cols?: unknown; rows?: unknown } | null;
  const ok = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= 1 && (n as number) <= 1000;
  if (!s || !ok(s.cols) || !ok(s.rows)) throw new HangarError('INVALID_ARGUMENT', 'cols and rows must be integers from 1 to 1000', { field: 'pty', reason: 'range', min: 1, max: 1000 });
  return { cols: s.cols, rows: s.rows };
}

/** Stdin kept while a process starts (bytes). */
const EARLY_STDIN_MAX = 1024 * 1024;

/** Runs one socket: waits for start/attach (unless `first` is given), then pumps both ways. */
function serve(ws: WebSocket, raw: Duplex, open: (m: Msg) => Promise<ExecHandle>, first: Msg | null, log?: AgentSocketsDeps['log']): void {
  let h: ExecHandle | null = null;
  let starting = false;
  let stdinPaused = false;
  // Stdin sent while the process is still starting (a terminal's first keys): kept, bounded, written once it runs.
  const early: Buffer[] = [];
  let earlyBytes = 0;
  const sendJson = (o: object): void => { if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(o)); };
  const fail = (e: unknown, code: number): void => {
    const err = toHangarError(e);
    sendJson({ type: 'error', code: err.code, message: err.message });
    if (ws.readyState === WebSocket.OPEN) ws.close(code, err.code);
  };
  let outPaused = false;
  const resumeOut = (): void => {
    if (outPaused && h && ws.bufferedAmount < HIGH_WATER / 2) { outPaused = false; h.stdout.resume(); h.stderr.resume(); }
  };
  raw.on('drain', resumeOut);
  const pump = (handle: ExecHandle): void => {
    h = handle;
    for (const b of early.splice(0)) writeStdin(b);
    sendJson({ type: 'started', proc: handle.proc, pid: handle.pid });
    let open = 2;
    let exit: object | null = null;
    const done = (): void => {
      if (open > 0 || !exit) return;
      sendJson({ type: 'exit', ...exit });
      if (ws.readyState === WebSocket.OPEN) ws.close(1000, 'exited');
    };
    for (const [stream, tag] of [[handle.stdout, STDOUT], [handle.stderr, STDERR]] as const) {
      stream.on('data', (b: Buffer) => {
        if (ws.readyState !== WebSocket.OPEN) return;
        ws.send(Buffer.concat([Buffer.of(tag), b]), { binary: true });
        if (!outPaused && ws.bufferedAmount > HIGH_WATER) {
          outPaused = true;
          handle.stdout.pause();
          handle.stderr.pause();
          // ws reports drain on the raw socket; poll as well, in case it drained before we paused
          const t = setInterval(() => { resumeOut(); if (!outPaused || ws.readyState !== WebSocket.OPEN) clearInterval(t); }, 50);
        }
      });
      let ended = false;
      const end = (): void => { if (!ended) { ended = true; open--; done(); } };
      stream.once('end', end);
      stream.once('close', end);
      stream.once('error', end);
    }
    handle.exit.then((s) => { exit = { code: s.code, signal: s.signal, timedOut: s.timedOut }; done(); }, (e: unknown) => fail(e, 1011));
    handle.stdin?.on('drain', () => { if (stdinPaused) { stdinPaused = false; ws.resume(); } });
    handle.stdin?.on('error', () => undefined); // a process that closed its stdin
  };
  const begin = (m: Msg): void => {
    starting = true;
    open(m).then(pump, (e: unknown) => fail(e, isInputError(e) ? 1008 : 1011));
  };
  const writeStdin = (b: Buffer): void => {
    if (!h && starting) {
      if (earlyBytes + b.length > EARLY_STDIN_MAX) { fail(new HangarError('PAYLOAD_TOO_LARGE', `more than ${EARLY_STDIN_MAX} bytes of stdin before the process started`), 1008); return; }
      early.push(b);
      earlyBytes += b.length;
      return;
    }
    if (!h?.stdin || h.stdin.writableEnded) return;
    if (!h.stdin.write(b) && !stdinPaused) { stdinPaused = true; ws.pause(); }
  };
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (isBinary) { writeStdin(data); return; }
    let m: Msg;
    try {
      const v = JSON.parse(data.toString('utf8')) as unknown;
      if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
      m = v as Msg;
    } catch {
      fail(new HangarError('INVALID_ARGUMENT', 'messages are JSON objects (or binary stdin)'), 1008);
      return;
    }
    const type = m.type ?? (typeof m.attach === 'string' ? 'attach' : undefined);
    if (!h) {
      if (starting) { if (type === 'stdin' && typeof m.data === 'string') writeStdin(Buffer.from(m.data, 'utf8')); return; } // kept until it runs
      if (type === 'start' || type === 'attach') { begin(typeof m.attach === 'string' && !m.proc ? { type, proc: m.attach } : m); return; }
      fail(new HangarError('INVALID_ARGUMENT', 'the first message is {"type":"start",…} or {"type":"attach","proc":…}'), 1008);
      return;
    }
    const handle: ExecHandle = h;
    const later = (p: Promise<void>): void => { p.catch((e: unknown) => sendJson({ type: 'error', code: toHangarError(e).code, message: toHangarError(e).message })); };
    try {
      switch (type) {
        case 'stdin': if (typeof m.data === 'string') writeStdin(Buffer.from(m.data, 'utf8')); break;
        case 'eof': handle.stdin?.end(); break;
        case 'signal': if (typeof m.signal !== 'string' || !/^(SIG)?[A-Z][A-Z0-9+-]{1,15}$/.test(m.signal)) throw new HangarError('INVALID_ARGUMENT', 'signal: TERM, INT, KILL, …', { field: 'signal' }); later(handle.signal(bareSignal(m.signal))); break;
        case 'resize': { const s = size(m); later(handle.resize(s.cols, s.rows)); break; }
        case 'detach': handle.detach(); if (ws.readyState === WebSocket.OPEN) ws.close(4000, 'detached'); break;
        default: throw new HangarError('INVALID_ARGUMENT', `unknown message type ${JSON.stringify(String(type).slice(0, 32))}`, { field: 'type' });
      }
    } catch (e) {
      fail(e, 1008);
    }
  });
  ws.on('close', () => { h?.detach(); });
  ws.on('error', (e) => { log?.warn({ err: e.message }, 'agent socket failed'); h?.detach(); });
  if (first) begin(first);
}

const isInputError = (e: unknown): boolean => ['INVALID_ARGUMENT', 'UNKNOWN_FIELD', 'PROC_NOT_FOUND', 'GUEST_PATH_NOT_FOUND'].includes(toHangarError(e).code);

/** Handles the agent's WebSocket upgrades on `server` (Fastify's app.server). */
export function attachAgentSockets(server: Server, deps: AgentSocketsDeps): AgentSockets {
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: MAX_MESSAGE });
  const live = new Set<WebSocket>();
  let closing = false;
  const accept = async (req: IncomingMessage, socket: Duplex, head: Buffer, t: NonNullable<ReturnType<typeof parseAgentSocket>>): Promise<void> => {
    if (req.headers.upgrade?.toLowerCase() !== 'websocket' || !req.headers['sec-websocket-key']) throw new HangarError('INVALID_ARGUMENT', 'only WebSocket upgrades are served here');
    let first: Msg | null = null;
    let vmRef = t.vmId;
    if (t.kind === 'exec') {
      // The key's scope and tenant: another tenant's VM is not found.
      vmRef = authorizeBearerForVm(deps.ctx, req.headers.authorization, t.vmId, 'write').vmId;
    } else {
      if (!deps.admitTerminal) throw new HangarError('NOT_FOUND', 'this controller serves no terminal');
      const tokens = t.query.getAll('token');
      deps.admitTerminal(req, t.vmId, tokens.length > 1 ? '!' : tokens[0]);
      const n = (k: string, d: number): number => { const v = Number(t.query.get(k) ?? d); return Number.isInteger(v) && v >= 1 && v <= 1000 ? v : d; };
      first = { type: 'start', argv: deps.terminalArgv ?? ['/bin/bash', '-l'], pty: { cols: n('cols', 80), rows: n('rows', 24) } };
    }
    // The VM and its agent are reached before the upgrade: a VM that is not running is a plain 409.
    const { vm, session } = await agentFor(deps.ctx.vms, deps.agents(), vmRef);
    if (t.kind === 'terminal' && vm.id !== t.vmId) throw new HangarError('VM_NOT_FOUND', `no VM ${t.vmId}`, { id: t.vmId });
    if (socket.destroyed || closing) return;
    wss.handleUpgrade(req, socket, head, (ws) => {
      live.add(ws);
      ws.once('close', () => live.delete(ws));
      const open = async (m: Msg): Promise<ExecHandle> => {
        if (m.type === 'attach') {
          if (typeof m.proc !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(m.proc)) throw new HangarError('INVALID_ARGUMENT', 'attach needs a proc', { field: 'proc' });
          return session.attach(m.proc);
        }
        return session.exec(startRequest(m));
      };
      serve(ws, socket, open, first, deps.log);
      deps.log?.info({ vmId: vm.id, kind: t.kind }, 'agent socket opened');
    });
  };
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const t = parseAgentSocket(req.url);
    if (!t) {
      if (claim.refusesUnclaimed(req.url)) refuse(socket, new HangarError('NOT_FOUND', `no WebSocket route ${redactUrl(req.url ?? '')}`));
      return;
    }
    socket.on('error', () => undefined);
    if (closing) { refuse(socket, new HangarError('CANCELLED', 'the controller is shutting down')); return; }
    accept(req, socket, head, t).catch((e: unknown) => {
      deps.log?.info({ vmId: t.vmId, code: toHangarError(e).code }, 'agent socket refused');
      refuse(socket, e);
    });
  };
  const claim = claimUpgrades(server, (url) => parseAgentSocket(url) !== null);
  server.on('upgrade', onUpgrade);
  return {
    count: () => live.size,
    close: async () => {
      closing = true;
      server.off('upgrade', onUpgrade);
      claim.release();
      for (const ws of live) ws.close(1001, 'the controller is shutting down');
      await new Promise((r) => setTimeout(r, live.size ? 200 : 0));
      for (const ws of live) ws.terminate();
      wss.close();
    },
  };
}
