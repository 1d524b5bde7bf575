// The narrow port between the guest agent's host side (src/agent/, speaking PROTOCOL.md to hangar-agent in the
// guest) and everything that uses it: the exec/terminal/files API and CLI, the doctor's in-guest evidence, CDP and
// computer-use helpers. Users depend on these types only, never on the client's classes.
//
// Errors (HangarError codes in src/errors.ts):
//   AGENT_UNAVAILABLE      the VM has no agent channel, is not running, or its agent does not answer (yet)
//   AGENT_FAILED           the guest broke the protocol (oversized or garbage frames, a flood); the session is dropped
//                          and the VM's agent is marked failed until it reconnects with a fresh session
//   AGENT_TIMEOUT          an answer did not come in time
//   GUEST_PATH_NOT_FOUND   ENOENT in the guest;  GUEST_PATH_EXISTS  EEXIST;  GUEST_PERMISSION_DENIED  EACCES/EPERM
//   GUEST_OP_FAILED        any other failure the guest reported (details.errno, details.guestCode)
//   PROC_NOT_FOUND         no process with that id in the guest agent
import type { Duplex, Readable, Writable } from 'node:stream';

export interface ExecRequest {
  /** argv[0] is looked up in PATH. Exactly one of argv and cmd. */
  argv?: string[];
  /** A shell command line, run by /bin/sh -c. */
  cmd?: string;
  env?: Record<string, string>;
  cwd?: string;
  /** A user name or uid; default the desktop user. */
  user?: string | number;
  /** Whether the process gets a stdin pipe (else /dev/null). */
  stdin?: boolean;
  /** A PTY of this size instead of pipes (stderr merged into stdout). */
  pty?: { cols: number; rows: number };
  /** Survives its stream: listable, attachable, killable later. */
  background?: boolean;
  tag?: string;
  /** Killed (TERM, then KILL after 2 s) when it runs longer. */
  timeoutMs?: number;
}

export interface ExitStatus {
  code: number | null;
  signal: string | null;
  timedOut: boolean;
}

export interface ExecHandle {
  /** The agent's process id (stable for ps/attach/signal), and the guest pid. */
  readonly proc: string;
  readonly pid: number;
  /** Bytes as produced; flow-controlled end to end (a slow reader slows the guest, never grows the host). */
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** Present when the request asked for stdin (or a PTY); end() sends EOF. */
  readonly stdin: Writable | null;
  /** Resolves when the process ends (also for a detached handle: it never resolves after detach). */
  readonly exit: Promise<ExitStatus>;
  signal(signal: string): Promise<void>;
  resize(cols: number, rows: number): Promise<void>;
  /** Stops receiving; the process goes on only if it is a background one (else it is killed). */
  detach(): void;
}

export interface ProcInfo {
  proc: string;
  pid: number;
  argv: string[];
  tag?: string;
  background: boolean;
  running: boolean;
  exit?: ExitStatus;
  startedAt: number;
}

export type FileType = 'file' | 'dir' | 'symlink' | 'other';

export interface FileStat {
  type: FileType;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  mtimeMs: number;
  target?: string;
}

export interface DirEntry extends FileStat {
  name: string;
  path: string;
}

export interface WatchEvent {
  type: 'create' | 'write' | 'remove' | 'rename' | 'chmod';
  path: string;
}

export interface Watcher extends AsyncIterable<WatchEvent> {
  close(): void;
}

export interface GuestIface {
  name: string;
  up: boolean;
  addrs: string[];
}

export interface GuestInfo {
  hostname: string;
  uptimeMs: number;
  bootId: string;
  ifaces: GuestIface[];
  routes: string[];
  listening: { proto: string; addr: string; port: number; pid?: number }[];
  failed: { name: string; pid?: number; exit?: string }[];
}

/** One live session with one VM's agent. */
export interface AgentSession {
  readonly session: string;
  readonly hostname: string;
  exec(req: ExecRequest, opts?: { signal?: AbortSignal }): Promise<ExecHandle>;
  attach(proc: string): Promise<ExecHandle>;
  ps(): Promise<ProcInfo[]>;
  signal(proc: string, signal: string): Promise<void>;
  wait(proc: string): Promise<ExitStatus>;
  stat(path: string): Promise<FileStat>;
  list(path: string, opts?: { depth?: number }): Promise<DirEntry[]>;
  mkdir(path: string, opts?: { parents?: boolean; mode?: number }): Promise<void>;
  rm(path: string, opts?: { recursive?: boolean }): Promise<void>;
  mv(from: string, to: string): Promise<void>;
  chmod(path: string, mode: number): Promise<void>;
  chown(path: string, uid: number, gid: number): Promise<void>;
  /** Streams a guest file; the size is known before the first byte. */
  readFile(path: string, opts?: { offset?: number; length?: number; signal?: AbortSignal }): Promise<{ size: number; stream: Readable }>;
  /** Streams into a guest file (atomically replaced at the end unless append). */
  writeFile(path: string, source: Readable | AsyncIterable<Buffer>, opts?: { mode?: number; uid?: number; gid?: number; append?: boolean; signal?: AbortSignal }): Promise<{ size: number }>;
  watch(path: string, opts?: { recursive?: boolean }): Promise<Watcher>;
  /** A byte stream to a TCP port on the guest's loopback (or another guest-local address). */
  connectTcp(port: number, host?: string): Promise<Duplex>;
  info(): Promise<GuestInfo>;
  /** Round trip in ms. */
  ping(): Promise<number>;
}

export type AgentStatus =
  | { state: 'absent' }
  | { state: 'connecting' }
  | { state: 'ready'; session: string; since: number }
  | { state: 'failed'; code: string; message: string; since: number };

/** Per-VM access to agents, owned by the composition root. */
export interface AgentPort {
  /** The VM's live session, connecting (with a fresh session) when there is none. */
  session(vmId: string, opts?: { timeoutMs?: number; signal?: AbortSignal }): Promise<AgentSession>;
  status(vmId: string): AgentStatus;
}
