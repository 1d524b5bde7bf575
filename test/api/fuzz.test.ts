// Property-based fuzzing of the API edge: for every route /openapi.json lists (so every route the server serves),
// arbitrary JSON bodies and arbitrary query strings and ids never cause a 5xx; a 4xx is always the error envelope
// with a registered code and its status, and never comes after a mutating call of the service. Bounded: RUNS per
// route and input, all under a few seconds.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ERRORS, type ErrorCode } from '../../src/errors.js';
import { DEFAULT_LIMITS } from '../../src/vm/input.js';
import { createFakeApi, fakeAuth, type FakeApi } from './fake-api.js';

const RUNS = 200;
const SEED = Number(process.env.HANGAR_FUZZ_SEED ?? 0x4a4e47) || 0x4a4e47;

interface Op {
  method: 'GET' | 'POST' | 'DELETE' | 'PUT';
  path: string;
  query: string[];
  body: string[] | null;
}

/** A body each route accepts, so fuzzing its query string gets past the body. */
const VALID_BODY: Record<string, unknown> = {
  '/v1/vms': {}, '/v1/snapshots': { vm: 'vm-a' }, '/v1/vms/{id}/viewer': {}, '/v1/vms/{id}/terminal': {}, '/v1/keys': { tenant: 'default', scope: 'read' },
  '/v1/vms/{id}/control': { action: 'request', viewer: 'v-1' },
  '/v1/vms/{id}/exec': { cmd: 'true' }, '/v1/vms/{id}/procs/{proc}/signal': { signal: 'TERM' },
  '/v1/vms/{id}/files/mkdir': { path: '/fuzz', parents: true }, '/v1/vms/{id}/files/rm': { path: '/nope' }, '/v1/vms/{id}/files/mv': { from: '/nope', to: '/b' },
  '/v1/vms/{id}/files/chmod': { path: '/', mode: '0755' }, '/v1/vms/{id}/files/chown': { path: '/nope', uid: 0, gid: 0 },
  '/v1/vms/{id}/files/copy': { toVm: 'vm-b', from: '/nope' },
};
/** A query each route with a required parameter accepts (random ones rarely are), so both outcomes occur. */
const VALID_QUERY: Record<string, string> = {
  '/v1/vms/{id}/files': 'path=/nope', '/v1/vms/{id}/files/stat': 'path=/', '/v1/vms/{id}/files/list': 'path=/', '/v1/vms/{id}/files/watch': 'path=/',
};

function operations(doc: { paths: Record<string, Record<string, { parameters?: { name: string; in: string }[]; requestBody?: { content: Record<string, { schema: { properties?: object; anyOf?: { properties?: object }[] } }> } }>> }): Op[] {
  const ops: Op[] = [];
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [m, op] of Object.entries(methods)) {
      const schema = op.requestBody?.content['application/json']?.schema;
      const props = schema ? Object.keys(schema.properties ?? schema.anyOf?.find((b) => b.properties)?.properties ?? {}) : null;
      ops.push({ method: m.toUpperCase() as Op['method'], path, query: (op.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name), body: props });
    }
  }
  return ops;
}

const urlFor = (op: Op, id = 'vm-a'): string => op.path.replace('{id}', id).replace('{proc}', 'p1').replace(/\*$/, 'app.js');

/** Values near every limit and of every JSON type. */
const interesting = fc.oneof(
  fc.constantFrom(0, 1, -1, 2, 8, 9, 32, 33, 63, 64, 65, 127, 128, 129, 16384, 16385, 59, 60, 3600, 3601, 604800, 604801, 1.5, -0, 1e21, Number.MAX_SAFE_INTEGER + 2),
  fc.constantFrom('', '1', '1e3', 'true', 'desktop', 'browser', 'qemu', 'firecracker', 'vm-a', 'missing-vm', 'snap-00000001', 'write', '../etc', 'A', 'a'.repeat(64), 'a'.repeat(129)),
  fc.constantFrom(null, true, false, [], {}, [1], ['a'], { a: 1 }),
  fc.integer(), fc.double(), fc.string({ maxLength: 12 }), fc.string({ unit: 'grapheme', maxLength: 8 }),
);

