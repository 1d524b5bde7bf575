// envd, as the e2b SDK reaches it with E2B_SANDBOX_URL=http://HOST:PORT/e2b/sandbox: every sandbox on that one URL,
// the sandbox named by the E2b-Sandbox-Id header and authorised by its envd access token (X-Access-Token, given by
// create/connect). Under the prefix: GET /health, /files (src/e2b/files.ts), and the connect-rpc services
// process.Process and filesystem.Filesystem (JSON or binary, unary and streaming, by @connectrpc/connect-node).
// Bodies reach these handlers unread (no Fastify parsing or limit): uploads and client streams are streamed.
// Refusals: no or wrong token → 401 (the SDK's AuthenticationError); a sandbox that is gone (killed, timed out,
// unknown) → 502 (its TimeoutError / "sandbox is probably not running"), as E2B's edge answers.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { createContextValues } from '@connectrpc/connect';
import type { AgentPort } from '../agent/port.js';
import { agentFor } from '../api/agent-common.js';
import { httpError } from '../api/server.js';
import type { VmService } from '../vm/service.js';
import { ProcTable, SANDBOX_KEY, userOf, type SandboxCall } from './context.js';
import { serveFiles, sendJson } from './files.js';
import { filesystemService } from './filesystem.js';
import { Filesystem } from './gen/filesystem/filesystem_pb.js';
import { Process } from './gen/process/process_pb.js';
import { processService } from './process.js';
import type { DesktopPort } from './desktop.js';
import type { E2bState } from './state.js';

export const ENVD_PREFIX = '/e2b/sandbox';

export interface EnvdDeps {
  state: E2bState;
  vms: VmService;
  agents: () => AgentPort | undefined;
  log?: { warn(o: object, msg: string): void };
  /** Computer use, for @e2b/desktop's commands (src/e2b/desktop.ts); without it they run in the guest. */
  desktop?: DesktopPort;
}

const header = (req: IncomingMessage, name: string): string | undefined => {
  const v = req.headers[name];
  return typeof v === 'string' ? v : undefined;
};

/** The connect error code name for an HTTP status the SDK reads. */
const connectCode = (status: number): string => (status === 401 ? 'unauthenticated' : status === 404 ? 'not_found' : status === 400 ? 'invalid_argument' : status === 502 ? 'unavailable' : 'internal');

/** Who a request is for, or why not (status, message). Pure over the state. */
export function authorizeEnvd(state: Pick<E2bState, 'get' | 'tokenMatches'>, sandboxId: string | undefined, token: string | undefined): { ok: true; vmId: string } | { ok: false; status: number; message: string } {
  if (!sandboxId) return { ok: false, status: 400, message: 'the E2b-Sandbox-Id header is required' };
  if (!state.get(sandboxId)) return { ok: false, status: 502, message: `sandbox ${sandboxId} is not running (killed, timed out or unknown)` };
  if (!state.tokenMatches(sandboxId, token)) return { ok: false, status: 401, message: 'a valid X-Access-Token for this sandbox is required' };
  return { ok: true, vmId: sandboxId };
}

/** Mounts envd under /e2b/sandbox on `app` (before it listens). */
export async function registerEnvd(app: FastifyInstance, d: EnvdDeps): Promise<void> {
  const tables = new Map<string, ProcTable>();
  const calls = new WeakMap<IncomingMessage, SandboxCall>();
  const rpc = connectNodeAdapter({
    requestPathPrefix: ENVD_PREFIX,
    // One message (a stdin chunk, a path) at most this big: the body of an RPC is read whole by connect.
    readMaxBytes: 4 * 1024 * 1024,
    routes: (r) => { r.service(Process, processService(d.desktop ? { desktop: d.desktop } : {})); r.service(Filesystem, filesystemService()); },
    contextValues: (req) => createContextValues().set(SANDBOX_KEY, calls.get(req as IncomingMessage) ?? null),
  });
  const serve = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://envd');
    const rel = url.pathname.slice(ENVD_PREFIX.length);
    const auth = authorizeEnvd(d.state, header(req, 'e2b-sandbox-id'), header(req, 'x-access-token'));
    if (!auth.ok) {
      req.resume();
      sendJson(res, auth.status, { code: rel.startsWith('/files') || rel === '/health' ? auth.status : connectCode(auth.status), message: auth.message });
      return;
    }
    const vmId = auth.vmId;
    for (const id of tables.keys()) if (!d.state.get(id)) tables.delete(id);
    const procs = tables.get(vmId) ?? new ProcTable();
    tables.set(vmId, procs);
    const call: SandboxCall = {
      vmId, fields: d.state.get(vmId)!, user: userOf(header(req, 'authorization')), procs,
      session: async () => (await agentFor(d.vms, d.agents(), vmId)).session,
    };
    if (rel === '/health') { req.resume(); res.writeHead(204); res.end(); return; }
    if (rel === '/files' || rel.startsWith('/files?')) {
      try {
        await serveFiles(call, req, res, url.searchParams);
      } catch (e) {
        const { status, body } = httpError(e);
        if (!res.headersSent) req.resume();
        sendJson(res, status, { code: status, message: body.error.message });
      }
      return;
    }
    calls.set(req, call);
    rpc(req, res);
  };
  await app.register(async (inst) => {
    inst.removeAllContentTypeParsers();
    inst.addContentTypeParser('*', (_req, _payload, done) => done(null));
    inst.route({
      method: ['GET', 'POST'], url: `${ENVD_PREFIX}/*`, config: { auth: 'none' },
      handler: (req, reply) => {
        reply.hijack();
        serve(req.raw, reply.raw).catch((e: unknown) => {
          d.log?.warn({ err: String(e) }, 'envd request failed');
          if (!reply.raw.headersSent) sendJson(reply.raw, 500, { code: 500, message: 'internal error' });
          else reply.raw.destroy();
        });
      },
    });
  });
}
