// A QMP client over a Unix socket. QMP is one JSON object per line: a greeting, then responses (matched to their
// command by "id") interleaved with asynchronous events. Every failure is HangarError('QMP_ERROR').
import { connect, type Socket } from 'node:net';
import { HangarError } from '../../errors.js';

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

export interface QmpGreeting {
  QMP: { version: { qemu: { major: number; minor: number; micro: number }; package?: string }; capabilities: string[] };
}

/** query-status: `status` is a RunState such as running, paused, prelaunch, inmigrate, postmigrate, shutdown. */
export interface QmpStatus {
  status: string;
  running: boolean;
  singlestep?: boolean;
}

export interface QmpOptions {
  /** For connect + greeting + capabilities negotiation. */
  timeoutMs?: number;
  /** Default per-command timeout. */
  commandTimeoutMs?: number;
  signal?: AbortSignal;
}

interface Pending {
  command: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

const DEFAULT_TIMEOUT_MS = 10_000;
/** A line longer than this is not QMP; refuse it rather than buffer without bound. */
const MAX_LINE = 16 * 1024 * 1024;

function qmpError(message: string, details: Record<string, unknown> = {}, cause?: unknown): HangarError {
  return new HangarError('QMP_ERROR', message, details, cause === undefined ? undefined : { cause });
}

export class QmpClient {
  private buf = '';
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private readonly listeners = new Set<(e: QmpEvent) => void>();
  private greetingWaiter: { resolve: (g: QmpGreeting) => void; reject: (e: Error) => void } | null = null;
  private closeError: HangarError | null = null;
  private greetingValue: QmpGreeting | null = null;
  readonly closed: Promise<void>;
  private markClosed!: () => void;

  private constructor(private readonly socket: Socket, readonly path: string, private readonly commandTimeoutMs: number) {
    this.closed = new Promise((r) => { this.markClosed = r; });
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', (e) => this.fail(qmpError(`QMP socket ${path}: ${e.message}`, { path }, e)));
    socket.on('close', () => this.fail(qmpError(`QMP connection to ${path} closed`, { path, closed: true })));
  }