function bodies(keys: string[]): fc.Arbitrary<unknown> {
  const key = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...keys) }, fc.string({ maxLength: 8 }), fc.constantFrom('__proto__', 'constructor'));
  return fc.oneof(
    fc.jsonValue({ maxDepth: 3 }),
    fc.dictionary(key, fc.oneof({ weight: 3, arbitrary: interesting }, fc.jsonValue({ maxDepth: 2 })), { maxKeys: 4 }),
    fc.tuple(fc.constantFrom(...keys), interesting).map(([k, v]) => ({ [k]: v })),
  );
}

const encode = (s: string): string => {
  try { return encodeURIComponent(s); } catch { return '%ED%A0%80'; } // a lone surrogate: invalid UTF-8 on purpose
};

/** Raw query text: reserved characters, broken and valid escapes, and key=value pairs with the route's keys. */
function queries(keys: string[]): fc.Arbitrary<string> {
  const piece = fc.constantFrom('a', 'z', '0', '9', '=', '&', '+', ';', '[', ']', '.', '-', '_', '~', '!', '$', "'", '(', ')', '*', ',', '/', ':', '@', '?', '%', '%00', '%zz', '%E0%A4', '%2F', '%26', '%3D', '%C3%A9', '%FF');
  const raw = fc.array(piece, { maxLength: 30 }).map((a) => a.join(''));
  const value = fc.oneof(interesting.map((v) => (typeof v === 'string' ? v : JSON.stringify(v))), fc.string({ unit: 'binary', maxLength: 10 }));
  const pair = fc.tuple(fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...(keys.length ? keys : ['x'])) }, fc.string({ maxLength: 6 }), fc.constant('__proto__')), value)
    .map(([k, v]) => `${encode(k)}=${encode(v)}`);
  const pairs = fc.array(pair, { maxLength: 4 }).map((p) => p.join('&'));
  return fc.oneof(raw, { weight: 2, arbitrary: pairs });
}

