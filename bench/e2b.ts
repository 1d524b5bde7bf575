// `npm run bench -- e2b`: with the REAL e2b SDK against a real controller, Sandbox.create → the first
// commands.run('true') returning, p50 and p99 over HANGAR_BENCH_RUNS (default 5) runs of each kind, side by side in
// one run and interleaved round by round (a loaded machine slows all kinds alike): "desktop" (a cold boot), a golden
// snapshot of it (a clone restored), and the same snapshot with a warm pool of it (src/pool/: the create claims a
// waiting member; the pool is full again before each pool sample, so the refill is never measured). Real QEMU (TCG
// here) in namespaces the live controller makes and removes (root).
import { Sandbox } from 'e2b';
import { table } from '../src/cli/command.js';
import { listImages } from '../src/image/store.js';
import { startLiveController, type LiveController } from '../test/support/live-controller.js';
import type { BenchFigures, BenchOptions } from './index.js';
import { median, percentile, round } from './_stats.js';

export const summary = 'E2B SDK: Sandbox.create → first commands.run, p50/p99, warm pool vs snapshot clone vs cold boot';

const RUNS = Number(process.env.HANGAR_BENCH_RUNS ?? 5);
const POOL = 'bench-e2b';

interface Sample { createMs: number; firstRunMs: number; totalMs: number }
interface PoolView { ready: number; size: number; claims: number; misses: number }
type Opts = { apiKey: string; apiUrl: string; sandboxUrl: string };

async function once(template: string, opts: Opts): Promise<Sample> {
  const t0 = performance.now();
  const sbx = await Sandbox.create(template, { ...opts, requestTimeoutMs: 300_000, timeoutMs: 600_000 });
  const t1 = performance.now();
  const r = await sbx.commands.run('true');
  const t2 = performance.now();
  if (r.exitCode !== 0) throw new Error(`commands.run('true') exited ${r.exitCode}`);
  await sbx.kill();
  return { createMs: t1 - t0, firstRunMs: t2 - t1, totalMs: t2 - t0 };
}

export async function run({ json }: BenchOptions): Promise<BenchFigures> {
  const figures: BenchFigures = { runs: RUNS, pool: false };
  if (!(await listImages()).some((i) => i.profile === 'desktop')) {
    process.stderr.write('no desktop image: hangar image build --profile desktop\n');
    return { ...figures, desktop_image: false };
  }
  let live: LiveController | undefined;
  try {
    live = await startLiveController({ net: { cidr: '10.228.0.0/29' }, config: { hibernateAfterS: 0 } });
    const c = live.c;
    const api = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
      const r = await fetch(c.url + path, { method, headers: { authorization: `Bearer ${c.token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}) });
      if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${await r.text()}`);
      return (r.status === 204 ? null : await r.json()) as T;
    };
    const poolFull = async (): Promise<PoolView> => {
      const end = Date.now() + 300_000;
      for (;;) {
        const p = await api<PoolView>('GET', `/v1/pools/${POOL}`);
        if (p.ready >= p.size) return p;
        if (Date.now() > end) throw new Error(`pool ${POOL} not refilled: ${JSON.stringify(p)}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    };
    const opts = { apiKey: c.token, apiUrl: `${c.url}/e2b`, sandboxUrl: `${c.url}/e2b/sandbox` };
    // One snapshot for both the clone and the pool kinds: the pool's template is a snapshot, not the desktop
    // profile, so a create of "desktop" boots and a create of the snapshot id without the pool restores a clone.
    const cloneSnap = await c.manager.snapshots.create({ image: 'desktop' });
    const poolSnap = await c.manager.snapshots.create({ image: 'desktop' });
    await api('POST', '/v1/pools', { name: POOL, size: 1, snapshot: poolSnap.manifest.id });
    const kinds = [
      { kind: 'warm pool', key: 'pool', template: poolSnap.manifest.id },
      { kind: 'snapshot clone', key: 'clone', template: cloneSnap.manifest.id },
      { kind: 'cold boot', key: 'cold', template: 'desktop' },
    ];
    const samples = new Map<string, Sample[]>(kinds.map((k) => [k.key, []]));
    let claims = 0;
    for (let i = 0; i < RUNS; i++) {
      for (const k of kinds) {
        const before = k.key === 'pool' ? await poolFull() : null;
        samples.get(k.key)!.push(await once(k.template, opts));
        if (before) {
          const after = await api<PoolView>('GET', `/v1/pools/${POOL}`);
          if (after.claims !== before.claims + 1 || after.misses !== before.misses) throw new Error(`the pool sample was not a claim: ${JSON.stringify({ before, after })}`);
          claims++;
        }
      }
    }
    figures.pool = true;
    figures.pool_claims = claims;
    const rows: (string | number)[][] = [];
    for (const k of kinds) {
      const s = samples.get(k.key)!;
      const total = s.map((x) => x.totalMs);
      Object.assign(figures, {
        [`${k.key}_create_to_first_run_ms_p50`]: Math.round(median(total)),
        [`${k.key}_create_to_first_run_ms_p99`]: Math.round(percentile(total, 99)),
        [`${k.key}_create_ms_p50`]: Math.round(median(s.map((x) => x.createMs))),
        [`${k.key}_first_run_ms_p50`]: round(median(s.map((x) => x.firstRunMs)), 1),
      });
      rows.push([k.kind, Math.round(median(total)), Math.round(percentile(total, 99)), Math.round(median(s.map((x) => x.createMs))), round(median(s.map((x) => x.firstRunMs)), 1), total.map(Math.round).join(' ')]);
    }
    await api('DELETE', `/v1/pools/${POOL}`);
    await c.manager.snapshots.remove(cloneSnap.manifest.id);
    await c.manager.snapshots.remove(poolSnap.manifest.id).catch(() => undefined);
    if (!json) {
      process.stdout.write(`Sandbox.create → first commands.run('true') returns (e2b SDK, ${RUNS} runs each, interleaved; TCG when /dev/kvm is unusable)\n`);
      process.stdout.write(table(['template', 'p50 ms', 'p99 ms', 'create p50 ms', 'first run p50 ms', 'runs (ms)'], rows) + '\n');
    }
    return figures;
  } finally {
    await live?.destroy();
  }
}