  /** Connects, reads the greeting and negotiates capabilities. */
  static async connect(path: string, opts: QmpOptions = {}): Promise<QmpClient> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const socket = connect({ path });
    const client = new QmpClient(socket, path, opts.commandTimeoutMs ?? DEFAULT_TIMEOUT_MS);
    const timer = setTimeout(() => client.fail(qmpError(`no QMP greeting on ${path} within ${timeoutMs} ms`, { path, timeoutMs })), timeoutMs);
    const onAbort = (): void => client.fail(qmpError('QMP connect cancelled', { path, cancelled: true }));
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const greeting = await new Promise<QmpGreeting>((resolve, reject) => {
        if (client.closeError) reject(client.closeError);
        else client.greetingWaiter = { resolve, reject };
      });
      client.greetingValue = greeting;
      await client.execute('qmp_capabilities', undefined, { timeoutMs });
      return client;
    } catch (e) {
      client.close();
      throw e;
    } finally {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
    }
  }

  get greeting(): QmpGreeting {
    return this.greetingValue!;
  }

  /** "7.2.22" */
  get version(): string {
    const v = this.greetingValue?.QMP.version.qemu;
    return v ? `${v.major}.${v.minor}.${v.micro}` : 'unknown';
  }

  get isClosed(): boolean {
    return this.closeError !== null;
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts: { timeoutMs?: number } = {}): Promise<T> {
    if (this.closeError) return Promise.reject(qmpError(`${command}: ${this.closeError.message}`, { command, ...this.closeError.details }));
    const id = `hangar-${this.nextId++}`;
    const timeoutMs = opts.timeoutMs ?? this.commandTimeoutMs;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(qmpError(`QMP ${command} got no answer within ${timeoutMs} ms`, { command, timeoutMs, path: this.path }));
      }, timeoutMs);
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject, timer });
      const msg = args === undefined ? { execute: command, id } : { execute: command, arguments: args, id };
      this.socket.write(`${JSON.stringify(msg)}\n`);
    });
  }

  /** Subscribes to events; returns the unsubscribe. */
  onEvent(listener: (e: QmpEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  waitForEvent(name: string, opts: { timeoutMs?: number; match?: (e: QmpEvent) => boolean } = {}): Promise<QmpEvent> {
    const timeoutMs = opts.timeoutMs ?? this.commandTimeoutMs;
    return new Promise((resolve, reject) => {
      let settled = false;
      const finish = (fn: () => void): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        off();
        fn();
      };
      const off = this.onEvent((e) => {
        if (e.event === name && (!opts.match || opts.match(e))) finish(() => resolve(e));
      });
      const timer = setTimeout(() => finish(() => reject(qmpError(`no QMP event ${name} within ${timeoutMs} ms`, { event: name, timeoutMs }))), timeoutMs);
      void this.closed.then(() => finish(() => reject(qmpError(`QMP connection closed while waiting for ${name}`, { event: name, closed: true }))));
    });
  }

  close(): void {
    this.fail(qmpError(`QMP connection to ${this.path} closed by Hangar`, { path: this.path, closed: true }));
  }

  // ---- commands Hangar uses
  queryStatus(): Promise<QmpStatus> { return this.execute<QmpStatus>('query-status'); }
  async stop(): Promise<void> { await this.execute('stop'); }
  async cont(): Promise<void> { await this.execute('cont'); }
  /** ACPI power button: only a guest with ACPI reacts (microvm here runs with acpi=off). */
  async systemPowerdown(): Promise<void> { await this.execute('system_powerdown'); }

  /** Asks QEMU to exit. QEMU may close the socket before or after answering; both mean success. */
  async quit(): Promise<void> {
    try {
      await this.execute('quit');
    } catch (e) {
      if (!(e instanceof HangarError && e.details.closed)) throw e;
    }
  }

  /** Starts a migration (snapshot = migrate to a file through exec:); poll queryMigrate for completion. */
  async migrate(uri: string): Promise<void> { await this.execute('migrate', { uri }); }
  queryMigrate(): Promise<{ status?: string; [k: string]: unknown }> { return this.execute('query-migrate'); }

  // ---- framing
  private onData(chunk: string): void {
    this.buf += chunk;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (line) this.onMessage(line);
      if (this.closeError) return;
    }
    if (this.buf.length > MAX_LINE) this.fail(qmpError(`QMP message over ${MAX_LINE} bytes without a newline`, { path: this.path }));
  }

  private onMessage(line: string): void {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch (e) {
      this.fail(qmpError(`malformed QMP message: ${line.slice(0, 200)}`, { path: this.path }, e));
      return;
    }
    if (msg === null || typeof msg !== 'object') {
      this.fail(qmpError(`malformed QMP message: ${line.slice(0, 200)}`, { path: this.path }));
      return;
    }
    if ('QMP' in msg) {
      const w = this.greetingWaiter;
      this.greetingWaiter = null;
      w?.resolve(msg as unknown as QmpGreeting);
      return;
    }
    if (typeof msg.event === 'string') {
      for (const l of [...this.listeners]) l(msg as unknown as QmpEvent);
      return;
    }
    if ('return' in msg || 'error' in msg) {
      // QEMU answers a command it could not even parse without an id; that can only be the oldest in flight.
      let id = typeof msg.id === 'string' ? msg.id : undefined;
      if (id === undefined && this.pending.size > 0) id = this.pending.keys().next().value;
      const p = id === undefined ? undefined : this.pending.get(id);
      if (!p) return; // a late answer to a command that timed out
      this.pending.delete(id!);
      clearTimeout(p.timer);
      if ('error' in msg) {
        const err = (msg.error ?? {}) as { class?: string; desc?: string };
        p.reject(qmpError(`QMP ${p.command} failed: ${err.desc ?? 'unknown error'}`, { command: p.command, class: err.class ?? null, desc: err.desc ?? null }));
      } else {
        p.resolve(msg.return);
      }
    }
  }

  private fail(error: HangarError): void {
    if (this.closeError) return;
    this.closeError = error;
    const w = this.greetingWaiter;
    this.greetingWaiter = null;
    w?.reject(error);
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(qmpError(`QMP ${p.command}: ${error.message}`, { command: p.command, ...error.details }));
    }
    this.listeners.clear();
    this.socket.destroy();
    this.markClosed();
  }
}

/**
 * Connects once the VMM has created its socket and answers. Retries while the socket is absent or refuses,
 * gives up at the timeout or when `signal` aborts (e.g. the process exited).
 */
export async function connectQmpWhenReady(path: string, opts: QmpOptions & { intervalMs?: number } = {}): Promise<QmpClient> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    if (opts.signal?.aborted) throw qmpError(`gave up connecting to QMP at ${path}`, { path, cancelled: true }, last);
    const left = deadline - Date.now();
    if (left <= 0) throw qmpError(`QMP socket ${path} did not answer within ${timeoutMs} ms`, { path, timeoutMs }, last);
    try {
      return await QmpClient.connect(path, { ...opts, timeoutMs: left });
    } catch (e) {
      last = e;
      const code = ((e as { cause?: NodeJS.ErrnoException }).cause)?.code;
      if (code !== 'ENOENT' && code !== 'ECONNREFUSED') throw e;
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 50));
  }
}
