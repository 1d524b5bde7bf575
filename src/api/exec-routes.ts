// Exec and background processes in a VM, through its guest agent (src/agent/port.ts):
//   POST /v1/vms/:id/exec                 run a command; the answer is buffered JSON, or Server-Sent Events with
//                                         ?stream=sse (or Accept: text/event-stream), or 202 {proc, pid} for background
//   GET  /v1/vms/:id/procs                the agent's processes (background ones stay listed after they end)
//   GET  /v1/vms/:id/procs/:proc/wait     waits for a process to end: its exit status
//   POST /v1/vms/:id/procs/:proc/signal   {signal}
//   DELETE /v1/vms/:id/procs/:proc        kills it (KILL)
// Interactive exec with stdin, attach and PTYs are the WebSocket of src/api/agent-ws.ts.
//
// SSE events (each `data:` one JSON object): `start` {proc, pid}; `stdout` / `stderr` {data} — UTF-8 text by default
// (a character split across chunks is kept whole; invalid bytes become U+FFFD), base64 with ?encoding=base64 (then
// {data, encoding: "base64"}); `exit` {code, signal, timedOut}, then the stream ends; `error` {code, message} if the
// agent fails mid-way. Flow control end to end: while the client's socket is full the process's output is not read,
// so a slow client slows the guest process and never grows the controller. A client that goes away kills a
// foreground process (the buffered answer too).
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type, type Static } from 'typebox';
import type { AgentPort, ExecHandle, ExitStatus } from '../agent/port.js';
import { HangarError, toHangarError } from '../errors.js';
import { agentFor, bareSignal, BoundedBuffer, execBody, execQuery, OutputText, signalName, toExecRequest, type ExecBody, type ExecQuery } from './agent-common.js';
import type { ApiContext, ApiRoute } from './routes.js';
import { errorSchema, idParams, ID_MAX_LENGTH, type IdParams } from './schemas.js';
import { DEFAULT_STREAM_LIMITS, openStream, StreamGate, streamKey, type StreamSink } from './streams.js';

const DEFAULT_MAX_OUTPUT = 1024 * 1024;

export const procParams = Type.Object({
  id: Type.String({ minLength: 1, maxLength: ID_MAX_LENGTH, description: 'VM id or name' }),
  proc: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_.-]+$', description: "the agent's process id (from exec or /procs)" }),
}, { additionalProperties: false });
type ProcParams = Static<typeof procParams>;

const signalBody = Type.Object({ signal: signalName }, { additionalProperties: false });

const exitSchema = {
  type: 'object', required: ['code', 'signal', 'timedOut'],
  properties: { code: { type: ['integer', 'null'] }, signal: { type: ['string', 'null'] }, timedOut: { type: 'boolean' } },
} as const;

const execResult = {
  type: 'object', required: ['proc', 'pid', 'exitCode', 'signal', 'timedOut', 'stdout', 'stderr', 'truncated'],
  properties: {
    proc: { type: 'string' }, pid: { type: 'integer' },
    exitCode: { type: ['integer', 'null'] }, signal: { type: ['string', 'null'] }, timedOut: { type: 'boolean' },
    stdout: { type: 'string' }, stderr: { type: 'string' }, encoding: { type: 'string', enum: ['utf8', 'base64'] },
    truncated: { type: 'boolean', description: 'more output than maxOutputBytes (stdoutBytes/stderrBytes say how much)' },
    stdoutBytes: { type: 'integer' }, stderrBytes: { type: 'integer' },
  },
} as const;

const started = { type: 'object', required: ['proc', 'pid', 'background'], properties: { proc: { type: 'string' }, pid: { type: 'integer' }, background: { type: 'boolean' } } } as const;

const procSchema = {
  type: 'object', required: ['proc', 'pid', 'argv', 'background', 'running', 'startedAt'],
  properties: {
    proc: { type: 'string' }, pid: { type: 'integer' }, argv: { type: 'array', items: { type: 'string' } }, tag: { type: 'string' },
    background: { type: 'boolean' }, running: { type: 'boolean' }, exit: exitSchema, startedAt: { type: 'integer' },
  },
} as const;

