// The CLI's HTTP client for a running controller. The URL comes from HANGAR_URL or the endpoint file the
// controller writes; the token from HANGAR_TOKEN or the controller's 0600 token file.
import { existsSync, readFileSync } from 'node:fs';
import { ERRORS, HangarError, type ErrorCode } from '../errors.js';
import { loadControllerConfig } from '../api/config.js';

export class ApiClient {
  constructor(readonly url: string, private readonly token: string) {}

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(this.url + path, {
        method,
        headers: { authorization: `Bearer ${this.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    } catch (e) {
      throw new HangarError('CONTROLLER_UNREACHABLE', `the controller at ${this.url} does not answer (is 'hangar up' running?): ${(e as Error).message}`, { url: this.url });
    }
    const text = await res.text();
    if (!res.ok) {
      let err: { code?: string; message?: string; details?: Record<string, unknown> } = {};
      try { err = (JSON.parse(text) as { error: typeof err }).error ?? {}; } catch { /* not JSON */ }
      const code = (err.code && err.code in ERRORS ? err.code : 'INTERNAL') as ErrorCode;
      throw new HangarError(code, err.message ?? `${method} ${path}: HTTP ${res.status}`, err.details ?? {});
    }
    const type = res.headers.get('content-type') ?? '';
    return (type.includes('application/json') ? JSON.parse(text) : text) as T;
  }

  /** Reads a Server-Sent Events stream until `onEvent` returns true or the stream ends. */
  async events(path: string, onEvent: (type: string, data: unknown) => boolean | void, signal?: AbortSignal): Promise<void> {
    const res = await fetch(this.url + path, { headers: { authorization: `Bearer ${this.token}`, accept: 'text/event-stream' }, ...(signal ? { signal } : {}) });
    if (!res.ok || !res.body) throw new HangarError('INTERNAL', `event stream ${path}: HTTP ${res.status}`);
    const decoder = new TextDecoder();
    let buf = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true });
      let i: number;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const type = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (type && data !== undefined && onEvent(type, JSON.parse(data)) === true) return;
      }
    }
  }
}

export function clientFromEnv(env: NodeJS.ProcessEnv = process.env): ApiClient {
  const cfg = loadControllerConfig({ env });
  let url = env.HANGAR_URL;
  if (!url && existsSync(cfg.endpointPath)) url = (JSON.parse(readFileSync(cfg.endpointPath, 'utf8')) as { url: string }).url;
  url ??= `http://${cfg.listen.host}:${cfg.listen.port}`;
  let token = env.HANGAR_TOKEN;
  if (!token) {
    if (!existsSync(cfg.tokenPath)) throw new HangarError('UNAUTHORIZED', `no API token: ${cfg.tokenPath} does not exist (start the controller with 'hangar up', or set HANGAR_TOKEN)`);
    token = readFileSync(cfg.tokenPath, 'utf8').trim();
  }
  return new ApiClient(url.replace(/\/$/, ''), token);
}
