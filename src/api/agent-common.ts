// What the agent routes (exec, processes, files, terminal) share: reaching a VM's guest agent through the AgentPort
// (src/agent/port.ts) after the same id/name lookup as every VM route, the schemas of their inputs, and the
// mapping of a running process's output to text. HTTP statuses come from the error registry like everywhere else:
// AGENT_UNAVAILABLE is 503 (the agent does not answer yet: retry), a VM that is not running is VM_INVALID_STATE
// (409), GUEST_PATH_NOT_FOUND and PROC_NOT_FOUND are 404, GUEST_PERMISSION_DENIED 403, GUEST_PATH_EXISTS 409,
// GUEST_OP_FAILED 422 (ENOTDIR, EISDIR, ENOSPC, a user that does not exist…), AGENT_FAILED 502, AGENT_TIMEOUT 504.
import { Type, type Static } from 'typebox';
import type { AgentPort, AgentSession, ExecRequest } from '../agent/port.js';
import type { VmRecord } from '../domain/vm.js';
import { HangarError } from '../errors.js';
import type { VmService } from '../vm/service.js';

/** States in which a guest agent can answer (it starts before READY); a paused or hibernated VM is woken by the port, as for a viewer. */
const AGENT_STATES = ['booting', 'ready', 'paused'];
/** How long a request waits for the VM's agent session. */
export const SESSION_TIMEOUT_MS = 15_000;

/** The VM (by id or name, VM_NOT_FOUND otherwise) and its agent's live session. */
export async function agentFor(vms: VmService, agents: AgentPort | undefined, idOrName: string, opts: { signal?: AbortSignal } = {}): Promise<{ vm: VmRecord; session: AgentSession }> {
  const vm = vms.get(idOrName);
  if (!agents) throw new HangarError('AGENT_UNAVAILABLE', 'this controller has no guest agent support', { id: vm.id });
  if (!AGENT_STATES.includes(vm.state) && !vm.hibernation) {
    throw new HangarError('VM_INVALID_STATE', `VM ${vm.id} is ${vm.state}: its guest agent answers while it runs (start it first)`, { id: vm.id, state: vm.state });
  }
  const session = await agents.session(vm.id, { timeoutMs: SESSION_TIMEOUT_MS, ...(opts.signal ? { signal: opts.signal } : {}) });
  return { vm, session };
}

/** An absolute guest path (no NUL). */
export const guestPath = (description: string) => Type.String({ minLength: 1, maxLength: 4096, pattern: '^/[^\\u0000]*$', description });

export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,255}$/;

/** The exec request as JSON: exactly one of argv and cmd. */
export const execBody = Type.Object({
  argv: Type.Optional(Type.Array(Type.String({ maxLength: 65_536 }), { minItems: 1, maxItems: 4096, description: 'argv[0] is looked up in the guest PATH' })),
  cmd: Type.Optional(Type.String({ minLength: 1, maxLength: 65_536, description: 'a shell command line, run by /bin/sh -c' })),
  env: Type.Optional(Type.Record(Type.String(), Type.String({ maxLength: 65_536 }), { description: 'extra environment variables (names: letters, digits, _)' })),
  cwd: Type.Optional(guestPath('working directory in the guest')),
  user: Type.Optional(Type.Union([Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z_][a-z0-9_-]*\\$?$' }), Type.Integer({ minimum: 0, maximum: 4_294_967_294 })], { description: 'user name or uid (default the desktop user)' })),
  timeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400_000, description: 'killed (TERM, then KILL after 2 s) when it runs longer' })),
  background: Type.Optional(Type.Boolean({ description: 'start it and answer at once (202 {proc, pid}); it outlives the request: see /procs' })),
  tag: Type.Optional(Type.String({ maxLength: 128, description: 'a label shown by /procs' })),
  maxOutputBytes: Type.Optional(Type.Integer({ minimum: 0, maximum: 16 * 1024 * 1024, description: 'buffered answer: bytes kept of stdout and of stderr each (default 1 MiB; the rest is counted, not kept)' })),
}, { additionalProperties: false, oneOf: [{ required: ['argv'] }, { required: ['cmd'] }] });
export type ExecBody = Static<typeof execBody>;

export const execQuery = Type.Object({
  stream: Type.Optional(Type.Literal('sse', { description: 'stream the output as Server-Sent Events (also with Accept: text/event-stream)' })),
  encoding: Type.Optional(Type.Union([Type.Literal('utf8'), Type.Literal('base64')], { description: 'how output bytes are carried: utf8 text (default; invalid bytes become U+FFFD) or base64' })),
}, { additionalProperties: false });
export type ExecQuery = Static<typeof execQuery>;

/** The exec request the port takes, from a validated body. Env names are checked here (the schema cannot say it). */
export function toExecRequest(b: ExecBody): ExecRequest {
  for (const k of Object.keys(b.env ?? {})) {
    if (!ENV_NAME.test(k)) throw new HangarError('INVALID_ARGUMENT', `env: ${JSON.stringify(k.slice(0, 64))} is not a variable name (letters, digits, _; not starting with a digit)`, { field: 'env', in: 'body', reason: 'format' });
  }
  return {
    ...(b.argv ? { argv: b.argv } : { cmd: b.cmd! }),
    ...(b.env ? { env: b.env } : {}),
    ...(b.cwd ? { cwd: b.cwd } : {}),
    ...(b.user !== undefined ? { user: b.user } : {}),
    ...(b.timeoutMs ? { timeoutMs: b.timeoutMs } : {}),
    ...(b.background ? { background: true } : {}),
    ...(b.tag ? { tag: b.tag } : {}),
  };
}

/** Bytes of output as one encoding, chunk by chunk (a UTF-8 character split across chunks is kept whole). */
export class OutputText {
  private readonly decoder = new TextDecoder('utf-8', { fatal: false });
  constructor(readonly encoding: 'utf8' | 'base64' = 'utf8') {}
  push(b: Buffer): string {
    return this.encoding === 'base64' ? b.toString('base64') : this.decoder.decode(b, { stream: true });
  }
  end(): string {
    return this.encoding === 'base64' ? '' : this.decoder.decode();
  }
}

/** Keeps the first `limit` bytes of a stream and counts the rest. */
export class BoundedBuffer {
  private readonly parts: Buffer[] = [];
  kept = 0;
  total = 0;
  constructor(private readonly limit: number) {}
  push(b: Buffer): void {
    this.total += b.length;
    const room = this.limit - this.kept;
    if (room <= 0) return;
    const part = b.length <= room ? b : b.subarray(0, room);
    this.parts.push(part);
    this.kept += part.length;
  }
  get truncated(): boolean { return this.total > this.kept; }
  bytes(): Buffer { return Buffer.concat(this.parts); }
}

/** A signal name as the agent takes it: TERM, KILL, INT, … (with or without SIG). */
export const signalName = Type.String({ pattern: '^(SIG)?[A-Z][A-Z0-9+-]{1,15}$', description: 'TERM, KILL, INT, HUP, USR1, …' });
export const bareSignal = (s: string): string => s.replace(/^SIG/, '');
