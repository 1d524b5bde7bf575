// The CLI's HTTP client for a running controller. The URL comes from HANGAR_URL or the endpoint file the
// controller writes; the token from HANGAR_TOKEN or the controller's 0600 token file. Every failure becomes a
// HangarError with the server's stable code (or one derived from the HTTP status), so exit codes stay right.
import { existsSync, readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { ERRORS, HangarError, type ErrorCode } from '../errors.js';
import { loadControllerConfig } from '../api/config.js';
import { SseParser, type SseEvent } from './sse.js';

const BY_STATUS: Record<number, ErrorCode> = {
  400: 'INVALID_ARGUMENT', 401: 'UNAUTHORIZED', 403: 'FORBIDDEN', 404: 'NOT_FOUND', 409: 'CONFLICT', 413: 'PAYLOAD_TOO_LARGE', 429: 'RATE_LIMITED',
};

/** The error an HTTP answer carries: the API's envelope {error:{code,message,details}}, or its status. Pure. */
export function errorFromResponse(status: number, text: string, what: string, tokenFrom = 'HANGAR_TOKEN'): HangarError {
  let err: { code?: unknown; message?: unknown; details?: unknown } = {};
  try { err = (JSON.parse(text) as { error?: typeof err }).error ?? {}; } catch { /* not JSON */ }
  const known = typeof err.code === 'string' && Object.hasOwn(ERRORS, err.code);
  const code = known ? (err.code as ErrorCode) : (BY_STATUS[status] ?? 'INTERNAL');
  const details: Record<string, unknown> = { ...(err.details && typeof err.details === 'object' ? err.details : {}), status };
  if (!known && typeof err.code === 'string') details.serverCode = err.code;
  if (code === 'UNAUTHORIZED' && details.hint === undefined) details.hint = `the token (from ${tokenFrom}) is not this controller's: set HANGAR_TOKEN to the content of its token file`;
  return new HangarError(code, typeof err.message === 'string' ? err.message : `${what}: HTTP ${status}`, details);
}

export class ApiClient {
  constructor(readonly url: string, private readonly token: string, private readonly tokenFrom = 'HANGAR_TOKEN') {}

  /** The Authorization header value (for WebSockets, which do not go through fetch). */
  get authorization(): string {
    return `Bearer ${this.token}`;
  }

  /** A request with a raw body (a byte stream: file uploads) or none, answering the Response (errors mapped). */
  raw(method: string, path: string, init: { body?: ReadableStream<Uint8Array>; headers?: Record<string, string>; signal?: AbortSignal } = {}): Promise<Response> {
    return this.send(method, path, { ...(init.body ? { rawBody: init.body } : {}), ...(init.headers ? { headers: init.headers } : {}), ...(init.signal ? { signal: init.signal } : {}) });
  }

  /**
   * PUTs a byte stream (file uploads) with node:http, piped: the source is read only as fast as the socket takes it
   * (fetch reads a streamed body ahead without backpressure in Node 20). Answers the parsed JSON.
   */
  upload<T>(path: string, source: NodeJS.ReadableStream, headers: Record<string, string> = {}): Promise<T> {
    const u = new URL(this.url + path);
    const send = u.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise<T>((resolve, reject) => {
      const req = send(u, { method: 'PUT', headers: { authorization: `Bearer ${this.token}`, ...headers } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => { text += c; });
        res.on('end', () => {
          const status = res.statusCode ?? 500;
          if (status >= 400) reject(errorFromResponse(status, text, `PUT ${path}`, this.tokenFrom));
          else resolve(JSON.parse(text || 'null') as T);
        });
      });
      req.on('error', (e) => reject(new HangarError('CONTROLLER_UNREACHABLE', `the controller at ${this.url} does not answer: ${(e as NodeJS.ErrnoException).code ?? e.message}`, { url: this.url })));
      source.pipe(req);
    });
  }

  private async send(method: string, path: string, init: { body?: unknown; rawBody?: ReadableStream<Uint8Array>; accept?: string; signal?: AbortSignal; headers?: Record<string, string> } = {}): Promise<Response> {
    let res: Response;
    try {
      res = await fetch(this.url + path, {
        method,
        headers: {
          authorization: `Bearer ${this.token}`,
          ...(init.accept ? { accept: init.accept } : {}),
          ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
          ...init.headers,
        },
        ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
        ...(init.rawBody ? { body: init.rawBody, duplex: 'half' } : {}),
        ...(init.signal ? { signal: init.signal } : {}),
      } as RequestInit);
    } catch (e) {
      if (init.signal?.aborted) throw e;
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      throw new HangarError('CONTROLLER_UNREACHABLE', `the controller at ${this.url} does not answer (is 'hangar up' running? is HANGAR_URL right?): ${cause?.code ?? cause?.message ?? (e as Error).message}`, { url: this.url });
    }
    if (!res.ok) throw errorFromResponse(res.status, await res.text(), `${method} ${path}`, this.tokenFrom);
    return res;
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.send(method, path, { body });
    const text = await res.text();
    const type = res.headers.get('content-type') ?? '';
    return (type.includes('application/json') && text !== '' ? JSON.parse(text) : text) as T;
  }

  /** Reads a Server-Sent Events stream until `onEvent` returns true, the stream ends or `signal` aborts. */
  async events(path: string, onEvent: (e: SseEvent) => boolean | void, opts: { signal?: AbortSignal; lastEventId?: string } = {}): Promise<void> {
    const res = await this.send('GET', path, {
      accept: 'text/event-stream', ...(opts.signal ? { signal: opts.signal } : {}), ...(opts.lastEventId ? { headers: { 'last-event-id': opts.lastEventId } } : {}),
    }).catch((e: unknown) => { if (opts.signal?.aborted) return null; throw e; });
    if (!res) return;
    const parser = new SseParser();
    await this.read(res, (text) => parser.push(text).some((e) => onEvent(e) === true), opts.signal);
  }

  /** Streams a text answer (console --follow) to `onText` until it ends or `signal` aborts. */
  async stream(path: string, onText: (s: string) => void, signal?: AbortSignal): Promise<void> {
    const res = await this.send('GET', path, signal ? { signal } : {}).catch((e: unknown) => { if (signal?.aborted) return null; throw e; });
    if (!res) return;
    await this.read(res, (text) => { onText(text); return false; }, signal);
  }

  private async read(res: Response, onText: (s: string) => boolean, signal?: AbortSignal): Promise<void> {
    if (!res.body) return;
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        if (onText(decoder.decode(value, { stream: true }))) return;
      }
    } catch (e) {
      if (signal?.aborted) return;
      throw e;
    } finally {
      await reader.cancel().catch(() => undefined);
    }
  }
}

export function clientFromEnv(env: NodeJS.ProcessEnv = process.env): ApiClient {
  let url = env.HANGAR_URL;
  let token = env.HANGAR_TOKEN;
  let tokenFrom = 'HANGAR_TOKEN';
  if (!url || !token) {
    const cfg = loadControllerConfig({ env });
    if (!url && existsSync(cfg.endpointPath)) url = (JSON.parse(readFileSync(cfg.endpointPath, 'utf8')) as { url: string }).url;
    url ??= `http://${cfg.listen.host}:${cfg.listen.port}`;
    if (!token) {
      if (!existsSync(cfg.tokenPath)) throw new HangarError('UNAUTHORIZED', `no API token: ${cfg.tokenPath} does not exist (start the controller with 'hangar up', or set HANGAR_TOKEN)`, { path: cfg.tokenPath });
      token = readFileSync(cfg.tokenPath, 'utf8').trim();
      tokenFrom = cfg.tokenPath;
    }
  }
  return new ApiClient(url.replace(/\/$/, ''), token, tokenFrom);
}