const errors = { '4xx': errorSchema, '5xx': errorSchema };

/** The exit status as the API shows it. */
export const exitView = (s: ExitStatus): { code: number | null; signal: string | null; timedOut: boolean } => ({ code: s.code, signal: s.signal, timedOut: s.timedOut });

/** An abort signal that fires when the client of `reply` goes away before the answer was sent. */
export function clientGone(reply: FastifyReply): AbortSignal {
  const ctl = new AbortController();
  reply.raw.once('close', () => { if (!reply.raw.writableFinished) ctl.abort(); });
  return ctl.signal;
}

const sse = (event: string, data: unknown): string => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;

/** Streams a running process's output to an SSE sink, with flow control; ends with `exit`. */
export function pumpSse(h: ExecHandle, sink: StreamSink, encoding: 'utf8' | 'base64'): void {
  const texts = { stdout: new OutputText(encoding), stderr: new OutputText(encoding) };
  const extra = encoding === 'base64' ? { encoding } : {};
  const pause = (): void => { h.stdout.pause(); h.stderr.pause(); };
  sink.onDrain(() => { h.stdout.resume(); h.stderr.resume(); });
  sink.onClose(() => h.detach());
  let open = 2;
  let status: ExitStatus | null = null;
  const finish = (): void => {
    if (open > 0 || !status || sink.closed) return;
    sink.write(sse('exit', exitView(status)));
    sink.end();
  };
  for (const which of ['stdout', 'stderr'] as const) {
    h[which].on('data', (b: Buffer) => {
      const data = texts[which].push(b);
      if (data && !sink.write(sse(which, { data, ...extra }))) pause();
    });
    h[which].once('end', () => {
      const rest = texts[which].end();
      if (rest) sink.write(sse(which, { data: rest, ...extra }));
      open--;
      finish();
    });
    h[which].once('error', () => { open--; finish(); });
  }
  h.exit.then((s) => { status = s; finish(); }, (e: unknown) => {
    const err = toHangarError(e);
    if (!sink.closed) { sink.write(sse('error', { code: err.code, message: err.message })); sink.end(); }
  });
}

/** Reads a process's output into bounded buffers and answers once it ended. */
async function buffered(h: ExecHandle, max: number, encoding: 'utf8' | 'base64'): Promise<Record<string, unknown>> {
  const out = new BoundedBuffer(max);
  const err = new BoundedBuffer(max);
  h.stdout.on('data', (b: Buffer) => out.push(b));
  h.stderr.on('data', (b: Buffer) => err.push(b));
  const ended = (r: NodeJS.ReadableStream): Promise<void> => new Promise((res) => { r.once('end', res); r.once('error', () => res()); r.once('close', res); });
  const [status] = await Promise.all([h.exit, ended(h.stdout), ended(h.stderr)]);
  const text = (b: BoundedBuffer): string => (encoding === 'base64' ? b.bytes().toString('base64') : b.bytes().toString('utf8'));
  return {
    proc: h.proc, pid: h.pid, exitCode: status.code, signal: status.signal, timedOut: status.timedOut,
    stdout: text(out), stderr: text(err), encoding, truncated: out.truncated || err.truncated, stdoutBytes: out.total, stderrBytes: err.total,
  };
}

