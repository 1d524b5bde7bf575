// `npm run bench -- api`: GET /v1/vms against a controller holding 100 VM records, loaded by wrk (a separate
// process, so the load generator does not share the server's event loop). Target: ≥ 5,000 req/s on 2 cores.
import { run as exec, which } from '../src/util/exec.js';
import { table } from '../src/cli/command.js';
import { createApiHarness, TEST_TOKEN } from '../test/support/api.js';
import type { BenchFigures, BenchOptions } from './index.js';
import { round } from './_stats.js';

export const summary = 'controller API: GET /v1/vms with 100 VM records under wrk';

const RECORDS = 100;
const DURATION_S = 10;
const CONNECTIONS = 32;

function parseWrk(out: string): { rps: number; p50: number; p99: number; requests: number; errors: number } {
  const ms = (v: string, unit: string): number => Number(v) * ({ us: 0.001, ms: 1, s: 1000 } as Record<string, number>)[unit]!;
  const lat = (p: string): number => {
    const m = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s)\\s*$`, 'm').exec(out);
    return m ? ms(m[1]!, m[2]!) : NaN;
  };
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const sockErr = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN),
    p50: lat('50'),
    p99: lat('99'),
    requests: Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN),
    errors: Number(non2xx?.[1] ?? 0) + (sockErr ? sockErr.slice(1).reduce((a, b) => a + Number(b), 0) : 0),
  };
}

export async function run({ json }: BenchOptions): Promise<BenchFigures> {
  if (!(await which('wrk'))) throw new Error('wrk is not installed (Debian: apt install wrk; scripts/install-deps.sh does)');
  const h = await createApiHarness();
  try {
    for (let i = 0; i < RECORDS; i++) h.insertVm(`vm-${String(i).padStart(8, '0')}`, i % 3 === 0 ? 'stopped' : 'ready');
    const url = await h.app.listen({ host: '127.0.0.1', port: 0 });
    const body = await (await fetch(`${url}/v1/vms`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } })).text();
    const args = ['-t', '1', '-c', String(CONNECTIONS), '-d', `${DURATION_S}s`, '--latency', '-H', `Authorization: Bearer ${TEST_TOKEN}`, `${url}/v1/vms`];
    await exec('wrk', ['-t', '1', '-c', '8', '-d', '2s', '-H', `Authorization: Bearer ${TEST_TOKEN}`, `${url}/v1/vms`]); // warm-up (JIT)
    const r = parseWrk((await exec('wrk', args, { timeoutMs: (DURATION_S + 30) * 1000 })).stdout);
    const figures: BenchFigures = {
      records: RECORDS, response_bytes: body.length, connections: CONNECTIONS, duration_s: DURATION_S,
      requests_per_s: round(r.rps, 0), latency_p50_ms: round(r.p50), latency_p99_ms: round(r.p99), requests: r.requests, errors: r.errors,
      target_rps: 5000, meets_target: r.rps >= 5000 && r.errors === 0,
    };
    if (!json) {
      process.stdout.write(table(['figure', 'value'], Object.entries(figures).map(([k, v]) => [k, String(v)])));
    }
    return figures;
  } finally {
    await h.close();
  }
}
