// The E2B SDK authenticates with `X-API-KEY: <key>` where Hangar's routes take `Authorization: Bearer <key>`. For
// requests under /e2b/ (and nowhere else) the one becomes the other before Fastify routes the request, so the
// E2B routes go through Hangar's one tenancy hook (authentication, scopes, audit) like every route.
import type { IncomingHttpHeaders, IncomingMessage, Server } from 'node:http';

export const E2B_PREFIX = '/e2b/';

/** The Authorization header an /e2b/ request should carry, or undefined to leave it as it is. Pure. */
export function e2bAuthorization(url: string | undefined, headers: IncomingHttpHeaders): string | undefined {
  if (!url?.startsWith(E2B_PREFIX) || headers.authorization !== undefined) return undefined;
  const key = headers['x-api-key'];
  return typeof key === 'string' && key.length > 0 ? `Bearer ${key}` : undefined;
}

/** Applies e2bAuthorization to every request of `server`, ahead of Fastify's own listener. */
export function attachE2bAuth(server: Server): () => void {
  const onRequest = (req: IncomingMessage): void => {
    const a = e2bAuthorization(req.url, req.headers);
    if (a) req.headers.authorization = a;
  };
  server.prependListener('request', onRequest);
  return () => { server.off('request', onRequest); };
}
