// A minimal HTTP/1.1 client for Firecracker's API socket, and the state-aware dispatcher on top of it. A refused
// action never reaches the socket; a non-2xx answer becomes VMM_API_ERROR carrying Firecracker's fault_message.
import { request } from 'node:http';
import { HangarError } from '../../errors.js';
import { afterSuccess, FRESH_VMM, refusal, toHttpRequest } from './actions.js';
import type { FirecrackerAction, VmmModel } from './actions.js';
import { INSTANCE_INFO_REQUIRED, INSTANCE_STATES } from './api-types.js';
import type { InstanceInfo } from './api-types.js';
import type { ApiVersion } from './version.js';

export const DEFAULT_REQUEST_TIMEOUT_MS = 5000;
/** Answers are small JSON documents; anything larger is not Firecracker talking. */
const MAX_RESPONSE_BYTES = 1024 * 1024;
const JOURNAL_MAX = 200;

export interface RawResponse {
  status: number;
  /** Parsed JSON, or the raw text when it is not JSON, or undefined for an empty body. */
  body: unknown;
}

/** One request over a Unix socket. Rejects with VMM_API_ERROR on connect failure or timeout (details.cause says which). */
export function socketRequest(socketPath: string, method: string, path: string, body: unknown, timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS): Promise<RawResponse> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (message: string, cause: string, error?: unknown): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(new HangarError('VMM_API_ERROR', message, { socketPath, method, path, status: null, cause }, { cause: error }));
    };
    const req = request({
      socketPath, method, path, agent: false,
      headers: {
        Accept: 'application/json',
        ...(payload === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) }),
      },
    }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_RESPONSE_BYTES) {
          req.destroy();
          fail(`${method} ${path}: answer larger than ${MAX_RESPONSE_BYTES} bytes`, 'too-large');
        } else chunks.push(c);
      });
      res.on('error', (e) => fail(`${method} ${path}: ${e.message}`, 'read', e));
      res.on('end', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = undefined;
        if (text.trim()) {
          try { parsed = JSON.parse(text); } catch { parsed = text; }
        }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    const timer = setTimeout(() => {
      req.destroy();
      fail(`${method} ${path}: no answer from the Firecracker API within ${timeoutMs} ms`, 'timeout');
    }, timeoutMs);
    req.on('error', (e: NodeJS.ErrnoException) => {
      fail(`${method} ${path}: cannot reach the Firecracker API at ${socketPath}: ${e.code ?? e.message}`, e.code ?? 'connect', e);
    });
    req.end(payload);
  });
}

function faultMessage(body: unknown): string | null {
  if (body && typeof body === 'object' && typeof (body as { fault_message?: unknown }).fault_message === 'string') {
    return (body as { fault_message: string }).fault_message;
  }
  return typeof body === 'string' && body.trim() ? body.trim() : null;
}

/** Reads GET / strictly: the fields the definition requires, with the state enum. */
export function parseInstanceInfo(body: unknown): InstanceInfo {
  const o = body as Record<string, unknown> | null;
  const bad = (why: string): HangarError => new HangarError('VMM_API_ERROR', `GET / answered something that is not an InstanceInfo: ${why}`, { body });
  if (!o || typeof o !== 'object') throw bad('not an object');
  for (const k of INSTANCE_INFO_REQUIRED) if (typeof o[k] !== 'string') throw bad(`${k} missing or not a string`);
  if (!(INSTANCE_STATES as readonly string[]).includes(o.state as string)) throw bad(`unknown state ${JSON.stringify(o.state)}`);
  return { app_name: o.app_name as string, id: o.id as string, state: o.state as InstanceInfo['state'], vmm_version: o.vmm_version as string };
}

export interface FirecrackerApiOptions {
  /** Target API version; the requests' shape was chosen for it (requests.ts). */
  api: ApiVersion;
  arch?: 'x86_64' | 'aarch64';
  timeoutMs?: number;
  /** Starting model (e.g. after adopt); a fresh process by default. */
  model?: VmmModel;
}

/** State-aware dispatch over one API socket. */
export class FirecrackerApi {
  readonly socketPath: string;
  readonly api: ApiVersion;
  readonly arch: 'x86_64' | 'aarch64';
  private readonly timeoutMs: number;
  private current: VmmModel;
  /** The latest actions and their outcomes, oldest first (diagnostics; capped so a long-lived VM does not grow it). */
  readonly journal: { kind: FirecrackerAction['kind']; status: number | 'refused' | 'error'; ms: number }[] = [];

  constructor(socketPath: string, opts: FirecrackerApiOptions) {
    this.socketPath = socketPath;
    this.api = opts.api;
    this.arch = opts.arch ?? 'x86_64';
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.current = opts.model ?? FRESH_VMM;
  }

  private note(entry: FirecrackerApi['journal'][number]): void {
    this.journal.push(entry);
    if (this.journal.length > JOURNAL_MAX) this.journal.splice(0, this.journal.length - JOURNAL_MAX);
  }

  get model(): VmmModel {
    return this.current;
  }

  /** Sends one action if the current state allows it; returns the parsed answer body. */
  async send(action: FirecrackerAction): Promise<unknown> {
    const refused = refusal(action, this.current);
    if (refused) {
      this.note({ kind: action.kind, status: 'refused', ms: 0 });
      throw refused;
    }
    if (action.kind === 'send-ctrl-alt-del' && this.arch !== 'x86_64') {
      throw new HangarError('INVALID_ARGUMENT', 'SendCtrlAltDel exists only on x86_64 Firecracker', { action: action.kind, arch: this.arch });
    }
    const req = toHttpRequest(action);
    const t0 = performance.now();
    let res: RawResponse;
    try {
      res = await socketRequest(this.socketPath, req.method, req.path, req.body, this.timeoutMs);
    } catch (e) {
      this.note({ kind: action.kind, status: 'error', ms: performance.now() - t0 });
      if (e instanceof HangarError) Object.assign(e.details, { action: action.kind });
      throw e;
    }
    this.note({ kind: action.kind, status: res.status, ms: performance.now() - t0 });
    if (res.status < 200 || res.status > 299) {
      const fault = faultMessage(res.body) ?? `HTTP ${res.status} without a fault message`;
      throw new HangarError('VMM_API_ERROR', fault, { status: res.status, action: action.kind, method: req.method, path: req.path });
    }
    this.current = afterSuccess(action, this.current);
    return res.body;
  }

  /** GET / — also re-syncs the model's state with what the VMM says. */
  async describe(): Promise<InstanceInfo> {
    const info = parseInstanceInfo(await this.send({ kind: 'describe-instance' }));
    this.current = { ...this.current, state: info.state };
    return info;
  }
}
