// What an envd call knows once its sandbox is authorised (src/e2b/envd.ts): the VM, its E2B fields, the user the
// SDK asked for, and the way to its guest agent; the processes it started (pid → agent process, with the live
// handle that takes stdin, resizes and signals); and Hangar's errors as connect-rpc codes the SDK maps.
import { Code, ConnectError, createContextKey, type HandlerContext } from '@connectrpc/connect';
import type { AgentSession, ExecHandle } from '../agent/port.js';
import { toHangarError, type ErrorCode } from '../errors.js';
import type { E2bFields } from './model.js';

export interface SandboxCall {
  vmId: string;
  fields: E2bFields;
  /** The SDK's user (Authorization: Basic base64("name:")): "root", or undefined for the default (desktop) user. */
  user: string | undefined;
  session(): Promise<AgentSession>;
  procs: ProcTable;
}

export const SANDBOX_KEY = createContextKey<SandboxCall | null>(null, { description: 'the authorised sandbox' });

export function callOf(ctx: HandlerContext): SandboxCall {
  const c = ctx.values.get(SANDBOX_KEY);
  if (!c) throw new ConnectError('no sandbox on this call', Code.Internal);
  return c;
}

/** The user of a Basic Authorization header ("user:" base64), or undefined. "user" (E2B's default) is Hangar's default user. Pure. */
export function userOf(authorization: string | undefined): string | undefined {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(authorization ?? '');
  if (!m) return undefined;
  const name = Buffer.from(m[1]!, 'base64').toString('utf8').split(':')[0] ?? '';
  return name && name !== 'user' ? name : undefined;
}

export interface ProcEntry {
  proc: string;
  pid: number;
  cmd: string;
  args: string[];
  envs: Record<string, string>;
  cwd?: string;
  tag?: string;
  pty: boolean;
  handle: ExecHandle | null;
}

/** The processes envd calls started in one sandbox, by guest pid (entries go when the process ends). */
export class ProcTable {
  private readonly byPid = new Map<number, ProcEntry>();
  add(e: ProcEntry): void { this.byPid.set(e.pid, e); }
  get(pid: number): ProcEntry | undefined { return this.byPid.get(pid); }
  byTag(tag: string): ProcEntry | undefined { return [...this.byPid.values()].find((e) => e.tag === tag); }
  remove(pid: number): void { this.byPid.delete(pid); }
  all(): ProcEntry[] { return [...this.byPid.values()]; }
}

const CODES: Partial<Record<ErrorCode, Code>> = {
  VM_NOT_FOUND: Code.Unavailable, PROC_NOT_FOUND: Code.NotFound, GUEST_PATH_NOT_FOUND: Code.NotFound,
  GUEST_PATH_EXISTS: Code.AlreadyExists, GUEST_PERMISSION_DENIED: Code.PermissionDenied, INVALID_ARGUMENT: Code.InvalidArgument,
  AGENT_UNAVAILABLE: Code.Unavailable, VM_INVALID_STATE: Code.Unavailable, AGENT_TIMEOUT: Code.DeadlineExceeded,
  UNAUTHORIZED: Code.Unauthenticated, GUEST_OP_FAILED: Code.InvalidArgument,
};

/** Any failure as the ConnectError the SDK maps to its classes (NotFound → NotFoundError/FileNotFoundError, …). */
export function toConnectError(e: unknown): ConnectError {
  if (e instanceof ConnectError) return e;
  const err = toHangarError(e);
  return new ConnectError(err.message, CODES[err.code] ?? Code.Internal);
}

/** Runs a handler, its failures as ConnectErrors. */
export async function rpc<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (e) {
    throw toConnectError(e);
  }
}
