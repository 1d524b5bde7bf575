// @e2b/desktop's stream URL against Hangar. The SDK builds it itself: `https://<port>-<sandboxId>.<domain>/vnc.html`
// (port 6080, domain the SDK's E2B_DOMAIN / `domain` option), after running x11vnc and noVNC commands that Hangar
// answers natively (src/e2b/desktop.ts: Hangar's own VNC server and viewer serve the display). A request whose Host
// has that shape and names an existing sandbox (any domain: a TLS-terminating proxy or a wildcard DNS name in front
// of the controller carries it) is answered here. With the stream's auth key — `stream.start({ requireAuth: true })`
// makes the SDK store a password with `x11vnc -storepasswd KEY`, which Hangar keeps instead of running, and
// `getUrl({ authKey })` puts it in `?password=` — it is redirected to Hangar's authenticated viewer (a fresh
// short-lived viewer token, on the controller's public origin; view-only with `view_only=true`). Without the key it
// is refused: Hangar serves no unauthenticated desktop. Pure planners (streamHostOf, streamRewrite, streamAnswer),
// the raw-request rewrite to the stream route (ahead of the bearer check: the key is the route's authentication).
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import type { ApiRoute } from '../api/routes.js';

/** The SDK's noVNC port (VNCServer.port): the only port a stream host may name. */
export const STREAM_PORT = 6080;
/** The page the SDK's URL names. */
export const STREAM_PAGE = '/vnc.html';

/** `<port>-<sandboxId>.<domain>[:port]` → its parts; null for any other host. Pure. */
export function streamHostOf(host: string | undefined): { port: number; sandboxId: string; domain: string } | null {
  const m = /^(\d{1,5})-([a-z0-9][a-z0-9-]{0,62})\.([a-z0-9.-]+)(?::\d{1,5})?$/i.exec(host ?? '');
  return m ? { port: Number(m[1]), sandboxId: m[2]!.toLowerCase(), domain: m[3]!.toLowerCase() } : null;
}

/** The auth keys the SDK set for its sandboxes' streams (memory only: a restarted stream sets a new one). */
export class StreamKeys {
  private readonly byVm = new Map<string, string>();
  set(vmId: string, key: string): void { this.byVm.set(vmId, key); }
  forget(vmId: string): void { this.byVm.delete(vmId); }
  matches(vmId: string, key: string | undefined): boolean {
    const want = this.byVm.get(vmId);
    if (!want || !key) return false;
    const [a, b] = [Buffer.from(want), Buffer.from(key)];
    return a.length === b.length && timingSafeEqual(a, b);
  }
}

export type StreamAnswer =
  | { kind: 'viewer'; vmId: string; viewOnly: boolean }
  | { kind: 'refuse'; status: 401 | 404; message: string };

/** What a request on a sandbox's stream host gets. Pure. */
export function streamAnswer(h: { port: number; sandboxId: string }, path: string, query: Record<string, string | undefined>, keys: Pick<StreamKeys, 'matches'>): StreamAnswer {
  if (h.port !== STREAM_PORT || path !== STREAM_PAGE) return { kind: 'refuse', status: 404, message: `only port ${STREAM_PORT}'s ${STREAM_PAGE} is served on a sandbox host` };
  if (!keys.matches(h.sandboxId, query.password)) {
    return { kind: 'refuse', status: 401, message: 'Hangar serves no unauthenticated desktop: start the stream with requireAuth: true and open getUrl({ authKey: stream.getAuthKey() })' };
  }
  return { kind: 'viewer', vmId: h.sandboxId, viewOnly: query.view_only === 'true' };
}

/** Where a stream host's request is routed: the stream route's path. */
export const STREAM_ROUTE = '/e2b/stream/:sandboxID/vnc.html';
const streamPath = (id: string): string => `/e2b/stream/${encodeURIComponent(id)}/vnc.html`;

/**
 * A request on a known sandbox's stream host, as the stream route's URL (query kept); null for every other request
 * (routed as usual). A stream host's other ports and paths go to the route too, which refuses them. Pure.
 */
export function streamRewrite(host: string | undefined, url: string | undefined, known: (vmId: string) => boolean): string | null {
  const h = streamHostOf(host);
  if (!h || !known(h.sandboxId)) return null;
  const u = new URL(url ?? '/', 'http://stream');
  const q = new URLSearchParams(u.searchParams);
  if (h.port !== STREAM_PORT || u.pathname !== STREAM_PAGE) q.set('refuse', 'path');
  return `${streamPath(h.sandboxId)}${q.size ? `?${q.toString()}` : ''}`;
}

/** Rewrites stream-host requests to the stream route, ahead of Fastify's own listener (and its bearer check). */
export function attachStreamHosts(server: Server, known: (vmId: string) => boolean): () => void {
  const onRequest = (req: IncomingMessage): void => {
    const to = streamRewrite(req.headers.host, req.url, known);
    if (to) req.url = to;
  };
  server.prependListener('request', onRequest);
  return () => { server.off('request', onRequest); };
}

export interface StreamDeps {
  keys: StreamKeys;
  /** A fresh viewer page URL for the VM (absolute: the controller's public origin). */
  viewerUrl: (vmId: string, viewOnly: boolean) => Promise<string>;
}

const escape = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The stream route: its key checked (the route's own token, as the viewer's), then a redirect to a viewer. */
export function streamRoutes(d: StreamDeps): ApiRoute[] {
  return [{
    method: 'GET', url: STREAM_ROUTE, auth: 'viewer-token', produces: 'text/html',
    summary: "@e2b/desktop's stream URL (https://6080-<sandboxId>.<domain>/vnc.html on a stream host is routed here): with the stream's auth key (?password=), a redirect to a fresh viewer",
    schema: {
      params: { type: 'object', required: ['sandboxID'], properties: { sandboxID: { type: 'string', maxLength: 64 } } },
      querystring: { type: 'object', properties: { password: { type: 'string', maxLength: 256 }, view_only: { type: 'string', maxLength: 8 }, refuse: { type: 'string', maxLength: 8 } } },
    },
    handler: async (req, reply) => {
      const id = (req.params as { sandboxID: string }).sandboxID;
      const q = req.query as { password?: string; view_only?: string; refuse?: string };
      const a = q.refuse ? streamAnswer({ port: 0, sandboxId: id }, '', q, d.keys) : streamAnswer({ port: STREAM_PORT, sandboxId: id }, STREAM_PAGE, q, d.keys);
      reply.header('cache-control', 'no-store').header('referrer-policy', 'no-referrer');
      if (a.kind === 'refuse') return reply.code(a.status).type('text/html; charset=utf-8').send(`<!doctype html><title>Stream not available</title><p>${escape(a.message)}</p>`);
      return reply.code(302).header('location', await d.viewerUrl(a.vmId, a.viewOnly)).send();
    },
  }];
}