export function execRoutes(ctx: ApiContext, agents: () => AgentPort | undefined): ApiRoute[] {
  const gate = new StreamGate(DEFAULT_STREAM_LIMITS);
  const reach = (id: string, signal?: AbortSignal) => agentFor(ctx.vms, agents(), id, signal ? { signal } : {});
  return [
    {
      method: 'POST', url: '/v1/vms/:id/exec', auth: 'bearer', scope: 'write',
      summary: 'Run a command in the VM through its guest agent: buffered JSON, Server-Sent Events (?stream=sse: start, stdout, stderr, exit), or background (202)',
      schema: { params: idParams, querystring: execQuery, body: execBody, response: { 200: execResult, 202: started, ...errors } },
      produces: 'text/event-stream',
      handler: async (req, reply) => {
        const r = req as FastifyRequest<{ Params: IdParams; Querystring: ExecQuery; Body: ExecBody }>;
        const body = r.body;
        const execReq = toExecRequest(body);
        const encoding = r.query.encoding ?? 'utf8';
        const streaming = r.query.stream === 'sse' || (r.headers.accept ?? '').includes('text/event-stream');
        const gone = clientGone(reply);
        const { session } = await reach(r.params.id, gone);
        if (body.background) {
          const h = await session.exec(execReq);
          h.detach();
          return reply.code(202).send({ proc: h.proc, pid: h.pid, background: true });
        }
        if (streaming) {
          const release = gate.acquire(streamKey(r.headers.authorization));
          let h: ExecHandle;
          try {
            h = await session.exec(execReq, { signal: gone });
          } catch (e) {
            release();
            throw e;
          }
          reply.hijack();
          reply.raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-request-id': r.id });
          const sink = openStream(reply.raw, DEFAULT_STREAM_LIMITS, release, (reason) => `: ${reason}\n\n`);
          sink.write(sse('start', { proc: h.proc, pid: h.pid }));
          pumpSse(h, sink, encoding);
          return reply;
        }
        const h = await session.exec(execReq, { signal: gone });
        return buffered(h, body.maxOutputBytes ?? DEFAULT_MAX_OUTPUT, encoding);
      },
    },
    {
      method: 'GET', url: '/v1/vms/:id/procs', summary: "The guest agent's processes (running and ended background ones)", auth: 'bearer', scope: 'read',
      schema: { params: idParams, response: { 200: { type: 'object', required: ['procs'], properties: { procs: { type: 'array', items: procSchema } } }, ...errors } },
      handler: async (req) => {
        const { session } = await reach((req as FastifyRequest<{ Params: IdParams }>).params.id);
        return { procs: await session.ps() };
      },
    },
    {
      method: 'GET', url: '/v1/vms/:id/procs/:proc/wait', summary: 'Waits until a guest process ends; its exit status', auth: 'bearer', scope: 'read',
      schema: { params: procParams, response: { 200: exitSchema, ...errors } },
      handler: async (req, reply) => {
        const p = (req as FastifyRequest<{ Params: ProcParams }>).params;
        const { session } = await reach(p.id, clientGone(reply));
        return exitView(await session.wait(p.proc));
      },
    },
    {
      method: 'POST', url: '/v1/vms/:id/procs/:proc/signal', summary: 'Sends a signal to a guest process', auth: 'bearer', scope: 'write',
      schema: { params: procParams, body: signalBody, response: { 200: { type: 'object', properties: { proc: { type: 'string' }, signal: { type: 'string' } } }, ...errors } },
      handler: async (req) => {
        const r = req as FastifyRequest<{ Params: ProcParams; Body: Static<typeof signalBody> }>;
        const { session } = await reach(r.params.id);
        const sig = bareSignal(r.body.signal);
        await session.signal(r.params.proc, sig);
        return { proc: r.params.proc, signal: sig };
      },
    },
    {
      method: 'DELETE', url: '/v1/vms/:id/procs/:proc', summary: 'Kills a guest process (KILL)', auth: 'bearer', scope: 'write',
      schema: { params: procParams, response: { 204: { type: 'null' }, ...errors } },
      handler: async (req, reply) => {
        const p = (req as FastifyRequest<{ Params: ProcParams }>).params;
        const { session } = await reach(p.id);
        const info = (await session.ps()).find((x) => x.proc === p.proc);
        if (!info) throw new HangarError('PROC_NOT_FOUND', `no process ${p.proc} in VM ${p.id}`, { proc: p.proc });
        if (info.running) await session.signal(p.proc, 'KILL');
        return reply.code(204).send();
      },
    },
  ];
}