describe('API fuzz: arbitrary bodies, query strings and ids', () => {
  let api: FakeApi;
  let ops: Op[];
  before(async () => {
    api = await createFakeApi({ stubStreams: true });
    ops = operations((await api.app.inject({ method: 'GET', url: '/openapi.json', headers: fakeAuth })).json());
  });
  after(async () => { await api.close(); });

  /** The properties every answer must have; `what` names the input for the failure message. */
  async function send(op: Op, url: string, payload: string | undefined, what: string): Promise<number> {
    const before = api.calls.length;
    const res = await api.app.inject({
      method: op.method, url, headers: { ...fakeAuth, ...(payload !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(payload !== undefined ? { payload } : {}),
    });
    const where = `${op.method} ${url} ${what}: ${res.statusCode} ${res.body.slice(0, 300)}`;
    assert.ok(res.statusCode < 500, where);
    if (res.statusCode >= 400) {
      // The viewer page answers a missing or bad viewer token with its own HTML page (for people, not programs).
      const htmlPage = res.statusCode === 401 && String(res.headers['content-type']).startsWith('text/html');
      if (!htmlPage) {
        const b = res.json() as { error?: { code?: string; message?: unknown; details?: unknown } };
        assert.ok(b.error && typeof b.error.code === 'string' && b.error.code in ERRORS, where);
        assert.equal(ERRORS[b.error.code as ErrorCode].http, res.statusCode, where);
        assert.equal(typeof b.error.message, 'string', where);
        assert.ok(b.error.details !== null && typeof b.error.details === 'object', where);
      }
      assert.deepEqual(api.mutations(before), [], `no side effect for a refused request: ${where}`);
    }
    for (const c of api.calls.slice(before)) {
      if (c.method !== 'create') continue;
      const r = c.args[0] as { vcpus: number; memMiB: number; ttlSeconds: number | null };
      const l = DEFAULT_LIMITS;
      assert.ok(r.vcpus >= l.vcpus.min && r.vcpus <= l.vcpus.max && r.memMiB >= l.memMiB.min && r.memMiB <= l.memMiB.max, `created within limits: ${where}`);
      assert.ok(r.ttlSeconds === null || (r.ttlSeconds >= l.ttlSeconds.min && r.ttlSeconds <= l.ttlSeconds.max), where);
    }
    return res.statusCode;
  }

  /** Inputs refused at the edge (400) and inputs that got past it must both occur: else the fuzz proves little. */
  function assertMixed(op: Op, statuses: number[], what: string): void {
    assert.ok(statuses.some((s) => s !== 400) && statuses.some((s) => s === 400), `${op.method} ${op.path} ${what}: ${[...new Set(statuses)].join(',')}`);
  }

  test('the fuzz covers every route the server serves', () => {
    const served = api.app.getDecorator<{ method: string; url: string }[]>('servedRoutes');
    const fuzzed = new Set(ops.map((o) => `${o.method} ${o.path}`));
    for (const r of served) assert.ok(fuzzed.has(`${r.method} ${r.url.replace(/:([A-Za-z_]\w*)/g, '{$1}')}`), `${r.method} ${r.url}`);
    assert.ok(ops.filter((o) => o.body).length >= 3, 'create VM, snapshot and viewer bodies');
  });

  test('arbitrary JSON bodies', async () => {
    for (const op of ops.filter((o) => o.body)) {
      const statuses: number[] = [];
      // A valid body among the arbitrary ones, for routes whose bodies random values seldom get right.
      const arb = VALID_BODY[op.path] === undefined ? bodies(op.body!) : fc.oneof({ weight: 9, arbitrary: bodies(op.body!) }, fc.constant(VALID_BODY[op.path]));
      await fc.assert(fc.asyncProperty(arb, async (body) => {
        statuses.push(await send(op, urlFor(op), JSON.stringify(body), `body ${JSON.stringify(body)}`));
      }), { numRuns: RUNS, seed: SEED });
      if (VALID_BODY[op.path] !== undefined) statuses.push(await send(op, `${urlFor(op)}${VALID_QUERY[op.path] ? `?${VALID_QUERY[op.path]}` : ''}`, JSON.stringify(VALID_BODY[op.path]), 'a valid body'));
      assertMixed(op, statuses, 'bodies');
    }
  });

  test('arbitrary query strings, on every route', async () => {
    for (const op of ops) {
      const body = op.body ? JSON.stringify(VALID_BODY[op.path] ?? {}) : undefined;
      const statuses: number[] = [];
      // Routes without query parameters ignore the query string: fewer runs show they do.
      await fc.assert(fc.asyncProperty(queries(op.query), async (q) => {
        statuses.push(await send(op, `${urlFor(op)}?${q}`, body, `query ${q}`));
      }), { numRuns: op.query.length ? RUNS : RUNS / 4, seed: SEED });
      if (VALID_QUERY[op.path]) statuses.push(await send(op, `${urlFor(op)}?${VALID_QUERY[op.path]}`, body, 'a valid query'));
      // The WebSocket routes are documented but served on the raw server (VNC bridge, agent sockets): Fastify answers 404.
      if (op.query.length && !/\/(vnc|ws)$/.test(op.path)) assertMixed(op, statuses, 'query strings');
    }
  });

  test('arbitrary ids in the path', async () => {
    const id = fc.oneof(
      fc.string({ minLength: 1, maxLength: 140 }).map(encode),
      fc.array(fc.constantFrom('a', '0', '-', '.', '%', '%2F', '%zz', '%E0%A4', '~', "'", '..'), { minLength: 1, maxLength: 40 }).map((a) => a.join('')),
      fc.integer({ min: 120, max: 140 }).map((n) => 'x'.repeat(n)),
    );
    for (const op of ops.filter((o) => o.path.includes('{id}'))) {
      const body = op.body ? JSON.stringify(VALID_BODY[op.path] ?? {}) : undefined;
      await fc.assert(fc.asyncProperty(id, async (i) => {
        await send(op, urlFor(op, i), body, `id ${i}`);
      }), { numRuns: RUNS / 4, seed: SEED });
    }
  });
});
